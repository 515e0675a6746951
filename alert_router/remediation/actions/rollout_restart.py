"""``rollout_restart``: what ``kubectl rollout restart deployment/NAME`` (or ``statefulset/NAME``) does.

kubectl patches the pod template's ``kubectl.kubernetes.io/restartedAt`` annotation with the current
time (RFC 3339) as a strategic merge patch, which makes the Deployment or StatefulSet roll its pods;
it refuses a paused Deployment. The timestamp is fixed once per step, so a retried patch sends the
same bytes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from alert_router.errors import FailureReason
from alert_router.remediation.actions.base import ActionParams, ActionType, StepContext, StepFailed, StepResult
from alert_router.remediation.kube import KubeError

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


class Params(ActionParams):
    """No parameters besides the common ones."""

    action: Literal["rollout_restart"]


def restart_patch(stamp: str) -> dict[str, object]:
    """The strategic merge patch kubectl sends, for the RFC 3339 time ``stamp``."""
    return {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}


async def run(ctx: StepContext, params: Params) -> StepResult:
    """Refuse a paused Deployment, then patch the pod template."""
    t = ctx.require_target("Deployment", "StatefulSet")
    sts = t.kind == "StatefulSet"
    try:
        if sts:
            dep = await ctx.kube.read_statefulset(t.namespace, t.name)
        else:
            dep = await ctx.kube.read_deployment(t.namespace, t.name)
    except KubeError as exc:
        raise StepFailed.from_kube(exc, f"reading {t.key}") from None
    if dep is not None and (dep.get("spec") or {}).get("paused"):
        raise StepFailed(
            FailureReason.REJECTED,
            f"{t.key} is paused; resume it first (kubectl refuses to restart a paused Deployment)",
        )
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = restart_patch(stamp)
    try:
        if sts:
            patched = await ctx.kube.patch_statefulset(t.namespace, t.name, body)
        else:
            patched = await ctx.kube.patch_deployment(t.namespace, t.name, body)
    except KubeError as exc:
        raise StepFailed.from_kube(exc, f"restarting {t.key}") from None
    if patched is None:
        return StepResult(f"would restart {t.key} (restartedAt={stamp})", {"restartedAt": stamp})
    generation = (patched.get("metadata") or {}).get("generation")
    return StepResult(f"restarted {t.key} (restartedAt={stamp})", {"restartedAt": stamp, "generation": generation})


ACTION = ActionType(
    "rollout_restart",
    Params,
    run,
    "restart a Deployment's or StatefulSet's pods like `kubectl rollout restart`",
    target_kinds=frozenset({"Deployment", "StatefulSet"}),
    mutating=True,
)
