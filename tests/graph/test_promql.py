"""The expression split: series, comparison and unit of every shipped rule, and the forms rules take."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

import pytest
import yaml

from alert_router.graph.promql import PromQLError, analyse, expression_from_generator_url
from alert_router.graph.units import format_value

RULES = Path(__file__).resolve().parents[2] / "rules" / "prometheus" / "model-monitoring.yml"


def shipped() -> list[tuple[str, str]]:
    doc = yaml.safe_load(RULES.read_text())
    return [(r["alert"], r["expr"]) for g in doc["groups"] for r in g["rules"]]


def test_every_shipped_rule_renders_sensibly() -> None:
    """Each shipped alert splits into a series, its comparison and a unit that reads as people expect."""
    got = {}
    for name, expr in shipped():
        q = analyse(expr)
        got.setdefault(name, []).append((q.op, q.threshold, q.unit, q.absent, q.describe()))
        assert "\n" not in q.describe()
        assert q.series and (q.op is None or q.op in q.describe())
    assert got["HighModelLatency"] == [(">", 0.5, "seconds", False, "> 500 ms")]
    assert got["HighErrorRate"] == [(">", 0.05, "ratio", False, "> 5%")]
    assert got["ModelDataDrift"] == [(">", 0.3, "ratio", False, "> 30%")]
    assert got["ModelServiceDown"][0] == ("<", 1.0, "per_second", False, "< 1/s")
    assert got["ModelServiceDown"][1][:4] == ("==", 1.0, "none", True), "absent(up == 1 and ...) draws up"
    (stale,) = got["StaleInputData"]
    assert stale[:3] == (">", None, "seconds"), "time() - a timestamp is an age; the threshold is a series"


def test_forms() -> None:
    """Mirrored comparisons, set operators, bool, negative thresholds, and the unit rules."""
    assert analyse("0.5 < foo_seconds").op == ">"
    assert analyse("foo > -2").threshold == -2
    q = analyse('rate(x_total{code=~"5.."}[5m]) > 3 and on(job) up == 1')
    assert (q.series, q.op, q.threshold, q.unit) == ('rate(x_total{code=~"5.."}[5m])', ">", 3.0, "per_second")
    assert analyse("up > bool 0").op is None, "a bool comparison fires for every series: draw it whole"
    assert analyse("sum(rate(a_total[5m])) / sum(rate(b_total[5m])) * 100 > 5").unit == "percent"
    assert analyse("rate(process_cpu_seconds_total[5m]) > 0.9").unit == "ratio"
    assert analyse("node_memory_bytes > 1e9").unit == "bytes"
    assert analyse("up == 0", unit="count").unit == "count"
    assert analyse("foo").op is None
    with pytest.raises(PromQLError):
        analyse("foo >")


def test_generator_url() -> None:
    """g0.expr is read from Prometheus's generatorURL; anything else gives nothing."""
    url = "http://prometheus-0:9090/graph?" + urlencode({"g0.expr": "a > 1", "g0.tab": "1"})
    assert expression_from_generator_url(url) == "a > 1"
    assert expression_from_generator_url("http://prometheus-0:9090/graph") is None
    assert expression_from_generator_url("") is None


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [(0.5, "seconds", "500 ms"), (90, "seconds", "90 s"), (0.3, "ratio", "30%"), (2048, "bytes", "2 KiB"),
     (1500, "per_second", "1.5k/s"), (42, "none", "42")],
)
def test_units(value: float, unit: str, text: str) -> None:
    """Seconds as ms, ratios as percent, bytes in binary units."""
    assert format_value(value, unit) == text
