"""The graph stage's bounds: one query per expression for a storm, one drawing per group state, the cap, the timeout.

Prometheus here is a small loopback server answering ``query_range`` in Prometheus's shape (the real one is
driven in tests/e2e/test_graph_e2e.py); it counts the queries and can stall or refuse.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import web

from alert_router.config import Config, load
from alert_router.graph.files import GraphFiles, read_png
from alert_router.graph.stage import GraphStage
from alert_router.models import Alert, Notification
from tests.loopback import serve

EXPR = 'histogram_quantile(0.95, sum by (le, deployment) (rate(model_latency_seconds_bucket[5m]))) > 0.5'


class FakePrometheus:
    """``GET /api/v1/query_range``: a series per deployment d0..d49, 0.2 then 0.9; counts queries."""

    def __init__(self) -> None:
        self.queries: list[dict[str, str]] = []
        self.stall = asyncio.Event()
        self.stalled = False
        self.error: tuple[int, dict[str, Any]] | None = None
        self.app = web.Application()
        self.app.router.add_get("/api/v1/query_range", self.query_range)

    async def query_range(self, request: web.Request) -> web.Response:
        self.queries.append(dict(request.query))
        if self.stalled:
            await self.stall.wait()
        if self.error is not None:
            return web.json_response(self.error[1], status=self.error[0])
        start, end, step = (float(request.query[k]) for k in ("start", "end", "step"))
        times = [start + i * step for i in range(int((end - start) / step) + 1)]
        result = [
            {"metric": {"deployment": f"d{i}"}, "values": [[t, "0.2" if t < end - 600 else "0.9"] for t in times]}
            for i in range(50)
        ]
        return web.json_response({"status": "success", "data": {"resultType": "matrix", "result": result}})


@pytest.fixture
async def prometheus() -> AsyncIterator[tuple[FakePrometheus, str]]:
    fake = FakePrometheus()
    async with serve(fake.app) as url:
        try:
            yield fake, url
        finally:
            fake.stall.set()  # before the server stops: it waits for its handlers


def config(tmp_path: Path, url: str, **graph: Any) -> Config:
    (tmp_path / "rules").mkdir(exist_ok=True)
    (tmp_path / "runbooks").mkdir(exist_ok=True)
    (tmp_path / "rules" / "r.yaml").write_text(
        "rules:\n  - name: all\n    match: []\n    receivers: [file]\n"
        "  - name: quiet\n    match: ['team=\"quiet\"']\n    receivers: [file]\n    graph: null\n"
    )
    extra = "".join(f"  {k}: {v}\n" for k, v in graph.items())
    (tmp_path / "alert-router.yaml").write_text(
        f"data_dir: {tmp_path / 'data'}\nreceivers:\n  - name: file\n    file: {{path: out.jsonl}}\n"
        f"graph:\n  prometheus: {{url: '{url}'}}\n  width: 400\n  height: 240\n{extra}"
    )
    return load(tmp_path / "alert-router.yaml", {})


def notification(group: int, status: str = "firing", rule: str = "all") -> Notification:
    starts = datetime.now(UTC) - timedelta(minutes=5)
    url = "http://prom:9090/graph?" + urlencode({"g0.expr": EXPR})
    alert = Alert.model_validate({
        "status": status, "labels": {"alertname": "HighModelLatency", "deployment": f"d{group}"},
        "startsAt": starts.isoformat(), "generatorURL": url, "fingerprint": f"fp{group:04d}",
        **({"endsAt": datetime.now(UTC).isoformat()} if status == "resolved" else {}),
    })
    return Notification(receiver="file", rule=rule, group_key=f"g{group}", status=status, alerts=[alert],
                        received_at=datetime.now(UTC))


async def stage_for(cfg: Config, tmp_path: Path) -> GraphStage:
    return GraphStage(cfg, files=GraphFiles(tmp_path / "graphs"))


async def test_a_storm_costs_one_query_and_one_drawing_per_group(
    prometheus: tuple[FakePrometheus, str], tmp_path: Path
) -> None:
    """40 groups firing on one expression, each to three receivers: 1 query, 40 drawings; every copy has one."""
    fake, url = prometheus
    stage = await stage_for(config(tmp_path, url, renders_per_minute=1000, timeout="30s"), tmp_path)
    try:
        copies = [notification(g) for g in range(40) for _ in range(3)]
        await asyncio.gather(*(stage(n) for n in copies))
        assert len(fake.queries) == 1
        assert stage.renders_started == 40
        for n in copies:
            (entry,) = n.extra["graphs"]
            assert entry["status"] == "ok" and read_png(entry) is not None
            assert entry["fingerprints"] == [n.alerts[0].fingerprint]
        by_group = {n.group_key: n.extra["graphs"][0]["id"] for n in copies}
        assert all(n.extra["graphs"][0]["id"] == by_group[n.group_key] for n in copies), "copies share a picture"
        resolved = notification(3, "resolved")
        await stage(resolved)
        assert resolved.extra["graphs"][0]["id"] != by_group["g3"], "the recovery is a new picture"
        assert stage.renders_started == 41
    finally:
        await stage.aclose()


async def test_the_cap_and_graph_null(prometheus: tuple[FakePrometheus, str], tmp_path: Path) -> None:
    """Beyond renders_per_minute a page goes without its picture, saying so; `graph: null` draws nothing."""
    _, url = prometheus
    stage = await stage_for(config(tmp_path, url, renders_per_minute=2, timeout="30s"), tmp_path)
    try:
        pages = [notification(g) for g in range(4)]
        for n in pages:
            await stage(n)
        statuses = [n.extra["graphs"][0]["status"] for n in pages]
        assert statuses == ["ok", "ok", "unavailable", "unavailable"]
        assert "more than 2 pictures a minute" in pages[3].extra["graphs"][0]["reason"]
        quiet = notification(9, rule="quiet")
        await stage(quiet)
        assert "graphs" not in quiet.extra
    finally:
        await stage.aclose()


async def test_a_hanging_prometheus_costs_at_most_the_timeout_and_one_query(
    prometheus: tuple[FakePrometheus, str], tmp_path: Path
) -> None:
    """Prometheus accepts and never answers: each page goes after `timeout` saying so; the storm sends one query."""
    fake, url = prometheus
    fake.stalled = True
    stage = await stage_for(config(tmp_path, url, timeout="0.5s"), tmp_path)
    try:
        pages = [notification(g) for g in range(10)]
        await asyncio.wait_for(asyncio.gather(*(stage(n) for n in pages)), timeout=20)
        for n in pages:
            (entry,) = n.extra["graphs"]
            assert entry["status"] == "unavailable"
            assert entry["reason"] == "timeout: Prometheus did not answer within 0.5s"
        assert len(fake.queries) == 1
    finally:
        fake.stall.set()
        await stage.aclose()


async def test_prometheus_refusing_the_query_is_named(prometheus: tuple[FakePrometheus, str], tmp_path: Path) -> None:
    """A 400 bad_data answer reaches the page as Prometheus's own words; the failure is remembered briefly."""
    fake, url = prometheus
    fake.error = (400, {"status": "error", "errorType": "bad_data", "error": "parse error at char 3"})
    stage = await stage_for(config(tmp_path, url), tmp_path)
    try:
        first, second = notification(1), notification(2)
        await stage(first)
        await stage(second)
        assert first.extra["graphs"][0]["reason"] == "HTTP 400: bad_data: parse error at char 3"
        assert len(fake.queries) == 1, "an error is kept a few seconds: an outage costs one query, not one per page"
    finally:
        await stage.aclose()


