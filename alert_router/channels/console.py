"""The ``console`` receiver: one log line per notification, carrying the message as a person reads it.

The line's ``text`` is the plain-text message the ``email`` receiver sends (the default email text template):
with ``--log-format console`` it is printed as it reads, one line under the other; in JSON the line also
keeps the structured ``alerts`` and ``extra`` for machines.
"""

from __future__ import annotations

from typing import Any

import structlog

from alert_router.channels.base import ChannelContext, ChannelType, MessageRef, RateLimit
from alert_router.configbase import ConfigModel
from alert_router.models import Notification
from alert_router.render import defaults
from alert_router.render.context import build_context
from alert_router.render.support import links_option, report_template_errors
from alert_router.render.templates import Template

LOGGER = "alert_router.console"
"""The logger of the console receiver's lines (the console log format prints their ``text`` as it reads)."""


class ConsoleConfig(ConfigModel):
    """``console: {}``, or ``console: {annotations: false}`` to leave annotations out."""

    annotations: bool = True


class ConsoleChannel:
    """Logs each notification at warning level (firing) or info level (resolved)."""

    digests = False
    """A record of every notification, never coalesced into storm digests."""

    def __init__(self, receiver: str, annotations: bool, links: dict[str, Any] | None = None) -> None:
        self.receiver = receiver
        self.annotations = annotations
        self.links = links or {}
        self.template = Template("text", defaults.EMAIL_TEXT, name="text", receiver=receiver)
        self._log = structlog.get_logger(LOGGER)

    def destination(self) -> str:
        """The process log."""
        return "console"

    def rate_limit(self) -> RateLimit | None:
        """The console has no rate limit."""
        return None

    def render(self, notification: Notification) -> str:
        """The plain-text message (the email text part), without annotations when so configured."""
        if not self.annotations:
            notification = notification.model_copy(
                update={"alerts": [a.model_copy(update={"annotations": {}}) for a in notification.alerts],
                        "common_annotations": {}}
            )
        errors: list[str] = []
        text = self.template.render(build_context(notification, links=self.links), errors).strip()
        report_template_errors(notification, errors)
        return text

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
            text=self.render(notification),
            alerts=alerts,
            extra=notification.extra or None,
        )
        return None

    async def aclose(self) -> None:
        """Nothing to release."""


def _build(receiver: str, cfg: Any, ctx: ChannelContext) -> ConsoleChannel:
    assert isinstance(cfg, ConsoleConfig)
    return ConsoleChannel(receiver, cfg.annotations, links_option(ctx.options))


TYPE = ChannelType("console", ConsoleConfig, _build)
