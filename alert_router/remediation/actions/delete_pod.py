"""``delete_pod``: delete the Pod named in the alert, so its controller replaces it.

The Pod is looked up first (by name, with LIST: the remediator's RBAC has no ``get`` on pods). By
default only a Pod that has a controller (ReplicaSet, StatefulSet, Job...) is deleted: deleting a
bare Pod would not bring it back. A Pod already gone counts as done, so a retried delete is safe.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from alert_router.errors import FailureReason
from alert_router.remediation.actions.base import ActionParams, ActionType, StepContext, StepFailed, StepResult
from alert_router.remediation.kube import KubeError


class Params(ActionParams):
    """An optional grace period; ``require_controller`` (default true)."""

    action: Literal["delete_pod"]
    grace_period_seconds: int | None = Field(default=None, ge=0)
    require_controller: bool = True


async def run(ctx: StepContext, params: Params) -> StepResult:
    """Check the Pod exists and has a controller, then delete it."""
    t = ctx.require_target("Pod")
    try:
        listed = await ctx.kube.list_pods(t.namespace, field_selector=f"metadata.name={t.name}")
    except KubeError as exc:
        raise StepFailed.from_kube(exc, f"looking up {t.key}") from None
    owner = None
    if listed is not None:
        items = listed.get("items") or []
        if not items:
            raise StepFailed(FailureReason.NOT_FOUND, f"{t.key} does not exist")
        refs = (items[0].get("metadata") or {}).get("ownerReferences") or []
        controller = next((r for r in refs if r.get("controller")), None)
        if controller is None and params.require_controller:
            raise StepFailed(
                FailureReason.REJECTED,
                f"{t.key} has no controller: deleting it would not bring it back (set require_controller: false)",
            )
        owner = f"{controller['kind']}/{controller['name']}" if controller else None
    try:
        deleted = await ctx.kube.delete_pod(t.namespace, t.name, params.grace_period_seconds)
    except KubeError as exc:
        if exc.status == 404:
            return StepResult(f"{t.key} was already gone", {"owner": owner, "deleted": False})
        raise StepFailed.from_kube(exc, f"deleting {t.key}") from None
    if deleted is None:
        return StepResult(f"would delete {t.key}", {"owner": owner})
    return StepResult(f"deleted {t.key}" + (f" (owned by {owner})" if owner else ""), {"owner": owner, "deleted": True})


ACTION = ActionType(
    "delete_pod",
    Params,
    run,
    "delete the Pod named in the alert (only one with a controller, by default)",
    target_kinds=frozenset({"Pod"}),
    mutating=True,
)
