"""The model-monitoring alert rules: promtool validates them, their unit tests pass, and both can fail."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.promql import metric_names, unknown_metrics

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "rules" / "prometheus" / "model-monitoring.yml"
RULE_TESTS = REPO / "rules" / "prometheus" / "model-monitoring.test.yml"
RUNBOOKS = "https://github.com/alert-router/alert-router/blob/main/docs/runbooks.md#"

# alert name -> severity the runbooks and routes expect
REQUIRED_ALERTS = {
    "ModelServiceDown": "critical",
    "HighModelLatency": "warning",
    "HighErrorRate": "critical",
    "ModelDataDrift": "warning",
    "StaleInputData": "warning",
}
# Alerts a remediation runbook acts on through the Deployment: they must carry namespace and deployment.
SERVICE_ALERTS = {"ModelServiceDown", "HighModelLatency", "HighErrorRate"}


def promtool() -> str:
    """Return the promtool binary, or fail the test with the way to install it."""
    path = shutil.which("promtool") or ("/usr/bin/promtool" if Path("/usr/bin/promtool").exists() else None)
    if path is None:
        pytest.fail("promtool not found: run scripts/install-system-deps.sh (Debian package `prometheus`)")
    return path


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run a command with a bound on its time and return its result with stdout and stderr as text."""
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=60, check=False)


def output(result: subprocess.CompletedProcess[str]) -> str:
    """Format a finished command for an assertion message."""
    return f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"


def alert_rules() -> list[dict[str, Any]]:
    """Every alerting rule of the rules file, across groups."""
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"] if "alert" in rule]


def copy_rules(tmp_path: Path, rules_text: str | None = None) -> Path:
    """Copy rules and unit tests into tmp_path (optionally with other rule text); return the test file."""
    (tmp_path / RULES.name).write_text(RULES.read_text() if rules_text is None else rules_text)
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    return tmp_path / RULE_TESTS.name


def test_promtool_check_rules_accepts_the_rules() -> None:
    """`promtool check rules` accepts the file and counts all six rules."""
    result = run(promtool(), "check", "rules", RULES)
    assert result.returncode == 0, output(result)
    assert "SUCCESS: 6 rules found" in result.stdout, output(result)


def test_promtool_unit_tests_pass() -> None:
    """Every firing and non-firing case in model-monitoring.test.yml holds."""
    result = run(promtool(), "test", "rules", RULE_TESTS)
    assert result.returncode == 0, output(result)
    assert "SUCCESS" in result.stdout, output(result)


def test_promtool_check_rules_fails_on_a_syntax_error(tmp_path: Path) -> None:
    """A broken PromQL expression in a copy of the rules is rejected, so the check above can fail."""
    text = RULES.read_text()
    broken = text.replace("(model_drift_share) > 0.3", "(model_drift_share) > > 0.3")
    assert broken != text
    (tmp_path / RULES.name).write_text(broken)
    result = run(promtool(), "check", "rules", tmp_path / RULES.name)
    assert result.returncode != 0, output(result)
    assert "parse error" in (result.stdout + result.stderr).lower(), output(result)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        pytest.param("(model_drift_share) > 0.3", "(model_drift_share) >= 0.3", id="drift-0.3-must-not-fire"),
        pytest.param("(model_drift_share) > 0.3", "(model_drift_share) > 0.4", id="drift-0.35-must-fire"),
        pytest.param(") > 0.05", ") > 0.03", id="errors-4pct-must-not-fire"),
        pytest.param(") > 0.05", ") > 0.07", id="errors-6pct-must-fire"),
        pytest.param(") > 0.5\n", ") > 0.4\n", id="latency-0.45s-must-not-fire"),
        pytest.param(") > 0.5\n", ") > 0.7\n", id="latency-0.6s-must-fire"),
        pytest.param(") < 1\n", ") < 1.2\n", id="traffic-1.1rps-must-not-fire"),
        pytest.param(") < 1\n", ") < 0.5\n", id="traffic-0.9rps-must-fire"),
        pytest.param("* 0 + 3600", "* 0 + 7200", id="default-freshness-budget"),
        pytest.param("and on (namespace, job)", "or on (namespace, job)", id="absent-needs-counters"),
        pytest.param('printf "%.2f" $value }}\'', "$value }}x'", id="drift-share-label"),
        pytest.param("deployment: model-api\n", "deployment: model\n", id="absent-static-labels"),
    ],
)
def test_unit_tests_catch_a_moved_threshold(tmp_path: Path, old: str, new: str) -> None:
    """Changing a threshold or label in a copy of the rules makes `promtool test rules` fail."""
    text = RULES.read_text()
    assert old in text, f"mutation target {old!r} not in the rules"
    tests = copy_rules(tmp_path, text.replace(old, new))
    assert run(promtool(), "check", "rules", tmp_path / RULES.name).returncode == 0, "mutant must stay valid"
    result = run(promtool(), "test", "rules", tests)
    assert result.returncode != 0, output(result)
    assert "FAILED" in result.stdout + result.stderr, output(result)


