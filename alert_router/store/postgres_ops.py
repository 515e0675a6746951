"""The PostgreSQL side of running replicas: heartbeats, taking over a dead replica's work, queue ages, the dead-man.

A mixin of :class:`~alert_router.store.postgres.PostgresStore` (schema version 4). Every replica writes its
heartbeat to ``replicas``; a replica whose heartbeat stops is dead, and :meth:`PostgresOpsMixin.reclaim`
deletes its row and releases its claims in one transaction: the row lock on the dead replica's row makes
one caller do it when several try at once. Steady state costs one upsert per replica per heartbeat and one
``DELETE`` on a table of a few rows; the claimed tables are only touched when a replica died.

The dead-man's switch is one row: its state changes with a conditional ``UPDATE`` in the transaction that
enqueues the notifications of the change, so a page (and its resolution) goes out once, whichever replica
notices first.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeAlias, TypeVar

import asyncpg  # type: ignore[import-untyped]  # no stubs or py.typed

from alert_router.store.base import DeadmanPlanner, DeadmanState
from alert_router.store.pgcommon import insert_outbox
from alert_router.store.rows import CLAIM_TABLES, DEADMAN_COLUMNS, counted, deadman_state

T = TypeVar("T")
Conn: TypeAlias = asyncpg.Connection


class PostgresOpsMixin:
    """Heartbeats, reclaiming, queue ages and the dead-man's switch on PostgreSQL (see the module docstring)."""

    async def _tx(  # pragma: no cover - provided by the store
        self,
        fn: Callable[[Conn], Awaitable[T]],
        *,
        mode: Any = "tx",
        patience: float = 0.0,
        idempotent: bool = False,
        isolation: str = "read_committed",
    ) -> T:
        raise NotImplementedError

    async def heartbeat(self, owner: str, started_at: float, now: float, alive_after: float) -> int:
        """Record ``owner``'s heartbeat; count the replicas alive since ``alive_after``."""

        async def q(conn: Conn) -> int:
            return int(
                await conn.fetchval(
                    """WITH up AS (
                           INSERT INTO replicas (owner, started_at, heartbeat_at) VALUES ($1, $2, $3)
                           ON CONFLICT (owner) DO UPDATE SET heartbeat_at = EXCLUDED.heartbeat_at RETURNING owner)
                       SELECT 1 + (SELECT COUNT(*) FROM replicas WHERE heartbeat_at >= $4 AND owner <> $1) FROM up""",
                    owner,
                    started_at,
                    now,
                    alive_after,
                )
            )

        return await self._tx(q, mode="single", idempotent=True)

    async def reclaim(self, dead_before: float, now: float) -> dict[str, int]:
        """Delete the replicas silent since ``dead_before`` and release their claims, in one transaction."""

        async def q(conn: Conn) -> dict[str, int]:
            rows = await conn.fetch("DELETE FROM replicas WHERE heartbeat_at < $1 RETURNING owner", dead_before)
            dead = [r[0] for r in rows]
            if not dead:
                return {}
            queues: list[Any] = []
            for t in CLAIM_TABLES:
                args: list[Any] = [dead, now] if "{now}" in t.release else [dead]
                released = await conn.fetch(
                    f"""UPDATE {t.table} SET {t.release.format(now="$2")}
                        WHERE {t.held} AND owner = ANY($1::text[]) RETURNING {t.queue or "NULL"}""",  # noqa: S608
                    *args,
                )
                queues.extend(r[0] for r in released)
            return counted(queues)

        return await self._tx(q)

    async def retire(self, owner: str) -> None:
        """Mark ``owner`` as stopped."""

        async def q(conn: Conn) -> None:
            await conn.execute("UPDATE replicas SET heartbeat_at = 0 WHERE owner = $1", owner)

        await self._tx(q, mode="single", idempotent=True)

    async def oldest_pending(self, now: float) -> dict[str, float]:
        """Age of the oldest pending inbox body and outbox item of each kind."""

        async def q(conn: Conn) -> dict[str, float]:
            rows = await conn.fetch(
                """SELECT 'inbox', (SELECT received_at FROM inbox WHERE status = 'pending' ORDER BY id LIMIT 1)
                   UNION ALL
                   SELECT kind, MIN(created_at) FROM outbox WHERE status = 'pending' GROUP BY kind"""
            )
            return {str(r[0]): max(0.0, now - float(r[1])) for r in rows if r[1] is not None}

        return await self._tx(q, mode="read")

    async def _deadman_change(
        self, conn: Conn, sql: str, args: Sequence[Any], name: str, now: float, plan: DeadmanPlanner
    ) -> DeadmanState:
        row = await conn.fetchrow(sql, *args)
        if row is not None:
            state = deadman_state(row, changed=True)
            await insert_outbox(conn, list(plan(state)), now)
            return state
        return deadman_state(
            await conn.fetchrow(f"SELECT {DEADMAN_COLUMNS} FROM deadman WHERE name = $1", name)  # noqa: S608
        )

    async def deadman_beat(self, name: str, seen_at: float, now: float, plan: DeadmanPlanner) -> DeadmanState:
        """Remember the heartbeat; resolve the switch (enqueueing ``plan``) if it was firing."""

        async def q(conn: Conn) -> DeadmanState:
            await conn.execute(
                """INSERT INTO deadman AS d (name, last_seen, status, changed_at) VALUES ($1, $2, 'ok', $3)
                   ON CONFLICT (name) DO UPDATE SET last_seen = GREATEST(d.last_seen, EXCLUDED.last_seen)""",
                name,
                seen_at,
                now,
            )
            return await self._deadman_change(
                conn,
                f"""UPDATE deadman SET status = 'ok', changed_at = $2
                    WHERE name = $1 AND status = 'firing' AND changed_at <= $3 RETURNING {DEADMAN_COLUMNS}""",  # noqa: S608
                (name, now, seen_at),
                name,
                now,
                plan,
            )

        return await self._tx(q)

    async def deadman_check(self, name: str, now: float, dead_before: float, plan: DeadmanPlanner) -> DeadmanState:
        """Fire the switch (enqueueing ``plan``) if its heartbeat is older than ``dead_before``."""

        async def q(conn: Conn) -> DeadmanState:
            await conn.execute(
                """INSERT INTO deadman (name, last_seen, status, changed_at) VALUES ($1, $2, 'ok', $2)
                   ON CONFLICT (name) DO NOTHING""",
                name,
                now,
            )
            return await self._deadman_change(
                conn,
                f"""UPDATE deadman SET status = 'firing', changed_at = $2, fired_at = $2
                    WHERE name = $1 AND status = 'ok' AND last_seen < $3 RETURNING {DEADMAN_COLUMNS}""",  # noqa: S608
                (name, now, dead_before),
                name,
                now,
                plan,
            )

        return await self._tx(q)
