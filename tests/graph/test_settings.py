"""The graph: block: a rule's block merges over the global one, `graph: null` turns pictures off, bad PromQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from alert_router.config import load
from alert_router.errors import ConfigError
from alert_router.graph.settings import settings_for_rule


def write(tmp_path: Path, rules: str) -> Path:
    (tmp_path / "rules").mkdir()
    (tmp_path / "runbooks").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text(rules)
    (tmp_path / "alert-router.yaml").write_text(
        f"data_dir: {tmp_path}\nreceivers:\n  - name: file\n    file: {{path: x.jsonl}}\n"
        "graph:\n  prometheus: {url: 'http://prom:9090', tenant: ml}\n  range: 2h\n"
    )
    return tmp_path / "alert-router.yaml"


def test_rule_blocks_merge_and_null_turns_off(tmp_path: Path) -> None:
    config = load(write(tmp_path, (
        "rules:\n"
        "  - name: own\n    match: []\n    receivers: [file]\n"
        "    graph: {query: 'histogram_quantile(0.99, rate(x_seconds_bucket[5m]))', threshold: 0.8}\n"
        "  - name: quiet\n    match: []\n    receivers: [file]\n    graph: null\n"
        "  - name: plain\n    match: []\n    receivers: [file]\n"
    )), {})
    own, off, plain = (settings_for_rule(config, r) for r in config.rules)
    assert own.prometheus.tenant == "ml" and own.range == 7200 and own.threshold == 0.8 and own.query
    assert not off.enabled and plain.enabled and plain.query == ""


def test_bad_promql_is_reported_with_its_line(tmp_path: Path) -> None:
    rules = "rules:\n  - name: bad\n    match: []\n    receivers: [file]\n    graph: {query: 'rate(x[5m]'}\n"
    path = write(tmp_path, rules)
    with pytest.raises(ConfigError) as exc:
        load(path, {})
    (problem,) = exc.value.problems
    assert problem.file.endswith("r.yaml") and problem.line == 5 and "cannot parse PromQL" in problem.message
