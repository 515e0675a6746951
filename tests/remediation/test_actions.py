"""Each action against the Kubernetes stand-in (or a loopback HTTP server), one behaviour per test."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web

from alert_router.errors import FailureReason
from alert_router.remediation.actions import REGISTRY, StepContext, StepFailed, Target
from alert_router.remediation.actions import create_job_from_cronjob as cjob
from alert_router.remediation.kube import KubeClient, KubeSession
from alert_router.remediation.settings import KubernetesConfig, RetryConfig
from alert_router.store.base import NewOutboxItem
from tests.helpers import wait_for
from tests.standins.kube import KubeApiStandin

FAST = RetryConfig(attempts=4, initial=0.01, max=0.05)
JOB_SPEC = {"backoffLimit": 2, "template": {"metadata": {"labels": {"app": "retrain"}}, "spec": {
    "containers": [{"name": "train", "image": "registry.example/train:3"}], "restartPolicy": "Never"}}}


class FakeStore:
    """Only what wait_resolved reads: the alert's stored status."""

    def __init__(self) -> None:
        self.status = "firing"

    async def alert(self, fingerprint: str) -> Any:
        return SimpleNamespace(status=self.status)


Run = Callable[..., Any]


@pytest.fixture
def kube_client(kube_kubeconfig: Path) -> Iterator[KubeClient]:
    client = KubeClient(KubernetesConfig(kubeconfig=str(kube_kubeconfig)), FAST)
    yield client
    client.close()


@pytest.fixture
def run_step(kube_client: KubeClient) -> Run:
    """``await run_step(step_dict, target=Target(...), dry_run=False, timeout=5)`` → (outcome, ctx)."""

    async def run(step: dict[str, Any], target: Target | None = None, *, dry_run: bool = False,
                  timeout: float = 5.0, store: Any = None, run_id: int = 7,
                  client: KubeClient | None = None) -> tuple[Any, StepContext]:
        action = REGISTRY[step["action"]]
        params = action.params.model_validate(step)
        alert = {"labels": {"alertname": "X", "namespace": "prod", "pod": "model-api-abc"},
                 "fingerprint": "fp1", "status": "firing"}
        ctx = StepContext(
            run_id=run_id, runbook="rb", index=0, target=target, alert=alert, dry_run=dry_run,
            kube=KubeSession(client or kube_client, dry_run=dry_run, deadline=time.monotonic() + timeout),
            store=store or FakeStore(),
            variables={"labels": alert["labels"], "annotations": {}, "alert": {"name": "X"}, "runbook": "rb",
                       "target": target.as_dict() if target else {}, "run": {"id": run_id, "dry_run": dry_run}},
            deadline=time.monotonic() + timeout, poll_interval=0.05, retry=FAST, resolved=asyncio.Event(),
            receivers=["file"],
            notification=lambda r, extra: NewOutboxItem("notify", r, "g", {"extra": extra}),
        )
        try:
            return await action.run(ctx, params), ctx
        except StepFailed as exc:
            return exc, ctx

    return run


DEP = Target("Deployment", "prod", "model-api")


# -- scale ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "step", "expected"),
    [
        (10, {"by": 1, "max_replicas": 10}, 10),  # at the ceiling: no change
        (8, {"by": 5, "max_replicas": 10}, 10),  # clamped to the ceiling
        (12, {"by": 1, "max_replicas": 10}, 12),  # above the ceiling: a scale-up never scales down
        (3, {"factor": 2, "max_replicas": 10}, 6),
        (3, {"replicas": 5, "max_replicas": 10}, 5),
        (3, {"by": -5, "max_replicas": 10, "min_replicas": 2}, 2),  # clamped to the floor
        (4, {"factor": 3, "max_replicas": 10}, 10),
    ],
)
async def test_scale_never_passes_the_ceiling(
    start: int, step: dict[str, Any], expected: int, kube_standin: KubeApiStandin, run_step: Run
) -> None:
    kube_standin.add_deployment("prod", "model-api", replicas=start)
    outcome, _ = await run_step({"action": "scale", **step}, DEP)
    assert not isinstance(outcome, StepFailed), outcome
    assert kube_standin.deployment("prod", "model-api")["spec"]["replicas"] == expected
    patches = kube_standin.requests_to("/scale", "PATCH")
    if expected == start:
        assert patches == [] and outcome.result["changed"] is False
    else:
        assert [p.body for p in patches] == [{"spec": {"replicas": expected}}]


