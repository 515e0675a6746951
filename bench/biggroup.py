"""One group of 10,000 alerts in one body: how long accepting and processing it take, and what memory it costs.

Usage: .venv/bin/python bench/biggroup.py [--alerts 10000] [--runs 3] [--stores sqlite,postgresql]

``alert-router serve`` runs in a subprocess (a ``file`` receiver, bearer auth, ``webhook.max_body_bytes``
raised to 16 MiB so the body is under the cap) on SQLite, then on PostgreSQL (``$PGDSN``, else the server on
127.0.0.1:5432, else a throwaway one). For each run a new service gets one body of ``--alerts`` firing
alerts in one group (as Alertmanager sends after a wide outage: ``firing-service-down.json`` with a pod per
alert), posted over loopback. Reported, median over ``--runs``:

* **accept**: from the first byte sent to the 200 (the body read whole, parsed and committed to the inbox);
* **processing**: from the 200 to the notification's line in the receiver's file (ingest: dedup of every
  alert, routing, one outbox item; delivery: rendering and the file write);
* **peak memory**: the service's peak resident set (``VmHWM``) after the group, and its RSS before it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

import aiohttp
from common import FIXTURES, ROOT, FileTail, Service, table

sys.path.insert(0, str(ROOT))
from tests.procs.postgres import PostgresServer, acreate_database, adrop_database, database_of, find_shared_server

CAP = 16 * 1024 * 1024


def big_body(alerts: int, run: int) -> bytes:
    """One group of ``alerts`` firing alerts, fingerprints unique to ``run``."""
    tpl = json.loads((FIXTURES / "firing-service-down.json").read_text())
    first = tpl["alerts"][0]
    tpl["alerts"] = [
        dict(first, fingerprint=f"{run:04x}{i:012x}", labels={**first["labels"], "pod": f"model-api-{run}-{i}"})
        for i in range(alerts)
    ]
    tpl["groupKey"] = f'{{}}:{{alertname="ModelServiceDown", run="{run}"}}'
    return json.dumps(tpl).encode()


def status_kb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def one_run(store: str, alerts: int, run: int) -> dict[str, float]:
    svc = Service(extra_config=f"webhook: {{max_body_bytes: {CAP}}}\n" + (f"store: {store}\n" if store else ""))
    try:
        await svc.start()
        assert svc.proc is not None
        body = big_body(alerts, run)
        tail = FileTail(svc.tmp / "data" / "out.jsonl")
        rss_before = status_kb(svc.proc.pid, "VmRSS")
        headers = {"Authorization": f"Bearer {svc.token}", "Content-Type": "application/json"}
        async with aiohttp.ClientSession() as session:
            t0 = time.perf_counter()
            async with session.post(svc.url + "/webhook", data=body, headers=headers) as r:
                answer = await r.json()
                if r.status != 200:
                    raise RuntimeError(f"webhook answered {r.status}: {answer}")
            accepted = time.perf_counter()
        processing = await tail.wait_for(b'"group_key": "{}:{alertname=\\"ModelServiceDown\\", run=', 300, accepted)
        return {
            "bytes": len(body),
            "accept": accepted - t0,
            "processing": processing,
            "peak": status_kb(svc.proc.pid, "VmHWM"),
            "rss_before": rss_before,
        }
    finally:
        svc.stop()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--alerts", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--stores", default="sqlite,postgresql")
    args = ap.parse_args()
    server: PostgresServer | None = None
    rows = []
    size = 0
    try:
        for kind in args.stores.split(","):
            results = []
            for run in range(args.runs):
                if kind == "sqlite":
                    results.append(await one_run("", args.alerts, run))
                    continue
                admin = os.environ.get("PGDSN") or find_shared_server()
                if admin is None and server is None:
                    server = PostgresServer()
                    server.start()
                admin = admin or (server.admin_dsn if server else "")
                dsn = await acreate_database(admin)
                try:
                    results.append(await one_run(dsn, args.alerts, run))
                finally:
                    await adrop_database(admin, database_of(dsn))
            size = int(results[0]["bytes"])
            rows.append([
                kind,
                statistics.median(r["accept"] for r in results) * 1000,
                max(r["accept"] for r in results) * 1000,
                statistics.median(r["processing"] for r in results) * 1000,
                max(r["processing"] for r in results) * 1000,
                statistics.median(r["peak"] for r in results),
                statistics.median(r["rss_before"] for r in results),
            ])
    finally:
        if server is not None:
            server.cleanup()
    print(f"one group of {args.alerts:,} alerts in one body of {size / 1e6:.1f} MB; median of {args.runs} runs\n")
    print(table(
        ["store", "accept ms", "max", "processing ms", "max", "peak RSS MB", "RSS before MB"], rows
    ))


if __name__ == "__main__":
    asyncio.run(main())
