"""Claim benchmark: what one outbox claim costs with 1,000 and with 100,000 pending items, on both stores.

Usage: .venv/bin/python bench/claims.py [--small 1000] [--large 100000] [--claims 200] [--limit 32]

For each store (SQLite in a temporary file; PostgreSQL as ``bench/replicas.py`` finds it: ``$PGDSN``, else
the server on 127.0.0.1:5432, else a throwaway one) and each backlog size, a new database gets that many
pending ``notify`` items (distinct groups, warnings), then ``--claims`` claims of ``--limit`` items are
timed, each released again (``retry_outbox``, due at once) so that the backlog stays the same.

Side by side, the claim statement of the previous schema (``ORDER BY id`` over all due rows, with its old
index) runs on the same data: it sorts every due row, so its cost grows with the backlog. Reported: the
median and p90 claim time per size, and the ratio large/small (target: at most 1.5 for the claims in use).
Loopback only; databases and files are removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from common import ROOT, table

sys.path.insert(0, str(ROOT))
from alert_router.store.base import NewOutboxItem, Store
from alert_router.store.postgres import PostgresStore
from alert_router.store.sqlite import SQLiteStore
from tests.procs.postgres import PostgresServer, acreate_database, adrop_database, database_of, find_shared_server


def _new_select() -> str:
    """The row selection of today's claim, without its UPDATE (to compare with the previous SELECT)."""
    from alert_router.store.queues import claim_outbox_sql

    text = claim_outbox_sql()
    return text[text.index("FROM (") + len("FROM (") : text.rindex(") AS c")]


NEW_SELECT = _new_select()

# The claim of schema version 3, kept here only to show what it cost: a sort of every due row per claim.
OLD_CLAIM = """SELECT id FROM outbox o
               WHERE kind = $1 AND status = 'pending' AND not_before <= $2
                 AND (lease_until IS NULL OR lease_until < $2)
                 AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.dest = o.dest AND p.group_key = o.group_key
                                 AND p.status = 'pending' AND p.id < o.id)
               ORDER BY id LIMIT $3"""
OLD_INDEX = {
    "sqlite": "CREATE INDEX IF NOT EXISTS bench_outbox_due ON outbox(kind, status, not_before, id)",
    "postgresql": "CREATE INDEX IF NOT EXISTS bench_outbox_pending ON outbox (kind, id) WHERE status = 'pending'",
}


async def fill(store: Store, n: int) -> None:
    """``n`` finished notifications (not pruned yet), then ``n`` pending ones, in distinct groups."""
    payload = {"alerts": [{"labels": {"alertname": "HighModelLatency", "severity": "warning"}}], "status": "firing"}
    for pending in (False, True):
        await store.enqueue(b"{}", f"bench-{pending}", time.time())
        (item,) = await store.claim_inbox("bench", 1, 600, time.time())
        items = [NewOutboxItem("notify", "file", f"g{i}-{pending}", payload) for i in range(n)]
        res = await store.commit_inbox(item, "bench", [], lambda changed, items=items: items, 3600, time.time())
        assert res.committed
        while not pending:
            got = await store.claim_outbox("notify", "bench", 5000, 600, time.time())
            if not got:
                break
            await store.finish_outbox_many(got, "bench", ok=True, now=time.time())


async def sql(store: Store, statement: str, *args: Any) -> list[Any]:
    """Run one statement on the store's own connection (``$n`` placeholders)."""
    if isinstance(store, SQLiteStore):
        from alert_router.store.queues import sqlite

        return await store._run(lambda c: c.execute(sqlite(statement), args).fetchall())
    assert isinstance(store, PostgresStore)

    async def q(conn: Any) -> list[Any]:
        return list(await conn.fetch(statement, *args))

    return await store._tx(q, mode="read")


async def timed(claims: int, fn: Callable[[], Awaitable[Any]], repeat: int = 5) -> list[float]:
    """Seconds per call, each sample the mean of ``repeat`` calls (a SELECT alone is below the timer's grain)."""
    await fn()  # warm: the statement is prepared, the pages are cached
    out = []
    for _ in range(claims):
        t = time.perf_counter()
        for _ in range(repeat):
            await fn()
        out.append((time.perf_counter() - t) / repeat)
    return out


async def measure(store: Store, kind: str, n: int, args: argparse.Namespace) -> dict[str, list[float]]:
    await store.open()
    try:
        await fill(store, n)
        if kind == "postgresql":  # autovacuum would; the embedded store never runs ANALYZE
            await sql(store, "ANALYZE")

        current: list[float] = []
        for _ in range(args.claims):
            now = time.time()
            t = time.perf_counter()
            got = await store.claim_outbox("notify", "bench", args.limit, 60, now)
            current.append(time.perf_counter() - t)
            assert len(got) == args.limit
            for item in got:  # back, due at once: the backlog stays as it was
                await store.retry_outbox(item, "bench", 0.0, "bench", now)
        new = await timed(args.claims, lambda: sql(store, NEW_SELECT, "notify", time.time(), args.limit))
        await sql(store, OLD_INDEX[kind])
        if kind == "postgresql":
            await sql(store, "ANALYZE")
        old = await timed(args.claims, lambda: sql(store, OLD_CLAIM, "notify", time.time(), args.limit))
        return {"claim": current, "new": new, "old": old}
    finally:
        await store.close()


def ms(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=10)[int(q * 10) - 1] * 1000 if len(values) > 1 else values[0] * 1000


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--small", type=int, default=1_000)
    ap.add_argument("--large", type=int, default=100_000)
    ap.add_argument("--claims", type=int, default=200)
    ap.add_argument("--limit", type=int, default=32)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ar-bench-claims-"))
    server: PostgresServer | None = None
    admin = os.environ.get("PGDSN") or find_shared_server()
    if admin is None:
        server = PostgresServer()
        server.start()
        admin = server.admin_dsn
    rows = []
    try:
        for kind in ("sqlite", "postgresql"):
            results = {}
            for n in (args.small, args.large):
                if kind == "sqlite":
                    results[n] = await measure(SQLiteStore(tmp / f"{n}.db"), kind, n, args)
                else:
                    dsn = await acreate_database(admin)
                    try:
                        results[n] = await measure(PostgresStore(dsn), kind, n, args)
                    finally:
                        await adrop_database(admin, database_of(dsn))
            for which, label in (
                ("claim", "claim_outbox: claim and commit"),
                ("new", "its SELECT (ORDER BY priority, id)"),
                ("old", "previous SELECT (ORDER BY id)"),
            ):
                small, large = results[args.small][which], results[args.large][which]
                rows.append([kind, label, statistics.median(small) * 1000, ms(small, 0.9),
                             statistics.median(large) * 1000, ms(large, 0.9),
                             statistics.median(large) / statistics.median(small)])
    finally:
        if server is not None:
            server.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"one claim of {args.limit} items; {args.small:,} vs {args.large:,} pending (ms)\n")
    print(table(["store", "statement", f"{args.small:,} median", "p90", f"{args.large:,} median", "p90",
                 "ratio (target <= 1.5)"], rows))
    print("\nclaim_outbox is timed through the store: its round trip (the SQLite thread, a PostgreSQL connection),"
          "\nthe UPDATE and the commit (SQLite: with fsync). The two SELECTs are the row selection alone, old and new.")


if __name__ == "__main__":
    asyncio.run(main())
