"""Known data for the graph tests, the docs example and bench/graph.py: one hour of a model service's metrics.

The model API ``model-api`` in namespace ``prod`` serves 10 requests/s. Until ``switch`` (20 minutes before
``now``) every request takes 0.2 s and the drift share is 0.12; after it every request takes 0.8 s and the
drift share is 0.45. With buckets 0.1/0.25/0.5/1/+Inf, ``histogram_quantile(0.95, ...)`` over the shipped
HighModelLatency rule reads 0.2425 s before (0.1 + 0.15 x 0.95) and 0.975 s after (0.5 + 0.5 x 0.95): the
0.5 s threshold lies between. ModelDataDrift reads 12% then 45% against its 30% threshold.

:func:`openmetrics` writes the hour up to ``now - 30 s`` as OpenMetrics text for
``promtool tsdb create-blocks-from openmetrics``; :class:`Exporter` then serves the same functions live, so
a real Prometheus that loaded the blocks and scrapes the exporter has one continuous hour ending now.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from tests.procs.prometheus import PROMTOOL_BIN

LABELS = {"job": "model-api", "namespace": "prod", "instance": "model-api-0"}
BUCKETS = ("0.1", "0.25", "0.5", "1", "+Inf")
RATE = 10.0  # requests per second
BEFORE_LATENCY, AFTER_LATENCY = 0.2, 0.8
BEFORE_P95, AFTER_P95 = 0.2425, 0.975
BEFORE_DRIFT, AFTER_DRIFT = 0.12, 0.45
HOUR = 3600.0


@dataclass(frozen=True)
class ModelData:
    """The metric functions of time for an hour that ends at ``now`` and switches 20 minutes before."""

    now: float

    @property
    def start(self) -> float:
        """The first backfilled instant."""
        return self.now - HOUR

    @property
    def switch(self) -> float:
        """When latency and drift jump."""
        return self.now - 1200.0

    def requests(self, t: float) -> float:
        """``model_requests_total`` at ``t`` (a counter since ``start``)."""
        return RATE * max(0.0, t - self.start)

    def _before(self, t: float) -> float:
        return RATE * max(0.0, min(t, self.switch) - self.start)

    def _after(self, t: float) -> float:
        return RATE * max(0.0, t - self.switch)

    def buckets(self, t: float) -> dict[str, float]:
        """``model_latency_seconds_bucket`` by ``le`` at ``t``."""
        before, after = self._before(t), self._after(t)
        return {"0.1": 0.0, "0.25": before, "0.5": before, "1": before + after, "+Inf": before + after}

    def latency_sum(self, t: float) -> float:
        """``model_latency_seconds_sum`` at ``t``."""
        return BEFORE_LATENCY * self._before(t) + AFTER_LATENCY * self._after(t)

    def drift(self, t: float) -> float:
        """``model_drift_share`` at ``t``."""
        return BEFORE_DRIFT if t < self.switch else AFTER_DRIFT

    def samples(self, t: float) -> list[tuple[str, dict[str, str], float]]:
        """Every sample at ``t`` as (name, extra labels, value)."""
        out: list[tuple[str, dict[str, str], float]] = []
        for le, v in self.buckets(t).items():
            out.append(("model_latency_seconds_bucket", {"le": le}, v))
        out.append(("model_latency_seconds_count", {}, self.requests(t)))
        out.append(("model_latency_seconds_sum", {}, self.latency_sum(t)))
        out.append(("model_requests_total", {"model": "churn-v3", "code": "200"}, self.requests(t)))
        out.append(("model_drift_share", {"model": "churn-v3"}, self.drift(t)))
        return out


def _labels(extra: dict[str, str], base: dict[str, str]) -> str:
    return ",".join(f'{k}="{v}"' for k, v in {**base, **extra}.items())


def openmetrics(data: ModelData, step: float = 15.0, until: float | None = None) -> str:
    """The hour from ``data.start`` to ``until`` (default ``now - 30 s``) as OpenMetrics text."""
    end = data.now - 30.0 if until is None else until
    times = []
    t = data.start
    while t <= end:
        times.append(t)
        t += step
    series: dict[tuple[str, str], list[str]] = {}
    for t in times:
        for name, extra, value in data.samples(t):
            series.setdefault((name, _labels(extra, LABELS)), []).append(f"{value:g} {t:.3f}")
    lines: list[str] = []
    for name in dict.fromkeys(name for name, _ in series):
        lines.append(f"# TYPE {name} unknown")
        for (n, labels), points in series.items():
            if n == name:
                lines.extend(f"{name}{{{labels}}} {p}" for p in points)
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def backfill(data: ModelData, tsdb: Path) -> None:
    """Write the hour as TSDB blocks into ``tsdb`` (Prometheus's ``--storage.tsdb.path``) with promtool."""
    tsdb.mkdir(parents=True, exist_ok=True)
    source = tsdb.parent / "backfill.om"
    source.write_text(openmetrics(data))
    subprocess.run(
        [PROMTOOL_BIN, "tsdb", "create-blocks-from", "openmetrics", str(source), str(tsdb)],
        check=True, capture_output=True, timeout=120,
    )


class Exporter:
    """Serves the same functions live on ``GET /metrics`` (Prometheus text format, no timestamps)."""

    def __init__(self, data: ModelData) -> None:
        self.data = data
        self.app = web.Application()
        self.app.router.add_get("/metrics", self.metrics)

    async def metrics(self, request: web.Request) -> web.Response:
        t = time.time()
        lines = [f"{name}{{{_labels(extra, {})}}} {value:g}" for name, extra, value in self.data.samples(t)]
        return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")
