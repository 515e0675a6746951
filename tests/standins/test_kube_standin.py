"""The Kubernetes API stand-in, driven through the real official ``kubernetes`` client."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from tests.standins.kube import ALLOW_ALL_RULES, KubeApiStandin, parse_label_selector

NS = "prod"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


def wait_until(pred: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


def rollout_done(dep: client.V1Deployment) -> bool:
    """kubectl rollout status's definition of done (protocols.md)."""
    s, want = dep.status, dep.spec.replicas
    return (
        (s.observed_generation or 0) >= dep.metadata.generation
        and (s.updated_replicas or 0) == want
        and (s.replicas or 0) == (s.updated_replicas or 0)
        and (s.available_replicas or 0) == (s.updated_replicas or 0)
    )


def status_body(exc: ApiException) -> dict[str, Any]:
    body = json.loads(exc.body)
    assert body["kind"] == "Status"
    assert body["apiVersion"] == "v1"
    assert body["status"] == "Failure"
    assert body["code"] == exc.status
    return body  # type: ignore[no-any-return]


@pytest.fixture
def apps(kube_api_client: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(kube_api_client)


@pytest.fixture
def core(kube_api_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(kube_api_client)


@pytest.fixture
def batch(kube_api_client: client.ApiClient) -> client.BatchV1Api:
    return client.BatchV1Api(kube_api_client)


@pytest.fixture
def admin(tmp_path: Path) -> Iterator[tuple[KubeApiStandin, client.ApiClient]]:
    """A stand-in that allows everything, with its own client."""
    with KubeApiStandin(rules=ALLOW_ALL_RULES, controller_step=0.01) as kube:
        api = config.new_client_from_config(config_file=str(kube.kubeconfig(tmp_path / "admin.kubeconfig")))
        try:
            yield kube, api
        finally:
            api.close()
        assert not kube.internal_errors


def test_read_deployment_through_kubeconfig(kube_standin: KubeApiStandin, apps: client.AppsV1Api) -> None:
    kube_standin.add_deployment(NS, "web", replicas=3)
    dep = apps.read_namespaced_deployment("web", NS)
    assert dep.metadata.name == "web"
    assert dep.metadata.namespace == NS
    assert dep.metadata.generation == 1
    assert dep.spec.replicas == 3
    assert dep.spec.selector.match_labels == {"app": "web"}
    assert dep.status.observed_generation == 1
    assert dep.status.available_replicas == 3
    assert rollout_done(dep)
    progressing = next(c for c in dep.status.conditions if c.type == "Progressing")
    assert progressing.reason == "NewReplicaSetAvailable"
    req = kube_standin.requests[-1]
    assert req.headers["Authorization"] == f"Bearer {kube_standin.token}"
    assert req.path == f"/apis/apps/v1/namespaces/{NS}/deployments/web"


def test_list_deployments_and_missing_one_is_404(kube_standin: KubeApiStandin, apps: client.AppsV1Api) -> None:
    kube_standin.add_deployment(NS, "web")
    kube_standin.add_deployment(NS, "api")
    kube_standin.add_deployment("other", "web")
    names = [d.metadata.name for d in apps.list_namespaced_deployment(NS).items]
    assert names == ["api", "web"]
    with pytest.raises(ApiException) as err:
        apps.read_namespaced_deployment("nope", NS)
    assert err.value.status == 404
    body = status_body(err.value)
    assert body["reason"] == "NotFound"
    assert body["message"] == 'deployments.apps "nope" not found'


def test_rollout_restart_bumps_generation_and_controller_converges(
    kube_standin: KubeApiStandin, apps: client.AppsV1Api
) -> None:
    kube_standin.add_deployment(NS, "web", replicas=3)
    before = apps.read_namespaced_deployment("web", NS)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    patched = apps.patch_namespaced_deployment(
        "web", NS, {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: now}}}}}
    )
    assert patched.metadata.generation == 2
    assert int(patched.metadata.resource_version) > int(before.metadata.resource_version)
    assert patched.spec.template.metadata.annotations[RESTARTED_AT] == now
    # strategic merge kept the rest of the template
    assert patched.spec.template.metadata.labels == {"app": "web"}
    assert patched.spec.template.spec.containers[0].name == "web"
    assert not rollout_done(patched)

    req = kube_standin.requests_to("/deployments/web", method="PATCH")[0]
    assert req.content_type == "application/strategic-merge-patch+json"
    assert req.body == {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: now}}}}}

    seen_partial = []

    def done() -> bool:
        dep = apps.read_namespaced_deployment("web", NS)
        seen_partial.append(dep.status.updated_replicas or 0)
        return rollout_done(dep)

    wait_until(done)
    final = apps.read_namespaced_deployment("web", NS)
    assert final.status.observed_generation == 2
    assert final.status.updated_replicas == final.status.available_replicas == 3
    assert final.metadata.annotations["deployment.kubernetes.io/revision"] == "2"
    assert any(0 < n < 3 for n in seen_partial), "the rollout should pass through partial states"