def test_rules_define_every_alert_with_labels_and_annotations() -> None:
    """Each required alert exists with severity, team, summary, description and its runbook anchor."""
    rules = alert_rules()
    names = [rule["alert"] for rule in rules]
    assert set(names) == set(REQUIRED_ALERTS), names
    assert names.count("ModelServiceDown") == 2, "a rate rule and an absent-metrics rule"
    for rule in rules:
        name = rule["alert"]
        labels, annotations = rule.get("labels", {}), rule.get("annotations", {})
        assert labels.get("severity") == REQUIRED_ALERTS[name], name
        assert labels.get("team") == "mlops", name
        for key in ("summary", "description", "runbook_url"):
            assert str(annotations.get(key, "")).strip(), f"{name}: annotation {key} missing"
        assert annotations["runbook_url"] == RUNBOOKS + name.lower(), name
        assert rule.get("for"), f"{name}: no `for`, it would fire on a single evaluation"


def test_service_alerts_keep_namespace_and_deployment() -> None:
    """Service alerts keep `namespace` and get `deployment`, from label_replace or static labels."""
    for rule in alert_rules():
        if rule["alert"] not in SERVICE_ALERTS:
            continue
        labels, expr = rule.get("labels", {}), rule["expr"]
        if expr.lstrip().startswith("absent("):
            assert labels.get("namespace") == "prod", rule
            assert labels.get("deployment") == "model-api", rule
            assert labels.get("job") == "model-api", rule
        else:
            assert "label_replace(" in expr, rule
            assert '"deployment", "$1", "job", "(.+)"' in expr, rule
            assert "namespace, job" in expr, rule


def test_drift_alert_exposes_drift_share_label() -> None:
    """ModelDataDrift carries drift_share as a label, the shape the retrain runbook reads."""
    (drift,) = [rule for rule in alert_rules() if rule["alert"] == "ModelDataDrift"]
    assert "$value" in drift["labels"]["drift_share"]
    assert "> 0.3" in drift["expr"]


def test_unit_test_file_has_firing_and_quiet_cases_for_every_alert() -> None:
    """The promtool test file asserts, for every alert, at least one firing and one empty result."""
    doc = yaml.safe_load(RULE_TESTS.read_text())
    firing: set[str] = set()
    quiet: set[str] = set()
    for group in doc["tests"]:
        for case in group.get("alert_rule_test", []):
            expected = case.get("exp_alerts") or []
            (firing if expected else quiet).add(case["alertname"])
            for alert in expected:
                assert alert.get("exp_labels"), case
                assert alert.get("exp_annotations"), case
    assert firing == set(REQUIRED_ALERTS), firing
    assert quiet == set(REQUIRED_ALERTS), quiet


# ---- alert-router's own alerts and the Watchdog (rules/prometheus/alert-router.yml) ------------------------------

