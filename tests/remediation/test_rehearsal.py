"""``alert-router runbook test``: the plan, the evidence and the requests, against the stand-in, changing nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alert_router.cli import main
from tests.helpers import write_config
from tests.remediation.test_evidence import bad_release
from tests.standins.kube import KubeApiStandin

REPO = Path(__file__).resolve().parents[2]
RUNBOOK = REPO / "runbooks" / "rollback-model-api.yaml"
ALERT = ["--alert", "alertname=HighErrorRate", "--alert", "namespace=prod", "--alert", "deployment=model-api"]


def config(tmp: Path, kubeconfig: Path) -> str:
    receivers = "receivers:\n  - name: file\n    file: {path: out.jsonl}\n  - name: console\n    console: {}\n"
    return str(write_config(tmp, f"kubernetes: {{kubeconfig: {kubeconfig}}}\n", receivers=receivers))


def test_rehearsal_shows_evidence_plan_and_answers(
    kube_standin: KubeApiStandin, kube_kubeconfig: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad_release(kube_standin)
    code = main(["runbook", "test", str(RUNBOOK), *ALERT, "--config", config(tmp_path, kube_kubeconfig)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "target: Deployment/prod/model-api" in out and "cluster: reachable" in out
    assert "ok: 3/3 pods CrashLoopBackOff, OOMKilled, rolled out 12 minutes ago (image model:v42)" in out
    assert "previous revision: 1 model:v41" in out and "-> True" in out
    assert ("1. rollout_undo: ok: would roll back Deployment/prod/model-api from revision 2 (model:v42) to "
            "revision 1 (model:v41)") in out
    assert "PATCH /apis/apps/v1/namespaces/prod/deployments/model-api?dryRun=All -> 200" in out
    assert out.rstrip().endswith("plan OK: the API server accepted every request")
    assert kube_standin.persisting_requests == []
    assert kube_standin.deployment("prod", "model-api")["spec"]["template"]["spec"]["containers"][0]["image"] == (
        "registry.example/ml/model:v42")


def test_rehearsal_reports_a_forbidden_step(
    kube_standin: KubeApiStandin, kube_kubeconfig: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad_release(kube_standin)
    kube_standin.rules = [r for r in kube_standin.rules if r["resources"] != ["deployments"]] + [
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]}]
    code = main(["runbook", "test", str(RUNBOOK), *ALERT, "--json", "--config", config(tmp_path, kube_kubeconfig)])
    report = json.loads(capsys.readouterr().out)
    assert code == 1 and report["ok"] is False
    undo = report["steps"][0]
    assert undo["status"] == "failed" and "403 Forbidden" in undo["summary"]
    assert undo["requests"][-1]["query"] == {"dryRun": "All"} and undo["requests"][-1]["status"] == 403
    assert kube_standin.persisting_requests == []


def test_rehearsal_refuses_a_target_outside_the_allowed_namespaces(
    kube_standin: KubeApiStandin, kube_kubeconfig: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    alert = ["--alert", "alertname=HighErrorRate", "--alert", "namespace=kube-system", "--alert", "deployment=dns"]
    code = main(["runbook", "test", str(RUNBOOK), *alert, "--config", config(tmp_path, kube_kubeconfig)])
    out = capsys.readouterr().out
    assert code == 1 and "refused: invalid target: namespace 'kube-system' is not in ['prod', 'staging']" in out
    assert kube_standin.requests == []
