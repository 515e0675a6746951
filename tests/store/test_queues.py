"""The claim statements walk an index in claim order on both databases: no sort of the backlog.

A claim that sorts every pending row costs more the bigger the backlog, which is exactly when a storm
builds one (``bench/claims.py`` measures it). These tests read each claim's plan, with a backlog large
enough that a database which could sort would.
"""

import asyncio
import re
import time
from typing import Any

from alert_router.store.base import NewOutboxItem, Store
from alert_router.store.postgres import PostgresStore
from alert_router.store.queues import SKIP_LOCKED, claim_inbox_sql, claim_outbox_sql, sqlite
from alert_router.store.sqlite import SQLiteStore

BACKLOG = 20_000


async def _fill(store: Store) -> None:
    """A backlog of pending notifications (distinct groups, mixed priorities) and webhook bodies."""
    await store.enqueue(b"{}", "seed", time.time())
    (item,) = await store.claim_inbox("w", 1, 60, time.time())
    items = [NewOutboxItem("notify", "file", f"g{i}", {}, priority=i % 3) for i in range(BACKLOG)]
    await store.commit_inbox(item, "w", [], lambda c: items, 60, time.time())
    for i in range(0, 2_000, 100):
        await asyncio.gather(*(store.enqueue(b"{}", f"g{i + k}", time.time(), k % 3) for k in range(100)))


async def _sqlite_plan(store: SQLiteStore, sql: str, args: tuple[Any, ...]) -> str:
    def explain(conn: Any) -> str:
        conn.execute("ANALYZE")
        return "\n".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sqlite(sql), args))

    return await store._run(explain)


async def _pg_plan(store: PostgresStore, sql: str, args: tuple[Any, ...]) -> str:
    async def explain(conn: Any) -> str:
        await conn.execute("ANALYZE")
        return "\n".join(r[0] for r in await conn.fetch("EXPLAIN " + sql, *args))

    return await store._tx(explain, mode="read")


async def test_claim_plans_use_the_lane_indexes_without_sorting(store: Store) -> None:
    await _fill(store)
    now = time.time()
    outbox_args = ("notify", now, 64, "w", now + 30)
    inbox_args = (now, 64, "w", now + 30)
    if isinstance(store, SQLiteStore):
        outbox = await _sqlite_plan(store, claim_outbox_sql(), outbox_args)
        inbox = await _sqlite_plan(store, claim_inbox_sql(), inbox_args)
        for plan, index in ((outbox, "outbox_lane"), (inbox, "inbox_lane")):
            assert f"USING INDEX {index}" in plan, plan
            assert "TEMP B-TREE" not in plan, plan  # no sort
            assert "SCAN o\n" not in plan + "\n" and "SCAN i\n" not in plan + "\n", plan  # no full scan
    else:
        assert isinstance(store, PostgresStore)
        outbox = await _pg_plan(store, claim_outbox_sql(SKIP_LOCKED), outbox_args)
        inbox = await _pg_plan(store, claim_inbox_sql(SKIP_LOCKED), inbox_args)
        for plan, index in ((outbox, "outbox_lane"), (inbox, "inbox_lane")):
            assert f"Index Scan using {index}" in plan, plan
            assert "Sort" not in plan, plan
            # No lane is read in full (the planner may still scan a small table to join the claimed ids).
            assert not re.search(r"Seq Scan on (inbox|outbox) [io]", plan), plan
