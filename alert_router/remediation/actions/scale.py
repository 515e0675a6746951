"""``scale``: set a Deployment's or StatefulSet's replicas to N, by +N, or by a factor — always within a ceiling.

``max_replicas`` is required; ``min_replicas`` defaults to 1 (scaling to zero must be written down).
The new count is computed once from the replicas read at the start of the step and clamped to
``[min_replicas, max_replicas]``; a retried patch sends the same count, so a retry never adds twice.
A step that scales up never scales down (and the reverse): a target already at or above the
ceiling is left alone.

When a HorizontalPodAutoscaler owns the target's replica count (its ``scaleTargetRef`` names the
target), patching the ``scale`` subresource would be undone by the HPA at its next sync. The step
then raises the HPA's ``minReplicas`` to the new count instead (never past the step's
``max_replicas``, nor past the HPA's own ``maxReplicas``), so the HPA itself scales up and keeps
at least that many. It never lowers ``minReplicas``: a scale down is left to the HPA. The raised
floor stays until someone lowers it; the step's summary says so.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field, model_validator

from alert_router.errors import FailureReason
from alert_router.remediation.actions.base import (
    ActionParams,
    ActionType,
    StepContext,
    StepFailed,
    StepResult,
    Target,
)
from alert_router.remediation.kube import KubeError


class Params(ActionParams):
    """Exactly one of ``replicas``, ``by`` or ``factor``; a required ``max_replicas``."""

    action: Literal["scale"]
    replicas: int | None = Field(default=None, ge=0)
    by: int | None = None
    factor: float | None = Field(default=None, gt=0)
    max_replicas: int | None = Field(default=None, ge=1)
    min_replicas: int = Field(default=1, ge=0)

    @model_validator(mode="after")
    def _check(self) -> Params:
        given = [k for k in ("replicas", "by", "factor") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("scale needs exactly one of replicas (to N), by (+/-N) or factor (xF)")
        if self.max_replicas is None:
            raise ValueError("scale needs max_replicas: a ceiling the step can never pass")
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas {self.min_replicas} is above max_replicas {self.max_replicas}")
        if self.replicas is not None and not self.min_replicas <= self.replicas <= self.max_replicas:
            raise ValueError(
                f"replicas {self.replicas} is outside [min_replicas {self.min_replicas}, "
                f"max_replicas {self.max_replicas}]"
            )
        if self.by == 0 or self.factor == 1:
            raise ValueError("by: 0 or factor: 1 would never change anything")
        return self

    @property
    def ceiling(self) -> int:
        """``max_replicas`` (validated present)."""
        assert self.max_replicas is not None
        return self.max_replicas

    def desired(self, current: int) -> int:
        """The count before clamping."""
        if self.replicas is not None:
            return self.replicas
        if self.by is not None:
            return current + self.by
        assert self.factor is not None
        value = current * self.factor
        return math.ceil(value) if self.factor > 1 else math.floor(value)

    def clamp(self, value: int) -> int:
        """Clamp to ``[min_replicas, max_replicas]``."""
        return max(self.min_replicas, min(self.ceiling, value))

    @property
    def direction(self) -> int:
        """+1 for a scale up, -1 for a scale down, 0 for an absolute count."""
        if self.by is not None:
            return 1 if self.by > 0 else -1
        if self.factor is not None:
            return 1 if self.factor > 1 else -1
        return 0

    def describe(self) -> str:
        """``to 5``, ``by +1`` or ``x1.5``, with the bounds."""
        how = (
            f"to {self.replicas}" if self.replicas is not None
            else f"by {self.by:+d}" if self.by is not None
            else f"x{self.factor}"
        )
        return f"{how} within [{self.min_replicas}, {self.ceiling}]"


async def _read_scale(ctx: StepContext, t: Target) -> dict[str, Any] | None:
    if t.kind == "StatefulSet":
        return await ctx.kube.read_statefulset_scale(t.namespace, t.name)
    return await ctx.kube.read_scale(t.namespace, t.name)


async def _patch_scale(ctx: StepContext, t: Target, replicas: int | str) -> dict[str, Any] | None:
    body = {"spec": {"replicas": replicas}}
    if t.kind == "StatefulSet":
        return await ctx.kube.patch_statefulset_scale(t.namespace, t.name, body)
    return await ctx.kube.patch_scale(t.namespace, t.name, body)


def owning_hpa(listed: dict[str, Any] | None, t: Target) -> dict[str, Any] | None:
    """The HorizontalPodAutoscaler whose ``scaleTargetRef`` is ``t``, if any."""
    for hpa in (listed or {}).get("items") or []:
        ref = (hpa.get("spec") or {}).get("scaleTargetRef") or {}
        if ref.get("kind") == t.kind and ref.get("name") == t.name:
            return dict(hpa)
    return None


async def _raise_hpa_floor(
    ctx: StepContext, params: Params, t: Target, hpa: dict[str, Any], current: int, desired: int
) -> StepResult:
    """Scale through the HPA: raise its ``minReplicas`` (see the module docstring)."""
    spec = hpa.get("spec") or {}
    name = str((hpa.get("metadata") or {}).get("name", ""))
    floor, roof = int(spec.get("minReplicas", 1)), int(spec.get("maxReplicas", 1))
    wanted = min(params.clamp(desired), roof)
    result: dict[str, Any] = {"from": current, "desired": desired, "max_replicas": params.ceiling,
                              "min_replicas": params.min_replicas, "hpa": name, "hpa_min_replicas": floor,
                              "hpa_max_replicas": roof}
    where = f"HorizontalPodAutoscaler {name} owns the replica count of {t.key}"
    if params.direction < 0 or wanted <= floor:
        why = ("a scale down is left to the HPA" if params.direction < 0 or wanted < current
               else f"its minReplicas is already {floor}")
        return StepResult(f"{t.key} left at {current} replicas: {where}; {why}",
                          {**result, "to": current, "changed": False})
    try:
        patched = await ctx.kube.patch_hpa(t.namespace, name, {"spec": {"minReplicas": wanted}})
    except KubeError as exc:
        raise StepFailed.from_kube(exc, f"raising the minReplicas of HorizontalPodAutoscaler {name}") from None
    capped = f" (capped by the HPA's maxReplicas {roof})" if wanted < params.clamp(desired) else ""
    result.update(to=wanted, hpa_min_replicas_new=wanted)
    verb = "would raise" if patched is None else "raised"
    return StepResult(
        f"{verb} minReplicas of HorizontalPodAutoscaler {name} from {floor} to {wanted}{capped}: {where}, which "
        f"scales it from {current}; the new floor stays until someone lowers it",
        {**result, "changed": patched is not None},
    )


async def run(ctx: StepContext, params: Params) -> StepResult:
    """Read the current replicas, compute the clamped count, patch the scale subresource (or the HPA)."""
    t = ctx.require_target("Deployment", "StatefulSet")
    try:
        scale = await _read_scale(ctx, t)
    except KubeError as exc:
        raise StepFailed.from_kube(exc, f"reading the scale of {t.key}") from None
    try:  # not knowing whether an HPA owns the count is a reason to stop, not to fight one blindly
        hpa = owning_hpa(await ctx.kube.list_hpas(t.namespace), t)
    except KubeError as exc:
        raise StepFailed.from_kube(exc, f"looking for a HorizontalPodAutoscaler of {t.key}") from None
    if scale is None:  # a dry run without a cluster: the count depends on state we cannot read
        if params.replicas is None:
            placeholder = f"<current replicas {params.describe()}>"
            await _patch_scale(ctx, t, placeholder)
            return StepResult(f"would scale {t.key} {params.describe()}", {"replicas": placeholder})
        target = params.clamp(params.replicas)
        await _patch_scale(ctx, t, target)
        return StepResult(f"would scale {t.key} to {target}", {"replicas": target})
    current = int((scale.get("spec") or {}).get("replicas", 0))
    if hpa is not None:
        return await _raise_hpa_floor(ctx, params, t, hpa, current, params.desired(current))
    desired = params.desired(current)
    target = params.clamp(desired)
    result = {"from": current, "desired": desired, "to": target, "max_replicas": params.ceiling,
              "min_replicas": params.min_replicas}
    direction = params.direction
    if target == current or (direction > 0 and target < current) or (direction < 0 and target > current):
        why = (
            f"already at the ceiling of {params.ceiling}" if direction > 0 and current >= params.ceiling
            else f"already at the floor of {params.min_replicas}" if direction < 0 and current <= params.min_replicas
            else f"already at {current}"
        )
        return StepResult(f"{t.key} left at {current} replicas: {why}", {**result, "to": current, "changed": False})
    if target > params.ceiling:  # pragma: no cover - clamp() makes this impossible; kept as the last line of defence
        raise StepFailed(FailureReason.INVALID, f"refusing to scale {t.key} above {params.ceiling}")
    try:
        patched = await _patch_scale(ctx, t, target)
    except KubeError as exc:
        raise StepFailed.from_kube(exc, f"scaling {t.key}") from None
    clamped = f" (clamped from {desired})" if desired != target else ""
    if patched is None:
        return StepResult(f"would scale {t.key} from {current} to {target}{clamped}", {**result, "changed": False})
    return StepResult(f"scaled {t.key} from {current} to {target}{clamped}", {**result, "changed": True})


ACTION = ActionType(
    "scale",
    Params,
    run,
    "set a Deployment's or StatefulSet's replicas (to N, by +N or by a factor), clamped to "
    "max_replicas/min_replicas; through its HorizontalPodAutoscaler's minReplicas when one owns the count",
    target_kinds=frozenset({"Deployment", "StatefulSet"}),
    mutating=True,
)
