"""Small pieces shared by the PostgreSQL store modules: error classes, advisory lock keys, bulk inserts."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # no stubs or py.typed

from alert_router.store.base import AlertRecord, NewOutboxItem

CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,  # admin shutdown, cannot connect now, statement timeout
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections, disk full
    # A pooled connection the server dropped while it sat idle can be left mid-protocol ("cannot switch to
    # state 12; another operation (2) is in progress"): as broken as a closed one.
    asyncpg.exceptions.InternalClientError,
)
"""Errors that mean the database cannot be reached (or cannot take work) right now."""

CONFLICT_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
)
"""Errors after which PostgreSQL rolled the transaction back and expects it to be run again."""


def lock_key(namespace: str, value: str) -> int:
    """A stable signed 64-bit key for ``pg_advisory_*lock`` naming ``value`` in ``namespace``."""
    digest = hashlib.blake2b(f"alert-router:{namespace}:{value}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


MIGRATION_LOCK = lock_key("migrate", "schema")


ALERT_COLUMNS = """fingerprint, status, starts_at, ends_at, group_key, labels, annotations, generator_url, last_seen,
    acked_by, acked_at, changed_at"""
ALERT_SELECT = f"SELECT {ALERT_COLUMNS} FROM alert_state"  # noqa: S608 - fixed column names


def alert_record(r: Sequence[Any]) -> AlertRecord:
    """An :class:`AlertRecord` from a row of :data:`ALERT_COLUMNS`."""
    return AlertRecord(
        r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), json.loads(r[6]), r[7], r[8], r[9], r[10], r[11]
    )


def like_prefix(prefix: str) -> str:
    """A ``LIKE`` pattern (backslash escapes) matching the strings that start with ``prefix``."""
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


class Rollback(Exception):
    """Raised inside a transaction to undo it; the store returns :attr:`value` to its caller."""

    def __init__(self, value: Any) -> None:
        super().__init__("rollback")
        self.value = value


def affected(status: str) -> int:
    """The row count of a command status such as ``UPDATE 3``."""
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def outbox_columns(items: Sequence[NewOutboxItem]) -> tuple[list[str], list[str], list[str], list[str], list[float]]:
    """The arrays (kind, dest, group key, payload JSON, not before) that ``unnest`` turns back into outbox rows."""
    return (
        [i.kind for i in items],
        [i.dest for i in items],
        [i.group_key for i in items],
        [json.dumps(i.payload) for i in items],
        [i.not_before for i in items],
    )


async def insert_outbox(conn: asyncpg.Connection, items: Sequence[NewOutboxItem], now: float) -> None:
    """Insert outbox items in one statement, their ids in list order."""
    if not items:
        return
    await conn.execute(
        """INSERT INTO outbox (kind, dest, group_key, payload, not_before, created_at)
           SELECT k, d, g, p, nb, $1
           FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::float8[])
                WITH ORDINALITY AS t(k, d, g, p, nb, n)
           ORDER BY n""",
        now,
        *outbox_columns(items),
    )