async def test_no_expression_and_digests(prometheus: tuple[FakePrometheus, str], tmp_path: Path) -> None:
    """An alert without g0.expr says why it has no picture; storm digests get none."""
    _, url = prometheus
    stage = await stage_for(config(tmp_path, url), tmp_path)
    try:
        n = notification(1)
        n.alerts[0] = n.alerts[0].model_copy(update={"generator_url": "http://prom/graph"})
        await stage(n)
        assert "no expression" in n.extra["graphs"][0]["reason"]
        digest = notification(2)
        digest.extra["digest"] = {"groups": 3}
        await stage(digest)
        assert "graphs" not in digest.extra
    finally:
        await stage.aclose()


async def test_public_links_feed_pagerduty_images(prometheus: tuple[FakePrometheus, str], tmp_path: Path) -> None:
    """With graph.public_url, each picture has a link, and extra["images"] carries it as PagerDuty takes it."""
    from alert_router.channels.pagerduty import https_images

    _, url = prometheus
    cfg = config(tmp_path, url, public_url="https://ar.example.com")
    stage = GraphStage(cfg, files=GraphFiles(tmp_path / "graphs", public_url="https://ar.example.com"))
    try:
        n = notification(1)
        await stage(n)
        (entry,) = n.extra["graphs"]
        assert entry["url"] == f"https://ar.example.com/graphs/{entry['id']}.png"
        (image,) = https_images(n.extra["images"])
        assert image["src"] == entry["url"] and image["href"].startswith("http://prom:9090/graph?")
        assert image["alt"] == "Graph of HighModelLatency, fires > 500 ms"
    finally:
        await stage.aclose()
