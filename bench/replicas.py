"""Replica benchmark: ingest throughput and p99 for SQLite (one process) and PostgreSQL (1, 2 and 3 replicas).

Usage: .venv/bin/python bench/replicas.py [--seconds 8] [--connections 32] [--fanout 3]

Each scenario starts fresh services on loopback (PostgreSQL replicas share one new database), drives
``POST /webhook`` with distinct realistic bodies (10 alerts each) spread round-robin over the replicas
from ``--connections`` concurrent connections for ``--seconds``, then waits until every notification is
delivered. Every changed alert group fans out to ``--fanout`` file receivers; storm control is off, so
each notification is delivered on its own. Reported: accepted requests/s and alerts/s, p50/p99 accept
latency, and notifications delivered per second over the whole run (load + drain) and during the drain.

PostgreSQL: ``$PGDSN`` (an admin DSN that may create databases), else the server on 127.0.0.1:5432 if it
answers, else a throwaway server started from Debian's binaries (``fsync=off``: not comparable with
SQLite's fsync per commit). Databases created here are dropped at the end. Everything stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from dataclasses import dataclass

import aiohttp
from common import ROOT, Bodies, LoadResult, Service, percentile, table

sys.path.insert(0, str(ROOT))
from tests.procs.postgres import (
    PostgresServer,
    acreate_database,
    adrop_database,
    database_of,
    find_shared_server,
)

RULES = "rules:\n  - name: all\n    match: []\n    receivers: [{receivers}]\ndefault: {{receivers: [file0]}}\n"

JSON_TYPE = {"Content-Type": "application/json"}


@dataclass
class Row:
    name: str
    load: LoadResult
    delivered: float
    drain: float

    def cells(self, alerts_per_body: int) -> list[object]:
        rps = self.load.rps
        total = self.load.seconds + self.drain
        return [
            self.name,
            rps,
            rps * alerts_per_body,
            percentile(self.load.latencies, 50) * 1000,
            percentile(self.load.latencies, 99) * 1000,
            self.load.errors,
            self.delivered / total if total else 0.0,
            self.drain,
        ]


async def drive_round_robin(
    urls: list[str], bodies: list[bytes], *, connections: int, seconds: float, headers: dict[str, str]
) -> LoadResult:
    """POST distinct bodies from ``connections`` workers for ``seconds``, request ``i`` to ``urls[i % n]``."""
    res = LoadResult()
    counter = 0
    start = time.perf_counter()
    deadline = start + seconds
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector, headers={"Content-Type": "application/json", **headers}) as s:

        async def worker() -> None:
            nonlocal counter
            while time.perf_counter() < deadline and counter < len(bodies):
                i = counter
                counter += 1
                t = time.perf_counter()
                try:
                    async with s.post(urls[i % len(urls)] + "/webhook", data=bodies[i], headers=JSON_TYPE) as r:
                        await r.read()
                        res.statuses[r.status] = res.statuses.get(r.status, 0) + 1
                        if r.status != 200:
                            res.errors += 1
                            continue
                except aiohttp.ClientError:
                    res.errors += 1
                    continue
                res.latencies.append(time.perf_counter() - t)
                res.requests += 1

        await asyncio.gather(*(worker() for _ in range(connections)))
    res.seconds = time.perf_counter() - start
    return res


async def metrics_text(session: aiohttp.ClientSession, url: str) -> str:
    async with session.get(url + "/metrics") as r:
        return await r.text()


def metric_sum(text: str, prefix: str, must: str = "") -> float:
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix) and must in line)


async def wait_drained(svcs: list[Service], timeout: float = 600.0) -> float:
    """Seconds until the shared queues are empty (any replica reports the whole database's depth)."""
    start = time.perf_counter()
    async with aiohttp.ClientSession() as s:
        while time.perf_counter() - start < timeout:
            depths = [metric_sum(await metrics_text(s, svc.url), "alert_router_queue_depth{") for svc in svcs]
            if all(d == 0 for d in depths):
                return time.perf_counter() - start
            await asyncio.sleep(0.1)
    raise RuntimeError("queues did not drain")


async def delivered(svcs: list[Service]) -> float:
    async with aiohttp.ClientSession() as s:
        texts = [await metrics_text(s, svc.url) for svc in svcs]
    return sum(metric_sum(t, "alert_router_notifications_total{", 'outcome="sent"') for t in texts)


async def scenario(
    name: str, store_url: str | None, replicas: int, bodies: list[bytes], args: argparse.Namespace
) -> Row:
    receivers = "receivers:\n" + "".join(
        f"  - name: file{k}\n    file: {{path: out{k}.jsonl, fsync: false}}\n" for k in range(args.fanout)
    )
    extra = "delivery: {workers: 16, storm: {threshold: 0}}\n"
    if store_url:
        extra += f"store: {store_url}\npostgres: {{pool_max: 10}}\n"
    svcs = [Service(extra_config=extra, receivers=receivers) for _ in range(replicas)]
    names = ", ".join(f"file{k}" for k in range(args.fanout))
    for svc in svcs:
        (svc.tmp / "rules" / "r.yaml").write_text(RULES.format(receivers=names))
    try:
        for svc in svcs:  # one after the other: the first applies the migrations
            await svc.start()
        load = await drive_round_robin(
            [svc.url for svc in svcs],
            bodies,
            connections=args.connections,
            seconds=args.seconds,
            headers={"Authorization": f"Bearer {svcs[0].token}"},
        )
        drain = await wait_drained(svcs)
        sent = await delivered(svcs)
        return Row(name, load, sent, drain)
    finally:
        for svc in svcs:
            svc.stop()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=8)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--fanout", type=int, default=3)
    ap.add_argument("--replicas", type=int, nargs="*", default=[1, 2, 3])
    args = ap.parse_args()

    gen = Bodies(alerts_per_body=10, groups=200)
    bodies = [gen.next() for _ in range(60_000)]
    print(
        f"{len(bodies[0])}-byte bodies, 10 alerts each; {args.connections} connections, {args.seconds:.0f}s per run; "
        f"fan-out {args.fanout} file receivers; {os.cpu_count()} CPUs shared by the load generator, the replicas "
        "and the database"
    )

    server: PostgresServer | None = None
    admin = os.environ.get("PGDSN") or find_shared_server()
    pg_note = "PGDSN" if os.environ.get("PGDSN") else "shared server 127.0.0.1:5432"
    if admin is None:
        server = PostgresServer()
        server.start()
        admin = server.admin_dsn
        pg_note = "throwaway server (fsync=off)"
    rows: list[Row] = []
    try:
        rows.append(await scenario("SQLite, 1 process", None, 1, bodies, args))
        for n in args.replicas:
            dsn = await acreate_database(admin)
            try:
                rows.append(await scenario(f"PostgreSQL, {n} replica{'s' if n > 1 else ''}", dsn, n, bodies, args))
            finally:
                await adrop_database(admin, database_of(dsn))
    finally:
        if server is not None:
            server.cleanup()
    print(f"PostgreSQL: {pg_note}\n")
    print(
        table(
            ["store", "req/s", "alerts/s", "p50 ms", "p99 ms", "errors", "notif/s", "drain s"],
            [r.cells(10) for r in rows],
        )
    )
    print("\nnotif/s: notifications delivered per second from the first request until every one was delivered")


if __name__ == "__main__":
    asyncio.run(main())
