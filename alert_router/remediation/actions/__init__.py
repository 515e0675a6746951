"""The runbook actions: one module each, wired here explicitly, one line per action (no discovery by name)."""

from __future__ import annotations

from alert_router.remediation.actions import (
    create_job_from_cronjob,
    delete_pod,
    http,
    notify,
    rollout_restart,
    rollout_undo,
    scale,
    wait_resolved,
    wait_rollout,
)
from alert_router.remediation.actions.base import (
    ActionParams,
    ActionType,
    StepContext,
    StepFailed,
    StepResult,
    Target,
)

REGISTRY: dict[str, ActionType] = {
    "rollout_restart": rollout_restart.ACTION,
    "rollout_undo": rollout_undo.ACTION,
    "scale": scale.ACTION,
    "delete_pod": delete_pod.ACTION,
    "create_job_from_cronjob": create_job_from_cronjob.ACTION,
    "wait_rollout": wait_rollout.ACTION,
    "wait_resolved": wait_resolved.ACTION,
    "http": http.ACTION,
    "notify": notify.ACTION,
}
"""Every action by its ``action:`` key."""

__all__ = ["REGISTRY", "ActionParams", "ActionType", "StepContext", "StepFailed", "StepResult", "Target"]
