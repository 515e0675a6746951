"""Runbooks driven through the real service: webhook body → ingest → runbook run → Kubernetes → report back."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from alert_router.cli import main
from alert_router.remediation.engine import NotAuthorized, RemediationEngine, RunNotPending
from tests.helpers import JSON_TYPE, read_jsonl, settle, wait_for
from tests.remediation.helpers import RESTART, alert_body, post, remediation_app, remediation_config, wait_run
from tests.standins.kube import REMEDIATOR_RULES, KubeApiStandin

RESTART_AND_RESOLVE = RESTART + """\
  - action: wait_resolved
    timeout: 10s
"""

SCALE = """\
name: scale-up
match: ['alertname="HighModelLatency"']
target: {kind: Deployment, namespace: "{{ labels.namespace }}", name: "{{ labels.deployment }}"}
guards: {allowed_namespaces: [prod], cooldown: 1s, max_runs: {count: 10, window: 1h}}
steps:
  - action: scale
    by: 1
    max_replicas: 4
"""

RETRAIN = """\
name: retrain
match: ['alertname="ModelDataDrift"']
when: "{{ labels.drift_share | float > 0.3 }}"
target: {kind: CronJob, namespace: "{{ labels.namespace }}", name: model-retrain}
guards:
  allowed_namespaces: [prod, staging]
  require_approval: true
  approval_timeout: APPROVAL
  approvers: [api:alice, alice]
steps:
  - action: create_job_from_cronjob
