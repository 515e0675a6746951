"""The ``console`` receiver: one structured log line per notification."""

from __future__ import annotations

from typing import Any

import structlog

from alert_router.channels.base import ChannelContext, ChannelType, MessageRef, RateLimit
from alert_router.configbase import ConfigModel
from alert_router.models import Notification


class ConsoleConfig(ConfigModel):
    """``console: {}``, or ``console: {annotations: false}`` to leave annotations out."""

    annotations: bool = True


class ConsoleChannel:
    """Logs each notification at warning level (firing) or info level (resolved)."""

    digests = False
    """A record of every notification, never coalesced into storm digests."""

    def __init__(self, receiver: str, annotations: bool) -> None:
        self.receiver = receiver
        self.annotations = annotations
        self._log = structlog.get_logger("alert_router.console")

    def destination(self) -> str:
        """The process log."""
        return "console"

    def rate_limit(self) -> RateLimit | None:
        """The console has no rate limit."""
        return None

    async def send(self, notification: Notification, previous: MessageRef | None) -> MessageRef | None:
        """Write the notification as one log event."""
        alerts = [
            {
                "status": a.status,
                "alertname": a.name,
                "severity": a.severity,
                "labels": a.labels,
                **({"summary": a.annotations.get("summary", "")} if self.annotations else {}),
            }
            for a in notification.alerts
        ]
        log = self._log.warning if notification.status == "firing" else self._log.info
        log(
            "notification",
            receiver=notification.receiver,
            rule=notification.rule,
            group_key=notification.group_key,
            status=notification.status,
            alerts=alerts,
            extra=notification.extra or None,
        )
        return None

    async def aclose(self) -> None:
        """Nothing to release."""


def _build(receiver: str, cfg: Any, ctx: ChannelContext) -> ConsoleChannel:
    assert isinstance(cfg, ConsoleConfig)
    return ConsoleChannel(receiver, cfg.annotations)


TYPE = ChannelType("console", ConsoleConfig, _build)
