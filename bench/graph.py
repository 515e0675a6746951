"""Benchmark of the graph stage (standalone, loopback only, about a minute).

Measures:
1. render time per picture (800x400), p50/p99, in a thread pool and in a process pool, one and two workers;
2. the latency the stage adds to one notification with a real local Prometheus holding an hour of data
   (tests/graph/data.py): a new expression (query + drawing), a new group on a known expression (drawing),
   and another receiver of the same group state (cached);
3. a 300-group storm of HighModelLatency (one group per deployment) through the whole service to a webhook
   receiver (storm digests off, so every group is a message): Prometheus queries, drawings, pictures
   capped, and when the storm's messages arrive, side by side with pictures off.

Run from the repository root: ``.venv/bin/python bench/graph.py`` (needs /usr/bin/prometheus and promtool).
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
from typing import Any
from urllib.parse import urlencode

import yaml
from aiohttp import ClientSession, web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alert_router.app import build_app
from alert_router.appkeys import RUNTIME
from alert_router.config import load
from alert_router.graph.files import GraphFiles
from alert_router.graph.pool import RenderPool
from alert_router.graph.stage import GraphStage
from alert_router.models import Alert, Notification
from tests.graph.data import Exporter, ModelData, backfill
from tests.graph.test_render import latency_spec
from tests.loopback import serve
from tests.procs.prometheus import Prometheus

REPO = Path(__file__).resolve().parents[1]
EXPR = yaml.safe_load((REPO / "rules/prometheus/model-monitoring.yml").read_text())["groups"][1]["rules"][0]["expr"]
GENERATOR = "http://prometheus:9090/graph?" + urlencode({"g0.expr": EXPR})


def pct(xs: list[float], q: int) -> float:
    return statistics.quantiles(xs, n=100, method="inclusive")[q - 1] if len(xs) > 1 else xs[0]


async def renders(samples: int) -> None:
    spec = latency_spec()
    print(f"1. render time per 800x400 picture, {samples} pictures each:")
    for mode in ("thread", "process"):
        for workers in (1, 2):
            pool = RenderPool(mode, workers)  # type: ignore[arg-type]
            try:
                await pool.warm_up()
                one = []
                for _ in range(samples):
                    t = time.perf_counter()
                    await pool.render(spec)
                    one.append(time.perf_counter() - t)
                t = time.perf_counter()
                await asyncio.gather(*(pool.render(spec) for _ in range(samples)))
                rate = samples / (time.perf_counter() - t)
            finally:
                await pool.aclose()
            print(f"  {mode:7s} x{workers}: one at a time p50 {pct(one, 50) * 1000:6.1f} ms  p99 "
                  f"{pct(one, 99) * 1000:6.1f} ms   all at once {rate:5.1f} pictures/s")


def config_file(root: Path, prom_url: str, sink: str, graphs: bool, cap: int) -> Path:
    (root / "rules").mkdir(parents=True, exist_ok=True)
    (root / "runbooks").mkdir(exist_ok=True)
    (root / "rules" / "r.yaml").write_text("rules:\n  - name: all\n    match: []\n    receivers: [hook]\n")
    cfg: dict[str, Any] = {
        "data_dir": str(root / "data"), "ingest": {"poll_interval": 0.2},
        "delivery": {"workers": 32, "storm": {"threshold": 0}},
        "receivers": [{"name": "hook", "webhook": {"url": sink}}],
        "rules": "rules/", "runbooks": "runbooks/",
    }
    if graphs:
        cfg["graph"] = {"prometheus": {"url": prom_url}, "renders_per_minute": cap}
    (root / "alert-router.yaml").write_text(yaml.safe_dump(cfg))
    return root / "alert-router.yaml"


def alert(i: int, started: datetime) -> dict[str, Any]:
    return {"status": "firing", "fingerprint": f"{i:016x}", "generatorURL": GENERATOR,
            "labels": {"alertname": "HighModelLatency", "namespace": "prod", "job": "model-api",
                       "deployment": f"model-{i}", "severity": "warning"},
            "startsAt": started.isoformat(), "endsAt": "0001-01-01T00:00:00Z"}


async def latency(prom_url: str, samples: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = load(config_file(Path(tmp), prom_url, "http://127.0.0.1:9/", True, 10_000), {})
        stage = GraphStage(config, files=GraphFiles(Path(tmp) / "graphs"))
        await stage.pool.warm_up()
        started = datetime.now(UTC) - timedelta(minutes=10)
        try:
            def note(i: int, receiver: str = "hook") -> Notification:
                a = Alert.model_validate(alert(i, started))
                return Notification(receiver=receiver, rule="all", group_key=f"g{i}", status="firing", alerts=[a],
                                    received_at=datetime.now(UTC))

            new_expr, new_group, same = [], [], []
            for i in range(samples):
                stage.queries = type(stage.queries)()  # forget the query: a new expression each time
                t = time.perf_counter()
                await stage(note(i))
                new_expr.append(time.perf_counter() - t)
            for i in range(samples, 2 * samples):
                t = time.perf_counter()
                await stage(note(i))
                new_group.append(time.perf_counter() - t)
            for i in range(samples, 2 * samples):
                t = time.perf_counter()
                await stage(note(i, "other"))
                same.append(time.perf_counter() - t)
        finally:
            await stage.aclose()
    print(f"2. latency added to one notification, real Prometheus on loopback, {samples} notifications each:")
    for name, xs in (("new expression (query + drawing)", new_expr), ("new group, known expression (drawing)",
                     new_group), ("same group state, another receiver", same)):
        print(f"  {name:40s} p50 {pct(xs, 50) * 1000:7.1f} ms  p99 {pct(xs, 99) * 1000:7.1f} ms")


async def storm(prom_url: str, groups: int, graphs: bool, cap: int) -> None:
    arrivals: list[float] = []
    sink = web.Application()

    async def hook(request: web.Request) -> web.Response:
        await request.read()
        arrivals.append(time.perf_counter())
        return web.Response()

    sink.router.add_post("/", hook)
    with tempfile.TemporaryDirectory() as tmp:
        async with serve(sink) as sink_url:
            config = load(config_file(Path(tmp), prom_url, sink_url + "/", graphs, cap), {})
            app = build_app(config)
            async with serve(app) as router, ClientSession() as http:
                grapher = app[RUNTIME].services["grapher"]
                if graphs:
                    await grapher.pool.warm_up()
                started = datetime.now(UTC) - timedelta(minutes=10)
                t0 = time.perf_counter()
                for i in range(groups):
                    body = {"version": "4", "status": "firing", "receiver": "ar",
                            "groupKey": f'{{}}:{{deployment="model-{i}"}}', "alerts": [alert(i, started)],
                            "groupLabels": {"alertname": "HighModelLatency", "deployment": f"model-{i}"}}
                    async with http.post(router + "/webhook", json=body) as r:
                        assert r.status == 200
                posted = time.perf_counter() - t0
                deadline = time.monotonic() + 300
                while len(arrivals) < groups and time.monotonic() < deadline:  # noqa: ASYNC110 - polls a list
                    await asyncio.sleep(0.05)
                done = [a - t0 for a in arrivals]
                rt = app[RUNTIME]
                samples = [s for m in rt.metrics.registry.collect() if m.name == "alert_router_graph_renders"
                           for s in m.samples if s.name.endswith("_total")]
                skipped = {o: sum(s.value for s in samples if s.labels.get("outcome") == o) for o in ("capped", "busy")}
                label = f"graphs on (cap {cap}/min)" if graphs else "graphs off"
                print(f"  {label:24s} messages {len(done)}/{groups}  posted in {posted:5.2f} s  "
                      f"arrived p50 {pct(done, 50):5.2f} s  p99 {pct(done, 99):5.2f} s  last {max(done):5.2f} s  "
                      f"queries {grapher.queries_sent}  drawings {grapher.renders_started}  "
                      f"capped {skipped['capped']:.0f}  queue too deep {skipped['busy']:.0f}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument("--groups", type=int, default=300)
    args = parser.parse_args()
    await renders(args.samples)
    data = ModelData(time.time())
    work = Path(tempfile.mkdtemp(prefix="ar-bench-graph-"))
    backfill(data, work / "data")
    async with serve(Exporter(data).app) as url:
        prom = Prometheus(self_scrape=False, workdir=work, scrape_configs=[{
            "job_name": "model-api", "static_configs": [{"targets": [url.removeprefix("http://")],
                                                         "labels": {"namespace": "prod", "instance": "model-api-0"}}]}])
        await prom.start()
        try:
            await asyncio.sleep(2)
            await latency(prom.url, args.samples)
            print(f"3. a {args.groups}-group storm through the service to a webhook receiver (digests off):")
            await storm(prom.url, args.groups, False, 60)
            await storm(prom.url, args.groups, True, 60)
            await storm(prom.url, args.groups, True, 10_000)
        finally:
            prom.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
