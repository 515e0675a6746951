"""The command line: check reports FILE:LINE problems with a non-zero exit; route-test explains routing."""

from pathlib import Path

import pytest

from alert_router.cli import main
from alert_router.logging import redact_secrets
from tests.helpers import write_config

ROOT = Path(__file__).resolve().parents[1]


def test_check_shipped_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--config", str(ROOT / "alert-router.yaml")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK: ") and "runbooks" in out


def test_check_reports_every_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path, "listen: nowhere\n", rules="rules:\n  - name: x\n    receivers: [nope]\n")
    assert main(["check", "--config", str(cfg)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert any(line.startswith(f"{cfg}:") and "listen" in line for line in out), out


def test_check_reports_all_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path, rules="rules:\n  - name: x\n    receivers: [nope]\n")
    (tmp_path / "rules" / "broken.yaml").write_text("rules: [\n")
    assert main(["check", "--config", str(cfg)]) == 1
    out = capsys.readouterr().out
    assert "rules.yaml:3: rule 'x': unknown receiver 'nope'" in out
    assert "broken.yaml:2: invalid YAML" in out


def test_route_test(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["route-test", "--config", str(ROOT / "alert-router.yaml"), "alertname=HighModelLatency",
                 "severity=warning", "namespace=prod", "deployment=model-api"])
    assert code == 0
    out = capsys.readouterr().out
    assert "rule model-latency" in out
    assert "receivers: file, slack (disabled), console" in out
    assert "runbook: scale-up-model-api" in out


def test_route_test_lists_the_pager_for_critical_alerts(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shipped config pages PagerDuty for critical alerts; route-test says so, and that it is off until enabled."""
    monkeypatch.delenv("PAGERDUTY_ENABLED", raising=False)
    args = ["route-test", "--config", str(ROOT / "alert-router.yaml"), "alertname=Down", "severity=critical"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "rule critical-to-pager" in out and "pagerduty (disabled)" in out
    monkeypatch.setenv("PAGERDUTY_ENABLED", "true")
    monkeypatch.setenv("PAGERDUTY_ROUTING_KEY", "R" * 32)
    assert main(args) == 0
    out = capsys.readouterr().out
    assert ", pagerduty," in out and "pagerduty (disabled)" not in out
    assert main(["route-test", "--config", str(ROOT / "alert-router.yaml"), "alertname=X", "severity=warning"]) == 0
    assert "pagerduty" not in capsys.readouterr().out


def test_route_test_bad_label(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["route-test", "--config", str(ROOT / "alert-router.yaml"), "novalue"]) == 2


def test_log_processor_redacts_secret_keys() -> None:
    event = redact_secrets(None, "info", {"event": "x", "bearer_token": "abc", "password": "p", "user": "u"})
    assert event == {"event": "x", "bearer_token": "***", "password": "***", "user": "u"}


async def test_a_second_process_on_the_same_sqlite_file_says_so_in_one_line(tmp_path: Path) -> None:
    """Like an invalid config: one line naming the fix and a non-zero exit, no traceback."""
    import subprocess
    import sys

    from tests.e2e.service import ServiceProcess

    config = write_config(tmp_path)
    first = ServiceProcess(config)
    await first.start()
    assert f'"url": "{first.url}"' in first.log.read_text(), "serve logs where it listens once it does"
    try:
        second = subprocess.run(
            [sys.executable, "-m", "alert_router", "serve", "--config", str(config), "--listen", "127.0.0.1:0"],
            capture_output=True, text=True, timeout=60, check=False,
        )
    finally:
        first.stop()
    assert second.returncode == 2, second.stderr
    output = (second.stdout + second.stderr).splitlines()
    assert len(output) == 1, output
    assert "is in use by another alert-router process" in output[0]
    assert "postgresql://" in output[0]
