"""The enrich: configuration: defaults off without Loki, per-rule merge, templates checked at load time as FILE:LINE."""

from __future__ import annotations

from pathlib import Path

import pytest

from alert_router.cli import main
from alert_router.config import load
from alert_router.enrich.settings import EnrichSettings, merge
from alert_router.enrich.stage import settings_for_rule
from alert_router.errors import ConfigError
from tests.helpers import write_config

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_config_has_loki_off_unless_loki_url_is_set() -> None:
    off = load(ROOT / "alert-router.yaml", {})
    assert off.settings.enrich.loki is not None and not off.settings.enrich.loki_enabled
    on = load(ROOT / "alert-router.yaml", {"LOKI_URL": "http://loki.monitoring:3100/", "LOKI_TENANT": "ml"})
    loki = on.settings.enrich.loki
    assert loki is not None and loki.enabled
    assert loki.url == "http://loki.monitoring:3100" and loki.tenant == "ml"
    assert (loki.limit, loki.lookback, loki.timeout) == (50, 600.0, 2.0)
    assert loki.labels == {"app": ["app", "app_kubernetes_io_name", "deployment", "job"], "pod": ["pod"]}


def test_rule_blocks_merge_over_the_default(tmp_path: Path) -> None:
    rules = """\
rules:
  - name: silent
    match: ['a="1"']
    receivers: [file]
    enrich: {loki: null, links: {enabled: false}}
  - name: tuned
    match: ['a="2"']
    receivers: [file]
    enrich:
      loki: {limit: 5, labels: {app: [service]}, bearer_token: rule-token}
  - name: plain
    match: []
    receivers: [file]
"""
    body = (
        "enrich:\n  loki:\n    url: http://loki:3100\n    tenant: t1\n"
        "    basic_auth: {username: u, password: p}\n  redact: {patterns: ['sid=\\w+']}\n"
    )
    config = load(write_config(tmp_path, body, rules=rules), {})
    by_name = {r.name: r for r in config.rules}
    off = settings_for_rule(config, by_name["silent"])
    assert off.loki is None and not off.loki_enabled and not off.links.enabled
    tuned = settings_for_rule(config, by_name["tuned"])
    assert tuned.loki is not None
    assert (tuned.loki.url, tuned.loki.tenant, tuned.loki.limit) == ("http://loki:3100", "t1", 5)
    assert tuned.loki.labels == {"app": ["service"], "pod": ["pod"]}  # the label map merges by placeholder
    assert tuned.loki.basic_auth is None  # a rule naming a credential replaces the other kind
    assert tuned.loki.bearer_token is not None and tuned.loki.bearer_token.get_secret_value() == "rule-token"
    assert tuned.redact.patterns == ["sid=\\w+"]
    assert settings_for_rule(config, by_name["plain"]) == config.settings.enrich
    assert merge(EnrichSettings(), None) == EnrichSettings()


def _problems(tmp_path: Path, body: str, rules: str | None = None) -> list[str]:
    path = write_config(tmp_path, body, **({"rules": rules} if rules else {}))
    with pytest.raises(ConfigError) as info:
        load(path, {})
    return [str(p) for p in info.value.problems]


def test_bad_global_template_is_reported_with_file_and_line(tmp_path: Path) -> None:
    body = "enrich:\n  loki:\n    url: http://loki:3100\n    query: '{app={{ app }}}'\n"
    (problem,) = _problems(tmp_path, body)
    cfg = tmp_path / "alert-router.yaml"
    line = cfg.read_text().splitlines().index("    query: '{app={{ app }}}'") + 1
    assert problem.startswith(f"{cfg}:{line}: enrich.loki.query: invalid LogQL template: placeholders must be inside")


def test_bad_rule_template_is_reported_by_check_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = """\
rules:
  - name: r
    match: []
    receivers: [file]
    enrich:
      loki:
        query: '{app=~".*"}'
"""
    path = write_config(tmp_path, "", rules=rules)
    assert main(["check", "--config", str(path)]) == 1
    out = capsys.readouterr().out
    assert (
        f"{tmp_path / 'rules' / 'rules.yaml'}:7: rules.0.enrich.loki.query: invalid LogQL template: every matcher"
        in out
    )


@pytest.mark.parametrize(
    ("loki", "message"),
    [
        ("limit: 5001", "less than or equal to 5000"),
        ("limit: 0", "greater than or equal to 1"),
        ("url: ftp://loki", "url must be http(s)"),
        ("timeout: 0s", "timeout must be"),
        ("labels: {app: []}", "at least one label"),
        ("labels: {app: ['bad-name']}", "not a label name"),
        ("bearer_token: x\n    basic_auth: {username: u, password: p}", "either bearer_token or basic_auth"),
        ('query: \'{app="x"} | line_format "{{ app }}"\'', "value of a matcher or filter"),
        ('query: \'{app="x"} | json x="{{ app }}"\'', "here it is in a `| json` stage"),
        ("frobnicate: 1", "unknown key"),
    ],
)
def test_invalid_loki_settings_are_problems(tmp_path: Path, loki: str, message: str) -> None:
    body = f"enrich:\n  loki:\n    {loki}\n"
    problems = _problems(tmp_path, body)
    assert any(message in p for p in problems), problems


def test_check_refuses_a_placeholder_in_a_formatting_stage_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = """\
rules:
  - name: r
    match: []
    receivers: [file]
    enrich:
      loki:
        query: '{namespace="{{ namespace }}"} | label_format shown="{{ app }}"'
"""
    path = write_config(tmp_path, "", rules=rules)
    assert main(["check", "--config", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"{tmp_path / 'rules' / 'rules.yaml'}:7: rules.0.enrich.loki.query: invalid LogQL template: " in out
    assert "here it is in a `| label_format` stage" in out
    with pytest.raises(ConfigError, match="label_format"):
        load(path, {})


def test_invalid_redaction_pattern_is_a_problem(tmp_path: Path) -> None:
    (problem,) = _problems(tmp_path, "enrich:\n  redact: {patterns: ['(unclosed']}\n")
    assert "invalid redaction pattern" in problem


def test_route_test_prints_the_query_each_matching_rule_would_send(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = """\
rules:
  - name: first
    match: []
    receivers: [file]
    continue: true
  - name: tuned
    match: ['alertname="X"']
    receivers: [file]
    enrich: {loki: {query: '{namespace="{{ namespace }}", pod=~"{{ app }}-.*"}', limit: 9}}
  - name: quiet
    match: ['alertname="X"']
    receivers: [file]
"""
    path = write_config(tmp_path, "enrich:\n  loki: {url: 'http://loki:3100', tenant: ml}\n", rules=rules)
    assert main(["route-test", "--config", str(path), "alertname=X", "namespace=prod", "deployment=a.b"]) == 0
    out = capsys.readouterr().out
    assert 'logs (rule first): {namespace="prod", app="a.b"} |~ "(?i)(error|exception|traceback|fatal)"' in out
    assert 'logs (rule tuned): {namespace="prod", pod=~"a\\\\.b-.*"}' in out
    assert "limit=9 from startsAt-10m to endsAt or now tenant=ml" in out
    # an alert with none of the labels: the query is shown with why it would not be sent
    assert main(["route-test", "--config", str(path), "alertname=Y"]) == 0
    out = capsys.readouterr().out
    assert 'logs (rule first): {namespace="", app=""}' in out
    assert "refused before sending: every matcher" in out


def test_route_test_says_when_loki_is_off(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path, "")
    assert main(["route-test", "--config", str(path), "alertname=X"]) == 0
    assert "logs (rule everything): Loki enrichment off" in capsys.readouterr().out