def test_scale_subresource_get_and_patch(kube_standin: KubeApiStandin, apps: client.AppsV1Api) -> None:
    kube_standin.add_deployment(NS, "web", replicas=2)
    scale = apps.read_namespaced_deployment_scale("web", NS)
    assert scale.kind == "Scale"
    assert scale.api_version == "autoscaling/v1"
    assert scale.spec.replicas == 2
    assert scale.status.replicas == 2
    assert scale.status.selector == "app=web"

    out = apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 4}})
    assert out.spec.replicas == 4
    req = kube_standin.requests_to("/deployments/web/scale", method="PATCH")[0]
    assert req.content_type == "application/strategic-merge-patch+json"
    dep = apps.read_namespaced_deployment("web", NS)
    assert dep.spec.replicas == 4
    assert dep.metadata.generation == 2
    wait_until(lambda: rollout_done(apps.read_namespaced_deployment("web", NS)))
    assert apps.read_namespaced_deployment("web", NS).status.available_replicas == 4

    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": -1}})
    assert err.value.status == 422
    assert status_body(err.value)["reason"] == "Invalid"


def test_forbidden_outside_rbac_rules(
    kube_standin: KubeApiStandin, apps: client.AppsV1Api, core: client.CoreV1Api, batch: client.BatchV1Api
) -> None:
    kube_standin.add_deployment(NS, "web")
    kube_standin.add_pod(NS, "web-1")
    kube_standin.add_cronjob(NS, "nightly", {"template": {"spec": {"containers": [], "restartPolicy": "Never"}}})
    calls: list[Callable[[], Any]] = [
        lambda: apps.delete_namespaced_deployment("web", NS),
        lambda: apps.replace_namespaced_deployment("web", NS, apps.read_namespaced_deployment("web", NS)),
        lambda: core.read_namespaced_pod("web-1", NS),
        lambda: batch.patch_namespaced_cron_job("nightly", NS, {"spec": {"suspend": True}}),
        lambda: core.list_namespaced_secret(NS),
    ]
    for call in calls:
        with pytest.raises(ApiException) as err:
            call()
        assert err.value.status == 403
        assert status_body(err.value)["reason"] == "Forbidden"
    with pytest.raises(ApiException) as err:
        apps.delete_namespaced_deployment("web", NS)
    body = status_body(err.value)
    assert err.value.status == 403
    assert body["message"] == (
        'deployments.apps "web" is forbidden: User "system:serviceaccount:alert-router:alert-router" '
        'cannot delete resource "deployments" in API group "apps" in the namespace "prod"'
    )
    assert body["details"] == {"name": "web", "group": "apps", "kind": "deployments"}
    assert kube_standin.get_object("deployments", NS, "web") is not None


def test_subresource_rules_are_separate(tmp_path: Path) -> None:
    rules = [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "patch"]}]
    with KubeApiStandin(rules=rules, controller_step=None) as kube:
        kube.add_deployment(NS, "web")
        with config.new_client_from_config(config_file=str(kube.kubeconfig(tmp_path / "kc"))) as api:
            apps = client.AppsV1Api(api)
            apps.read_namespaced_deployment("web", NS)
            with pytest.raises(ApiException) as err:
                apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 2}})
            assert err.value.status == 403
            assert 'cannot patch resource "deployments/scale"' in status_body(err.value)["message"]
        assert kube.deployment(NS, "web")["spec"]["replicas"] == 1


