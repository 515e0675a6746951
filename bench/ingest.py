"""Ingest benchmark: alert-router's POST /webhook against a bare aiohttp server, side by side.

Usage: .venv/bin/python bench/ingest.py [--seconds 10] [--connections 32] [--memory-alerts 100000]

1. Throughput: both servers driven with the same distinct, realistic bodies (10 alerts each) from many
   concurrent connections for a fixed time; requests/s, p50 and p99 latency, and the ratio.
2. Latency at a fixed load of 1,000 alerts/s (100 requests/s x 10 alerts): p50/p99 accept latency.
3. Memory: resident set size of the service after 100,000 distinct alerts have been accepted and processed.
Everything runs on 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time

import aiohttp
from common import ROOT, Bodies, Service, drive, free_port, percentile, table, wait_http


async def wait_drained(url: str, timeout: float = 300.0) -> float:
    start = time.perf_counter()
    async with aiohttp.ClientSession() as s:
        while time.perf_counter() - start < timeout:
            async with s.get(url + "/metrics") as r:
                text = await r.text()
            depth = {
                line.split("{")[1].split("}")[0]: float(line.split()[-1])
                for line in text.splitlines()
                if line.startswith("alert_router_queue_depth{")
            }
            if depth and all(v == 0 for v in depth.values()):
                return time.perf_counter() - start
            await asyncio.sleep(0.2)
    raise RuntimeError("queues did not drain")


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--memory-alerts", type=int, default=100_000)
    args = ap.parse_args()

    bodies_gen = Bodies(alerts_per_body=10)
    bodies = [bodies_gen.next() for _ in range(20_000)]
    print(
        f"body size: {len(bodies[0])} bytes, 10 alerts each; {args.connections} connections, {args.seconds:.0f}s runs"
    )

    port = free_port()
    base = subprocess.Popen([sys.executable, str(ROOT / "bench" / "baseline_server.py"), str(port)])
    try:
        await wait_http(f"http://127.0.0.1:{port}/readyz")
        baseline = await drive(
            f"http://127.0.0.1:{port}/webhook", bodies, connections=args.connections, seconds=args.seconds, headers={}
        )
    finally:
        base.terminate()
        base.wait()

    svc = Service()
    await svc.start()
    try:
        auth = {"Authorization": f"Bearer {svc.token}"}
        ours = await drive(
            svc.url + "/webhook", bodies, connections=args.connections, seconds=args.seconds, headers=auth
        )
        drain = await wait_drained(svc.url)
        print()
        print(
            table(
                ["server", "req/s", "alerts/s", "p50 ms", "p99 ms", "errors"],
                [
                    [
                        "bare aiohttp (parse JSON only)",
                        baseline.rps,
                        baseline.rps * 10,
                        *baseline.row()[1:],
                        baseline.errors,
                    ],
                    ["alert-router (SQLite, dedup, fsync)", ours.rps, ours.rps * 10, *ours.row()[1:], ours.errors],
                ],
            )
        )
        print(f"throughput ratio alert-router / bare: {ours.rps / baseline.rps:.2f}  (target >= 0.6)")
        accepted = ours.requests * 10
        print(
            f"backlog after the run processed in {drain:.1f}s: {accepted:,} alerts deduplicated, routed and written"
            f" to the file receiver in {ours.seconds + drain:.1f}s, {accepted / (ours.seconds + drain):,.0f} alerts/s"
        )

        # Fixed load: 1,000 alerts/s.
        fixed = await drive(
            svc.url + "/webhook", bodies[::-1], connections=16, seconds=args.seconds, headers=auth, rate=100.0
        )
        print(
            f"\nat 1,000 alerts/s ({fixed.rps:.0f} req/s achieved): "
            f"p50 {percentile(fixed.latencies, 50) * 1000:.1f} ms,"
            f" p99 {percentile(fixed.latencies, 99) * 1000:.1f} ms (target p99 < 25 ms), errors {fixed.errors}"
        )
        await wait_drained(svc.url)
    finally:
        svc.stop()

    # Memory after N distinct alerts.
    svc = Service()
    await svc.start()
    try:
        n_bodies = args.memory_alerts // 10
        gen = Bodies(alerts_per_body=10, groups=1000)
        mem_bodies = [gen.next() for _ in range(n_bodies)]
        rss0 = svc.rss_mb()
        r = await drive(
            svc.url + "/webhook",
            mem_bodies,
            connections=16,
            seconds=600,
            headers={"Authorization": f"Bearer {svc.token}"},
            max_requests=n_bodies,
        )
        await wait_drained(svc.url)
        print(
            f"\nmemory: RSS {rss0:.0f} MB at start, {svc.rss_mb():.0f} MB after {r.requests * 10:,} distinct alerts"
            f" accepted and delivered (target < 250 MB), errors {r.errors}"
        )
    finally:
        svc.stop()


if __name__ == "__main__":
    asyncio.run(main())
