"""The Kubernetes facade: the real client through a kubeconfig, retried only where a retry can help."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from alert_router.errors import FailureReason
from alert_router.remediation.kube import KubeClient, KubeError, KubeSession, KubeUnavailable
from alert_router.remediation.settings import KubernetesConfig, RetryConfig
from tests.standins.kube import KubeApiStandin

FAST = RetryConfig(attempts=4, initial=0.01, max=0.05)


def client_for(kubeconfig: Path, timeout: float = 5.0) -> KubeClient:
    return KubeClient(KubernetesConfig(kubeconfig=str(kubeconfig), request_timeout=timeout), FAST)


def session(client: KubeClient, dry_run: bool = False, budget: float = 10.0) -> KubeSession:
    return KubeSession(client, dry_run=dry_run, deadline=time.monotonic() + budget)


async def test_reads_and_patches_through_the_real_client(kube_standin: KubeApiStandin, kube_kubeconfig: Path) -> None:
    kube_standin.add_deployment("prod", "model-api", replicas=2)
    client = client_for(kube_kubeconfig)
    try:
        s = session(client)
        dep = await s.read_deployment("prod", "model-api")
        assert dep is not None and dep["spec"]["replicas"] == 2
        patched = await s.patch_deployment("prod", "model-api", {"spec": {"template": {"metadata": {
            "annotations": {"x": "y"}}}}})
        assert patched is not None and patched["metadata"]["generation"] == 2
    finally:
        client.close()
    (patch,) = kube_standin.requests_to("/deployments/model-api", "PATCH")
    assert patch.content_type == "application/strategic-merge-patch+json"
    assert patch.headers["Authorization"] == f"Bearer {kube_standin.token}"
    assert [c.method for c in s.calls] == ["GET", "PATCH"] and all(c.sent for c in s.calls)


async def test_500s_are_retried_until_success(kube_standin: KubeApiStandin, kube_kubeconfig: Path) -> None:
    kube_standin.add_deployment("prod", "model-api")
    kube_standin.fail_next(2, 500, method="GET")
    client = client_for(kube_kubeconfig)
    try:
        s = session(client)
        assert await s.read_deployment("prod", "model-api") is not None
    finally:
        client.close()
    assert [r.status for r in kube_standin.requests_to("/deployments/model-api")] == [500, 500, 200]
    assert s.calls[0].attempts == 3 and s.calls[0].status == 200


async def test_409_conflict_is_retried(kube_standin: KubeApiStandin, kube_kubeconfig: Path) -> None:
    kube_standin.add_deployment("prod", "model-api")
    kube_standin.conflict_next(1)
    client = client_for(kube_kubeconfig)
    try:
        await session(client).patch_scale("prod", "model-api", {"spec": {"replicas": 3}})
    finally:
        client.close()
    assert [r.status for r in kube_standin.requests_to("/scale", "PATCH")] == [409, 200]
    assert kube_standin.deployment("prod", "model-api")["spec"]["replicas"] == 3


@pytest.mark.parametrize(("status", "reason"), [(401, FailureReason.AUTH), (403, FailureReason.AUTH),
                                                (404, FailureReason.NOT_FOUND), (422, FailureReason.INVALID)])
async def test_client_errors_are_not_retried(
    status: int, reason: FailureReason, kube_standin: KubeApiStandin, kube_kubeconfig: Path
) -> None:
    kube_standin.add_deployment("prod", "model-api")
    kube_standin.fail_next(5, status)
    client = client_for(kube_kubeconfig)
    try:
        s = session(client)
        with pytest.raises(KubeError) as err:
            await s.read_deployment("prod", "model-api")
    finally:
        client.close()
    assert err.value.status == status and err.value.reason is reason and not err.value.retryable
    assert len(kube_standin.requests) == 1
    assert s.calls[0].attempts == 1 and str(status) in (s.calls[0].error or "")


async def test_real_403_carries_the_rbac_message(kube_standin: KubeApiStandin, kube_kubeconfig: Path) -> None:
    kube_standin.add_deployment("prod", "model-api")
    client = client_for(kube_kubeconfig)
    try:
        with pytest.raises(KubeError) as err:
            await session(client).read_cronjob("prod", "nope")  # allowed: 404
        assert err.value.status == 404
        with pytest.raises(KubeError) as err:
            await _delete_deployment(client)  # the remediator's RBAC has no delete on deployments
    finally:
        client.close()
    assert err.value.status == 403 and "forbidden" in str(err.value)


async def _delete_deployment(client: KubeClient) -> None:
    from kubernetes import client as k

    from alert_router.remediation.kube import KubeCall

    await client.call("delete", "deployments",
                      lambda api, t: k.AppsV1Api(api).delete_namespaced_deployment(
                          "model-api", "prod", _preload_content=False, _request_timeout=t),
                      deadline=time.monotonic() + 5, record=KubeCall("DELETE", "/x"))


async def test_retries_stop_at_the_step_deadline(kube_standin: KubeApiStandin, kube_kubeconfig: Path) -> None:
    kube_standin.add_deployment("prod", "model-api")
    kube_standin.fail_next(1000, 503)
    retry = RetryConfig(attempts=20, initial=0.2, max=0.2)
    client = KubeClient(KubernetesConfig(kubeconfig=str(kube_kubeconfig)), retry)
    started = time.monotonic()
    try:
        with pytest.raises(KubeError) as err:
            await session(client, budget=0.6).read_deployment("prod", "model-api")
    finally:
        client.close()
    assert err.value.status == 503
    assert time.monotonic() - started < 2.0
    assert 2 <= len(kube_standin.requests) <= 5


async def test_slow_api_times_out_and_is_retried(kube_kubeconfig: Path, kube_standin: KubeApiStandin) -> None:
    kube_standin.add_deployment("prod", "model-api")
    kube_standin.delay = 1.0
    client = client_for(kube_kubeconfig, timeout=0.2)
    try:
        with pytest.raises(KubeError) as err:
            await session(client, budget=0.9).read_deployment("prod", "model-api")
    finally:
        client.close()
        kube_standin.delay = 0
    assert err.value.reason is FailureReason.TIMEOUT
    assert len(kube_standin.requests) >= 2


async def test_connection_refused_is_a_retryable_connection_error(tmp_path: Path) -> None:
    kube = KubeApiStandin()
    kube.start()
    kubeconfig = kube.kubeconfig(tmp_path / "kubeconfig")
    kube.stop()
    client = client_for(kubeconfig)
    try:
        s = session(client, budget=1.0)
        with pytest.raises(KubeError) as err:
            await s.read_deployment("prod", "model-api")
    finally:
        client.close()
    assert err.value.reason is FailureReason.CONNECTION and err.value.retryable
    assert s.calls[0].attempts > 1


async def test_dry_run_sends_mutations_only_as_server_dry_runs(
    kube_standin: KubeApiStandin, kube_kubeconfig: Path
) -> None:
    kube_standin.add_deployment("prod", "model-api")
    kube_standin.add_pod("prod", "p", owner_deployment="model-api")
    client = client_for(kube_kubeconfig)
    try:
        s = session(client, dry_run=True)
        assert await s.read_deployment("prod", "model-api") is not None
        assert await s.patch_deployment("prod", "model-api", {"spec": {"paused": True}}) is None
        assert await s.delete_pod("prod", "p") is None
        with pytest.raises(KubeError) as err:  # the server validates a dry-run create as a real one
            await s.create_job("prod", {"metadata": {"name": "j"}})
        offline = KubeSession(client, dry_run=True, server_dry_run=False)
        assert await offline.patch_deployment("prod", "model-api", {"spec": {"paused": True}}) is None
    finally:
        client.close()
    assert err.value.status == 422  # a Job without a pod template is invalid, dry run or not
    assert kube_standin.persisting_requests == []
    assert all(r.dry_run for r in kube_standin.mutating_requests)
    assert [(c.method, c.sent, c.status) for c in s.calls] == [("GET", True, 200), ("PATCH", True, 200),
                                                                ("DELETE", True, 200), ("POST", True, 422)]
    assert s.calls[1].body == {"spec": {"paused": True}} and s.calls[1].query == {"dryRun": "All"}
    assert "refused" in s.calls[3].note and "422" in (s.calls[3].error or "")
    assert [(c.sent, c.note) for c in offline.calls] == [(False, "dry run: not sent")]
    assert kube_standin.deployment("prod", "model-api")["spec"].get("paused") is None
    assert [p["metadata"]["name"] for p in kube_standin.pods("prod")] == ["p"]


async def test_missing_configuration(tmp_path: Path) -> None:
    client = KubeClient(KubernetesConfig(kubeconfig=str(tmp_path / "absent")), FAST)
    with pytest.raises(KubeUnavailable):
        await session(client).read_deployment("prod", "x")
    planned = session(client, dry_run=True)
    assert await planned.read_deployment("prod", "x") is None  # a dry run plans without a cluster
    assert await planned.patch_deployment("prod", "x", {"a": 1}) is None
    assert [c.sent for c in planned.calls] == [False, False]
