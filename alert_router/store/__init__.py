"""Stores: where alerts, work queues and state live. :func:`open_store` picks one by URL."""

from __future__ import annotations

from pathlib import Path

from alert_router.store.base import Store
from alert_router.store.pgsettings import PostgresConfig


def create_store(url: str, postgres: PostgresConfig | None = None) -> Store:
    """Build the store for ``url`` (``sqlite:///PATH``; ``postgresql://…`` for several replicas).

    ``postgres`` holds the pool and timeout settings of the PostgreSQL store (``postgres:`` in the config).
    """
    if url.startswith("sqlite:///"):
        from alert_router.store.sqlite import SQLiteStore

        return SQLiteStore(Path(url[len("sqlite:///") :]))
    if url.startswith(("postgresql://", "postgres://")):
        from alert_router.store.postgres import PostgresStore

        return PostgresStore(url, postgres)
    raise ValueError(f"unsupported store URL {url!r}")


__all__ = ["Store", "create_store"]