async def test_scale_retry_after_500_sends_the_same_count(kube_standin: KubeApiStandin, run_step: Run) -> None:
    kube_standin.add_deployment("prod", "model-api", replicas=3)
    kube_standin.fail_next(1, 500, method="PATCH")
    outcome, _ = await run_step({"action": "scale", "by": 1, "max_replicas": 10}, DEP)
    assert not isinstance(outcome, StepFailed), outcome
    bodies = [p.body for p in kube_standin.requests_to("/scale", "PATCH")]
    assert bodies == [{"spec": {"replicas": 4}}, {"spec": {"replicas": 4}}]  # never +1 twice
    assert kube_standin.deployment("prod", "model-api")["spec"]["replicas"] == 4


# -- rollout_restart -----------------------------------------------------------------------------


async def test_rollout_restart_patches_the_pod_template(kube_standin: KubeApiStandin, run_step: Run) -> None:
    kube_standin.add_deployment("prod", "model-api", replicas=2)
    outcome, _ = await run_step({"action": "rollout_restart"}, DEP)
    assert not isinstance(outcome, StepFailed), outcome
    dep = kube_standin.deployment("prod", "model-api")
    stamp = dep["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
    assert stamp == outcome.result["restartedAt"] and stamp.endswith("Z")
    assert dep["metadata"]["generation"] == 2


async def test_rollout_restart_refuses_a_paused_deployment(kube_standin: KubeApiStandin, run_step: Run) -> None:
    kube_standin.add_deployment("prod", "model-api", paused=True)
    outcome, _ = await run_step({"action": "rollout_restart"}, DEP)
    assert isinstance(outcome, StepFailed) and outcome.reason is FailureReason.REJECTED
    assert "paused" in str(outcome)
    assert kube_standin.mutating_requests == []


# -- wait_rollout ---------------------------------------------------------------------------------


async def test_wait_rollout_follows_the_controller(kube_standin: KubeApiStandin, run_step: Run) -> None:
    kube_standin.add_deployment("prod", "model-api", replicas=3)
    await run_step({"action": "rollout_restart"}, DEP)
    outcome, ctx = await run_step({"action": "wait_rollout"}, DEP)
    assert not isinstance(outcome, StepFailed), outcome
    assert "successfully rolled out" in outcome.summary and outcome.result["polls"] > 1
    status = kube_standin.deployment("prod", "model-api")["status"]
    assert status["updatedReplicas"] == status["availableReplicas"] == 3
    assert len(ctx.kube.calls) <= 2  # first and last poll recorded, not every poll


async def test_wait_rollout_fails_on_progress_deadline(kube_standin: KubeApiStandin, run_step: Run) -> None:
    kube_standin.add_deployment("prod", "model-api", replicas=2)
    await run_step({"action": "rollout_restart"}, DEP)
    kube_standin.set_progress_deadline_exceeded("prod", "model-api")
    started = time.monotonic()
    outcome, _ = await run_step({"action": "wait_rollout"}, DEP, timeout=5)
    assert isinstance(outcome, StepFailed) and "progress deadline" in str(outcome)
    assert time.monotonic() - started < 2


async def test_wait_rollout_times_out_on_a_stalled_rollout(kube_standin: KubeApiStandin, run_step: Run) -> None:
    kube_standin.add_deployment("prod", "model-api", replicas=2)
    kube_standin.stall("prod", "model-api")
    await run_step({"action": "rollout_restart"}, DEP)
    outcome, _ = await run_step({"action": "wait_rollout"}, DEP, timeout=0.6)
    assert isinstance(outcome, StepFailed) and outcome.reason is FailureReason.TIMEOUT
    assert "not complete in time" in str(outcome)


# -- create_job_from_cronjob ----------------------------------------------------------------------


CJ = Target("CronJob", "prod", "model-retrain")


async def test_job_from_cronjob_is_what_kubectl_creates(kube_standin: KubeApiStandin, run_step: Run) -> None:
    cron = kube_standin.add_cronjob("prod", "model-retrain", JOB_SPEC, job_labels={"team": "mlops"},
                                    job_annotations={"owner": "ml"})
    outcome, _ = await run_step({"action": "create_job_from_cronjob"}, CJ, run_id=42)
    assert not isinstance(outcome, StepFailed), outcome
    job = kube_standin.get_object("jobs", "prod", "model-retrain-ar-42")
    assert job is not None
    meta = job["metadata"]
    assert meta["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
    assert meta["annotations"]["owner"] == "ml" and meta["annotations"]["alert-router.io/run-id"] == "42"
    assert meta["labels"]["team"] == "mlops"
    (ref,) = meta["ownerReferences"]
    assert (ref["kind"], ref["name"], ref["uid"]) == ("CronJob", "model-retrain", cron["metadata"]["uid"])
    assert job["spec"]["backoffLimit"] == 2
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example/train:3"


async def test_jobs_from_a_cronjob_are_pruned_by_its_history_limit(tmp_path: Path, run_step: Run) -> None:
    """kubectl's controller ownerReference: the CronJob controller prunes these Jobs beyond its history limit.

    blockOwnerDeletion is not set (as kubectl since 1.31): with OwnerReferencesPermissionEnforcement it would
    need update on cronjobs/finalizers, which the remediator does not have.
    """
    async with KubeApiStandin(owner_references_permission_enforcement=True, controller_step=0.02) as kube:
        kube.add_cronjob("prod", "model-retrain", JOB_SPEC)  # successfulJobsHistoryLimit: 3
        cron_uid = kube.get_object("cronjobs", "prod", "model-retrain")["metadata"]["uid"]  # type: ignore[index]
        client = KubeClient(KubernetesConfig(kubeconfig=str(kube.kubeconfig(tmp_path / "kc"))), FAST)
        try:
            for run_id in range(1, 6):
                outcome, _ = await run_step({"action": "create_job_from_cronjob", "wait": True}, CJ, run_id=run_id,
                                            client=client)
                assert not isinstance(outcome, StepFailed), outcome
            (ref,) = {json.dumps(j["metadata"]["ownerReferences"]) for j in kube.jobs("prod")}
            assert json.loads(ref) == [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "model-retrain",
                                        "uid": cron_uid, "controller": True}]
            await wait_for(lambda: len(kube.jobs("prod")) == 3, 5)
        finally:
            client.close()
    assert sorted(j["metadata"]["name"] for j in kube.jobs("prod"))[-1] == "model-retrain-ar-5"


async def test_job_retry_recognises_its_own_job(kube_standin: KubeApiStandin, run_step: Run) -> None:
    kube_standin.add_cronjob("prod", "model-retrain", JOB_SPEC)
    first, _ = await run_step({"action": "create_job_from_cronjob"}, CJ, run_id=5)
    again, _ = await run_step({"action": "create_job_from_cronjob"}, CJ, run_id=5)
    assert not isinstance(first, StepFailed) and not isinstance(again, StepFailed), again
    assert len(kube_standin.jobs("prod")) == 1
    other, _ = await run_step({"action": "create_job_from_cronjob", "job_name": "model-retrain-ar-5"}, CJ, run_id=6)
    assert isinstance(other, StepFailed) and "not created by this run" in str(other)


async def test_job_wait_reports_failure(kube_standin: KubeApiStandin, run_step: Run) -> None:
    kube_standin.add_cronjob("prod", "model-retrain", JOB_SPEC)
    kube_standin.job_outcome = "fail"
    outcome, _ = await run_step({"action": "create_job_from_cronjob", "wait": True}, CJ)
    assert isinstance(outcome, StepFailed) and "failed" in str(outcome)
    kube_standin.job_outcome = "complete"
    outcome, _ = await run_step({"action": "create_job_from_cronjob", "wait": True}, CJ, run_id=8)
    assert not isinstance(outcome, StepFailed) and "completed" in outcome.summary


def test_default_job_name_fits_63_characters() -> None:
    name = cjob.default_job_name("a" * 80, 123456)
    assert len(name) <= 63 and name.endswith("-ar-123456")


# -- delete_pod -----------------------------------------------------------------------------------


POD = Target("Pod", "prod", "model-api-abc")


async def test_delete_pod_deletes_a_controlled_pod(kube_standin: KubeApiStandin, run_step: Run) -> None:
    kube_standin.add_deployment("prod", "model-api")
    kube_standin.add_pod("prod", "model-api-abc", owner_deployment="model-api")
    outcome, _ = await run_step({"action": "delete_pod"}, POD)
    assert not isinstance(outcome, StepFailed), outcome
    assert kube_standin.get_object("pods", "prod", "model-api-abc") is None
    assert len(kube_standin.pods("prod")) == 1  # its ReplicaSet replaced it


async def test_delete_pod_refuses_a_bare_pod(kube_standin: KubeApiStandin, run_step: Run) -> None:
    kube_standin.add_pod("prod", "model-api-abc")
    outcome, _ = await run_step({"action": "delete_pod"}, POD)
    assert isinstance(outcome, StepFailed) and "no controller" in str(outcome)
    assert kube_standin.mutating_requests == []
    missing, _ = await run_step({"action": "delete_pod"}, Target("Pod", "prod", "gone"))
    assert isinstance(missing, StepFailed) and missing.reason is FailureReason.NOT_FOUND


# -- wait_resolved --------------------------------------------------------------------------------


async def test_wait_resolved(run_step: Run) -> None:
    store = FakeStore()
    outcome, _ = await run_step({"action": "wait_resolved"}, timeout=0.3, store=store)
    assert isinstance(outcome, StepFailed) and "still firing" in str(outcome)
    lenient, _ = await run_step({"action": "wait_resolved", "on_timeout": "succeed"}, timeout=0.3, store=store)
    assert not isinstance(lenient, StepFailed)

    async def resolve_soon() -> None:
        await asyncio.sleep(0.2)
        store.status = "resolved"

    task = asyncio.create_task(resolve_soon())
    outcome, _ = await run_step({"action": "wait_resolved"}, timeout=3, store=store)
    await task
    assert not isinstance(outcome, StepFailed) and "resolved after" in outcome.summary


# -- http -----------------------------------------------------------------------------------------


@pytest.fixture
async def http_server() -> AsyncIterator[SimpleNamespace]:
    state = SimpleNamespace(requests=[], answers=[], url="")

    async def handle(request: web.Request) -> web.Response:
        state.requests.append({"method": request.method, "path": request.path_qs, "headers": dict(request.headers),
                               "body": await request.text()})
        status = state.answers.pop(0) if state.answers else 200
        return web.json_response({"ok": status < 300}, status=status)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    state.url = f"http://127.0.0.1:{port}"
    yield state
    await runner.cleanup()


async def test_http_renders_authenticates_and_retries_5xx(http_server: SimpleNamespace, run_step: Run) -> None:
    http_server.answers = [503, 500, 202]
    step = {"action": "http", "url": http_server.url + "/trigger/{{ labels.namespace }}",
            "json": {"reason": "{{ alert.name }}", "pod": "{{ labels.pod }}"}, "bearer_token": "s3cret"}
    outcome, _ = await run_step(step)
    assert not isinstance(outcome, StepFailed), outcome
    assert [r["path"] for r in http_server.requests] == ["/trigger/prod"] * 3
    req = http_server.requests[-1]
    assert req["headers"]["Authorization"] == "Bearer s3cret"
    assert req["headers"]["Idempotency-Key"] == "alert-router-7-0"
    assert req["body"] == '{"reason": "X", "pod": "model-api-abc"}'
    assert outcome.result["request"]["attempts"] == 3
    assert outcome.result["request"]["headers"]["Authorization"] == "<redacted>"


async def test_http_403_is_not_retried(http_server: SimpleNamespace, run_step: Run) -> None:
    http_server.answers = [403]
    outcome, _ = await run_step({"action": "http", "url": http_server.url + "/x"})
    assert isinstance(outcome, StepFailed) and outcome.reason is FailureReason.AUTH
    assert len(http_server.requests) == 1


async def test_http_dry_run_sends_nothing(http_server: SimpleNamespace, run_step: Run) -> None:
    outcome, _ = await run_step({"action": "http", "url": http_server.url + "/x", "method": "PUT"}, dry_run=True)
    assert not isinstance(outcome, StepFailed) and outcome.summary.startswith("would PUT")
    assert http_server.requests == []


async def test_notify_queues_a_message(run_step: Run) -> None:
    outcome, _ = await run_step({"action": "notify", "message": "hello {{ labels.pod }}"})
    (item,) = outcome.follow_ups
    assert item.dest == "file" and item.payload["extra"]["runbook_message"] == "hello model-api-abc"


async def test_dry_run_plans_exact_requests_without_mutating(kube_standin: KubeApiStandin, run_step: Run) -> None:
    kube_standin.add_deployment("prod", "model-api", replicas=4)
    outcome, ctx = await run_step({"action": "scale", "by": 2, "max_replicas": 5}, DEP, dry_run=True)
    assert not isinstance(outcome, StepFailed) and outcome.summary.startswith("would scale")
    assert kube_standin.persisting_requests == []
    (sent,) = kube_standin.mutating_requests
    assert sent.dry_run and sent.body == {"spec": {"replicas": 5}}  # the server checked it and changed nothing
    patch = [c for c in ctx.kube.calls if c.method == "PATCH"]
    assert [(c.body, c.sent, c.status, c.query) for c in patch] == [({"spec": {"replicas": 5}}, True, 200,
                                                                     {"dryRun": "All"})]
    assert "the API server accepted it" in patch[0].note
    assert kube_standin.deployment("prod", "model-api")["spec"]["replicas"] == 4


# -- rollout_undo ----------------------------------------------------------------------------------


def released(kube: KubeApiStandin, *images: str) -> None:
    """model-api rolled out through ``images`` in order (revision 1, 2, ...)."""
    kube.add_deployment("prod", "model-api", replicas=2, image=images[0])
    for image in images[1:]:
        kube.set_image("prod", "model-api", image)


def images_by_revision(kube: KubeApiStandin) -> dict[int, str]:
    return {int(rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]):
            rs["spec"]["template"]["spec"]["containers"][0]["image"] for rs in kube.replicasets("prod")}