def test_stale_resource_version_conflicts(
    admin: tuple[KubeApiStandin, client.ApiClient],
) -> None:
    kube, api = admin
    apps = client.AppsV1Api(api)
    kube.add_deployment(NS, "web", replicas=1)
    stale = apps.read_namespaced_deployment("web", NS)
    apps.patch_namespaced_deployment("web", NS, {"metadata": {"labels": {"team": "a"}}})
    fresh = apps.read_namespaced_deployment("web", NS)
    assert int(fresh.metadata.resource_version) > int(stale.metadata.resource_version)
    assert fresh.metadata.generation == stale.metadata.generation  # metadata-only change

    stale.spec.replicas = 5
    with pytest.raises(ApiException) as err:
        apps.replace_namespaced_deployment("web", NS, stale)
    assert err.value.status == 409
    body = status_body(err.value)
    assert body["reason"] == "Conflict"
    assert "the object has been modified" in body["message"]

    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_deployment(
            "web",
            NS,
            {"metadata": {"resourceVersion": stale.metadata.resource_version}, "spec": {"replicas": 5}},
        )
    assert err.value.status == 409
    assert kube.deployment(NS, "web")["spec"]["replicas"] == 1

    # with the current resourceVersion the same update succeeds
    fresh.spec.replicas = 2
    updated = apps.replace_namespaced_deployment("web", NS, fresh)
    assert updated.spec.replicas == 2
    assert updated.metadata.generation == fresh.metadata.generation + 1


def test_conflict_next_injects_409_once(kube_standin: KubeApiStandin, apps: client.AppsV1Api) -> None:
    kube_standin.add_deployment(NS, "web")
    kube_standin.conflict_next(1)
    body = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: "x"}}}}}
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_deployment("web", NS, body)
    assert err.value.status == 409
    assert kube_standin.deployment(NS, "web")["metadata"]["generation"] == 1
    assert apps.patch_namespaced_deployment("web", NS, body).metadata.generation == 2


def test_create_job_from_cronjob_template(kube_standin: KubeApiStandin, batch: client.BatchV1Api) -> None:
    template = {
        "backoffLimit": 2,
        "template": {
            "spec": {
                "containers": [{"name": "backup", "image": "backup:1", "args": ["--all"]}],
                "restartPolicy": "OnFailure",
            }
        },
    }
    kube_standin.add_cronjob(NS, "nightly-backup", template, job_labels={"team": "db"})
    cj = batch.read_namespaced_cron_job("nightly-backup", NS)
    assert cj.spec.job_template.spec.backoff_limit == 2
    job_name = "nightly-backup-manual-" + "x" * 10
    job = client.V1Job(
        api_version="batch/v1",
        kind="Job",
        metadata=client.V1ObjectMeta(
            name=job_name,
            labels=cj.spec.job_template.metadata.labels,
            annotations={"cronjob.kubernetes.io/instantiate": "manual"},
            owner_references=[
                client.V1OwnerReference(
                    api_version="batch/v1",
                    kind="CronJob",
                    name=cj.metadata.name,
                    uid=cj.metadata.uid,
                    controller=True,
                )
            ],
        ),
        spec=cj.spec.job_template.spec,
    )
    created = batch.create_namespaced_job(NS, job)
    assert created.metadata.name == job_name
    assert created.metadata.labels["team"] == "db"
    assert created.metadata.labels["job-name"] == job_name
    assert created.metadata.owner_references[0].uid == cj.metadata.uid
    assert created.spec.template.spec.containers[0].args == ["--all"]
    post = kube_standin.requests_to("/jobs", method="POST")[0]
    assert post.status == 201
    assert post.body["metadata"]["annotations"] == {"cronjob.kubernetes.io/instantiate": "manual"}

    wait_until(lambda: (batch.read_namespaced_job(job_name, NS).status.succeeded or 0) == 1)
    done = batch.read_namespaced_job(job_name, NS)
    assert any(c.type == "Complete" and c.status == "True" for c in done.status.conditions)

    with pytest.raises(ApiException) as err:
        batch.create_namespaced_job(NS, job)
    assert err.value.status == 409
    assert status_body(err.value)["reason"] == "AlreadyExists"


