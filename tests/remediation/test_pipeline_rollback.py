"""Evidence and rollback driven through the real service: webhook → runbook → Kubernetes stand-in → report."""

from __future__ import annotations

from pathlib import Path

from alert_router.remediation.engine import RemediationEngine
from tests.helpers import settle, wait_for, write_config
from tests.remediation.helpers import RESTART, alert_body, post, remediation_app, remediation_config, wait_run
from tests.remediation.test_evidence import bad_release
from tests.remediation.test_pipeline import events, outcomes
from tests.standins.kube import KubeApiStandin

REPO = Path(__file__).resolve().parents[2]
ROLLBACK = (REPO / "runbooks" / "rollback-model-api.yaml").read_text().replace("receiver: console", "receiver: file")


def image(kube: KubeApiStandin) -> str:
    return str(kube.deployment("prod", "model-api")["spec"]["template"]["spec"]["containers"][0]["image"])


async def test_recent_bad_release_is_rolled_back_once_with_evidence(
    tmp_path: Path, kube_standin: KubeApiStandin, kube_kubeconfig: Path
) -> None:
    """The shipped runbook: evidence, approval, rollback, rollout; a flapping alert then never rolls back again."""
    bad_release(kube_standin)
    cfg = remediation_config(tmp_path, {"r": ROLLBACK}, kubeconfig=kube_kubeconfig)
    async with remediation_app(cfg) as (client, rt):
        await post(client, alert_body("HighErrorRate"))
        (pending,) = await wait_run(rt, "pending_approval")
        assert kube_standin.persisting_requests == []
        evidence = pending.data["evidence"]
        assert evidence["summary"] == ("3/3 pods CrashLoopBackOff, OOMKilled, rolled out 12 minutes ago "
                                       "(image model:v42)")
        engine: RemediationEngine = rt.services["remediation"]
        await engine.approve(pending.id, "alice")
        await wait_for(lambda: kube_standin.requests_to("/deployments/model-api", "PATCH"))
        kube_standin.complete_rollout("prod", "model-api")
        await post(client, alert_body("HighErrorRate", status="resolved"))
        (run,) = await wait_run(rt, {"succeeded", "failed"})
        episodes = [None, "2026-11-27T00:10:00Z", "2026-11-27T00:11:00Z"]
        for i in range(1, 3):  # it flaps: resolve, fire again (a new episode each time)
            await post(client, alert_body("HighErrorRate", status="resolved", starts_at=episodes[i - 1]))
            await post(client, alert_body("HighErrorRate", starts_at=episodes[i]))
        skipped = await wait_run(rt, "skipped", count=2)
        await settle(rt)
        audit = await rt.store.audit_records(run_id=run.id)
    assert run.status == "succeeded", run.summary
    assert run.summary.startswith("rolled back Deployment/prod/model-api from revision 2 (model:v42) to revision 1 "
                                  "(model:v41)")
    assert image(kube_standin) == "registry.example/ml/model:v41"
    assert len(kube_standin.requests_to("/deployments/model-api", "PATCH")) == 1  # never twice
    assert all(s.data["refusal"]["guard"] == "cooldown" for s in skipped)
    assert events(audit) == ["matched", "evidence", "approval_requested", "approval_granted", "evidence", "step",
                             "step", "step", "finished"]
    before = audit[1].details
    assert before["previous_logs"][0]["lines"][-1] == "CUDA error: out of memory; password=[REDACTED]"
    # the approver saw the evidence, and so did everyone the outcome was posted to
    posted = outcomes(tmp_path)
    assert [o["status"] for o in posted[:2]] == ["pending_approval", "succeeded"]
    assert all(o["evidence"]["summary"].startswith("3/3 pods CrashLoopBackOff") for o in posted[:1])
    assert posted[1]["evidence"]["target"] == "Deployment/prod/model-api"  # gathered again after the approval


