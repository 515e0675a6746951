"""Small pieces shared by the PostgreSQL store modules: error classes, advisory lock keys, bulk inserts."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # no stubs or py.typed

from alert_router.store.base import AlertRecord, NewOutboxItem
from alert_router.store.queues import OUTBOX_INSERT_COLUMNS, outbox_row

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


def outbox_columns(items: Sequence[NewOutboxItem], now: float) -> tuple[list[Any], ...]:
    """The arrays that :func:`outbox_insert` turns back into outbox rows (:func:`.queues.outbox_row`)."""
    rows = [outbox_row(i, now) for i in items]
    kind, dest, group, payload, not_before, created, prio = (list(c) for c in zip(*rows, strict=True)) if rows else (
        [] for _ in range(7)
    )
    return kind, dest, group, payload, not_before, created, prio


def outbox_insert(first: int, join: str = "") -> str:
    """``INSERT INTO outbox`` of the 7 arrays of :func:`outbox_columns`, bound from ``$first`` on, in list order.

    ``join`` adds a table to the ``FROM`` list (a CTE whose rows the insert depends on).
    """
    p = [f"${first + k}" for k in range(7)]
    return f"""INSERT INTO outbox ({OUTBOX_INSERT_COLUMNS})
               SELECT k, d, g, p, nb, c, pr
               FROM unnest({p[0]}::text[], {p[1]}::text[], {p[2]}::text[], {p[3]}::text[], {p[4]}::float8[],
                           {p[5]}::float8[], {p[6]}::int[]) WITH ORDINALITY AS t(k, d, g, p, nb, c, pr, n){join}
               ORDER BY n"""  # noqa: S608 - placeholders only


async def insert_outbox(conn: asyncpg.Connection, items: Sequence[NewOutboxItem], now: float) -> None:
    """Insert outbox items in one statement, their ids in list order."""
    if items:
        await conn.execute(outbox_insert(1), *outbox_columns(items, now))


def refuses_data(sqlstate: str | None) -> bool:
    """Whether a PostgreSQL error refuses the data itself, so the same statement would fail every time.

    Class 22 (data exception: ``invalid byte sequence for encoding "UTF8": 0x00``, a value out of range) and
    54000 (program limit exceeded: an index entry over its size limit). Anything else may pass on retry.
    """
    return sqlstate is not None and (sqlstate.startswith("22") or sqlstate == "54000")