@pytest.mark.parametrize(
    ("name", "spec_patch", "field"),
    [
        ("a" * 64, {}, "metadata.name"),
        ("Bad_Name", {}, "metadata.name"),
        ("ok-name", {"restartPolicy": "Always"}, "spec.template.spec.restartPolicy"),
        ("ok-name", {"containers": []}, "spec.template.spec.containers"),
    ],
)
def test_job_create_validation_is_422(
    kube_standin: KubeApiStandin, batch: client.BatchV1Api, name: str, spec_patch: dict[str, Any], field: str
) -> None:
    pod_spec: dict[str, Any] = {"containers": [{"name": "c", "image": "i"}], "restartPolicy": "Never"}
    pod_spec.update(spec_patch)
    body = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"template": {"spec": pod_spec}},
    }
    with pytest.raises(ApiException) as err:
        batch.create_namespaced_job(NS, body)
    assert err.value.status == 422
    status = status_body(err.value)
    assert status["reason"] == "Invalid"
    assert field in [c["field"] for c in status["details"]["causes"]]
    assert kube_standin.jobs(NS) == []


def test_injected_500_then_recovery(kube_standin: KubeApiStandin, apps: client.AppsV1Api) -> None:
    kube_standin.add_deployment(NS, "web")
    kube_standin.fail_next(1, status=500)
    with pytest.raises(ApiException) as err:
        apps.read_namespaced_deployment("web", NS)
    assert err.value.status == 500
    assert status_body(err.value)["reason"] == "InternalError"
    assert apps.read_namespaced_deployment("web", NS).metadata.name == "web"

    kube_standin.fail_next(1, status=503, method="PATCH")
    apps.read_namespaced_deployment("web", NS)  # not matched by the filter
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 2}})
    assert err.value.status == 503
    assert kube_standin.deployment(NS, "web")["spec"]["replicas"] == 1


def test_pod_list_and_delete(kube_standin: KubeApiStandin, core: client.CoreV1Api) -> None:
    kube_standin.add_deployment(NS, "web", replicas=2)
    kube_standin.add_pod(NS, "web-7d4b9-aaaaa", owner_deployment="web", restart_count=7, logs="l1\nl2\n")
    kube_standin.add_pod(NS, "web-7d4b9-bbbbb", owner_deployment="web")
    kube_standin.add_pod(NS, "db-0", {"app": "db"})
    pods = core.list_namespaced_pod(NS, label_selector="app=web")
    assert sorted(p.metadata.name for p in pods.items) == ["web-7d4b9-aaaaa", "web-7d4b9-bbbbb"]
    assert {p.status.container_statuses[0].restart_count for p in pods.items} == {0, 7}
    assert [p.metadata.name for p in core.list_namespaced_pod(NS, label_selector="app in (db)").items] == ["db-0"]
    assert core.read_namespaced_pod_log("web-7d4b9-aaaaa", NS, tail_lines=1) == "l2\n"

    deleted = core.delete_namespaced_pod("web-7d4b9-aaaaa", NS)
    assert deleted.metadata.name == "web-7d4b9-aaaaa"
    assert deleted.metadata.deletion_timestamp is not None
    names = [p.metadata.name for p in core.list_namespaced_pod(NS, label_selector="app=web").items]
    assert "web-7d4b9-aaaaa" not in names
    assert len(names) == 2, "the ReplicaSet replaces a deleted pod"
    with pytest.raises(ApiException) as err:
        core.delete_namespaced_pod("web-7d4b9-aaaaa", NS)
    assert err.value.status == 404
    assert core.list_namespaced_event(NS).items == []


def test_reads_make_no_mutating_request_and_dry_run_persists_nothing(
    kube_standin: KubeApiStandin, apps: client.AppsV1Api, core: client.CoreV1Api
) -> None:
    kube_standin.add_deployment(NS, "web", replicas=2)
    apps.read_namespaced_deployment("web", NS)
    apps.read_namespaced_deployment_scale("web", NS)
    core.list_namespaced_pod(NS)
    assert kube_standin.mutating_requests == []

    out = apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 9}}, dry_run="All")
    assert out.spec.replicas == 9
    assert kube_standin.deployment(NS, "web")["spec"]["replicas"] == 2
    [req] = kube_standin.mutating_requests
    assert req.query == {"dryRun": "All"}


