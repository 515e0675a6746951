"""``alert-router graph``: the picture a page would carry, from a rule file's expression, into a file."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from alert_router.graph.command import rule_expression
from tests.graph.pixels import decode
from tests.graph.test_stage import FakePrometheus, prometheus  # noqa: F401 - the fixture

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "rules" / "prometheus" / "model-monitoring.yml"


def test_rule_expression_picks_the_rule_whose_labels_agree() -> None:
    """ModelServiceDown has two rules; the absent() one carries static labels the other lacks."""
    assert "histogram_quantile(0.95" in (rule_expression(RULES, {"alertname": "HighModelLatency"}) or "")
    first = rule_expression(RULES, {"alertname": "ModelServiceDown"})
    assert first is not None and first.startswith("label_replace(")
    assert rule_expression(RULES, {"alertname": "Nope"}) is None


async def run(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "alert_router", "graph", "--config", str(REPO / "alert-router.yaml"), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_graph_command_draws_into_the_file(prometheus: tuple[FakePrometheus, str], tmp_path: Path) -> None:  # noqa: F811
    """Against a Prometheus, with the expression given: a PNG of the configured size, and what it shows."""
    _, url = prometheus
    out = tmp_path / "g.png"
    code, stdout, stderr = await run(
        "alertname=HighModelLatency", "deployment=d3", "--expr",
        "histogram_quantile(0.95, sum by (le, deployment) (rate(model_latency_seconds_bucket[5m]))) > 0.5",
        "--prometheus", url, "--out", str(out),
    )
    assert code == 0, stderr
    assert "fires > 500 ms" in stdout
    pixels, _, meta = decode(out.read_bytes())
    assert pixels.shape[:2] == (400, 800) and meta["threshold"] == 0.5


async def test_graph_command_needs_a_prometheus(tmp_path: Path) -> None:
    code, _, stderr = await run("alertname=HighModelLatency", "--rules-file", str(RULES), "--out",
                                str(tmp_path / "g.png"))
    assert code == 2 and "no Prometheus" in stderr
