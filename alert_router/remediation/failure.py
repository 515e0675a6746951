"""What a person paged by a failed run reads: the failed step, the error, the outcome and what to do next.

:func:`failure_report` is built once, when a step of ``steps`` fails, and travels three ways: as
``failure`` in the variables of the ``on_failure`` steps (so a ``notify`` message template can say
``{{ failure.error }}``), in the run's data (so every later report of the run carries it) and as
``failure`` in the run's entry of ``extra["runbook_runs"]`` (the template context, see ``docs/channels.md``).
"""

from __future__ import annotations

from typing import Any

from alert_router.errors import FailureReason
from alert_router.remediation.actions.base import Target

_NEXT: dict[str, str] = {
    FailureReason.AUTH: (
        "alert-router's service account may not do this: grant it in its Role (the chart's RBAC), "
        "or act on{target} by hand"
    ),
    FailureReason.NOT_FOUND: "the target is not there (renamed or deleted?): check{target} and the alert's labels",
    FailureReason.TIMEOUT: "the step did not finish in time: look at{target} (rollout status, events)",
    FailureReason.RATE_LIMITED: "the API kept refusing with 429: wait, then act on{target} by hand",
    FailureReason.SERVER_ERROR: "the API server failed: check the cluster, then act on{target} by hand",
    FailureReason.CONNECTION: "the API server could not be reached: check the cluster, then act on{target} by hand",
    FailureReason.TEMPLATE: "a template of the runbook failed: fix the runbook, then act on{target} by hand",
    FailureReason.INVALID: "the request was refused as invalid: fix the runbook, then act on{target} by hand",
}
_DEFAULT_NEXT = "nothing more is tried automatically: look at{target} and act by hand"


def next_steps(reason: str, target: Target | None) -> str:
    """One sentence saying what the person paged should do next, for a step that failed with ``reason``."""
    where = f" {target.kind}/{target.name} in namespace {target.namespace}" if target is not None else " the service"
    return _NEXT.get(reason, _DEFAULT_NEXT).format(target=where)


def failure_report(
    *, number: int, of: int, title: str, action: str, error: str, reason: str, done: list[str],
    target: Target | None,
) -> dict[str, Any]:
    """The failure of step ``number`` (1-based) of ``of`` as plain data (see the module docstring)."""
    later = of - number
    outcome = f"run failed at step {number} of {of}"
    outcome += f"; {later} later step{'s' if later != 1 else ''} not run" if later else ""
    if done:
        outcome += f"; done before it: {'; '.join(done)}"
    return {
        "step": f"{number} ({title})",
        "number": number,
        "of": of,
        "title": title,
        "action": action,
        "error": error,
        "reason": reason,
        "outcome": outcome,
        "next": next_steps(reason, target),
    }