def test_stuck_rollout_and_progress_deadline(kube_standin: KubeApiStandin, apps: client.AppsV1Api) -> None:
    kube_standin.add_deployment(NS, "web", replicas=2)
    kube_standin.stall(NS, "web")
    apps.patch_namespaced_deployment("web", NS, {"spec": {"template": {"metadata": {"annotations": {"x": "1"}}}}})
    wait_until(lambda: apps.read_namespaced_deployment("web", NS).status.observed_generation == 2)
    time.sleep(0.3)
    dep = apps.read_namespaced_deployment("web", NS)
    assert not rollout_done(dep)
    assert (dep.status.updated_replicas or 0) < 2
    kube_standin.set_progress_deadline_exceeded(NS, "web")
    dep = apps.read_namespaced_deployment("web", NS)
    cond = next(c for c in dep.status.conditions if c.type == "Progressing")
    assert (cond.status, cond.reason) == ("False", "ProgressDeadlineExceeded")
    kube_standin.unstall(NS, "web")
    wait_until(lambda: rollout_done(apps.read_namespaced_deployment("web", NS)))


def test_progress_deadline_expires_by_itself(kube_standin: KubeApiStandin, apps: client.AppsV1Api) -> None:
    kube_standin.add_deployment(NS, "web", replicas=1, progress_deadline_seconds=1)
    kube_standin.stall(NS, "web")
    apps.patch_namespaced_deployment("web", NS, {"spec": {"template": {"metadata": {"annotations": {"x": "1"}}}}})

    def deadline_exceeded() -> bool:
        conds = apps.read_namespaced_deployment("web", NS).status.conditions
        return any(c.type == "Progressing" and c.reason == "ProgressDeadlineExceeded" for c in conds)

    wait_until(deadline_exceeded, timeout=4)


def test_paused_deployment_does_not_roll_out(kube_standin: KubeApiStandin, apps: client.AppsV1Api) -> None:
    kube_standin.add_deployment(NS, "web", replicas=2, paused=True)
    assert apps.read_namespaced_deployment("web", NS).spec.paused is True
    apps.patch_namespaced_deployment("web", NS, {"spec": {"template": {"metadata": {"annotations": {"x": "1"}}}}})
    wait_until(lambda: apps.read_namespaced_deployment("web", NS).status.observed_generation == 2)
    time.sleep(0.3)
    dep = apps.read_namespaced_deployment("web", NS)
    assert not rollout_done(dep)
    assert next(c for c in dep.status.conditions if c.type == "Progressing").reason == "DeploymentPaused"
    apps.patch_namespaced_deployment("web", NS, {"spec": {"paused": None}})
    wait_until(lambda: rollout_done(apps.read_namespaced_deployment("web", NS)))


def test_json_patch_and_merge_patch(admin: tuple[KubeApiStandin, client.ApiClient]) -> None:
    kube, api = admin
    apps = client.AppsV1Api(api)
    kube.add_deployment(NS, "web", replicas=1)
    apps.patch_namespaced_deployment("web", NS, [{"op": "replace", "path": "/spec/replicas", "value": 3}])
    assert kube.requests_to("/deployments/web", "PATCH")[-1].content_type == "application/json-patch+json"
    assert kube.deployment(NS, "web")["spec"]["replicas"] == 3
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_deployment("web", NS, [{"op": "test", "path": "/spec/replicas", "value": 7}])
    assert err.value.status == 422
    apps.patch_namespaced_deployment(
        "web",
        NS,
        {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "new:2"}]}}}},
        _content_type="application/merge-patch+json",
    )
    containers = kube.deployment(NS, "web")["spec"]["template"]["spec"]["containers"]
    assert containers == [{"name": "web", "image": "new:2"}]  # merge patch replaces lists


