"""Storm benchmark on the shipped configuration: time to page, throughput and drain, side by side.

Usage: .venv/bin/python bench/shipped.py [--seconds 10] [--connections 32] [--driver wrk|python]
                                         [--configs shipped,minimal] [--runbook-alerts 10000]
                                         [--baseline /path/to/other/checkout]

Everything runs on 127.0.0.1, each phase bounded in time, and stops by itself. ``wrk`` (Debian package
``wrk``; ``scripts/install-system-deps.sh --bench`` installs it) drives the bursts with a Lua script that
makes every request a new Alertmanager group of 10 new alerts; ``--driver python`` uses the Python driver
of ``bench/common.py`` instead (it shares the 2 cores with the service, so it reports lower figures).

Servers, each fresh, measured in one run so that the ratios hold on a busy machine:

* ``bare aiohttp``: parses the JSON and answers (bench/baseline_server.py): the accept ceiling.
* ``minimal``: one rule, one file receiver, no runbooks (bench/common.py ``Service``), for comparison.
* ``shipped``: the repository's ``alert-router.yaml`` with its rules and runbooks as they are: file and
  console receivers (slack, telegram and email switched off), remediation in dry run.
* ``shipped (baseline)``, with ``--baseline PATH``: the same configuration served by the code of another
  checkout (e.g. a worktree of ``main``), imported through ``PYTHONPATH`` in this virtualenv: before and after
  in one run.

Per alert-router server, one after the other:

1. **burst**: ``--seconds`` of warnings (``HighModelLatency``, which on the shipped config also triggers
   the scale-up runbook for Deployment prod/model-api): accepted requests/s, ratio to bare aiohttp, p99.
2. **page behind the backlog**: right after the burst, one new critical group (``ModelServiceDown``) is
   posted; the time until its line is in the file receiver, and the backlog (alerts) it arrived behind.
3. **accept while draining**: 1,000 alerts/s (100 webhooks/s) for ``--seconds`` while the backlog drains:
   p99 accept latency.
4. **drain**: the time from the end of the burst until every queue is empty, and the end-to-end rate
   (all alerts accepted, deduplicated, routed and written, divided by the time from the first request to
   the empty queues); the service's CPU seconds per 1,000 alerts; resident memory afterwards.

Then, on the shipped configuration only, a **runbook storm**: ``--runbook-alerts`` ModelServiceDown alerts
in groups of 10 for one target, posted 32 at a time: time to the first page (the first group's line in
the file receiver), time from the first webhook to the start of the run's first step, runs created,
refusals recorded in the audit log (their count against the triggers), and when the runbook queue was
empty compared with the inbox.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from common import (
    ROOT,
    Bodies,
    FileTail,
    Service,
    ShippedService,
    alert_body,
    cpu_seconds,
    drive,
    free_port,
    percentile,
    queue_depth,
    run_wrk,
    table,
    wait_drained,
    wait_http,
    wrk_script,
)

ALERTS_PER_BODY = 10
PAGE_TIMEOUT = 300.0
DRAIN_TIMEOUT = 600.0


@dataclass
class Burst:
    """What a burst measured, whichever driver sent it."""

    accepted: int  # webhooks answered 200
    errors: int
    seconds: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.accepted / self.seconds if self.seconds else 0.0


@dataclass
class Row:
    """One server's figures."""

    name: str
    burst: Burst
    page_ms: float = float("nan")
    behind: int = 0
    p99_draining_ms: float = float("nan")
    drain_s: float = float("nan")
    e2e: float = float("nan")
    cpu_ms_per_k: float = float("nan")
    rss_mb: float = float("nan")
    notes: list[str] = field(default_factory=list)


async def burst(url: str, token: str, args: argparse.Namespace, tmp: Path, name: str) -> Burst:
    if args.driver == "wrk":
        script = tmp / f"{name}.lua"
        wrk_script(script, alerts_per_body=ALERTS_PER_BODY, alertname="HighModelLatency", severity="warning",
                   token=token)
        r = await run_wrk(url + "/webhook", script, seconds=args.seconds, connections=args.connections)
        return Burst(r.requests - r.errors, r.errors, r.seconds, r.p99_ms)
    gen = Bodies(alerts_per_body=ALERTS_PER_BODY, groups=10**9)
    bodies = [gen.next() for _ in range(20_000)]
    res = await drive(url + "/webhook", bodies, connections=args.connections, seconds=args.seconds,
                      headers={"Authorization": f"Bearer {token}"} if token else {})
    return Burst(res.requests, res.errors, res.seconds, percentile(res.latencies, 99) * 1000)


