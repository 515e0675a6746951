"""Benchmark of the enrichment stage against the loopback Loki stand-in (standalone, bounded).

Measures:
1. the latency enrichment adds to one notification when Loki answers in 20 ms: p50/p99 for a cache
   miss (a new query) and for a cache hit;
2. a 5,000-alert storm: how many Loki queries it costs, grouped the way Alertmanager groups
   (100 notifications x 50 alerts, 20 workloads in 5 namespaces, starts spread over 60 s) and ungrouped
   (5,000 one-alert notifications), delivered 8 at a time like the delivery workers.

Run from the repository root: ``.venv/bin/python bench/enrich.py`` (loopback only, about 10 s).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alert_router.config import Config, load
from alert_router.enrich.stage import EnrichmentStage
from alert_router.metrics import Metrics
from alert_router.models import Alert, Notification
from tests.standins.loki import LokiStandin

NS = 1_000_000_000


def make_config(tmp: Path, loki_url: str) -> Config:
    (tmp / "rules").mkdir()
    (tmp / "runbooks").mkdir()
    (tmp / "rules" / "r.yaml").write_text("rules:\n  - name: all\n    match: []\n    receivers: [file]\n")
    (tmp / "alert-router.yaml").write_text(
        f"data_dir: {tmp / 'data'}\nreceivers:\n  - name: file\n    file: {{path: out.jsonl}}\n"
        "links: {alertmanager_url: 'http://am:9093', grafana_url: 'http://grafana:3000'}\n"
        f"enrich:\n  loki:\n    url: {loki_url}\n    max_concurrency: 4\n"
    )
    return load(tmp / "alert-router.yaml", {})


def alert(fp: str, ns: str, app: str, pod: str, starts: datetime) -> Alert:
    return Alert.model_validate(
        {
            "status": "firing",
            "labels": {"alertname": "ModelServiceDown", "namespace": ns, "deployment": app, "pod": pod},
            "startsAt": starts.isoformat(),
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph?g0.expr=up",
            "fingerprint": fp,
        }
    )


def notification(alerts: list[Alert]) -> Notification:
    return Notification(
        receiver="file",
        rule="all",
        group_key="g",
        status="firing",
        alerts=alerts,
        external_url="http://am:9093",
        received_at=datetime.now(UTC),
    )


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] if len(values) > 1 else values[0]


async def timed(stage: EnrichmentStage, n: Notification) -> float:
    t = time.perf_counter()
    await stage(n)
    return time.perf_counter() - t


async def latency(loki: LokiStandin, config: Config, samples: int) -> None:
    stage = EnrichmentStage(config, Metrics())
    try:
        now = datetime.now(UTC)
        for i in range(samples):
            loki.push(
                {"namespace": "prod", "app": f"svc-{i}", "pod": f"svc-{i}-0"}, int(now.timestamp()) * NS, "ERROR x"
            )
        miss = [
            await timed(stage, notification([alert(f"m{i}", "prod", f"svc-{i}", "p", now)])) for i in range(samples)
        ]
        hit = [await timed(stage, notification([alert(f"h{i}", "prod", f"svc-{i}", "p", now)])) for i in range(samples)]
        print(f"added latency, Loki answering in {loki.delay * 1000:.0f} ms, {samples} notifications each:")
        for name, xs in (("cache miss (one query)", miss), ("cache hit", hit)):
            print(
                f"  {name:24s} p50 {pct(xs, 50) * 1000:7.2f} ms   p99 {pct(xs, 99) * 1000:7.2f} ms   "
                f"max {max(xs) * 1000:7.2f} ms"
            )
    finally:
        await stage.aclose()


async def storm(loki: LokiStandin, config: Config, total: int, per_group: int, workers: int) -> None:
    stage = EnrichmentStage(config, Metrics())
    try:
        base = datetime.now(UTC) - timedelta(minutes=2)
        alerts = [
            alert(
                f"s{i}", f"ns-{i % 5}", f"model-{i % 20}", f"model-{i % 20}-{i}", base + timedelta(seconds=(i * 7) % 60)
            )
            for i in range(total)
        ]
        # Alertmanager groups by (alertname, namespace): alerts of one namespace travel together.
        by_ns: dict[str, list[Alert]] = {}
        for a in alerts:
            by_ns.setdefault(a.labels["namespace"], []).append(a)
        groups = [g[i : i + per_group] for g in by_ns.values() for i in range(0, len(g), per_group)]
        before = loki.query_count
        sem = asyncio.Semaphore(workers)
        durations: list[float] = []

        async def one(g: list[Alert]) -> None:
            async with sem:
                durations.append(await timed(stage, notification(g)))

        t = time.perf_counter()
        await asyncio.gather(*(one(g) for g in groups))
        wall = time.perf_counter() - t
        queries = loki.query_count - before
        print(
            f"storm: {total} alerts in {len(groups)} notifications of <= {per_group}, 20 workloads x 5 namespaces, "
            f"{workers} delivery workers:"
        )
        print(
            f"  Loki queries {queries} ({queries / total:.4f} per alert), wall {wall:.2f} s, "
            f"per notification p50 {pct(durations, 50) * 1000:.1f} ms p99 {pct(durations, 99) * 1000:.1f} ms"
        )
    finally:
        await stage.aclose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--delay", type=float, default=0.020, help="stand-in answer delay in seconds")
    parser.add_argument("--alerts", type=int, default=5000)
    args = parser.parse_args()
    async with asyncio.timeout(120):
        with tempfile.TemporaryDirectory() as tmp:
            async with LokiStandin(delay=args.delay) as loki:
                config = make_config(Path(tmp), loki.url)
                await latency(loki, config, args.samples)
                await storm(loki, config, args.alerts, per_group=50, workers=8)
                await storm(loki, config, args.alerts, per_group=1, workers=8)


if __name__ == "__main__":
    asyncio.run(main())