def test_strategic_merge_merges_containers_by_name(admin: tuple[KubeApiStandin, client.ApiClient]) -> None:
    kube, api = admin
    apps = client.AppsV1Api(api)
    kube.add_deployment(NS, "web")
    apps.patch_namespaced_deployment(
        "web", NS, {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "new:2"}]}}}}
    )
    [container] = kube.deployment(NS, "web")["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "new:2"
    assert container["imagePullPolicy"] == "IfNotPresent"  # kept by the merge


def test_leases_create_get_update(admin: tuple[KubeApiStandin, client.ApiClient]) -> None:
    _, api = admin
    coord = client.CoordinationV1Api(api)
    lease = client.V1Lease(
        metadata=client.V1ObjectMeta(name="alert-router"),
        spec=client.V1LeaseSpec(holder_identity="pod-a", lease_duration_seconds=15),
    )
    created = coord.create_namespaced_lease(NS, lease)
    got = coord.read_namespaced_lease("alert-router", NS)
    assert got.spec.holder_identity == "pod-a"
    got.spec.holder_identity = "pod-b"
    coord.replace_namespaced_lease("alert-router", NS, got)
    created.spec.holder_identity = "pod-c"
    with pytest.raises(ApiException) as err:
        coord.replace_namespaced_lease("alert-router", NS, created)
    assert err.value.status == 409
    assert coord.read_namespaced_lease("alert-router", NS).spec.holder_identity == "pod-b"


def test_wrong_token_is_401(kube_standin: KubeApiStandin, tmp_path: Path) -> None:
    path = kube_standin.kubeconfig(tmp_path / "bad", token="nope")
    with config.new_client_from_config(config_file=str(path)) as api:
        with pytest.raises(ApiException) as err:
            client.AppsV1Api(api).list_namespaced_deployment(NS)
        assert err.value.status == 401


async def test_async_code_drives_client_from_a_thread(kube_standin: KubeApiStandin, apps: client.AppsV1Api) -> None:
    kube_standin.add_deployment(NS, "web", replicas=2)
    kube_standin.delay = 0.05
    results = await asyncio.gather(*(asyncio.to_thread(apps.read_namespaced_deployment, "web", NS) for _ in range(4)))
    assert {d.metadata.name for d in results} == {"web"}
    assert len(kube_standin.requests) == 4


def test_label_selector_parser() -> None:
    pred = parse_label_selector("app=web,tier!=db,env in (prod, staging),!canary,team")
    assert pred({"app": "web", "env": "prod", "team": "x"})
    assert not pred({"app": "web", "env": "dev", "team": "x"})
    assert not pred({"app": "web", "env": "prod", "team": "x", "canary": "1"})
    assert not pred({"app": "web", "env": "prod"})
    assert parse_label_selector("")({})


# -- revisions, events, previous logs, StatefulSets, HPAs, dry runs, owner references ----------------


def revision(rs: client.V1ReplicaSet) -> int:
    return int(rs.metadata.annotations["deployment.kubernetes.io/revision"])


def test_replicasets_carry_revisions_and_a_rollback_reuses_one(
    kube_standin: KubeApiStandin, apps: client.AppsV1Api
) -> None:
    """Each template gets a ReplicaSet owned by the Deployment; going back to a template reuses its ReplicaSet."""
    kube_standin.rules = ALLOW_ALL_RULES
    kube_standin.add_deployment(NS, "web", replicas=2, image="model:v41")
    kube_standin.set_image(NS, "web", "model:v42", change_cause="deploy v42")
    dep = apps.read_namespaced_deployment("web", NS)
    rss = apps.list_namespaced_replica_set(NS, label_selector="app=web").items
    assert sorted(revision(rs) for rs in rss) == [1, 2]
    newest = max(rss, key=revision)
    assert newest.spec.template.spec.containers[0].image == "model:v42"
    assert newest.metadata.annotations["kubernetes.io/change-cause"] == "deploy v42"
    assert newest.spec.template.metadata.labels["pod-template-hash"] in newest.metadata.name
    (owner,) = newest.metadata.owner_references
    assert (owner.kind, owner.uid, owner.controller, owner.block_owner_deletion) == (
        "Deployment", dep.metadata.uid, True, True)
    assert dep.metadata.annotations["deployment.kubernetes.io/revision"] == "2"
    assert (newest.spec.replicas, min(rss, key=revision).spec.replicas) == (2, 0)

    old = min(rss, key=revision)
    template = old.to_dict()["spec"]["template"]
    apps.patch_namespaced_deployment("web", NS, [
        {"op": "replace", "path": "/spec/template", "value": {
            "metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                {"name": "web", "image": "model:v41", "imagePullPolicy": "IfNotPresent", "resources": {},
                 "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"}],
                "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
                "schedulerName": "default-scheduler", "securityContext": {}}}}])
    wait_until(lambda: rollout_done(apps.read_namespaced_deployment("web", NS)))
    reused = apps.read_namespaced_replica_set(old.metadata.name, NS)
    assert template["spec"]["containers"][0]["image"] == "model:v41"
    assert revision(reused) == 3
    assert reused.metadata.annotations["deployment.kubernetes.io/revision-history"] == "1"
    assert apps.read_namespaced_deployment("web", NS).metadata.annotations[
        "deployment.kubernetes.io/revision"] == "3"
    assert len(apps.list_namespaced_replica_set(NS).items) == 2
    reasons = [e.reason for e in client.CoreV1Api(apps.api_client).list_namespaced_event(
        NS, field_selector="involvedObject.name=web").items]
    assert reasons.count("ScalingReplicaSet") == 2


