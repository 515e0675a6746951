"""``POST /webhook``: authenticate, validate, store durably, then answer.

Alertmanager retries 5xx and drops 4xx, so: 401 for bad credentials, 400 for a body that can never
succeed (with a JSON error naming the field), 413 for an oversized body, 415 for a body that is not
``application/json``, 503 when the store cannot take it or the body did not arrive whole (Alertmanager
will retry), and 200 only once the body is committed. The body is read whole however it arrives
(:mod:`alert_router.api.body`); a U+0000 in it is stored as U+FFFD (:func:`~alert_router.models.clean_body`).
"""

from __future__ import annotations

import asyncio
import time

import structlog
from aiohttp import web

from alert_router import priority
from alert_router.api.auth import Credentials
from alert_router.api.body import REFUSED_OUTCOME, read_request
from alert_router.appkeys import RUNTIME
from alert_router.config import AuthConfig
from alert_router.errors import PayloadError, StoreRejected, StoreUnavailable
from alert_router.models import clean_body, parse_payload

log = structlog.get_logger("alert_router.webhook")


def authorized(auth: AuthConfig, header: str | None) -> bool:
    """Check an ``Authorization`` header against the configured bearer token or basic credentials."""
    if not auth.enabled:
        return True
    return Credentials.of(auth).check(header) is not None


def _error(status: int, message: str, field: str | None = None) -> web.Response:
    body: dict[str, str] = {"error": message}
    if field:
        body["field"] = field
    return web.json_response(body, status=status)


def _rejected(request: web.Request, what: str, error: str, field: str | None, **details: object) -> web.Response:
    """A 400, counted as ``invalid`` and logged loudly: Alertmanager drops 4xx answers, so this notification is lost."""
    request.app[RUNTIME].metrics.webhooks.labels("invalid").inc()
    log.error(
        f"webhook rejected: {what}; Alertmanager will not retry it",
        error=error,
        field=field,
        user_agent=request.headers.get("User-Agent"),
        **details,
    )
    return _error(400, error, field)


async def webhook(request: web.Request) -> web.Response:
    """Accept one Alertmanager notification."""
    rt = request.app[RUNTIME]
    settings = rt.config.settings
    started = time.perf_counter()
    if not authorized(settings.auth, request.headers.get("Authorization")):
        rt.metrics.webhooks.labels("unauthorized").inc()
        log.warning(
            "webhook refused: missing or wrong credentials",
            remote=request.remote,
            user_agent=request.headers.get("User-Agent"),
        )
        resp = _error(401, "missing or invalid credentials")
        resp.headers["WWW-Authenticate"] = 'Bearer realm="alert-router"'
        return resp
    try:
        raw = await read_request(request, "webhook")
    except asyncio.CancelledError:
        rt.metrics.webhooks.labels("incomplete").inc()
        raise
    if isinstance(raw, web.Response):
        rt.metrics.webhooks.labels(REFUSED_OUTCOME[raw.status]).inc()
        return raw
    body = clean_body(raw)
    try:
        payload = parse_payload(body)
    except PayloadError as exc:
        return _rejected(request, "invalid body", str(exc), exc.field, size=len(body))
    deadman = rt.deadman
    beats = deadman.heartbeats(payload) if deadman is not None else 0
    try:
        received_at = time.time()
        if deadman is not None and beats:
            await deadman.beat(received_at)
            if beats == len(payload.alerts):  # nothing else in it: recorded, nothing to queue
                rt.metrics.webhooks.labels("heartbeat").inc()
                return web.json_response({"status": "accepted", "heartbeat": True, "alerts": beats})
        urgency = priority.of_labels(a.labels for a in payload.alerts)
        inbox_id = await rt.store.enqueue(body, payload.group_key, received_at, urgency)
    except StoreRejected as exc:
        return _rejected(request, "the store cannot hold this body", str(exc), exc.field, size=len(body))
    except StoreUnavailable as exc:
        rt.metrics.webhooks.labels("store_unavailable").inc()
        log.error("webhook not stored: store unavailable; answering 503 so Alertmanager retries", error=str(exc))
        resp = _error(503, "store unavailable, retry later")
        resp.headers["Retry-After"] = "5"
        return resp
    rt.wake_ingest.set()
    rt.metrics.webhooks.labels("accepted").inc()
    rt.metrics.accept_seconds.observe(time.perf_counter() - started)
    return web.json_response({"status": "accepted", "id": inbox_id, "alerts": len(payload.alerts)})
