"""``wait_rollout``: wait until a rollout is complete, by ``kubectl rollout status``'s rule.

A Deployment is done when ``status.observedGeneration >= metadata.generation`` and
``updatedReplicas`` equals ``spec.replicas``, ``replicas`` equals ``updatedReplicas`` and
``availableReplicas`` equals ``updatedReplicas``; failed at once when the Progressing condition has
reason ``ProgressDeadlineExceeded``. A StatefulSet (``RollingUpdate`` strategy only) is done when
its generation is observed, ``readyReplicas`` reaches ``spec.replicas`` and ``updatedReplicas``
reaches ``spec.replicas`` minus the partition. Failed when ``timeout`` passes first. A dry run does
not wait.
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


def statefulset_status(sts: dict[str, Any]) -> tuple[bool, str]:
    """``(done, message)`` for a StatefulSet, as kubectl's ``StatefulSetStatusViewer``."""
    meta, spec, status = sts.get("metadata") or {}, sts.get("spec") or {}, sts.get("status") or {}
    name = meta.get("name", "?")
    strategy = spec.get("updateStrategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        raise StepFailed(FailureReason.INVALID, f"statefulset {name!r}: rollout status is only available for the "
                         f"RollingUpdate strategy type (it uses {strategy.get('type')})")
    observed = int(status.get("observedGeneration", 0))
    if observed == 0 or int(meta.get("generation", 0)) > observed:
        return False, "waiting for the statefulset spec update to be observed"
    desired = int(spec.get("replicas", 1))
    ready = int(status.get("readyReplicas", 0))
    if ready < desired:
        return False, f"waiting for {desired - ready} pods to be ready"
    updated = int(status.get("updatedReplicas", 0))
    rolling = strategy.get("rollingUpdate")
    if rolling is not None:  # the API server defaults it (partition 0), so this is the usual path
        target = desired - int(rolling.get("partition", 0) or 0)
        if updated < target:
            return False, f"{updated} out of {target} new pods have been updated"
        return True, f"statefulset {name!r} rolled out ({updated} pods updated)"
    if status.get("updateRevision") != status.get("currentRevision"):
        return False, (f"waiting for the rolling update to complete {updated} pods at revision "
                       f"{status.get('updateRevision')}")
    return True, (f"statefulset {name!r} rolling update complete ({status.get('currentReplicas', 0)} pods at "
                  f"revision {status.get('currentRevision')})")


async def run(ctx: StepContext, params: Params) -> StepResult:
    """Poll the Deployment or StatefulSet until the rollout completes, fails or the step times out."""
    t = ctx.require_target("Deployment", "StatefulSet")
    sts = t.kind == "StatefulSet"
    if ctx.dry_run:
        return StepResult(f"would wait up to {format_duration(ctx.remaining())} for the rollout of {t.key}")
    polls = 0
    message = "not read yet"
    while True:
        try:
            if sts:
                obj = await ctx.kube.read_statefulset(t.namespace, t.name)
            else:
                obj = await ctx.kube.read_deployment(t.namespace, t.name)
        except KubeError as exc:
            raise StepFailed.from_kube(exc, f"reading {t.key}") from None
        polls += 1
        del ctx.kube.calls[1:-1]  # keep the first and the latest read: the polls between say nothing more
        done, message = statefulset_status(obj or {}) if sts else rollout_status(obj or {})
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
    "wait for a Deployment's or StatefulSet's rollout to complete (kubectl rollout status)",
    target_kinds=frozenset({"Deployment", "StatefulSet"}),
    waits=True,
)
