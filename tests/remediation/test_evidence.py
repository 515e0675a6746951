"""Evidence gathered from the Kubernetes stand-in through the real client: its content, and its bound on time."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from alert_router.redact import Redactor
from alert_router.remediation.actions import Target
from alert_router.remediation.evidence import EvidenceSettings, gather_with, humanize_age
from alert_router.remediation.kube import KubeClient
from alert_router.remediation.settings import KubernetesConfig, RetryConfig
from tests.standins.kube import KubeApiStandin

FAST = RetryConfig(attempts=3, initial=0.01, max=0.05)
DEP = Target("Deployment", "prod", "model-api")
PREVIOUS_LOG = "".join(f"step {i}\n" for i in range(30)) + (
    "connecting to postgres://model:hunter2@db:5432/features\nCUDA error: out of memory; password=hunter2\n"
)


@pytest.fixture
def kube_client(kube_kubeconfig: Path) -> Iterator[KubeClient]:
    client = KubeClient(KubernetesConfig(kubeconfig=str(kube_kubeconfig), request_timeout=2), FAST)
    yield client
    client.close()


def bad_release(kube: KubeApiStandin, *, pods: int = 3) -> None:
    """model-api: v41 rolled out long ago, v42 twelve minutes ago; every pod crash-loops, OOMKilled."""
    kube.add_deployment("prod", "model-api", replicas=pods, image="registry.example/ml/model:v41")
    kube.set_image("prod", "model-api", "registry.example/ml/model:v42", change_cause="release v42")
    for rs in kube.replicasets("prod"):
        revision = rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
        kube.backdate("replicasets", "prod", rs["metadata"]["name"], 12 * 60 if revision == "2" else 3 * 86400)
    for i in range(pods):
        kube.add_pod("prod", f"model-api-7d9f-{i}", owner_deployment="model-api", ready=False, restart_count=5 + i,
                     waiting_reason="CrashLoopBackOff", last_termination={"reason": "OOMKilled", "exitCode": 137},
                     previous_logs=PREVIOUS_LOG, image="registry.example/ml/model:v42")
        kube.add_event("prod", "Pod", f"model-api-7d9f-{i}", "BackOff", "Back-off restarting failed container",
                       count=9, age=20)
    kube.add_event("prod", "Pod", "other-app-1", "BackOff", "not ours")


async def gather_now(client: KubeClient, target: Target = DEP, **settings: Any) -> dict[str, Any]:
    return await gather_with(client, target, EvidenceSettings(**settings), Redactor())


async def test_evidence_of_a_bad_release(kube_standin: KubeApiStandin, kube_client: KubeClient) -> None:
    bad_release(kube_standin)
    ev = await gather_now(kube_client, log_lines=5)
    assert ev["status"] == "ok", ev["errors"]
    assert ev["summary"] == "3/3 pods CrashLoopBackOff, OOMKilled, rolled out 12 minutes ago (image model:v42)"
    assert 11 * 60 < ev["last_rollout_age"] < 14 * 60
    cur, prev = ev["current_revision"], ev["previous_revision"]
    assert (cur["revision"], cur["images"], cur["change_cause"]) == (2, ["model:v42"], "release v42")
    assert (prev["revision"], prev["images"]) == (1, ["model:v41"])
    assert ev["workload"]["replicas"]["desired"] == 3
    assert [p["state"] for p in ev["pods"]] == ["CrashLoopBackOff"] * 3
    assert ev["pods"][0]["last_termination"]["reason"] == "OOMKilled"
    assert ev["pods"][0]["last_termination"]["exit_code"] == 137
    # warnings first, only about this Deployment's objects
    assert [e["type"] for e in ev["events"]] == ["Warning"] * 3 + ["Normal"]  # the controller's ScalingReplicaSet
    assert {e["object"] for e in ev["events"][:3]} == {f"Pod/model-api-7d9f-{i}" for i in range(3)}
    assert not any("other-app" in e["object"] for e in ev["events"])
    # the previous container's last lines, redacted like Loki lines
    (first, *_) = ev["previous_logs"]
    assert first["status"] == "ok" and len(first["lines"]) == 5
    assert first["lines"][-1] == "CUDA error: out of memory; password=[REDACTED]"
    assert "hunter2" not in str(ev)
    logs = kube_standin.requests_to("/log")
    assert len(logs) == 3 and all(r.query["previous"] == "true" and r.query["tailLines"] == "5" for r in logs)
    assert kube_standin.mutating_requests == []


async def test_healthy_workload_and_missing_previous_container(
    kube_standin: KubeApiStandin, kube_client: KubeClient
) -> None:
    kube_standin.add_deployment("prod", "model-api", replicas=2)
    kube_standin.backdate("replicasets", "prod", kube_standin.replicasets("prod")[0]["metadata"]["name"], 3 * 3600)
    kube_standin.add_pod("prod", "model-api-a", owner_deployment="model-api")
    kube_standin.add_pod("prod", "model-api-b", owner_deployment="model-api", restart_count=1)
    ev = await gather_now(kube_client)
    assert ev["summary"] == "2/2 pods ready, rolled out 3 hours ago (image app:1.0)"
    assert ev["previous_revision"] is None and ev["previous_logs"] == []


async def test_a_previous_log_that_does_not_exist_is_said_not_fatal(
    kube_standin: KubeApiStandin, kube_client: KubeClient
) -> None:
    """A pod whose status names a terminated container the kubelet no longer has: 400, recorded, the rest kept."""
    bad_release(kube_standin, pods=1)
    kube_standin.fail_next(1, 400, path_contains="/log")
    ev = await gather_now(kube_client)
    (log,) = ev["previous_logs"]
    assert log["status"] == "unavailable" and log["reason"].startswith("400")
    assert ev["status"] == "ok" and ev["summary"].startswith("1/1 pods CrashLoopBackOff, OOMKilled")


async def test_evidence_is_bounded_by_its_timeout(kube_standin: KubeApiStandin, kube_client: KubeClient) -> None:
    """A stalled endpoint costs its part of the evidence, not the rest, and never more than the timeout."""
    bad_release(kube_standin)
    kube_standin.path_delays.append(("/events", 1.5))  # the API server holds the connection open
    ev = await gather_now(kube_client, timeout=0.5)
    assert ev["status"] == "partial"
    assert ev["errors"] == [{"part": "events", "error": "timeout: not answered within 0.5s"}]
    assert ev["events"] == [] and ev["current_revision"]["revision"] == 2 and len(ev["pods"]) == 3
    assert ev["summary"].endswith("(image model:v42) (partial: events missing)")


async def test_forbidden_and_unreachable(kube_standin: KubeApiStandin, kube_client: KubeClient, tmp_path: Path) -> None:
    bad_release(kube_standin)
    kube_standin.rules = [r for r in kube_standin.rules if r["resources"] != ["replicasets"]]
    ev = await gather_now(kube_client)
    assert ev["status"] == "partial" and ev["last_rollout_age"] is None
    (err,) = ev["errors"]
    assert err["part"] == "revisions" and err["error"].startswith("403 Forbidden")
    offline = KubeClient(KubernetesConfig(kubeconfig=str(tmp_path / "absent")), FAST)
    ev = await gather_now(offline)
    assert ev["status"] == "unavailable" and ev["summary"].startswith("evidence unavailable: ")


async def test_statefulset_and_pod_targets(kube_standin: KubeApiStandin, kube_client: KubeClient) -> None:
    kube_standin.rules = [*kube_standin.rules]
    kube_standin.add_statefulset("prod", "feature-db", replicas=2)
    kube_standin.add_pod("prod", "feature-db-0", owner_statefulset="feature-db")
    kube_standin.add_pod("prod", "feature-db-1", owner_statefulset="feature-db", ready=False, restart_count=3,
                         waiting_reason="CrashLoopBackOff", previous_logs="disk full\n")
    kube_standin.add_pod("prod", "impostor", {"app": "feature-db"})  # matches the selector, not controlled by it
    ev = await gather_now(kube_client, Target("StatefulSet", "prod", "feature-db"))
    assert [p["name"] for p in ev["pods"]] == ["feature-db-1", "feature-db-0"]
    assert ev["summary"].startswith("1/2 pods CrashLoopBackOff, Error (exit code 1), revision feature-db-")
    ev = await gather_now(kube_client, Target("Pod", "prod", "feature-db-1"))
    assert ev["workload"]["kind"] == "Pod" and ev["previous_logs"][0]["lines"] == ["disk full"]


def test_humanize_age() -> None:
    assert [humanize_age(s) for s in (1, 45, 720, 5400, 7 * 3600, 3 * 86400)] == [
        "1 second", "45 seconds", "12 minutes", "2 hours", "7 hours", "3 days"]