def test_events_by_field_selector(kube_standin: KubeApiStandin, core: client.CoreV1Api) -> None:
    kube_standin.add_pod(NS, "web-1", {"app": "web"})
    kube_standin.add_event(NS, "Pod", "web-1", "BackOff", "Back-off restarting failed container", count=7)
    kube_standin.add_event(NS, "Pod", "db-0", "Pulled", "pulled", type_="Normal")
    (event,) = core.list_namespaced_event(NS, field_selector="involvedObject.kind=Pod,involvedObject.name=web-1").items
    assert (event.type, event.reason, event.count) == ("Warning", "BackOff", 7)
    assert event.involved_object.uid == kube_standin.pods(NS)[0]["metadata"]["uid"]
    assert event.last_timestamp is not None
    assert [e.reason for e in core.list_namespaced_event(NS, field_selector="type=Warning").items] == ["BackOff"]
    with pytest.raises(ApiException) as err:
        core.list_namespaced_event(NS, field_selector="involvedObject.color=red")
    assert err.value.status == 400


def test_previous_container_log_or_400(kube_standin: KubeApiStandin, core: client.CoreV1Api) -> None:
    """?previous=true reads the terminated container's log; without one the API answers 400, as the kubelet."""
    kube_standin.add_pod(NS, "crash-1", {"app": "m"}, ready=False, restart_count=4, waiting_reason="CrashLoopBackOff",
                         last_termination={"reason": "OOMKilled", "exitCode": 137},
                         previous_logs="loading model\nCUDA out of memory\n", logs="")
    kube_standin.add_pod(NS, "fine-1", {"app": "m"}, logs="ok\n")
    (pod,) = core.list_namespaced_pod(NS, field_selector="metadata.name=crash-1").items
    cs = pod.status.container_statuses[0]
    assert cs.state.waiting.reason == "CrashLoopBackOff" and not cs.ready
    assert (cs.last_state.terminated.reason, cs.last_state.terminated.exit_code) == ("OOMKilled", 137)
    assert core.read_namespaced_pod_log("crash-1", NS, previous=True, tail_lines=1) == "CUDA out of memory\n"
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod_log("fine-1", NS, previous=True)
    assert err.value.status == 400
    assert status_body(err.value)["message"] == 'previous terminated container "fine-1" in pod "fine-1" not found'
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod_log("fine-1", NS, container="nope")
    assert err.value.status == 400


def test_statefulset_rollout_and_scale(kube_standin: KubeApiStandin, apps: client.AppsV1Api) -> None:
    kube_standin.add_statefulset(NS, "db", replicas=3)
    sts = apps.read_namespaced_stateful_set("db", NS)
    assert sts.status.ready_replicas == 3 and sts.status.current_revision == sts.status.update_revision
    apps.patch_namespaced_stateful_set("db", NS, {"spec": {"template": {"metadata": {"annotations": {
        RESTARTED_AT: "2026-11-27T00:00:00Z"}}}}})
    seen = []

    def done() -> bool:
        s = apps.read_namespaced_stateful_set("db", NS).status
        seen.append(s.updated_replicas or 0)
        return s.observed_generation == 2 and s.current_revision == s.update_revision and s.updated_replicas == 3

    wait_until(done)
    assert any(0 < n < 3 for n in seen)
    assert apps.patch_namespaced_stateful_set_scale("db", NS, {"spec": {"replicas": 5}}).spec.replicas == 5
    wait_until(lambda: apps.read_namespaced_stateful_set("db", NS).status.ready_replicas == 5)
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_stateful_set("db", NS, {"spec": {"serviceName": "other"}})
    assert err.value.status == 422 and "Forbidden: updates to statefulset spec" in status_body(err.value)["message"]


