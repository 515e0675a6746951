"""``rollout_undo``: what ``kubectl rollout undo deployment/NAME [--to-revision=N]`` does.

As kubectl's ``DeploymentRollbacker``: read the Deployment, list the ReplicaSets it controls (its
selector, then the controller ownerReference), and take the one of revision ``to_revision``, or the
newest revision below the current one; no such ReplicaSet fails the step ("no rollout history
found"). A paused Deployment is refused. When the Deployment's pod template already equals that
revision's (ignoring the ``pod-template-hash`` label) nothing is sent. Otherwise one JSON patch
replaces ``spec.template`` with the ReplicaSet's template minus ``pod-template-hash``, and
``metadata.annotations`` with the ReplicaSet's annotations (the Deployment keeps its own revision
bookkeeping and ``last-applied-configuration``). The Deployment controller then rolls the pods back
and gives that ReplicaSet the next revision number. A retried patch sends the same bytes.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

from pydantic import Field

from alert_router.errors import FailureReason
from alert_router.remediation.actions.base import ActionParams, ActionType, StepContext, StepFailed, StepResult
from alert_router.remediation.kube import KubeError, label_selector

REVISION = "deployment.kubernetes.io/revision"
POD_TEMPLATE_HASH = "pod-template-hash"

KEEP_FROM_DEPLOYMENT = frozenset({
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
})
"""Annotations kubectl keeps from the Deployment and never copies from the ReplicaSet (annotationsToSkip)."""


class Params(ActionParams):
    """``to_revision``: the revision to go back to (default: the one before the current)."""

    action: Literal["rollout_undo"]
    to_revision: int | None = Field(default=None, ge=1)


def revision_of(rs: dict[str, Any]) -> int:
    """A ReplicaSet's ``deployment.kubernetes.io/revision`` (0 when absent or not a number)."""
    value = ((rs.get("metadata") or {}).get("annotations") or {}).get(REVISION, "0")
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def choose_revision(replicasets: list[dict[str, Any]], to_revision: int | None, deployment: str) -> dict[str, Any]:
    """The named revision, or the second newest (kubectl's ``deploymentRevision``); raise :class:`StepFailed`."""
    if to_revision:
        for rs in replicasets:
            if revision_of(rs) == to_revision:
                return rs
        raise StepFailed(FailureReason.NOT_FOUND, f"unable to find specified revision {to_revision} in history")
    ordered = sorted((rs for rs in replicasets if revision_of(rs) > 0), key=revision_of, reverse=True)
    if len(ordered) < 2:
        raise StepFailed(
            FailureReason.REJECTED,
            f"no rollout history found for deployment {deployment!r}: there is no previous revision to roll back to",
        )
    return ordered[1]


def _without_hash(template: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(template)
    labels = (out.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(POD_TEMPLATE_HASH, None)
    return out


def undo_patch(deployment: dict[str, Any], rs: dict[str, Any]) -> list[dict[str, Any]]:
    """The JSON patch kubectl sends to restore ``rs``'s pod template and annotations."""
    dep_ann = (deployment.get("metadata") or {}).get("annotations") or {}
    rs_ann = (rs.get("metadata") or {}).get("annotations") or {}
    annotations = {k: v for k, v in dep_ann.items() if k in KEEP_FROM_DEPLOYMENT}
    annotations.update({k: v for k, v in rs_ann.items() if k not in KEEP_FROM_DEPLOYMENT})
    template = _without_hash((rs.get("spec") or {}).get("template") or {})
    return [
        {"op": "replace", "path": "/spec/template", "value": template},
        {"op": "replace", "path": "/metadata/annotations", "value": annotations},
    ]


def _images(template: dict[str, Any]) -> str:
    containers = (template.get("spec") or {}).get("containers") or []
    return ", ".join(str(c.get("image", "")).rsplit("/", 1)[-1] for c in containers)


async def run(ctx: StepContext, params: Params) -> StepResult:
    """Find the revision, refuse a paused Deployment, patch the pod template back."""
    t = ctx.require_target("Deployment")
    which = f"revision {params.to_revision}" if params.to_revision else "the previous revision"
    try:
        dep = await ctx.kube.read_deployment(t.namespace, t.name)
    except KubeError as exc:
        raise StepFailed.from_kube(exc, f"reading {t.key}") from None
    if dep is None:  # a dry run without a cluster: the revision depends on state we cannot read
        await ctx.kube.json_patch_deployment(t.namespace, t.name, [
            {"op": "replace", "path": "/spec/template", "value": f"<pod template of {which}>"},
            {"op": "replace", "path": "/metadata/annotations", "value": f"<annotations of {which}>"},
        ])
        return StepResult(f"would roll back {t.key} to {which}", {"to_revision": params.to_revision})
    selector = label_selector((dep.get("spec") or {}).get("selector"))
    try:
        listed = await ctx.kube.list_replicasets(t.namespace, label_selector=selector)
    except KubeError as exc:
        raise StepFailed.from_kube(exc, f"listing the ReplicaSets of {t.key}") from None
    uid = (dep.get("metadata") or {}).get("uid")
    owned = [
        rs for rs in (listed or {}).get("items") or []
        if any(r.get("controller") and r.get("uid") == uid for r in (rs.get("metadata") or {}).get("ownerReferences")
               or [])
    ]
    rs = choose_revision(owned, params.to_revision, t.name)
    if (dep.get("spec") or {}).get("paused"):
        raise StepFailed(
            FailureReason.REJECTED,
            f"{t.key} is paused: you cannot roll back a paused deployment; resume it first with "
            "'kubectl rollout resume' and try again",
        )
    current = int(((dep.get("metadata") or {}).get("annotations") or {}).get(REVISION, "0") or 0)
    target_rev = revision_of(rs)
    rs_template = (rs.get("spec") or {}).get("template") or {}
    result: dict[str, Any] = {
        "from_revision": current, "to_revision": target_rev, "replicaset": (rs.get("metadata") or {}).get("name"),
        "from_images": _images((dep.get("spec") or {}).get("template") or {}), "to_images": _images(rs_template),
    }
    if _without_hash(rs_template) == _without_hash((dep.get("spec") or {}).get("template") or {}):
        return StepResult(
            f"skipped rollback of {t.key}: the current template already matches revision {target_rev}",
            {**result, "changed": False},
        )
    body = undo_patch(dep, rs)
    try:
        patched = await ctx.kube.json_patch_deployment(t.namespace, t.name, body)
    except KubeError as exc:
        raise StepFailed.from_kube(exc, f"rolling back {t.key} to revision {target_rev}") from None
    move = (f"from revision {current} ({result['from_images']}) to revision {target_rev} "
            f"({result['to_images']})")
    if patched is None:
        return StepResult(f"would roll back {t.key} {move}", {**result, "changed": False})
    return StepResult(f"rolled back {t.key} {move}", {**result, "changed": True})


ACTION = ActionType(
    "rollout_undo",
    Params,
    run,
    "roll a Deployment back to the previous (or a named) revision like `kubectl rollout undo`",
    target_kinds=frozenset({"Deployment"}),
    mutating=True,
)
