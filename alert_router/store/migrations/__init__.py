"""Versioned schema migrations of the PostgreSQL store.

Each :class:`Migration` is applied once, in its own transaction, in version order; the versions
applied are recorded in ``schema_version``. :func:`alert_router.store.postgres.migrate` applies them
under a PostgreSQL advisory lock, so several replicas starting at once apply each version exactly once
(the others wait, then find nothing left to do). The SQLite store keeps its own list in
:mod:`alert_router.store.sqlite`; both describe the same tables.
"""

from __future__ import annotations

from alert_router.store.migrations.postgres import MIGRATIONS, Migration

LATEST = MIGRATIONS[-1].version
"""The schema version this code expects."""

__all__ = ["LATEST", "MIGRATIONS", "Migration"]
