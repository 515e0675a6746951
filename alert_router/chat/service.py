"""Chat commands in the running application: one :class:`ChatService` per app.

``app.py`` calls :func:`add_routes` when it builds the app and, in its lifecycle, :func:`start_chat`
once the delivery stage exists. The service is published as ``rt.services["chat"]``; the Slack and
Telegram bridges (present only when configured) as ``rt.services["chat.slack"]`` and
``rt.services["chat.telegram"]``, where the HTTP handlers find them.

It also keeps acks visible: every notification delivered for firing alerts gets
``extra["acked_by"]`` from the store just before it is sent, so a message that is re-rendered for any
reason (a new alert joins the group, a runbook reports back) still shows who acked.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web

from alert_router.api import slack as slack_api
from alert_router.api import telegram as telegram_api
from alert_router.appkeys import Runtime
from alert_router.chat.alertmanager import AlertmanagerClient
from alert_router.chat.clock import Clock, SystemClock
from alert_router.chat.commands import CommandService, Remediation
from alert_router.chat.escalation import Escalator
from alert_router.chat.metrics import ChatMetrics
from alert_router.chat.tasks import Background
from alert_router.errors import StoreUnavailable
from alert_router.models import Notification
from alert_router.store.base import Store

log = structlog.get_logger("alert_router.chat")

Enricher = Callable[[Notification], Awaitable[None]]


async def annotate_acks(store: Store, notification: Notification) -> None:
    """Set ``extra["acked_by"]`` of a firing notification from the store (the store is the truth)."""
    firing = [a.fingerprint for a in notification.alerts if a.is_firing]
    if not firing:
        return
    try:
        acks = await store.acks(firing)
    except StoreUnavailable:
        return  # keep whatever the payload carried
    if acks:
        notification.extra["acked_by"] = acks
    else:
        notification.extra.pop("acked_by", None)


async def _supervise(name: str, job: Callable[[], Awaitable[None]], pause: float = 5.0) -> None:
    """Run ``job`` until cancelled, restarting it (after ``pause`` seconds) if it ever fails or returns."""
    while True:
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("chat worker failed; restarting", worker=name)
        await asyncio.sleep(pause)


class ChatService:
    """Commands, escalation and the platform bridges of one running application."""

    def __init__(
        self,
        rt: Runtime,
        *,
        clock: Clock | None = None,
        wake_delivery: Callable[[], None] | None = None,
    ) -> None:
        self.rt = rt
        config = rt.config
        settings = config.settings.chat
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self.metrics = ChatMetrics(rt.metrics.registry)
        self.background = Background()
        self.alertmanager = AlertmanagerClient(
            settings.alertmanager, url=config.settings.links.alertmanager_url, metrics=self.metrics
        )

        def remediation() -> Remediation | None:
            engine: Any = rt.services.get("remediation")
            return engine if engine is not None and hasattr(engine, "approve") else None

        self.commands = CommandService(
            rt.store,
            config,
            alertmanager=self.alertmanager,
            remediation=remediation,
            metrics=self.metrics,
            clock=self.clock,
            wake_delivery=wake_delivery,
        )
        self.escalator = Escalator(
            rt.store, config, owner=rt.owner, clock=self.clock, metrics=self.metrics, wake_delivery=wake_delivery
        )
        self.slack = (
            slack_api.SlackBridge(settings.slack, self.commands, metrics=self.metrics, background=self.background)
            if settings.slack.enabled
            else None
        )
        self.telegram = (
            telegram_api.TelegramBridge(
                settings.telegram, self.commands, metrics=self.metrics, background=self.background
            )
            if settings.telegram.enabled
            else None
        )

    def publish(self) -> None:
        """Make the service and its bridges reachable from the HTTP handlers."""
        self.rt.services["chat"] = self
        if self.slack is not None:
            self.rt.services["chat.slack"] = self.slack
        if self.telegram is not None:
            self.rt.services["chat.telegram"] = self.telegram

    def wrap_enricher(self, inner: Enricher | None) -> Enricher:
        """An enrichment hook that sets ``acked_by`` and then calls ``inner``."""
        store = self.rt.store

        async def enrich(notification: Notification) -> None:
            await annotate_acks(store, notification)
            if inner is not None:
                await inner(notification)

        return enrich

    async def run(self) -> None:
        """The background work: escalation timers, and Telegram long polling in polling mode."""
        jobs: list[Awaitable[None]] = []
        if self.escalator.active:
            jobs.append(_supervise("escalation", self.escalator.run))
        if self.telegram is not None and self.settings.telegram.mode == "polling":
            jobs.append(_supervise("telegram polling", self.telegram.poll))
        if jobs:
            await asyncio.gather(*jobs)

    async def aclose(self) -> None:
        """Stop background work and close connections."""
        await self.background.close()
        for closer in (
            self.slack.aclose if self.slack else None,
            self.telegram.aclose if self.telegram else None,
            self.alertmanager.aclose,
        ):
            if closer is not None:
                with contextlib.suppress(Exception):
                    await closer()


def add_routes(app: web.Application) -> None:
    """Register ``/slack/commands``, ``/slack/interactions`` and ``/telegram/webhook`` (404 until configured)."""
    slack_api.add_routes(app)
    telegram_api.add_routes(app)


def start_chat(rt: Runtime, deliverer: Any, *, clock: Clock | None = None) -> ChatService:
    """Build and publish the chat service for a starting app; hook ack display into ``deliverer``.

    ``deliverer`` is the :class:`~alert_router.pipeline.deliver.Deliverer`: its ``wake`` event is set when
    chat work enqueues notifications, and its ``enrich`` hook is wrapped by :meth:`ChatService.wrap_enricher`.
    """
    wake = getattr(deliverer, "wake", None)
    service = ChatService(rt, clock=clock, wake_delivery=wake.set if wake is not None else None)
    deliverer.enrich = service.wrap_enricher(getattr(deliverer, "enrich", None))
    service.publish()
    log.info(
        "chat commands",
        slack=service.slack is not None,
        telegram=service.settings.telegram.mode if service.telegram is not None else False,
        escalating_rules=sorted(service.escalator.policies),
        alertmanager_api=service.alertmanager.url or None,
    )
    return service