SELF_RULES = REPO / "rules" / "prometheus" / "alert-router.yml"
SELF_TESTS = REPO / "rules" / "prometheus" / "alert-router.test.yml"
DEPLOY_DOC = "https://github.com/alert-router/alert-router/blob/main/docs/deploy.md#"
SELF_ALERTS = {
    "Watchdog": "none",
    "AlertRouterQueueStuck": "critical",
    "AlertRouterNotificationsFailing": "critical",
    "AlertRouterWebhookBodiesSetAside": "critical",
    "AlertRouterDeliveryErrors": "warning",
    "AlertRouterStoreUnavailable": "critical",
    "AlertRouterDeadMansSwitchFiring": "critical",
}


def self_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(SELF_RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def test_promtool_accepts_and_unit_tests_the_self_monitoring_rules() -> None:
    """`promtool check rules` counts seven rules; every case of alert-router.test.yml holds."""
    result = run(promtool(), "check", "rules", SELF_RULES)
    assert result.returncode == 0, output(result)
    assert "SUCCESS: 7 rules found" in result.stdout, output(result)
    result = run(promtool(), "test", "rules", SELF_TESTS)
    assert result.returncode == 0, output(result)
    assert "SUCCESS" in result.stdout, output(result)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        pytest.param("(alert_router_queue_oldest_age_seconds) > 300", "(alert_router_queue_oldest_age_seconds) > 900",
                     id="queue-age-threshold"),
        pytest.param('{outcome="failed"}[15m])) > 0', '{outcome="failed"}[15m])) > 1', id="one-failure-fires"),
        pytest.param("(alert_router_inbox_failed_total[15m])) > 0", "(alert_router_inbox_failed_total[15m])) > 1",
                     id="one-body-set-aside-fires"),
        pytest.param(") > 0.5\n", ") > 0.9\n", id="error-ratio-threshold"),
        pytest.param("alert_router_store_up == 0", "alert_router_store_up == 2", id="store-down"),
        pytest.param("(alert_router_deadman_firing) == 1", "(alert_router_deadman_firing) == 0", id="deadman"),
        pytest.param("expr: vector(1)", "expr: vector(0) > 0", id="watchdog-always-fires"),
    ],
)
def test_self_monitoring_unit_tests_catch_a_moved_threshold(tmp_path: Path, old: str, new: str) -> None:
    """Changing a threshold in a copy of alert-router.yml makes its `promtool test rules` fail."""
    text = SELF_RULES.read_text()
    assert old in text, f"mutation target {old!r} not in the rules"
    (tmp_path / SELF_RULES.name).write_text(text.replace(old, new))
    shutil.copy(SELF_TESTS, tmp_path / SELF_TESTS.name)
    assert run(promtool(), "check", "rules", tmp_path / SELF_RULES.name).returncode == 0, "mutant must stay valid"
    result = run(promtool(), "test", "rules", tmp_path / SELF_TESTS.name)
    assert result.returncode != 0, output(result)


def test_self_monitoring_rules_read_only_metrics_alert_router_exports() -> None:
    """Every alert_router_* name in the expressions is declared in alert_router/metrics.py."""
    exprs = [str(rule["expr"]) for rule in self_rules()]
    assert unknown_metrics(exprs) == set()
    used = {name for e in exprs for name in metric_names(e)}
    assert {"alert_router_queue_oldest_age_seconds", "alert_router_store_up", "alert_router_deadman_firing"} <= used


def test_self_monitoring_alerts_are_labelled_and_documented() -> None:
    """Each alert has its severity, summary, description and a runbook anchor that exists in docs/deploy.md."""
    rules = self_rules()
    assert {r["alert"]: r["labels"]["severity"] for r in rules} == SELF_ALERTS
    doc = (REPO / "docs" / "deploy.md").read_text().lower()
    for rule in rules:
        annotations = rule["annotations"]
        for key in ("summary", "description", "runbook_url"):
            assert str(annotations.get(key, "")).strip(), f"{rule['alert']}: annotation {key} missing"
        assert annotations["runbook_url"] == DEPLOY_DOC + rule["alert"].lower()
        assert f"### {rule['alert'].lower()}" in doc, f"docs/deploy.md has no section for {rule['alert']}"
    (watchdog,) = [r for r in rules if r["alert"] == "Watchdog"]
    assert watchdog["expr"] == "vector(1)" and "for" not in watchdog