async def post(session: aiohttp.ClientSession, url: str, body: bytes, token: str) -> None:
    async with session.post(url + "/webhook", data=body, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"}) as r:
        if r.status != 200:
            raise RuntimeError(f"webhook answered {r.status}: {await r.text()}")


async def measure_service(svc: Service, name: str, args: argparse.Namespace, out: Path, tmp: Path) -> Row:
    await svc.start()
    try:
        assert svc.proc is not None
        tail = FileTail(out)
        cpu0 = cpu_seconds(svc.proc.pid)
        t0 = time.perf_counter()
        b = await burst(svc.url, svc.token, args, tmp, name)
        t_end = time.perf_counter()
        row = Row(name, b)
        # 2. One new critical group behind the backlog.
        depth = await queue_depth(svc.url)
        row.behind = int(depth.get("inbox", 0) * ALERTS_PER_BODY + depth.get("notify", 0))
        tail.skip_to_end()
        group = f"probe-{time.time_ns()}"
        async with aiohttp.ClientSession() as s:
            sent = time.perf_counter()
            await post(s, svc.url, alert_body("ModelServiceDown", "critical", group, [f"{time.time_ns():016x}"]),
                       svc.token)
            waiting = asyncio.create_task(tail.wait_for(group.encode(), timeout=PAGE_TIMEOUT, since=sent))
            # 3. 1,000 alerts/s while the backlog drains.
            gen = Bodies(alerts_per_body=ALERTS_PER_BODY, groups=10**9)
            gen.n = 10**8  # other fingerprints than the burst's Python bodies
            steady = [gen.next() for _ in range(int(args.seconds * 100) + 10)]
            fixed = await drive(svc.url + "/webhook", steady, connections=16, seconds=args.seconds,
                                headers={"Authorization": f"Bearer {svc.token}"}, rate=100.0)
            try:
                row.page_ms = await waiting * 1000
            except RuntimeError:  # not written in time: report it as such
                row.page_ms = float("inf")
                row.notes.append(f"the critical probe was not written within {PAGE_TIMEOUT:.0f}s")
        row.p99_draining_ms = percentile(fixed.latencies, 99) * 1000
        # 4. Drain.
        alerts = (b.accepted + fixed.requests + 1) * ALERTS_PER_BODY
        try:
            await wait_drained(svc.url, timeout=DRAIN_TIMEOUT)
        except RuntimeError:
            depth = await queue_depth(svc.url)
            row.drain_s = float("inf")
            row.notes.append(f"not drained within {DRAIN_TIMEOUT:.0f}s (still queued: {depth})")
            return row
        done = time.perf_counter()
        row.drain_s = done - t_end
        row.e2e = alerts / (done - t0)
        row.cpu_ms_per_k = (cpu_seconds(svc.proc.pid) - cpu0) / alerts * 1e6
        row.rss_mb = svc.rss_mb()
        row.notes.append(f"{alerts:,} alerts")
        if fixed.errors:
            row.notes.append(f"{fixed.errors} errors at 1,000 alerts/s")
        return row
    finally:
        svc.stop()


async def runbook_storm(n_alerts: int) -> list[str]:
    """``n_alerts`` ModelServiceDown alerts in groups of 10 for Deployment prod/model-api, 32 bodies at a time."""
    svc = ShippedService()
    await svc.start()
    lines = []
    try:
        auth = {"Authorization": f"Bearer {svc.token}"}
        tail = FileTail(svc.notifications)
        groups = n_alerts // ALERTS_PER_BODY
        nonce = time.time_ns() & 0xFFFFFF
        bodies = [
            alert_body("ModelServiceDown", "critical", f"storm-{nonce}-{g}",
                       [f"{nonce:06x}{g:06x}{i:04x}" for i in range(ALERTS_PER_BODY)])
            for g in range(groups)
        ]
        first_group = f"storm-{nonce}-0".encode()
        async with aiohttp.ClientSession() as s:
            start = time.perf_counter()
            wall0 = time.time()
            await post(s, svc.url, bodies[0], svc.token)
            first_page = asyncio.create_task(tail.wait_for(first_group, timeout=120, since=start))
            rest = await drive(svc.url + "/webhook", bodies[1:], connections=32, seconds=600, headers=auth,
                               max_requests=len(bodies) - 1)
            posted = time.perf_counter() - start
            inbox_empty = runbook_empty = None
            while inbox_empty is None or runbook_empty is None:
                depth = await queue_depth(svc.url)
                now = time.perf_counter() - start
                if inbox_empty is None and depth.get("inbox", 1) == 0:
                    inbox_empty = now
                if runbook_empty is None and inbox_empty is not None and depth.get("runbook", 1) == 0:
                    runbook_empty = now
                if now > 600:
                    raise RuntimeError("the storm did not drain within 600 s")
                await asyncio.sleep(0.05)
            page = await first_page
            async with s.get(svc.url + "/api/v1/runs?limit=1000", headers=auth) as r:
                runs = (await r.json())["runs"]
            async with s.get(svc.url + "/api/v1/audit", headers=auth) as r:  # every record (a few dozen)
                answer = await r.json()
                if "records" not in answer:
                    raise RuntimeError(f"GET /api/v1/audit: {answer}")
                records = answer["records"]
        admitted = [r for r in runs if r["status"] != "skipped"]
        step_starts = [st.get("started_at") for r in admitted for st in r.get("steps", []) if st.get("started_at")]
        first_step = (min(step_starts) - wall0) if step_starts else float("nan")
        accounted = 0
        for rec in records:
            data = rec["data"] if isinstance(rec["data"], dict) else json.loads(rec["data"])
            if rec["event"] in ("matched", "skipped", "not_applicable"):
                accounted += int(data.get("count", 1))
        lines.append(
            f"runbook storm: {n_alerts:,} ModelServiceDown alerts in {groups:,} groups for Deployment prod/model-api,"
            f" posted in {posted:.1f}s ({rest.errors} errors)"
        )
        lines.append(f"  first page (the first group's line in the file receiver): {page * 1000:.0f} ms after its"
                     " webhook was sent")
        lines.append(f"  first step of the run started {first_step * 1000:.0f} ms after the first webhook"
                     " (dry run: the shipped config never touches a cluster)")
        lines.append(f"  runs: {len(admitted)} admitted, {len(runs) - len(admitted)} skipped runs;"
                     f" audit records: {len(records)}, accounting for {accounted:,} of {n_alerts:,} triggers")
        lines.append(f"  inbox empty after {inbox_empty:.1f}s, runbook queue empty after {runbook_empty:.1f}s"
                     f" (refusals {'kept up with' if runbook_empty - inbox_empty < 1.0 else 'trailed'} ingest"
                     f" by {runbook_empty - inbox_empty:.1f}s)")
    finally:
        svc.stop()
    return lines


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--driver", choices=["wrk", "python"], default="wrk")
    ap.add_argument("--configs", default="shipped,minimal")
    ap.add_argument("--runbook-alerts", type=int, default=10_000)
    ap.add_argument("--baseline", help="another checkout (e.g. a worktree of main): its shipped server goes first")
    args = ap.parse_args()
    configs = [c for c in args.configs.split(",") if c]
    tmp = Path(tempfile.mkdtemp(prefix="ar-bench-lua-"))
    print(f"driver {args.driver}, {args.connections} connections, {args.seconds:.0f}s bursts of new groups of"
          f" {ALERTS_PER_BODY} alerts; loopback only")
    rows: list[Row] = []
    try:
        port = free_port()
        base = subprocess.Popen([sys.executable, str(ROOT / "bench" / "baseline_server.py"), str(port)])
        try:
            await wait_http(f"http://127.0.0.1:{port}/readyz")
            bare = await burst(f"http://127.0.0.1:{port}", "", args, tmp, "bare")
        finally:
            base.terminate()
            base.wait()
        rows.append(Row("bare aiohttp (parse JSON only)", bare))
        servers = [(name, None) for name in configs]
        if args.baseline:
            servers.insert(0, ("shipped (baseline)", args.baseline))
        for name, path in servers:
            svc: Service = ShippedService(env={"PYTHONPATH": path or ""}) if name.startswith("shipped") else Service()
            out = svc.notifications if isinstance(svc, ShippedService) else svc.tmp / "data" / "out.jsonl"
            rows.append(await measure_service(svc, name.split()[0] + ("-base" if path else ""), args, out, tmp))
            rows[-1].name = name
        storm = await runbook_storm(args.runbook_alerts) if "shipped" in configs and args.runbook_alerts else []
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    def fmt(v: float, spec: str = ".0f") -> str:
        if v == float("inf"):
            return "timed out"
        return "-" if v != v else format(v, spec)

    print()
    print(table(
        ["server", "accept req/s", "ratio", "p99 ms", "e2e alerts/s", "drain s", "page behind backlog",
         "p99 at 1k alerts/s", "CPU ms/1k alerts", "RSS MB"],
        [[r.name, fmt(r.burst.rps), fmt(r.burst.rps / bare.rps, ".2f"), fmt(r.burst.p99_ms, ".1f"), fmt(r.e2e),
          fmt(r.drain_s, ".1f"), f"{fmt(r.page_ms)} ms behind {r.behind:,}" if r.behind or r.page_ms == r.page_ms
          else "-", fmt(r.p99_draining_ms, ".1f"), fmt(r.cpu_ms_per_k), fmt(r.rss_mb)] for r in rows],
    ))
    for r in rows:
        if r.notes or r.burst.errors:
            print(f"{r.name}: {', '.join(r.notes)}; burst errors {r.burst.errors}")
    for line in storm:
        print(line)


if __name__ == "__main__":
    asyncio.run(main())
