"""The SQLite side of running the service: heartbeats, reclaiming claims, queue ages, the dead-man's switch.

A mixin of :class:`~alert_router.store.sqlite.SQLiteStore` (the ``replicas`` and ``deadman`` tables are schema
version 4 there). One process owns the file, so there is never another replica to take over from: a process
that crashed left its claims behind, and the next one frees them when it opens the file
(:func:`free_all_claims`); :meth:`SQLiteOpsMixin.reclaim` reports them once. The methods still keep the
contract of the :class:`~alert_router.store.base.Store` protocol, so the contract tests hold on both stores.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from alert_router.store.base import DeadmanPlanner, DeadmanState, NewOutboxItem
from alert_router.store.rows import CLAIM_TABLES, DEADMAN_COLUMNS, FREED_AT_OPEN, counted, deadman_state
from alert_router.store.sqlite_thread import in_lists

T = TypeVar("T")


def free_all_claims(conn: sqlite3.Connection) -> dict[str, int]:
    """Free every claim in the queues (the process that held them is gone); return how many per queue."""
    queues: list[Any] = []
    for t in FREED_AT_OPEN:
        rows = conn.execute(
            f"""UPDATE {t.table} SET {t.release} WHERE {t.held} AND (owner IS NOT NULL OR lease_until IS NOT NULL)
                RETURNING {t.queue}""",  # noqa: S608 - constant table and column names
        ).fetchall()
        queues.extend(r[0] for r in rows)
    return counted(queues)


def _insert(conn: sqlite3.Connection, items: Sequence[NewOutboxItem], now: float) -> None:
    from alert_router.store.sqlite import _insert_outbox

    _insert_outbox(conn, items, now)


class SQLiteOpsMixin:
    """Heartbeats, reclaiming, queue ages and the dead-man's switch on SQLite (see the module docstring)."""

    _freed_at_open: dict[str, int]

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:  # pragma: no cover - provided by the store
        raise NotImplementedError

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:  # pragma: no cover - provided by the store
        raise NotImplementedError

    async def heartbeat(self, owner: str, started_at: float, now: float, alive_after: float) -> int:
        """Record ``owner``'s heartbeat; count the processes alive since ``alive_after``."""

        def beat(conn: sqlite3.Connection) -> int:
            conn.execute(
                """INSERT INTO replicas(owner, started_at, heartbeat_at) VALUES (?,?,?)
                   ON CONFLICT(owner) DO UPDATE SET heartbeat_at=excluded.heartbeat_at""",
                (owner, started_at, now),
            )
            row = conn.execute("SELECT COUNT(*) FROM replicas WHERE heartbeat_at >= ?", (alive_after,)).fetchone()
            return int(row[0])

        return await self._write(beat)

    async def reclaim(self, dead_before: float, now: float) -> dict[str, int]:
        """Release the claims of processes silent since ``dead_before`` (and report what open freed, once)."""

        def take(conn: sqlite3.Connection) -> dict[str, int]:
            found = dict(self._freed_at_open)
            self._freed_at_open = {}
            dead = [r[0] for r in conn.execute("DELETE FROM replicas WHERE heartbeat_at < ? RETURNING owner",
                                                (dead_before,))]
            queues: list[Any] = []
            for part, marks in in_lists(dead):
                for t in CLAIM_TABLES:
                    params = ([now] if "{now}" in t.release else []) + part
                    rows = conn.execute(
                        f"""UPDATE {t.table} SET {t.release.format(now="?")}
                            WHERE {t.held} AND owner IN ({marks}) RETURNING {t.queue or "NULL"}""",  # noqa: S608
                        params,
                    ).fetchall()
                    queues.extend(r[0] for r in rows)
            for queue, n in counted(queues).items():
                found[queue] = found.get(queue, 0) + n
            return found

        return await self._write(take)

    async def retire(self, owner: str) -> None:
        """Mark ``owner`` as stopped."""
        await self._write(lambda c: c.execute("UPDATE replicas SET heartbeat_at=0 WHERE owner=?", (owner,)))

    async def oldest_pending(self, now: float) -> dict[str, float]:
        """Age of the oldest pending inbox body and outbox item of each kind."""

        def ages(conn: sqlite3.Connection) -> dict[str, float]:
            rows = conn.execute(
                """SELECT 'inbox', (SELECT received_at FROM inbox WHERE status='pending' ORDER BY id LIMIT 1)
                   UNION ALL
                   SELECT kind, MIN(created_at) FROM outbox WHERE status='pending' GROUP BY kind"""
            ).fetchall()
            return {str(r[0]): max(0.0, now - float(r[1])) for r in rows if r[1] is not None}

        return await self._run(ages)

    async def deadman_beat(self, name: str, seen_at: float, now: float, plan: DeadmanPlanner) -> DeadmanState:
        """Remember the heartbeat; resolve the switch (enqueueing ``plan``) if it was firing."""

        def beat(conn: sqlite3.Connection) -> DeadmanState:
            conn.execute(
                """INSERT INTO deadman(name, last_seen, status, changed_at) VALUES (?,?,'ok',?)
                   ON CONFLICT(name) DO UPDATE SET last_seen=MAX(last_seen, excluded.last_seen)""",
                (name, seen_at, now),
            )
            row = conn.execute(
                f"""UPDATE deadman SET status='ok', changed_at=? WHERE name=? AND status='firing' AND changed_at <= ?
                    RETURNING {DEADMAN_COLUMNS}""",  # noqa: S608 - constant column names
                (now, name, seen_at),
            ).fetchone()
            if row is not None:
                state = deadman_state(row, changed=True)
                _insert(conn, plan(state), now)
                return state
            return deadman_state(conn.execute(f"SELECT {DEADMAN_COLUMNS} FROM deadman WHERE name=?",  # noqa: S608
                                              (name,)).fetchone())

        return await self._write(beat)

    async def deadman_check(self, name: str, now: float, dead_before: float, plan: DeadmanPlanner) -> DeadmanState:
        """Fire the switch (enqueueing ``plan``) if its heartbeat is older than ``dead_before``."""

        def check(conn: sqlite3.Connection) -> DeadmanState:
            conn.execute(
                "INSERT INTO deadman(name, last_seen, status, changed_at) VALUES (?,?,'ok',?) ON CONFLICT DO NOTHING",
                (name, now, now),
            )
            row = conn.execute(
                f"""UPDATE deadman SET status='firing', changed_at=?1, fired_at=?1
                    WHERE name=?2 AND status='ok' AND last_seen < ?3 RETURNING {DEADMAN_COLUMNS}""",  # noqa: S608 - constant column names
                (now, name, dead_before),
            ).fetchone()
            if row is not None:
                state = deadman_state(row, changed=True)
                _insert(conn, plan(state), now)
                return state
            return deadman_state(conn.execute(f"SELECT {DEADMAN_COLUMNS} FROM deadman WHERE name=?",  # noqa: S608
                                              (name,)).fetchone())

        return await self._write(check)
