"""``notify``: post a message about the run to a receiver (by default, the receivers that got the alert).

The message is a template. It is queued as a ``notify`` item for the alert's group, so it goes
through the delivery stage (rate limits, retries, fallback) and lands in the alert's thread where the
channel supports one; the text travels in ``extra["runbook_message"]``. Notifying is not a cluster
change, so it also happens in dry runs.
"""

from __future__ import annotations

from typing import Literal

from alert_router.errors import FailureReason
from alert_router.remediation.actions.base import ActionParams, ActionType, StepContext, StepFailed, StepResult
from alert_router.remediation.templating import TemplateProblem, render


class Params(ActionParams):
    """``receiver`` (default: the alert's receivers) and a ``message`` template."""

    TEMPLATED = ("message",)

    action: Literal["notify"]
    receiver: str | None = None
    message: str = ""


def default_message(ctx: StepContext) -> str:
    """``runbook restart: run #7`` or, in an ``on_failure`` step, what failed, why and what to do next."""
    text = f"runbook {ctx.runbook}: run #{ctx.run_id}"
    failure = ctx.variables.get("failure")
    if isinstance(failure, dict):
        text += f" failed at step {failure['step']}: {failure['error']}. Next: {failure['next']}"
    return text


async def run(ctx: StepContext, params: Params) -> StepResult:
    """Queue the message for the receiver(s)."""
    try:
        text = render(params.message, ctx.variables) if params.message else default_message(ctx)
    except TemplateProblem as exc:
        raise StepFailed(FailureReason.TEMPLATE, str(exc)) from None
    receivers = [params.receiver] if params.receiver else list(ctx.receivers)
    if not receivers:
        raise StepFailed(FailureReason.INVALID, "no receiver: the alert reached none and the step names none")
    items = [ctx.notification(r, {"runbook_message": text}) for r in receivers]
    return StepResult(f"notified {', '.join(receivers)}: {text}", {"receivers": receivers, "message": text}, items)


ACTION = ActionType("notify", Params, run, "post a message about the run to a receiver")
