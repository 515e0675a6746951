"""``/healthz`` (the process is alive), ``/readyz`` (store reachable, config loaded) and ``/metrics``."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from alert_router.api.auth import Credentials
from alert_router.appkeys import RUNTIME
from alert_router.errors import StoreUnavailable


async def healthz(request: web.Request) -> web.Response:
    """Answer 200 while the event loop runs."""
    return web.json_response({"status": "ok"})


READY_TIMEOUT = 2.0
"""``/readyz`` answers within this many seconds, whatever the database does."""


async def readyz(request: web.Request) -> web.Response:
    """Answer 200 when the store answers and the workers are running, else 503; always within 2 s."""
    rt = request.app[RUNTIME]
    if not rt.ready:
        return web.json_response({"status": "starting"}, status=503)
    try:
        async with asyncio.timeout(READY_TIMEOUT):  # the store's own bound, and this one in case it fails
            await rt.store.ping(READY_TIMEOUT * 0.75)
    except (StoreUnavailable, TimeoutError) as exc:
        return web.json_response({"status": "store unavailable", "error": str(exc) or "timeout"}, status=503)
    return web.json_response({"status": "ready"})


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition, with queue depths read fresh from the store (401 without ``metrics.auth``)."""
    rt = request.app[RUNTIME]
    creds = Credentials.of(rt.config.settings.metrics.auth)
    if creds.configured and creds.check(request.headers.get("Authorization")) is None:
        return web.json_response(
            {"error": "missing or invalid credentials"},
            status=401,
            headers={"WWW-Authenticate": 'Bearer realm="alert-router"'},
        )
    try:
        async with asyncio.timeout(2):
            now = time.time()
            depth = await rt.store.depth(now)
            ages = await rt.store.oldest_pending(now)
        rt.metrics.queue_depth.labels("inbox").set(depth.inbox)
        for kind in ("notify", "runbook", *depth.outbox):
            rt.metrics.queue_depth.labels(kind).set(depth.outbox.get(kind, 0))
        for queue in ("inbox", "notify", "runbook", *ages):
            rt.metrics.queue_oldest_age.labels(queue).set(ages.get(queue, 0.0))
    except (StoreUnavailable, TimeoutError):
        pass
    body = generate_latest(rt.metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