"""

REPO = Path(__file__).resolve().parents[2]
JOB_SPEC = {"template": {"spec": {"containers": [{"name": "t", "image": "i"}], "restartPolicy": "Never"}}}
BEARER = {"Authorization": "Bearer api-token"}
AUTH = "auth: {bearer_token: api-token}\n"


def outcomes(tmp: Path) -> list[dict[str, Any]]:
    """The runbook_runs entries the `file` receiver got, in order."""
    records = read_jsonl(tmp / "data" / "out.jsonl")
    return [run for rec in records for run in rec.get("extra", {}).get("runbook_runs", [])]


def events(records: list[Any]) -> list[str]:
    return [r.event for r in records]


async def test_restart_then_rollout_then_resolution(
    tmp_path: Path, kube_standin: KubeApiStandin, kube_kubeconfig: Path
) -> None:
    kube_standin.add_deployment("prod", "model-api", replicas=2)
    cfg = remediation_config(tmp_path, {"r": RESTART_AND_RESOLVE}, kubeconfig=kube_kubeconfig)
    async with remediation_app(cfg) as (client, rt):
        await post(client, alert_body())
        await wait_for(lambda: kube_standin.requests_to("/deployments/model-api", "PATCH"))
        (running,) = await wait_run(rt, "running")
        await wait_for(_step_started(rt, running.id, 2))  # waiting for the alert to resolve
        await post(client, alert_body(status="resolved"))
        (run,) = await wait_run(rt, {"succeeded", "failed"})
        await settle(rt)
        audit = await rt.store.audit_records(run_id=run.id)
    assert run.status == "succeeded", run.summary
    assert "successfully rolled out" in run.summary and "resolved after" in run.summary
    dep = kube_standin.deployment("prod", "model-api")
    assert "kubectl.kubernetes.io/restartedAt" in dep["spec"]["template"]["metadata"]["annotations"]
    assert dep["status"]["updatedReplicas"] == 2
    assert events(audit) == ["matched", "evidence", "step", "step", "step", "finished"]
    assert audit[1].details["target"] == "Deployment/prod/model-api" and audit[1].details["status"] == "ok"
    step1 = audit[2].details
    assert step1["action"] == "rollout_restart" and step1["status"] == "ok" and step1["duration"] >= 0
    assert [r["method"] for r in step1["requests"]] == ["GET", "PATCH"]
    (posted,) = outcomes(tmp_path)
    assert posted["run_id"] == run.id and posted["status"] == "succeeded" and posted["dry_run"] is False
    assert posted["runbook"] == "restart" and posted["summary"] == run.summary


def _step_started(rt: Any, run_id: int, index: int) -> Any:
    async def check() -> bool:
        run = await rt.store.run(run_id)
        steps = run.data.get("steps", []) if run else []
        return len(steps) > index and steps[index]["status"] == "started"

    return check


async def test_flapping_alert_cannot_restart_inside_the_cooldown(
    tmp_path: Path, kube_standin: KubeApiStandin, kube_kubeconfig: Path
) -> None:
    kube_standin.add_deployment("prod", "model-api", replicas=1)
    cfg = remediation_config(tmp_path, {"r": RESTART}, kubeconfig=kube_kubeconfig)
    async with remediation_app(cfg) as (client, rt):
        await post(client, alert_body())
        await wait_run(rt, "succeeded")
        episodes = [None, "2026-11-27T00:10:00Z", "2026-11-27T00:11:00Z", "2026-11-27T00:12:00Z"]
        for i in range(1, 4):  # resolve, fire again (a new episode): each firing is a new state change
            await post(client, alert_body(status="resolved", starts_at=episodes[i - 1]))
            await post(client, alert_body(starts_at=episodes[i]))
        skipped = await wait_run(rt, "skipped", count=3)
        await settle(rt)
    assert len(kube_standin.requests_to("/deployments/model-api", "PATCH")) == 1
    for run in skipped:
        assert run.data["refusal"]["guard"] == "cooldown" and "cooldown is 30m" in run.summary
    assert [o["status"] for o in outcomes(tmp_path)] == ["succeeded", "skipped", "skipped", "skipped"]


async def test_cooldown_survives_a_restart(tmp_path: Path, kube_standin: KubeApiStandin, kube_kubeconfig: Path) -> None:
    kube_standin.add_deployment("prod", "model-api", replicas=1)
    cfg = remediation_config(tmp_path, {"r": RESTART}, kubeconfig=kube_kubeconfig)
    async with remediation_app(cfg) as (client, rt):
        await post(client, alert_body())
        await wait_run(rt, "succeeded")
    async with remediation_app(cfg) as (client, rt):  # a new process on the same store
        await post(client, alert_body(fingerprint="0000000000000002"))
        (skipped,) = await wait_run(rt, "skipped")
    assert skipped.data["refusal"]["guard"] == "cooldown"
    assert len(kube_standin.requests_to("/deployments/model-api", "PATCH")) == 1


async def test_scale_stops_at_the_ceiling(tmp_path: Path, kube_standin: KubeApiStandin, kube_kubeconfig: Path) -> None:
    kube_standin.add_deployment("prod", "model-api", replicas=2)
    cfg = remediation_config(tmp_path, {"s": SCALE}, kubeconfig=kube_kubeconfig)
    async with remediation_app(cfg) as (client, rt):
        for i in range(4):
            await post(client, alert_body("HighModelLatency", fingerprint=f"1a7e{i:012d}"))
            await wait_run(rt, "succeeded", count=i + 1)
            time.sleep(1.05)  # past the 1s cooldown
        runs = await wait_run(rt, "succeeded", count=4)
    assert kube_standin.deployment("prod", "model-api")["spec"]["replicas"] == 4
    assert [json.dumps(p.body) for p in kube_standin.requests_to("/scale", "PATCH")] == [
        '{"spec": {"replicas": 3}}', '{"spec": {"replicas": 4}}']
    assert "already at the ceiling of 4" in runs[-1].summary


async def test_namespace_outside_the_allowed_list_is_refused(
    tmp_path: Path, kube_standin: KubeApiStandin, kube_kubeconfig: Path
) -> None:
    kube_standin.add_deployment("kube-system", "model-api")
    cfg = remediation_config(tmp_path, {"r": RESTART}, kubeconfig=kube_kubeconfig)
    async with remediation_app(cfg) as (client, rt):
        await post(client, alert_body(labels={"namespace": "kube-system"}))
        (run,) = await wait_run(rt, "skipped")
        await settle(rt)
        (record,) = await rt.store.audit_records(run_id=run.id)
    assert kube_standin.requests == []
    assert run.data["refusal"]["guard"] == "allowed_namespaces"
    assert record.event == "skipped" and record.details["guard"] == "allowed_namespaces"
    assert "'kube-system' is not in" in record.details["reason"]
    assert outcomes(tmp_path)[0]["status"] == "skipped"


async def test_label_that_is_not_a_kubernetes_name_is_refused(
    tmp_path: Path, kube_standin: KubeApiStandin, kube_kubeconfig: Path
) -> None:
    cfg = remediation_config(tmp_path, {"r": RESTART}, kubeconfig=kube_kubeconfig)
    async with remediation_app(cfg) as (client, rt):
        await post(client, alert_body(labels={"deployment": "../../secrets"}))
        (run,) = await wait_run(rt, "skipped")
    assert run.data["refusal"]["guard"] == "target" and "DNS-1123" in run.summary
    assert kube_standin.requests == []


async def test_one_run_per_target_at_a_time(
    tmp_path: Path, kube_standin: KubeApiStandin, kube_kubeconfig: Path
) -> None:
    kube_standin.add_deployment("prod", "model-api", replicas=3)
    cfg = remediation_config(tmp_path, {"r": RESTART}, kubeconfig=kube_kubeconfig)
    body = json.loads(alert_body())
    second = dict(body["alerts"][0], fingerprint="f00dcafe00000002", labels={**body["alerts"][0]["labels"],
                                                                               "instance": "b"})
    body["alerts"].append(second)
    async with remediation_app(cfg) as (client, rt):
        await post(client, json.dumps(body).encode())
        (done,) = await wait_run(rt, "succeeded")
        records = await rt.store.audit_records()
        runs = await rt.store.runs()
    # Two alerts of one body for one target: one run; the other trigger is refused in the audit log.
    assert [r.id for r in runs] == [done.id]
    (refused,) = [json.loads(r.data) for r in records if r.event == "skipped"]
    assert refused["guard"] == "lock" and f"run #{done.id}" in refused["reason"]
    assert refused["fingerprints"] == ["f00dcafe00000002"] and refused["count"] == 1
    assert len(kube_standin.requests_to("/deployments/model-api", "PATCH")) == 1


async def test_403_is_reported_and_not_retried(tmp_path: Path, kube_kubeconfig: Path) -> None:
    rules = [dict(r) for r in REMEDIATOR_RULES]
    rules[0] = {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list"]}  # no patch
    with KubeApiStandin(rules=rules) as kube:
        kube.add_deployment("prod", "model-api")
        cfg = remediation_config(tmp_path, {"r": RESTART}, kubeconfig=kube.kubeconfig(tmp_path / "kc"))
        async with remediation_app(cfg) as (client, rt):
            await post(client, alert_body())
            (run,) = await wait_run(rt, "failed")
            await settle(rt)
        patches = kube.requests_to("/deployments/model-api", "PATCH")
    assert [p.status for p in patches] == [403]
    assert "step 1 (rollout_restart) failed" in run.summary and "403 Forbidden" in run.summary
    assert 'cannot patch resource "deployments"' in run.summary
    step = run.data["steps"][0]
    assert step["reason"] == "auth" and step["requests"][-1]["attempts"] == 1
    assert len(run.data["steps"]) == 1  # wait_rollout never ran
    assert outcomes(tmp_path)[0]["status"] == "failed"


async def test_500s_are_retried_and_the_run_succeeds(
    tmp_path: Path, kube_standin: KubeApiStandin, kube_kubeconfig: Path
) -> None:
    kube_standin.add_deployment("prod", "model-api")
    kube_standin.fail_next(2, 500, method="PATCH")
    cfg = remediation_config(tmp_path, {"r": RESTART}, kubeconfig=kube_kubeconfig)
    async with remediation_app(cfg) as (client, rt):
        await post(client, alert_body())
        (run,) = await wait_run(rt, {"succeeded", "failed"})
    assert run.status == "succeeded", run.summary
    assert [p.status for p in kube_standin.requests_to("/deployments/model-api", "PATCH")] == [500, 500, 200]
    patch = run.data["steps"][0]["requests"][1]
    assert patch["method"] == "PATCH" and patch["attempts"] == 3 and patch["status"] == 200


@pytest.mark.parametrize("server_dry_run", [True, False])
async def test_dry_run_changes_nothing(
    server_dry_run: bool, tmp_path: Path, kube_standin: KubeApiStandin, kube_kubeconfig: Path
) -> None:
    """A dry run sends its PATCH with dryRun=All (the API server checks it, applies nothing), or not at all."""
    kube_standin.add_deployment("prod", "model-api", replicas=2)
    extra = f"kubernetes: {{kubeconfig: {kube_kubeconfig}, server_dry_run: {str(server_dry_run).lower()}}}\n"
    cfg = remediation_config(tmp_path, {"r": RESTART_AND_RESOLVE}, dry_run=True, extra=extra)
    async with remediation_app(cfg) as (client, rt):
        await post(client, alert_body())
        (run,) = await wait_run(rt, "dry_run")
        await settle(rt)
        audit = await rt.store.audit_records(run_id=run.id)
    assert kube_standin.persisting_requests == []
    sent = kube_standin.mutating_requests
    planned = run.data["steps"][0]["requests"][1]
    if server_dry_run:
        assert [(r.method, r.query, r.status) for r in sent] == [("PATCH", {"dryRun": "All"}, 200)]
        assert planned["sent"] is True and planned["status"] == 200 and planned["query"] == {"dryRun": "All"}
        assert "the API server accepted it and changed nothing" in planned["note"]
    else:
        assert sent == [] and all(r.method == "GET" for r in kube_standin.requests)
        assert planned["sent"] is False and planned["note"] == "dry run: not sent"
    assert planned["method"] == "PATCH"
    assert planned["path"] == "/apis/apps/v1/namespaces/prod/deployments/model-api"
    assert planned["content_type"] == "application/strategic-merge-patch+json"
    assert "kubectl.kubernetes.io/restartedAt" in planned["body"]["spec"]["template"]["metadata"]["annotations"]
    assert run.summary.startswith("dry run: would restart Deployment/prod/model-api")
    assert audit[0].details["dry_run"] is True
    assert outcomes(tmp_path)[0]["dry_run"] is True
    assert kube_standin.deployment("prod", "model-api")["metadata"]["generation"] == 1


async def test_when_condition_gates_the_runbook(tmp_path: Path, kube_standin: KubeApiStandin,
                                                kube_kubeconfig: Path) -> None:
    kube_standin.add_cronjob("staging", "model-retrain", JOB_SPEC)
    cfg = remediation_config(tmp_path, {"d": RETRAIN.replace("APPROVAL", "1h")}, kubeconfig=kube_kubeconfig)
    async with remediation_app(cfg) as (client, rt):
        await post(client, alert_body("ModelDataDrift", {"namespace": "staging", "drift_share": "0.12"}))
        await settle(rt)
        assert await rt.store.runs() == []
        (record,) = await rt.store.audit_records()
        await post(client, alert_body("ModelDataDrift", {"namespace": "staging", "drift_share": "0.42"},
                                      fingerprint="e865afbb03176229"))
        (run,) = await wait_run(rt, "pending_approval")
    assert record.event == "not_applicable" and "is false" in record.details["reason"]
    assert run.target == "CronJob/staging/model-retrain"


async def _drift_pending(tmp_path: Path, kube: KubeApiStandin, kubeconfig: Path, approval: str = "1h",
                         extra: str = "") -> tuple[Path, Any]:
    kube.add_cronjob("staging", "model-retrain", JOB_SPEC)
    cfg = remediation_config(tmp_path, {"d": RETRAIN.replace("APPROVAL", approval)}, kubeconfig=kubeconfig,
                             extra=extra)
    return cfg, alert_body("ModelDataDrift", {"namespace": "staging", "drift_share": "0.42"})


async def test_approval_granted_through_the_api(
    tmp_path: Path, kube_standin: KubeApiStandin, kube_kubeconfig: Path
) -> None:
    cfg, body = await _drift_pending(tmp_path, kube_standin, kube_kubeconfig, extra=AUTH)
    async with remediation_app(cfg) as (client, rt):
        r = await client.post("/webhook", data=body, headers={**BEARER, **JSON_TYPE})
        assert r.status == 200
        (pending,) = await wait_run(rt, "pending_approval")
        assert kube_standin.mutating_requests == []
        listed = await (await client.get("/api/v1/runs?status=pending_approval", headers=BEARER)).json()
        assert [r["id"] for r in listed["runs"]] == [pending.id]
        assert (await client.post(f"/api/v1/runs/{pending.id}/approve", json={"user": "alice"})).status == 401
        r = await client.post(f"/api/v1/runs/{pending.id}/approve", json={"user": "bob"}, headers=BEARER)
        assert r.status == 403  # not an approver
        assert (await rt.store.run(pending.id)).status == "pending_approval"  # type: ignore[union-attr]
        r = await client.post(f"/api/v1/runs/{pending.id}/approve", json={"user": "alice"}, headers=BEARER)
        assert r.status == 200, await r.text()
        (run,) = await wait_run(rt, "succeeded")
        again = await client.post(f"/api/v1/runs/{pending.id}/approve", json={"user": "alice"}, headers=BEARER)
        assert again.status == 409
        await settle(rt)
        audit = await rt.store.audit_records(run_id=run.id)
    assert run.decided_by == "api:alice"
    assert [j["metadata"]["name"] for j in kube_standin.jobs("staging")] == [f"model-retrain-ar-{run.id}"]
    assert events(audit) == ["matched", "approval_requested", "approval_refused", "approval_granted", "step",
                             "finished"]
    assert audit[2].actor == "api:bob" and audit[3].actor == "api:alice"
    assert [o["status"] for o in outcomes(tmp_path)] == ["pending_approval", "succeeded"]


async def test_approval_denied_through_the_engine(
    tmp_path: Path, kube_standin: KubeApiStandin, kube_kubeconfig: Path
) -> None:
    cfg, body = await _drift_pending(tmp_path, kube_standin, kube_kubeconfig)
    async with remediation_app(cfg) as (client, rt):
        await post(client, body)
        (pending,) = await wait_run(rt, "pending_approval")
        engine: RemediationEngine = rt.services["remediation"]
        with pytest.raises(NotAuthorized):
            await engine.deny(pending.id, "mallory")
        denied = await engine.deny(pending.id, "alice", "retraining is paused this week")
        with pytest.raises(RunNotPending):
            await engine.approve(pending.id, "alice")
        await settle(rt)
        audit = await rt.store.audit_records(run_id=pending.id)
    assert denied.status == "denied" and denied.decided_by == "alice"
    assert "retraining is paused this week" in denied.summary
    assert kube_standin.mutating_requests == [] and kube_standin.jobs("staging") == []
    assert events(audit)[-1] == "approval_denied" and audit[-1].actor == "alice"
    assert [o["status"] for o in outcomes(tmp_path)] == ["pending_approval", "denied"]


async def test_approval_expires(tmp_path: Path, kube_standin: KubeApiStandin, kube_kubeconfig: Path) -> None:
    cfg, body = await _drift_pending(tmp_path, kube_standin, kube_kubeconfig, approval="0.3s")
    async with remediation_app(cfg) as (client, rt):
        await post(client, body)
        (run,) = await wait_run(rt, "expired", timeout=5)
        await settle(rt)
        with pytest.raises(RunNotPending):
            await rt.services["remediation"].approve(run.id, "alice")
        # the expired request released the lock: the next drift alert asks again
        await post(client, alert_body("ModelDataDrift", {"namespace": "staging", "drift_share": "0.5"},
                                      fingerprint="e865afbb03176230"))
        await wait_run(rt, "pending_approval")
    assert kube_standin.mutating_requests == []
    assert "nothing was done" in run.summary
    assert [o["status"] for o in outcomes(tmp_path)][:2] == ["pending_approval", "expired"]


async def test_runs_and_audit_cli(tmp_path: Path, kube_standin: KubeApiStandin, kube_kubeconfig: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    cfg, body = await _drift_pending(tmp_path, kube_standin, kube_kubeconfig)
    async with remediation_app(cfg) as (client, rt):
        await post(client, body)
        (pending,) = await wait_run(rt, "pending_approval")
        # the CLI reads the store while the service holds it (in a thread: the CLI runs its own event loop)
        assert await asyncio.to_thread(main, ["runs", "--config", str(cfg)]) == 0
        out = capsys.readouterr().out
        argv = ["audit", "list", "--config", str(cfg), "--runbook", "retrain", "--since", "1h"]
        assert await asyncio.to_thread(main, argv) == 0
        audit_out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith(str(pending.id)))
    assert "pending_approval" in row and "CronJob/staging/model-retrain" in row and "awaiting approval" in row
    assert " matched " in audit_out and " approval_requested " in audit_out
    assert await asyncio.to_thread(main, ["audit", "verify", "--config", str(cfg)]) == 0
    assert "chain intact" in capsys.readouterr().out


async def test_shipped_config_plans_in_dry_run_without_a_cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from alert_router.config import load
    from tests.helpers import fixture_bytes

    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    config = load(REPO / "alert-router.yaml", {"ALERT_ROUTER_DATA_DIR": str(tmp_path / "data")})
    async with remediation_app(config) as (client, rt):
        await post(client, fixture_bytes("firing-service-down.json"))
        await post(client, fixture_bytes("firing-data-drift.json"))
        (planned,) = await wait_run(rt, "dry_run", runbook="restart-model-api")
        (pending,) = await wait_run(rt, "pending_approval", runbook="retrain-on-drift")
        await settle(rt)
    assert planned.target == "Deployment/prod/model-api" and planned.dry_run
    read, patch = planned.data["steps"][0]["requests"]
    assert read["method"] == "GET" and read["sent"] is False
    assert "cannot load the Kubernetes configuration" in read["note"]
    assert patch["method"] == "PATCH" and patch["sent"] is False and patch["body"]["spec"]["template"]
    assert pending.target == "CronJob/staging/model-retrain" and pending.dry_run
    records = read_jsonl(tmp_path / "data" / "notifications.jsonl")
    statuses = {r["runbook"]: r["status"] for rec in records for r in rec.get("extra", {}).get("runbook_runs", [])}
    assert statuses == {"restart-model-api": "dry_run", "retrain-on-drift": "pending_approval"}


async def test_manual_run_is_guarded_like_any_other(
    tmp_path: Path, kube_standin: KubeApiStandin, kube_kubeconfig: Path
) -> None:
    kube_standin.add_deployment("prod", "model-api")
    cfg = remediation_config(tmp_path, {"r": RESTART}, kubeconfig=kube_kubeconfig)
    async with remediation_app(cfg) as (_, rt):
        engine: RemediationEngine = rt.services["remediation"]
        outside = await engine.start("restart", {"namespace": "dev", "deployment": "model-api"}, "alice")
        run = await engine.start("restart", {"namespace": "prod", "deployment": "model-api"}, "alice")
        (done,) = await wait_run(rt, "succeeded")
        again = await engine.start("restart", {"namespace": "prod", "deployment": "model-api"}, "alice")
        await settle(rt)
    assert outside.status == "skipped" and outside.data["refusal"]["guard"] == "allowed_namespaces"
    assert run.requested_by == "alice" and done.id == run.id
    assert again.status == "skipped" and again.data["refusal"]["guard"] == "cooldown"
    assert len(kube_standin.requests_to("/deployments/model-api", "PATCH")) == 1


async def test_stopping_the_service_records_its_runs_as_interrupted(
    tmp_path: Path, kube_standin: KubeApiStandin, kube_kubeconfig: Path
) -> None:
    from alert_router.config import load
    from alert_router.store import create_store

    kube_standin.add_deployment("prod", "model-api")
    waits = RESTART + "  - action: wait_resolved\n    timeout: 60s\n"
    cfg = remediation_config(tmp_path, {"r": waits}, kubeconfig=kube_kubeconfig)
    async with remediation_app(cfg) as (client, rt):
        await post(client, alert_body())
        (run,) = await wait_run(rt, "running")
        await wait_for(_step_started(rt, run.id, 2))
        metrics = await (await client.get("/metrics")).text()
    store = create_store(load(cfg, {}).store_url)
    await store.open()
    try:
        stopped = await store.run(run.id)
        audit = await store.audit_records(run_id=run.id)
    finally:
        await store.close()
    assert stopped is not None and stopped.status == "interrupted"
    assert "interrupted during step 3 (wait_resolved) (alert-router was stopped)" in stopped.summary
    assert audit[-1].event == "interrupted"
    assert 'alert_router_runbook_steps_total{action="rollout_restart",outcome="ok"} 1.0' in metrics
    assert 'alert_router_kube_requests_total{outcome="200",resource="deployments",verb="patch"} 1.0' in metrics


async def test_a_run_that_lost_its_lease_stops(
    tmp_path: Path, kube_standin: KubeApiStandin, kube_kubeconfig: Path
) -> None:
    from alert_router.remediation.runs import RunChange

    kube_standin.add_deployment("prod", "model-api")
    waits = RESTART + "  - action: wait_resolved\n    timeout: 60s\n  - action: rollout_restart\n"
    cfg = remediation_config(tmp_path, {"r": waits}, kubeconfig=kube_kubeconfig, remediation="lease: 0.6s")
    async with remediation_app(cfg) as (client, rt):
        await post(client, alert_body())
        (run,) = await wait_run(rt, "running")
        await wait_for(_step_started(rt, run.id, 2))
        # another replica decided this run's process was gone (its lease expired there)
        taken = await rt.store.update_run(run.id, expect=["running"], now=time.time(),
                                          change=RunChange(status="interrupted", owner="other", finished=True))
        assert taken is not None
        engine: RemediationEngine = rt.services["remediation"]
        await wait_for(lambda: run.id not in engine.active_runs, timeout=5)
        await post(client, alert_body(status="resolved"))
        await settle(rt)
        final = await rt.store.run(run.id)
        audit = await rt.store.audit_records(run_id=run.id)
    assert final is not None and final.status == "interrupted"
    assert "finished" not in events(audit)
    assert len(kube_standin.requests_to("/deployments/model-api", "PATCH")) == 1  # the last step never ran
