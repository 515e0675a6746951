"""``wait_rollout``: wait until a Deployment's rollout is complete, by ``kubectl rollout status``'s rule.

Done when ``status.observedGeneration >= metadata.generation`` and ``updatedReplicas`` equals
``spec.replicas``, ``replicas`` equals ``updatedReplicas`` and ``availableReplicas`` equals
``updatedReplicas``. Failed at once when the Progressing condition has reason
``ProgressDeadlineExceeded``; failed when ``timeout`` passes first. A dry run does not wait.
"""

from __future__ import annotations

from typing import Any, Literal

from alert_router.durations import format_duration
from alert_router.errors import FailureReason
from alert_router.remediation.actions.base import ActionParams, ActionType, StepContext, StepFailed, StepResult
from alert_router.remediation.kube import KubeError


class Params(ActionParams):
    """``timeout`` bounds the wait (default: the runbook's step timeout)."""

    action: Literal["wait_rollout"]


def rollout_status(dep: dict[str, Any]) -> tuple[bool, str]:
    """``(done, message)`` for a Deployment; raises :class:`StepFailed` on ``ProgressDeadlineExceeded``."""
    meta, spec, status = dep.get("metadata") or {}, dep.get("spec") or {}, dep.get("status") or {}
    name = meta.get("name", "?")
    if int(meta.get("generation", 0)) > int(status.get("observedGeneration", 0)):
        return False, "waiting for the deployment spec update to be observed"
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            raise StepFailed(
                FailureReason.TIMEOUT,
                f"deployment {name!r} exceeded its progress deadline: {cond.get('message', '')}".rstrip(": "),
            )
    desired = int(spec.get("replicas", 1))
    updated = int(status.get("updatedReplicas", 0))
    replicas = int(status.get("replicas", 0))
    available = int(status.get("availableReplicas", 0))
    if updated < desired:
        return False, f"{updated} out of {desired} new replicas have been updated"
    if replicas > updated:
        return False, f"{replicas - updated} old replicas are pending termination"
    if available < updated:
        return False, f"{available} of {updated} updated replicas are available"
    return True, f"deployment {name!r} successfully rolled out ({available} available)"


async def run(ctx: StepContext, params: Params) -> StepResult:
    """Poll the Deployment until the rollout completes, fails or the step times out."""
    t = ctx.require_target("Deployment")
    if ctx.dry_run:
        return StepResult(f"would wait up to {format_duration(ctx.remaining())} for the rollout of {t.key}")
    polls = 0
    message = "not read yet"
    while True:
        try:
            dep = await ctx.kube.read_deployment(t.namespace, t.name)
        except KubeError as exc:
            raise StepFailed.from_kube(exc, f"reading {t.key}") from None
        polls += 1
        del ctx.kube.calls[1:-1]  # keep the first and the latest read: the polls between say nothing more
        done, message = rollout_status(dep or {})
        if done:
            return StepResult(message, {"polls": polls})
        if ctx.remaining() <= ctx.poll_interval / 2:
            raise StepFailed(FailureReason.TIMEOUT, f"rollout of {t.key} not complete in time: {message}",
                             {"polls": polls})
        await ctx.sleep()


ACTION = ActionType(
    "wait_rollout",
    Params,
    run,
    "wait for a Deployment's rollout to complete (kubectl rollout status)",
    target_kinds=frozenset({"Deployment"}),
    waits=True,
)