async def test_rollout_undo_goes_back_to_the_previous_revision(kube_standin: KubeApiStandin, run_step: Run) -> None:
    released(kube_standin, "model:v40", "model:v41", "model:v42")
    outcome, ctx = await run_step({"action": "rollout_undo"}, DEP)
    assert not isinstance(outcome, StepFailed), outcome
    assert outcome.summary == ("rolled back Deployment/prod/model-api from revision 3 (model:v42) to revision 2 "
                               "(model:v41)")
    dep = kube_standin.deployment("prod", "model-api")
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "model:v41"
    assert "pod-template-hash" not in dep["spec"]["template"]["metadata"]["labels"]
    (patch,) = kube_standin.requests_to("/deployments/model-api", "PATCH")
    assert patch.content_type == "application/json-patch+json"  # as kubectl sends it
    assert [op["path"] for op in patch.body] == ["/spec/template", "/metadata/annotations"]
    kube_standin.complete_rollout("prod", "model-api")
    assert images_by_revision(kube_standin) == {1: "model:v40", 3: "model:v42", 4: "model:v41"}  # reused, renumbered
    assert [c.method for c in ctx.kube.calls] == ["GET", "GET", "PATCH"]


async def test_rollout_undo_to_a_named_revision_and_a_missing_one(
    kube_standin: KubeApiStandin, run_step: Run
) -> None:
    released(kube_standin, "model:v40", "model:v41", "model:v42")
    missing, _ = await run_step({"action": "rollout_undo", "to_revision": 9}, DEP)
    assert isinstance(missing, StepFailed) and str(missing) == "unable to find specified revision 9 in history"
    outcome, _ = await run_step({"action": "rollout_undo", "to_revision": 1}, DEP)
    assert not isinstance(outcome, StepFailed), outcome
    assert outcome.result["to_revision"] == 1 and outcome.result["to_images"] == "model:v40"
    image = kube_standin.deployment("prod", "model-api")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "model:v40"


