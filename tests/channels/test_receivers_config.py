"""Receiver configuration: the `enabled` and `storm` common keys, secrets from files, errors with FILE:LINE."""

from __future__ import annotations

from pathlib import Path

import pytest

from alert_router.config import load
from alert_router.errors import ConfigError
from alert_router.pipeline.route import route_labels

ROOT = Path(__file__).resolve().parents[2]


def config(tmp: Path, receivers: str) -> Path:
    (tmp / "rules").mkdir(exist_ok=True)
    (tmp / "runbooks").mkdir(exist_ok=True)
    (tmp / "rules" / "r.yaml").write_text("default:\n  receivers: [file]\n")
    path = tmp / "alert-router.yaml"
    path.write_text(f"data_dir: {tmp}/data\nreceivers:\n  - name: file\n    file: {{path: x.jsonl}}\n{receivers}")
    return path


def problems(path: Path, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load(path, env or {})
    return [str(p) for p in err.value.problems]


def test_disabled_receivers_need_no_secrets(tmp_path: Path) -> None:
    rx = "  - name: slack\n    enabled: ${SLACK_ENABLED:-false}\n    slack:\n      token: ${T:-}\n"
    path = config(tmp_path, rx)
    cfg = load(path, {})
    assert cfg.receivers["slack"].enabled is False
    found = problems(path, {"SLACK_ENABLED": "yes"})
    assert any("needs token, channel" in p and p.startswith(f"{path}:7:") for p in found), found


def test_secrets_from_files_and_storm_override(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("123:abc\n")
    path = config(tmp_path, f"  - name: tg\n    storm: {{threshold: 3}}\n    rate_limit: {{rate: 0.5}}\n"
                            f"    telegram: {{token_file: {token}, chat_id: '-100'}}\n")
    spec = load(path, {}).receivers["tg"]
    assert spec.config.token.get_secret_value() == "123:abc"
    assert spec.config.chat_id == -100
    assert (spec.storm_threshold, spec.rate, spec.burst, spec.enabled) == (3, 0.5, 1.0, True)


@pytest.mark.parametrize(
    ("receiver", "message"),
    [
        ("  - name: s\n    enabled: maybe\n    slack: {}\n", "enabled must be true or false"),
        ("  - name: s\n    storm: {threshold: -1}\n    webhook: {url: 'http://x'}\n", "storm needs"),
        ("  - name: s\n    webhook: {url: 'http://x', template: '{% if %}'}\n", "template syntax error on line 1"),
        ("  - name: s\n    email: {from: a@b, to: c@d, mode: ssl}\n", "mode"),
        ("  - name: s\n    telegram: {token: '1:a', chat_id: 5, long_messages: cut}\n", "long_messages"),
    ],
)
def test_problems_name_the_line(tmp_path: Path, receiver: str, message: str) -> None:
    path = config(tmp_path, receiver)
    found = problems(path)
    assert any(message in p and p.startswith(f"{path}:") for p in found), found


@pytest.mark.parametrize(
    ("receiver", "reaches"),
    [
        ("slack: {token: x, channel: '#a', template: '{{ alerts.__class__.__mro__ }}'}", "alerts.__class__"),
        ("telegram: {token: '1:a', chat_id: 5, template: \"{{ (title|attr('__class__')) }}\"}", "__class__"),
        ("email: {from: a@b, to: c@d, subject_template: '{{ cycler.__init__.__globals__ }}'}", "cycler.__init__"),
        ("email: {from: a@b, to: c@d, template: \"{{ labels['__globals__'] }}\"}", "__globals__"),
        ("webhook: {url: 'http://x', template: '{\"a\": {{ \"{0.__class__}\".format(title) }}}'}", "format string"),
        ("webhook: {url: 'http://x', template: \"{% include 'secrets' %}\"}", "include"),
    ],
)
def test_templates_reaching_private_attributes_are_refused_by_check_with_file_and_line(
    tmp_path: Path, receiver: str, reaches: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from alert_router.cli import main

    path = config(tmp_path, f"  - name: r\n    {receiver}\n")
    assert main(["check", "--config", str(path)]) == 1
    out = capsys.readouterr().out
    (problem,) = [ln for ln in out.splitlines() if ln.startswith(f"{path}:6:")]
    assert "template line 1:" in problem and reaches in problem, problem


def test_shipped_config_routes_by_severity_with_people_receivers_off() -> None:
    """alert-router check passes with no secrets; critical → slack, telegram, email; warning → slack; all → file."""
    cfg = load(ROOT / "alert-router.yaml", {})
    for name in ("slack", "telegram", "email"):
        assert cfg.receivers[name].enabled is False
    crit = route_labels({"alertname": "X", "severity": "critical"}, cfg.rules, cfg.default).receiver_names
    warn = route_labels({"alertname": "X", "severity": "warning"}, cfg.rules, cfg.default).receiver_names
    info = route_labels({"alertname": "X", "severity": "info"}, cfg.rules, cfg.default).receiver_names
    assert {"file", "slack", "telegram", "email"} <= set(crit)
    assert {"file", "slack"} <= set(warn) and not {"telegram", "email"} & set(warn)
    assert "file" in info and "slack" not in info
    enabled = load(ROOT / "alert-router.yaml", {"SLACK_ENABLED": "true", "SLACK_BOT_TOKEN": "xoxb-1",
                                                "SLACK_CHANNEL": "C1"})
    assert enabled.receivers["slack"].enabled is True


def test_shipped_config_pages_pagerduty_for_critical_once_enabled(tmp_path: Path) -> None:
    """PagerDuty gets critical alerts only; it is off (no key needed) until PAGERDUTY_ENABLED, key from env or file."""
    cfg = load(ROOT / "alert-router.yaml", {})
    assert cfg.receivers["pagerduty"].enabled is False and cfg.receivers["pagerduty"].fallback == "console"
    crit = route_labels({"alertname": "X", "severity": "critical"}, cfg.rules, cfg.default).receiver_names
    warn = route_labels({"alertname": "X", "severity": "warning"}, cfg.rules, cfg.default).receiver_names
    assert "pagerduty" in crit and "pagerduty" not in warn
    on = load(ROOT / "alert-router.yaml", {"PAGERDUTY_ENABLED": "true", "PAGERDUTY_ROUTING_KEY": "R" * 32})
    assert on.receivers["pagerduty"].enabled is True
    assert on.receivers["pagerduty"].config.routing_key.get_secret_value() == "R" * 32
    found = problems(ROOT / "alert-router.yaml", {"PAGERDUTY_ENABLED": "true"})
    assert any("needs routing_key" in p for p in found), found
    key = tmp_path / "pd-key"
    key.write_text("K" * 32 + "\n")
    path = config(tmp_path, f"  - name: pd\n    pagerduty: {{routing_key_file: {key}}}\n")
    assert load(path, {}).receivers["pd"].config.routing_key.get_secret_value() == "K" * 32
    key.write_text("K" * 31 + "-\n")  # a key PagerDuty would refuse at the first page: check says so first
    (found,) = problems(path)
    assert "32 letters and digits" in found and "K" * 20 not in found, found


@pytest.mark.parametrize(
    ("receiver", "message"),
    [
        ("  - name: s\n    pagerduty: {routing_key: k, severities: {p1: urgent}}\n", "severities"),
        ("  - name: s\n    opsgenie: {api_key: k, region: apac}\n", "region"),
        ("  - name: s\n    discord: {webhook_url: 'https://discord.com/x'}\n", "webhooks/<id>/<token>"),
        ("  - name: s\n    teams: {}\n", "needs webhook_url"),
    ],
)
def test_new_receiver_problems_name_the_line(tmp_path: Path, receiver: str, message: str) -> None:
    path = config(tmp_path, receiver)
    found = problems(path)
    assert any(message in p and p.startswith(f"{path}:") for p in found), found
