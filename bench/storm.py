"""Benchmark: an alert storm to one Slack channel (standalone, loopback only, about 30 s).

5,000 alerts in 50 Alertmanager groups of 100. Each group arrives the way Alertmanager sends a growing
group: five webhooks carrying 20, 40, ... 100 alerts (250 webhooks, posted 16 at a time). Everything
routes to one Slack receiver pointing at the loopback Slack stand-in, which enforces Slack's
1 message/second per channel (token bucket, 429 + Retry-After beyond it). The service runs in-process
(build_app, SQLite store, the real delivery pipeline with storm control at its default threshold).

Reports: webhooks accepted, Slack messages sent (posts + edits, digests among them), 429s received,
peak rate per destination in 1 s and 10 s windows against what the bucket allows, the time until every
alert has appeared in some message, and alerts lost (must be 0).

Run from the repository root: ``.venv/bin/python bench/storm.py [--groups 50 --per-group 100]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alert_router.app import build_app
from alert_router.appkeys import RUNTIME
from alert_router.config import load
from alert_router.logging import configure_logging
from tests.standins.slack import SlackStandin, peak_rate

SHORT_ID = re.compile(r"`([0-9a-f]{8})`")


def make_config(tmp: Path, slack_url: str, token: str) -> Path:
    (tmp / "rules").mkdir()
    (tmp / "runbooks").mkdir()
    (tmp / "rules" / "r.yaml").write_text("rules:\n  - name: all\n    match: []\n    receivers: [slack]\n")
    path = tmp / "alert-router.yaml"
    path.write_text(
        f"data_dir: {tmp / 'data'}\n"
        "ingest: {poll_interval: 0.2}\n"
        "receivers:\n"
        f"  - name: slack\n    slack: {{token: {token}, channel: C0ALERTS, api_url: '{slack_url}', timeout: 5}}\n"
        "rules: rules/\nrunbooks: runbooks/\n"
    )
    return path


def bodies(groups: int, per_group: int, waves: int) -> tuple[list[dict[str, Any]], set[str]]:
    """Webhook bodies in arrival order (wave by wave across groups) and every alert's short id."""
    out: list[dict[str, Any]] = []
    ids: set[str] = set()
    step = per_group // waves
    for wave in range(1, waves + 1):
        for g in range(groups):
            alerts = []
            for i in range(step * wave if wave < waves else per_group):
                fp = f"{g:04x}{i:04x}" + "c0ffee00"
                ids.add(fp[:8])
                alerts.append({
                    "status": "firing",
                    "labels": {"alertname": f"ModelLatencyHigh{g % 7}", "severity": "warning", "namespace": "prod",
                               "deployment": f"model-{g}", "pod": f"model-{g}-{i}"},
                    "annotations": {"summary": f"p95 latency {500 + i} ms on model-{g}-{i}"},
                    "startsAt": "2026-11-27T00:00:00Z",
                    "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "http://prometheus:9090/graph",
                    "fingerprint": fp,
                })
            out.append({
                "version": "4", "groupKey": f'{{}}:{{deployment="model-{g}"}}', "status": "firing",
                "receiver": "alert-router", "alerts": alerts, "groupLabels": {"deployment": f"model-{g}"},
                "commonLabels": {"namespace": "prod"}, "commonAnnotations": {},
                "externalURL": "http://alertmanager:9093", "truncatedAlerts": 0,
            })
    return out, ids