def test_hpa_owns_the_replica_count(kube_standin: KubeApiStandin, apps: client.AppsV1Api,
                                    kube_api_client: client.ApiClient) -> None:
    """A scale patch that ignores the HPA is undone at its next sync; raising minReplicas sticks."""
    auto = client.AutoscalingV2Api(kube_api_client)
    kube_standin.rules = ALLOW_ALL_RULES
    kube_standin.add_deployment(NS, "web", replicas=3)
    kube_standin.add_hpa(NS, "web-hpa", "Deployment", "web", min_replicas=2, max_replicas=6)
    apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 5}})
    wait_until(lambda: kube_standin.deployment(NS, "web")["spec"]["replicas"] == 3)
    hpa = auto.read_namespaced_horizontal_pod_autoscaler("web-hpa", NS)
    assert (hpa.spec.min_replicas, hpa.spec.max_replicas, hpa.spec.scale_target_ref.name) == (2, 6, "web")
    auto.patch_namespaced_horizontal_pod_autoscaler("web-hpa", NS, {"spec": {"minReplicas": 5}})
    wait_until(lambda: kube_standin.deployment(NS, "web")["spec"]["replicas"] == 5)
    status = auto.read_namespaced_horizontal_pod_autoscaler("web-hpa", NS).status
    assert status.desired_replicas == 5
    with pytest.raises(ApiException) as err:
        auto.patch_namespaced_horizontal_pod_autoscaler("web-hpa", NS, {"spec": {"minReplicas": 7}})
    assert err.value.status == 422
    assert "must be greater than or equal to `minReplicas`" in status_body(err.value)["message"]


def test_dry_run_is_authorized_and_validated_but_never_applied(
    kube_standin: KubeApiStandin, apps: client.AppsV1Api, batch: client.BatchV1Api
) -> None:
    kube_standin.add_deployment(NS, "web", replicas=2)
    kube_standin.rules = [r for r in kube_standin.rules if r["resources"] != ["deployments/scale"]]
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 3}}, dry_run="All")
    assert err.value.status == 403
    with pytest.raises(ApiException) as err:
        batch.create_namespaced_job(NS, {"metadata": {"name": "Bad_Name"}, "spec": {"template": {"spec": {
            "containers": [{"name": "t", "image": "i"}], "restartPolicy": "Never"}}}}, dry_run="All")
    assert err.value.status == 422
    out = apps.patch_namespaced_deployment("web", NS, {"spec": {"template": {"metadata": {"annotations": {
        "x": "1"}}}}}, dry_run="All")
    assert out.metadata.generation == 2 and kube_standin.deployment(NS, "web")["metadata"]["generation"] == 1
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_deployment("web", NS, {"spec": {}}, dry_run="Yes")
    assert err.value.status == 400
    assert [r.status for r in kube_standin.persisting_requests] == [400]  # only the refused dryRun=Yes
    assert kube_standin.deployment(NS, "web")["spec"]["replicas"] == 2


def test_owner_references_permission_enforcement(tmp_path: Path) -> None:
    """With the admission plugin on, blockOwnerDeletion needs update on the owner's finalizers."""
    with KubeApiStandin(owner_references_permission_enforcement=True) as kube:
        kube.add_cronjob(NS, "retrain", {"template": {"spec": {"containers": [{"name": "t", "image": "i"}],
                                                               "restartPolicy": "Never"}}})
        uid = kube.get_object("cronjobs", NS, "retrain")["metadata"]["uid"]  # type: ignore[index]
        with config.new_client_from_config(config_file=str(kube.kubeconfig(tmp_path / "k"))) as api:
            batch = client.BatchV1Api(api)
            job = {"metadata": {"name": "j1", "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob",
                                                                   "name": "retrain", "uid": uid, "controller": True}]},
                   "spec": {"template": {"spec": {"containers": [{"name": "t", "image": "i"}],
                                                  "restartPolicy": "Never"}}}}
            batch.create_namespaced_job(NS, job)
            job["metadata"]["name"] = "j2"
            job["metadata"]["ownerReferences"][0]["blockOwnerDeletion"] = True  # type: ignore[index]
            with pytest.raises(ApiException) as err:
                batch.create_namespaced_job(NS, job)
        assert err.value.status == 403
        assert "cannot set blockOwnerDeletion" in status_body(err.value)["message"]
        assert [j["metadata"]["name"] for j in kube.jobs(NS)] == ["j1"]
