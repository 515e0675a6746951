"""``wait_resolved``: wait until the alert that started the run resolves, or ``timeout`` passes.

The alert's state is read from the store (which the ingest stage updates when Alertmanager sends
the resolution), so this works whichever replica received it; a resolution processed in this
process wakes the step at once. A timeout fails the step unless ``on_timeout: succeed``. A dry run
does not wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Literal

from alert_router.durations import format_duration
from alert_router.errors import FailureReason
from alert_router.remediation.actions.base import ActionParams, ActionType, StepContext, StepFailed, StepResult


class Params(ActionParams):
    """``timeout`` bounds the wait; ``on_timeout`` says whether running out of time fails the run."""

    action: Literal["wait_resolved"]
    on_timeout: Literal["fail", "succeed"] = "fail"


async def run(ctx: StepContext, params: Params) -> StepResult:
    """Poll the stored alert state (woken early by resolutions seen in this process)."""
    fingerprint = str(ctx.alert.get("fingerprint", ""))
    name = ctx.alert.get("labels", {}).get("alertname", fingerprint)
    if ctx.dry_run:
        return StepResult(f"would wait up to {format_duration(ctx.remaining())} for {name} to resolve")
    started = time.monotonic()
    while True:
        record = await ctx.store.alert(fingerprint)
        if record is not None and record.status == "resolved":
            waited = time.monotonic() - started
            return StepResult(f"{name} resolved after {format_duration(waited)}", {"waited": round(waited, 3)})
        remaining = ctx.remaining()
        if remaining <= ctx.poll_interval / 2:
            waited = time.monotonic() - started
            message = f"{name} still firing after {format_duration(waited)}"
            if params.on_timeout == "succeed":
                return StepResult(message + " (on_timeout: succeed)", {"waited": round(waited, 3), "resolved": False})
            raise StepFailed(FailureReason.TIMEOUT, message, {"waited": round(waited, 3)})
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(min(ctx.poll_interval, remaining)):
                await ctx.resolved.wait()
        ctx.resolved.clear()


ACTION = ActionType(
    "wait_resolved",
    Params,
    run,
    "wait until the alert resolves (or the timeout passes)",
    waits=True,
)