async def test_old_rollout_is_not_rolled_back(tmp_path: Path, kube_standin: KubeApiStandin,
                                              kube_kubeconfig: Path) -> None:
    """`when: evidence.last_rollout_age < 30m`: a release three days old is not the suspect; nothing is sent."""
    bad_release(kube_standin)
    (new_rs,) = [rs for rs in kube_standin.replicasets("prod")
                 if rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"]
    kube_standin.backdate("replicasets", "prod", new_rs["metadata"]["name"], 3 * 86400)
    cfg = remediation_config(tmp_path, {"r": ROLLBACK}, kubeconfig=kube_kubeconfig)
    async with remediation_app(cfg) as (client, rt):
        await post(client, alert_body("HighModelLatency"))
        await wait_for(rt.store.audit_records)
        await settle(rt)
        assert await rt.store.runs() == []
        (record,) = await rt.store.audit_records()
    assert record.event == "not_applicable" and "evidence.last_rollout_age" in record.details["reason"]
    assert record.details["evidence"].endswith("rolled out 3 days ago (image model:v42)")
    assert kube_standin.mutating_requests == []


async def test_stalled_evidence_never_blocks_the_runbook(
    tmp_path: Path, kube_standin: KubeApiStandin, kube_kubeconfig: Path
) -> None:
    """Evidence is bounded (1 s here): a stalled events endpoint costs the events, and the restart goes ahead."""
    bad_release(kube_standin, pods=2)
    kube_standin.path_delays.append(("/events", 3.0))
    runbook = RESTART.replace("guards:", "evidence: {timeout: 1s}\nguards:")
    cfg = remediation_config(tmp_path, {"r": runbook}, kubeconfig=kube_kubeconfig)
    async with remediation_app(cfg) as (client, rt):
        await post(client, alert_body())
        (run,) = await wait_run(rt, {"succeeded", "failed"})
        await settle(rt)
    assert run.status == "succeeded", run.summary
    evidence = run.data["evidence"]
    assert evidence["status"] == "partial" and evidence["errors"][0]["part"] == "events"
    assert evidence["summary"].startswith("2/2 pods CrashLoopBackOff, OOMKilled")
    assert len(kube_standin.requests_to("/deployments/model-api", "PATCH")) == 1


async def test_required_evidence_refuses_the_run_when_it_cannot_be_had(
    tmp_path: Path, kube_standin: KubeApiStandin, kube_kubeconfig: Path
) -> None:
    kube_standin.add_deployment("prod", "model-api", replicas=1)
    kube_standin.rules = [r for r in kube_standin.rules if r["resources"] != ["pods"]]
    runbook = RESTART.replace("guards:", "evidence: {required: true}\nguards:")
    cfg = remediation_config(tmp_path, {"r": runbook}, kubeconfig=kube_kubeconfig)
    async with remediation_app(cfg) as (client, rt):
        await post(client, alert_body())
        (run,) = await wait_run(rt, "skipped")
        await settle(rt)
    assert run.data["refusal"]["guard"] == "evidence" and "403 Forbidden" in run.summary
    assert kube_standin.mutating_requests == []


async def test_dry_run_reports_the_403_the_real_run_would_meet(
    tmp_path: Path, kube_standin: KubeApiStandin, kube_kubeconfig: Path
) -> None:
    """dryRun=All: the plan that the remediator's RBAC would refuse fails in the dry run, with the API's words."""
    kube_standin.add_deployment("prod", "model-api", replicas=1)
    kube_standin.rules = [r for r in kube_standin.rules if r["resources"] != ["deployments"]] + [
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]}]
    cfg = remediation_config(tmp_path, {"r": RESTART}, kubeconfig=kube_kubeconfig, dry_run=True)
    async with remediation_app(cfg) as (client, rt):
        await post(client, alert_body())
        (run,) = await wait_run(rt, {"dry_run", "failed"})
        await settle(rt)
    assert run.status == "failed" and run.dry_run
    assert "403 Forbidden" in run.summary and 'cannot patch resource "deployments"' in run.summary
    patch = run.data["steps"][0]["requests"][1]
    assert (patch["method"], patch["status"], patch["query"]) == ("PATCH", 403, {"dryRun": "All"})
    assert kube_standin.persisting_requests == []
    assert outcomes(tmp_path)[0]["status"] == "failed"


SCALE_UP = (REPO / "runbooks" / "scale-up-model-api.yaml").read_text()
LATENCY_RULES = """\
rules:
  - name: model-latency
    match: ['alertname="HighModelLatency"']
    receivers: [file]
    runbooks: [rollback-model-api, scale-up-model-api]
default:
  receivers: [file]
"""


async def test_latency_after_a_release_rolls_back_instead_of_scaling(
    tmp_path: Path, kube_standin: KubeApiStandin, kube_kubeconfig: Path
) -> None:
    """As rules/routing.yaml orders them: the pending rollback holds the lock, so the scale-up is skipped."""
    bad_release(kube_standin)
    cfg = write_config(tmp_path, f"dry_run: false\nkubernetes: {{kubeconfig: {kube_kubeconfig}}}\n"
                       "remediation: {poll_interval: 0.05}\n", rules=LATENCY_RULES,
                       runbooks={"a.yaml": ROLLBACK, "b.yaml": SCALE_UP})
    async with remediation_app(cfg) as (client, rt):
        await post(client, alert_body("HighModelLatency"))
        (pending,) = await wait_run(rt, "pending_approval", runbook="rollback-model-api")
        (skipped,) = await wait_run(rt, "skipped", runbook="scale-up-model-api")
        await settle(rt)
    assert pending.target == skipped.target == "Deployment/prod/model-api"
    assert skipped.data["refusal"]["guard"] == "lock"
    assert kube_standin.persisting_requests == []


async def test_latency_long_after_a_release_scales_up(
    tmp_path: Path, kube_standin: KubeApiStandin, kube_kubeconfig: Path
) -> None:
    kube_standin.add_deployment("prod", "model-api", replicas=2)
    kube_standin.backdate("replicasets", "prod", kube_standin.replicasets("prod")[0]["metadata"]["name"], 86400)
    cfg = write_config(tmp_path, f"dry_run: false\nkubernetes: {{kubeconfig: {kube_kubeconfig}}}\n"
                       "remediation: {poll_interval: 0.05}\n", rules=LATENCY_RULES,
                       runbooks={"a.yaml": ROLLBACK, "b.yaml": SCALE_UP})
    async with remediation_app(cfg) as (client, rt):
        await post(client, alert_body("HighModelLatency"))
        (run,) = await wait_run(rt, {"succeeded", "failed"}, runbook="scale-up-model-api")
        await settle(rt)
        assert await rt.store.runs(runbook="rollback-model-api") == []
    assert run.status == "succeeded", run.summary
    assert run.summary.startswith("scaled Deployment/prod/model-api from 2 to 3")