async def run(groups: int, per_group: int, waves: int, limit: float) -> dict[str, Any]:
    configure_logging("console", "error")
    async with SlackStandin() as slack:
        slack.enforce_rate(1.0, 1.0)  # Slack: about one message per second per channel
        with tempfile.TemporaryDirectory(prefix="storm-bench-") as tmp:
            cfg = load(make_config(Path(tmp), slack.base_url, slack.token), {})
            app = build_app(cfg)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            rt = app[RUNTIME]
            payloads, all_ids = bodies(groups, per_group, waves)
            seen: set[str] = set()
            scanned = 0
            t0 = time.monotonic()
            all_seen_at: float | None = None
            accepted = 0

            def scan() -> None:
                nonlocal scanned, all_seen_at
                while scanned < len(slack.requests):
                    r = slack.requests[scanned]
                    scanned += 1
                    if r.status == 200 and r.method in ("chat.postMessage", "chat.update"):
                        seen.update(SHORT_ID.findall(json.dumps(r.params.get("blocks"))))
                if all_seen_at is None and all_ids <= seen:
                    all_seen_at = time.monotonic()

            async with aiohttp.ClientSession() as session:
                queue = list(payloads)

                async def poster() -> None:
                    nonlocal accepted
                    while queue:
                        body = queue.pop(0)
                        async with session.post(f"http://127.0.0.1:{port}/webhook", json=body) as resp:
                            accepted += resp.status == 200

                await asyncio.gather(*(poster() for _ in range(16)))
            posted_at = time.monotonic() - t0
            deadline = t0 + limit
            while time.monotonic() < deadline:
                scan()
                depth = await rt.store.depth(time.time())
                if all_seen_at is not None and depth.inbox == 0 and not any(depth.outbox.values()):
                    break
                await asyncio.sleep(0.1)
            scan()
            drained_at = time.monotonic() - t0
            depth = await rt.store.depth(time.time())
            reg = rt.metrics.registry
            digested = reg.get_sample_value("alert_router_notifications_total",
                                            {"receiver": "slack", "outcome": "digested"}) or 0
            sent = reg.get_sample_value("alert_router_notifications_total",
                                        {"receiver": "slack", "outcome": "sent"}) or 0
            await runner.cleanup()
        ok_times = slack.accepted_times["C0ALERTS"]
        all_times = slack.request_times["C0ALERTS"]
        digests = sum(1 for r in slack.requests if r.status == 200 and "alerts firing" in str(r.params.get("text")))
        return {
            "alerts": len(all_ids),
            "groups": groups,
            "webhooks": len(payloads),
            "accepted": accepted,
            "posted_s": posted_at,
            "messages": len(ok_times),
            "posts": sum(1 for r in slack.requests if r.status == 200 and r.method == "chat.postMessage"),
            "edits": sum(1 for r in slack.requests if r.status == 200 and r.method == "chat.update"),
            "digests": digests,
            "items_digested": int(digested),
            "items_sent": int(sent),
            "throttled_429": sum(1 for r in slack.requests if r.status == 429),
            "peak_1s": peak_rate(all_times, 1.0),
            "peak_10s": peak_rate(all_times, 10.0),
            "all_seen_s": (all_seen_at - t0) if all_seen_at else None,
            "drained_s": drained_at,
            "lost": len(all_ids - seen),
            "pending": depth.inbox + sum(depth.outbox.values()),
        }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--groups", type=int, default=50)
    ap.add_argument("--per-group", type=int, default=100)
    ap.add_argument("--waves", type=int, default=5)
    ap.add_argument("--limit", type=float, default=120.0, help="give up after this many seconds")
    args = ap.parse_args()
    r = asyncio.run(run(args.groups, args.per_group, args.waves, args.limit))
    rows = [
        ("alerts / groups / webhooks", f"{r['alerts']} / {r['groups']} / {r['webhooks']} ({r['accepted']} accepted "
                                       f"in {r['posted_s']:.1f} s)"),
        ("Slack messages sent", f"{r['messages']} ({r['posts']} posts, {r['edits']} edits; {r['digests']} digests)"),
        ("notifications delivered", f"{r['items_sent']} one by one, {r['items_digested']} coalesced into digests"),
        ("429s from Slack", str(r["throttled_429"])),
        ("peak rate, 1 s window", f"{r['peak_1s']} (bucket allows 1 msg/s, burst 1 -> at most 2)"),
        ("peak rate, 10 s window", f"{r['peak_10s']} (bucket allows at most 11)"),
        ("every alert in a message after", f"{r['all_seen_s']:.1f} s" if r["all_seen_s"] is not None else "NEVER"),
        ("queue drained after", f"{r['drained_s']:.1f} s ({r['pending']} still pending)"),
        ("alerts lost", str(r["lost"])),
    ]
    width = max(len(k) for k, _ in rows)
    print(f"storm: {r['alerts']} alerts in {r['groups']} groups to one Slack channel (loopback stand-in)")
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")
    bad = r["lost"] or r["peak_1s"] > 2 or r["peak_10s"] > 11 or r["pending"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
