"""Builds the aiohttp application: routes, typed state and the background workers."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

import structlog
from aiohttp import web

from alert_router.api.errors import error_middleware
from alert_router.api.graphs import GRAPHS_SERVICE
from alert_router.api.graphs import add_routes as add_graph_routes
from alert_router.api.health import healthz, metrics, readyz
from alert_router.api.runs import add_routes as add_runs_routes
from alert_router.api.webhook import webhook
from alert_router.appkeys import RUNTIME, Runtime
from alert_router.channels import REGISTRY
from alert_router.channels.base import Channel, ChannelContext
from alert_router.chat.service import add_routes as add_chat_routes
from alert_router.chat.service import start_chat
from alert_router.config import Config
from alert_router.deadman import DeadmanSwitch
from alert_router.enrich.stage import EnrichmentStage
from alert_router.errors import StoreInUse, StoreUnavailable
from alert_router.graph.stage import GraphStage
from alert_router.heartbeat import Heartbeat
from alert_router.metrics import Metrics
from alert_router.models import Notification
from alert_router.pipeline.deliver import Deliverer
from alert_router.pipeline.ingest import Ingestor
from alert_router.remediation.plan import applicable_runbooks
from alert_router.remediation.worker import build_worker as build_runbook_worker
from alert_router.store import create_store
from alert_router.store.base import Store

log = structlog.get_logger("alert_router.app")


def build_channels(config: Config) -> dict[str, Channel]:
    """Instantiate every configured receiver through the registry."""
    options: dict[str, Any] = {"links": config.settings.links}
    if config.settings.remediation.enabled and config.runbooks:
        options["runbooks_for"] = functools.partial(applicable_runbooks, config)  # the Run runbook button
    ctx = ChannelContext(data_dir=config.data_dir, base_dir=config.base_dir, options=options)
    return {name: REGISTRY[spec.type].build(name, spec.config, ctx) for name, spec in config.receivers.items()}


def owner_id() -> str:
    """A name for this process in leases: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


async def _prune_loop(rt: Runtime) -> None:
    ret = rt.config.settings.retention
    while True:
        await asyncio.sleep(ret.prune_interval)
        now = time.time()
        try:
            n = await rt.store.prune(now, now - ret.done)
            log.info("pruned old records", rows=n)
        except StoreUnavailable as exc:
            log.warning("prune skipped: store unavailable", error=str(exc))


async def _open_store(store: Store) -> None:
    delay = 0.5
    while True:
        try:
            await store.open()
            return
        except StoreInUse:
            raise
        except StoreUnavailable as exc:
            log.warning("store unavailable at startup; retrying", error=str(exc), retry_in=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10)


def alongside(*stages: Callable[[Notification], Awaitable[None]]) -> Callable[[Notification], Awaitable[None]] | None:
    """One hook running ``stages`` on a notification at the same time (each is bounded and never raises)."""
    if not stages:
        return None
    if len(stages) == 1:
        return stages[0]

    async def run(notification: Notification) -> None:
        await asyncio.gather(*(stage(notification) for stage in stages))

    return run


WorkerFactory = Callable[[Runtime], Coroutine[Any, Any, None]]


def build_app(
    config: Config, *, store: Store | None = None, extra_workers: list[WorkerFactory] | None = None
) -> web.Application:
    """Build the application for ``config``; the store opens and the workers start with the app."""
    app = web.Application(client_max_size=config.settings.webhook.max_body_bytes + 1, middlewares=[error_middleware])
    store = store or create_store(config.store_url, config.settings.postgres)
    rt = Runtime(config=config, store=store, metrics=Metrics(), owner=owner_id())
    app[RUNTIME] = rt

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await _open_store(rt.store)
        rt.channels = build_channels(config)
        ingestor = Ingestor(rt.store, config, rt.metrics, rt.owner)
        deliverer = Deliverer(rt.store, config, rt.channels, rt.metrics, rt.owner)
        ingestor.wake = rt.wake_ingest
        ingestor.wake_delivery = deliverer.wake
        rt.services["ingestor"] = ingestor
        rt.services["deliverer"] = deliverer
        runbooks = build_runbook_worker(rt, deliverer.wake)
        ingestor.wake_runbooks = runbooks.wake
        enricher = EnrichmentStage(config, rt.metrics)
        enricher.prepare()
        grapher = GraphStage(config, rt.metrics)  # pictures of the alerts' metrics, beside the log lines
        await grapher.start()
        deliverer.enrich = alongside(*(s for s in (enricher, grapher) if s.active))
        rt.services["enricher"] = enricher
        rt.services[GRAPHS_SERVICE] = grapher
        chat = start_chat(rt, deliverer)  # after the enricher: it wraps deliverer.enrich to show acks
        deadman = DeadmanSwitch(config.settings.deadman, rt.store, rt.metrics,
                                external_url=config.settings.links.alertmanager_url, wake_delivery=deliverer.wake)
        rt.deadman = deadman
        ingestor.deadman = deadman

        def reclaimed(queues: dict[str, int]) -> None:  # a dead replica's work is claimable now: look at once
            rt.wake_ingest.set()
            deliverer.wake.set()
            runbooks.wake.set()
            if queues.get("run"):
                runbooks.recover_soon()

        heartbeat = Heartbeat(rt.store, config.settings.failover, rt.metrics, rt.owner, reclaimed)
        tasks = [
            asyncio.create_task(heartbeat.run(), name="heartbeat"),
            asyncio.create_task(ingestor.run(), name="ingest"),
            asyncio.create_task(deliverer.run(), name="deliver"),
            asyncio.create_task(runbooks.run(), name="remediation"),
            asyncio.create_task(_prune_loop(rt), name="prune"),
            asyncio.create_task(chat.run(), name="chat"),
            asyncio.create_task(deadman.run(), name="deadman"),
            *(asyncio.create_task(w(rt)) for w in (extra_workers or [])),
        ]
        rt.ready = True
        log.info(
            "alert-router started",
            store=config.store_url.split("@")[-1],
            receivers=sorted(rt.channels),
            rules=len(config.rules),
            runbooks=len(config.runbooks),
            dry_run=config.settings.dry_run,
            auth=config.settings.auth.enabled,
        )
        if not config.settings.auth.enabled:
            log.warning("webhook authentication is disabled: set auth.bearer_token (or auth.basic) in production")
        try:
            yield
        finally:
            rt.ready = False
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await heartbeat.retire()  # nothing of ours runs any more: the others may take our claims now
            with contextlib.suppress(Exception):
                await chat.aclose()
            for ch in rt.channels.values():
                with contextlib.suppress(Exception):
                    await ch.aclose()
            with contextlib.suppress(Exception):
                await enricher.aclose()
            with contextlib.suppress(Exception):
                await grapher.aclose()
            await rt.store.close()

    app.cleanup_ctx.append(lifecycle)
    app.router.add_post("/webhook", webhook)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    add_runs_routes(app)
    add_graph_routes(app)
    add_chat_routes(app)
    return app
