"""Failover benchmark: how soon a SIGKILLed replica's deliveries move, and what each design costs.

Usage: .venv/bin/python bench/failover.py [--runs 3] [--no-baseline] [--stall 8]

Three designs, each with three replicas on one PostgreSQL database (loopback only, everything stops by itself):

* ``heartbeat``: what ships. Claims keep their 60 s lease; every replica writes a heartbeat each second and the
  claims of one silent for ``failover.dead_after`` (3 s) are taken back at once.
* ``lease 60s``: before (``failover.dead_after: 0``): a dead replica's claims wait for their lease.
* ``lease 3s``: short leases without heartbeats, the takeover a renewed-short-lease design gets (renewal keeps a
  live replica's claims, it does not change how soon a dead one's expire).

Scenarios:

``kill``     a receiver holds the victim's requests open (a slow receiver); the victim is SIGKILLed with
             deliveries in flight; reported: seconds from the kill until the survivors have sent every one.
``stall``    the database stops answering (a TCP proxy keeps the sockets open) for ``--stall`` seconds while
             replicas are sending to a receiver that answers in 1 s; reported: notifications delivered twice.
             Neither heartbeats nor lease renewals get through a stall; what matters is who takes over after it.
``cost``     what keeping a replica's claims alive writes to the database: one heartbeat upsert per replica per
             second, against renewing every claimed row each second (the renewed-lease design), with 8, 100
             and 1000 claims held; reported: time per statement and WAL bytes per second per replica.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import asyncpg
from aiohttp import web
from common import ROOT, Service, table

sys.path.insert(0, str(ROOT))

from tests.netproxy import TcpProxy
from tests.procs.postgres import (
    PostgresServer,
    acreate_database,
    adrop_database,
    database_of,
    find_shared_server,
)

DESIGNS = {  # design -> (failover settings, lease of deliveries and webhook bodies)
    "heartbeat": ("", "60s"),
    "lease 60s": ("failover: {dead_after: 0}\n", "60s"),
    "lease 3s": ("failover: {dead_after: 0}\n", "3s"),
}
RULES = "rules:\n  - name: all\n    match: []\n    receivers: [hook]\n"


@dataclass
class Hit:
    replica: str
    delivery: int
    group: str
    arrived: float
    answered: bool = False


@dataclass
class Receiver:
    """Answers after ``delay``; holds the requests of replicas in ``held`` until they go away."""

    delay: float
    held: set[str] = field(default_factory=set)
    hits: list[Hit] = field(default_factory=list)
    url: str = ""
    _runner: web.AppRunner | None = None
    _release: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        hit = Hit(request.match_info["replica"], int(request.headers["X-Alert-Router-Delivery"]), body["group_key"],
                  time.monotonic())
        self.hits.append(hit)
        if hit.replica in self.held:
            await self._release.wait()
            return web.Response(status=503)
        await asyncio.sleep(self.delay)
        hit.answered = True
        return web.Response(status=200)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{replica}", self.handle)
        self._runner = web.AppRunner(app, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    async def stop(self) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()


def body(i: int, name: str) -> bytes:
    import json

    tpl = json.loads((ROOT / "tests" / "fixtures" / "alertmanager-0.25" / "firing-service-down.json").read_text())
    alert = dict(tpl["alerts"][0])
    alert.update(labels={"alertname": name, "n": str(i)}, fingerprint=f"{name[:4].lower()}{i:08x}")
    tpl.update(alerts=[alert], groupKey=f"{name}:{i}", groupLabels={"alertname": name}, commonLabels={})
    return json.dumps(tpl).encode()


async def post(session: aiohttp.ClientSession, svc: Service, data: bytes) -> None:
    headers = {"Authorization": f"Bearer {svc.token}", "Content-Type": "application/json"}
    async with session.post(svc.url + "/webhook", data=data, headers=headers) as r:
        assert r.status == 200, r.status


async def wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {timeout:.0f}s")
        await asyncio.sleep(0.05)


def replicas(dsn: str, receiver: Receiver, design: str, extra: str = "", n: int = 3) -> list[Service]:
    failover, lease = DESIGNS[design]
    svcs = []
    for i in range(n):
        receivers = f"receivers:\n  - name: hook\n    webhook: {{url: '{receiver.url}/r{i}', timeout: 60s}}\n"
        # Storm digests off: every notification on its own, so each delivery can be followed by its id.
        config = (f"store: {dsn}\ningest: {{poll_interval: 0.2, lease: {lease}}}\n"
                  f"delivery: {{lease: {lease}, attempt_timeout: 30s, storm: {{threshold: 0}}}}\n{failover}{extra}")
        svc = Service(extra_config=config, receivers=receivers)
        (svc.tmp / "rules" / "r.yaml").write_text(RULES)
        svcs.append(svc)
    return svcs


async def kill_once(admin: str, design: str) -> float:
    """Seconds from the SIGKILL until the survivors have sent every delivery the victim held."""
    dsn = await acreate_database(admin)
    receiver = Receiver(delay=0.2, held={"r0"})
    await receiver.start()
    svcs = replicas(dsn, receiver, design)
    try:
        for svc in svcs:
            await svc.start()
        async with aiohttp.ClientSession() as session:
            for i in range(12):
                await post(session, svcs[0], body(i, "Kill"))
        await wait(lambda: sum(h.replica == "r0" for h in receiver.hits) >= 3, 30, "victim holding deliveries")
        stuck = {h.delivery for h in receiver.hits if h.replica == "r0"}
        assert svcs[0].proc is not None
        killed = time.monotonic()
        svcs[0].proc.kill()
        svcs[0].proc.wait()

        def done() -> bool:
            return stuck <= {h.delivery for h in receiver.hits if h.replica != "r0" and h.answered}

        await wait(done, 120, "survivors delivering the victim's notifications")
        return max(h.arrived for h in receiver.hits if h.delivery in stuck and h.replica != "r0") - killed
    finally:
        for svc in svcs:
            svc.stop()
        await receiver.stop()
        await adrop_database(admin, database_of(dsn))


async def stall_once(admin: str, design: str, stall: float) -> tuple[int, int]:
    """Stall the database while notifications are being sent; return (notifications, delivered twice)."""
    dsn = await acreate_database(admin)
    parts = urlsplit(dsn)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    await proxy.start()
    proxied = dsn.replace(f"@{parts.hostname}:{parts.port}/", f"@127.0.0.1:{proxy.port}/")
    receiver = Receiver(delay=1.0)
    await receiver.start()
    svcs = replicas(proxied, receiver, design, "postgres: {connect_timeout: 1s}\n")
    n = 30
    try:
        for svc in svcs:
            await svc.start()
        async with aiohttp.ClientSession() as session:
            for i in range(n):
                await post(session, svcs[i % 3], body(i, "Stall"))
        await wait(lambda: len(receiver.hits) >= 6, 30, "deliveries in flight")
        proxy.stall()
        await asyncio.sleep(stall)
        proxy.forward()
        await wait(lambda: len({h.group for h in receiver.hits if h.answered}) == n, 120, "every notification")
        await asyncio.sleep(8)  # longer than the short lease: a late second delivery would show up
        answered = Counter(h.group for h in receiver.hits if h.answered)
        return n, sum(1 for c in answered.values() if c > 1)
    finally:
        proxy.forward()
        for svc in svcs:
            svc.stop()
        await receiver.stop()
        await proxy.close()
        await adrop_database(admin, database_of(dsn))


async def cost(admin: str) -> list[list[Any]]:
    """Heartbeat upsert against renewing every claimed row, per replica and second."""
    dsn = await acreate_database(admin)
    from alert_router.store.postgres import PostgresStore

    store = PostgresStore(dsn)
    await store.open()
    await store.close()
    conn = await asyncpg.connect(dsn)
    rows: list[list[Any]] = []
    try:
        now = time.time()
        for held in (8, 100, 1000):
            await conn.execute("DELETE FROM outbox")
            await conn.execute(
                """INSERT INTO outbox (kind, dest, group_key, payload, created_at, owner, lease_until)
                   SELECT 'notify', 'hook', 'g' || i, '{}', $1::float8, 'me', $1::float8 + 60
                   FROM generate_series(1, $2::int) i""",
                now, held,
            )
            await conn.execute("VACUUM ANALYZE outbox")
            for name, sql, args in (
                ("heartbeat", """INSERT INTO replicas (owner, started_at, heartbeat_at) VALUES ('me', $1, $1)
                                 ON CONFLICT (owner) DO UPDATE SET heartbeat_at = EXCLUDED.heartbeat_at""", (now,)),
                ("renew claims", "UPDATE outbox SET lease_until = $1 WHERE owner = 'me' AND status = 'pending'",
                 (now + 60,)),
            ):
                times = []
                lsn0 = await conn.fetchval("SELECT pg_current_wal_lsn()")
                for _ in range(50):
                    t = time.perf_counter()
                    await conn.execute(sql, *args)
                    times.append(time.perf_counter() - t)
                lsn1 = await conn.fetchval("SELECT pg_current_wal_lsn()")
                wal = await conn.fetchval("SELECT pg_wal_lsn_diff($1, $2)", lsn1, lsn0)
                rows.append([name, held, statistics.median(times) * 1000, float(wal) / 50 / 1024])
    finally:
        await conn.close()
        await adrop_database(admin, database_of(dsn))
    return rows


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-baseline", action="store_true", help="skip the 60 s lease runs")
    ap.add_argument("--stall", type=float, default=8.0)
    ap.add_argument("--scenarios", nargs="*", default=["kill", "stall", "cost"])
    args = ap.parse_args()
    server: PostgresServer | None = None
    admin = os.environ.get("PGDSN") or find_shared_server()
    if admin is None:
        server = PostgresServer()
        server.start()
        admin = server.admin_dsn
    try:
        if "kill" in args.scenarios:
            out = []
            for design in DESIGNS:
                runs = 1 if design == "lease 60s" else args.runs
                if design == "lease 60s" and args.no_baseline:
                    continue
                took = [await kill_once(admin, design) for _ in range(runs)]
                out.append([design, runs, min(took), statistics.median(took), max(took)])
            print("SIGKILL with deliveries in flight: seconds until the survivors sent them\n")
            print(table(["design", "runs", "min s", "median s", "max s"], out))
        if "stall" in args.scenarios:
            out = []
            for design in ("heartbeat", "lease 3s"):
                n, twice = await stall_once(admin, design, args.stall)
                out.append([design, n, twice])
            print(f"\nDatabase stalled {args.stall:g}s while sending (receiver answers in 1 s)\n")
            print(table(["design", "notifications", "delivered twice"], out))
        if "cost" in args.scenarios:
            print("\nKeeping one replica's claims alive, per second (one statement per second per replica)\n")
            print(table(["statement", "claims held", "median ms", "WAL KiB"], await cost(admin)))
    finally:
        if server is not None:
            server.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