async def test_rollout_undo_refuses_without_history_and_when_paused(
    kube_standin: KubeApiStandin, run_step: Run
) -> None:
    kube_standin.add_deployment("prod", "model-api", replicas=2)
    outcome, _ = await run_step({"action": "rollout_undo"}, DEP)
    assert isinstance(outcome, StepFailed) and outcome.reason is FailureReason.REJECTED
    assert "no rollout history found" in str(outcome)
    kube_standin.set_image("prod", "model-api", "model:v2")
    kube_standin.set_paused("prod", "model-api", True)
    paused, ctx = await run_step({"action": "rollout_undo"}, DEP)
    assert isinstance(paused, StepFailed) and "resume it first" in str(paused)
    assert [c.method for c in ctx.kube.calls] == ["GET", "GET"]
    assert kube_standin.persisting_requests == []


async def test_rollout_undo_skips_when_already_at_that_revision(kube_standin: KubeApiStandin, run_step: Run) -> None:
    released(kube_standin, "model:v41", "model:v42")
    outcome, _ = await run_step({"action": "rollout_undo", "to_revision": 2}, DEP)
    assert not isinstance(outcome, StepFailed) and outcome.result["changed"] is False
    assert "already matches revision 2" in outcome.summary
    assert kube_standin.persisting_requests == []


# -- StatefulSet targets and HPA-owned replica counts --------------------------------------------------

STS = Target("StatefulSet", "prod", "feature-db")


async def test_statefulset_restart_scale_and_wait(kube_standin: KubeApiStandin, run_step: Run) -> None:
    kube_standin.add_statefulset("prod", "feature-db", replicas=2)
    restarted, _ = await run_step({"action": "rollout_restart"}, STS)
    assert not isinstance(restarted, StepFailed), restarted
    sts = kube_standin.get_object("statefulsets", "prod", "feature-db")
    assert sts is not None and "kubectl.kubernetes.io/restartedAt" in sts["spec"]["template"]["metadata"]["annotations"]
    waited, _ = await run_step({"action": "wait_rollout"}, STS)
    assert not isinstance(waited, StepFailed) and "rolled out (2 pods updated)" in waited.summary
    scaled, _ = await run_step({"action": "scale", "by": 1, "max_replicas": 3}, STS)
    assert not isinstance(scaled, StepFailed) and scaled.summary.startswith("scaled StatefulSet/prod/feature-db")
    (patch,) = kube_standin.requests_to("/statefulsets/feature-db/scale", "PATCH")
    assert patch.body == {"spec": {"replicas": 3}}


async def test_scale_raises_the_floor_of_an_owning_hpa(kube_standin: KubeApiStandin, run_step: Run) -> None:
    """An HPA owns the count: the step raises its minReplicas (within the ceiling) instead of fighting it."""
    kube_standin.add_deployment("prod", "model-api", replicas=3)
    kube_standin.add_hpa("prod", "model-api", "Deployment", "model-api", min_replicas=2, max_replicas=8)
    outcome, _ = await run_step({"action": "scale", "by": 2, "max_replicas": 6}, DEP)
    assert not isinstance(outcome, StepFailed), outcome
    assert kube_standin.requests_to("/deployments/model-api/scale", "PATCH") == []
    (patch,) = kube_standin.requests_to("/horizontalpodautoscalers/model-api", "PATCH")
    assert patch.body == {"spec": {"minReplicas": 5}}
    assert "raised minReplicas of HorizontalPodAutoscaler model-api from 2 to 5" in outcome.summary
    await wait_for(lambda: kube_standin.deployment("prod", "model-api")["spec"]["replicas"] == 5, 5)
    capped, _ = await run_step({"action": "scale", "by": 10, "max_replicas": 6}, DEP)
    assert capped.result["to"] == 6  # never past the step's ceiling
    down, _ = await run_step({"action": "scale", "by": -1, "max_replicas": 6}, DEP)
    assert down.result["changed"] is False and "a scale down is left to the HPA" in down.summary
    hpa = kube_standin.get_object("horizontalpodautoscalers", "prod", "model-api")
    assert hpa is not None and hpa["spec"]["minReplicas"] == 6


async def test_hpa_floor_is_capped_by_its_own_max(kube_standin: KubeApiStandin, run_step: Run) -> None:
    kube_standin.add_deployment("prod", "model-api", replicas=3)
    kube_standin.add_hpa("prod", "hpa", "Deployment", "model-api", min_replicas=2, max_replicas=4)
    outcome, _ = await run_step({"action": "scale", "factor": 3, "max_replicas": 10}, DEP)
    assert outcome.result["to"] == 4 and "capped by the HPA's maxReplicas 4" in outcome.summary


async def test_dry_run_reports_what_the_api_server_refused(kube_standin: KubeApiStandin, run_step: Run) -> None:
    """Server-side dry run: a plan the remediator's RBAC forbids fails with the 403, before anyone trusts it."""
    kube_standin.add_deployment("prod", "model-api", replicas=2)
    kube_standin.rules = [r for r in kube_standin.rules if r["resources"] != ["deployments"]] + [
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]}]
    outcome, ctx = await run_step({"action": "rollout_restart"}, DEP, dry_run=True)
    assert isinstance(outcome, StepFailed) and outcome.reason is FailureReason.AUTH
    assert "403 Forbidden" in str(outcome) and 'cannot patch resource "deployments"' in str(outcome)
    patch = ctx.kube.calls[-1]
    assert (patch.method, patch.sent, patch.status, patch.query) == ("PATCH", True, 403, {"dryRun": "All"})
    assert "refused" in patch.note
    assert kube_standin.persisting_requests == []
