"""The remediation API: runs, approvals and the audit log, as JSON, behind credentials.

* ``GET /api/v1/runs?status=&runbook=&limit=`` and ``GET /api/v1/runs/{id}``
* ``POST /api/v1/runs/{id}/approve`` and ``POST /api/v1/runs/{id}/deny`` (body ``{"user": ..., "reason": ...}``)
* ``GET /api/v1/audit?since=&runbook=&run_id=&limit=`` (``since``: a duration such as ``1h``, an RFC 3339
  time or a Unix timestamp) and ``GET /api/v1/audit/verify``

Credentials: ``remediation.api_auth`` if set, else the webhook's ``auth``. With neither configured the
API answers 403: it approves cluster changes, so it is never open. A basic-auth user name is the
identity recorded for a decision; with a bearer token the body's ``user`` is recorded (as ``api:<user>``).
"""

from __future__ import annotations

import json
import math
import time
from datetime import datetime
from typing import Any

from aiohttp import web

from alert_router.api.auth import Credentials
from alert_router.api.body import read_request
from alert_router.api.jsonbody import BadJSON, parse_json
from alert_router.appkeys import RUNTIME
from alert_router.audit import verify
from alert_router.durations import parse_duration
from alert_router.errors import StoreUnavailable
from alert_router.remediation.engine import (
    ApprovalExpired,
    NotAuthorized,
    RemediationEngine,
    RemediationError,
    RunNotFound,
    RunNotPending,
)
from alert_router.remediation.runs import RunStatus


def _credentials(request: web.Request) -> Credentials:
    """The credentials the API accepts: ``remediation.api_auth`` if set, else the webhook's ``auth``."""
    settings = request.app[RUNTIME].config.settings
    api = settings.remediation.api_auth
    return Credentials.of(api) if api is not None else Credentials.of(settings.auth)


def authenticate(request: web.Request) -> str:
    """Return the caller's identity (``basic:<user>`` or ``bearer``); raise 401/403 otherwise."""
    creds = _credentials(request)
    if not creds.configured:
        raise web.HTTPForbidden(
            text='{"error": "the API needs credentials: set remediation.api_auth or auth"}',
            content_type="application/json",
        )
    who = creds.check(request.headers.get("Authorization"))
    if who is not None:
        return who
    raise web.HTTPUnauthorized(
        text='{"error": "missing or invalid credentials"}',
        content_type="application/json",
        headers={"WWW-Authenticate": 'Bearer realm="alert-router"'},
    )


def _engine(request: web.Request) -> RemediationEngine:
    engine = request.app[RUNTIME].services.get("remediation")
    if not isinstance(engine, RemediationEngine):
        raise web.HTTPServiceUnavailable(
            text='{"error": "remediation is not running"}', content_type="application/json"
        )
    return engine


MAX_ID = 2**63 - 1
"""The largest id a store can hold (a signed 64-bit integer): larger ones name nothing."""
MAX_LIMIT = 10_000
"""The largest ``limit`` a listing accepts."""
STATUSES = frozenset(s.value for s in RunStatus)


def _int(
    request: web.Request, name: str, default: int | None = None, *, low: int = 1, high: int = MAX_ID
) -> int | None:
    """The query parameter ``name`` as an integer in ``[low, high]``; 400 when it is not one."""
    raw = request.query.get(name)
    if raw is None:
        return default
    text = raw.strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 19 and low <= int(text) <= high):
        raise web.HTTPBadRequest(
            text=json.dumps({"error": f"{name} must be an integer from {low} to {high}", "field": name}),
            content_type="application/json",
        )
    return int(text)


def _run_id(request: web.Request) -> int:
    """The ``{id}`` of the path; 404 when it is too large to name a run."""
    digits = request.match_info["id"].lstrip("0")
    if not digits or len(digits) > 19 or int(digits) > MAX_ID:
        raise web.HTTPNotFound(text='{"error": "no such run"}', content_type="application/json")
    return int(digits)


def parse_since(value: str, now: float | None = None) -> float:
    """``1h`` (that long ago), an RFC 3339 / ISO 8601 time, or a Unix timestamp → a finite Unix timestamp."""
    result = _since(value, time.time() if now is None else now)
    if not math.isfinite(result):
        raise ValueError(f"since {value[:40]!r}: out of range")
    return result


def _since(value: str, now: float) -> float:
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        number = None
    if number is not None and number >= 1e9:
        return number
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"since {value[:40]!r}: use a duration (1h, 30m), an RFC 3339 time or a Unix timestamp"
        ) from None
    if parsed.tzinfo is None:
        raise ValueError(f"since {value[:40]!r}: give a time zone (Z or +00:00)")
    try:
        return parsed.timestamp()
    except OverflowError:
        raise ValueError(f"since {value[:40]!r}: out of range") from None


async def list_runs(request: web.Request) -> web.Response:
    """``GET /api/v1/runs``."""
    authenticate(request)
    rt = request.app[RUNTIME]
    limit = _int(request, "limit", 100, high=MAX_LIMIT) or 100
    status = request.query.get("status")
    if status is not None and status not in STATUSES:
        return web.json_response(
            {"error": f"status must be one of {', '.join(sorted(STATUSES))}", "field": "status"}, status=400
        )
    try:
        runs = await rt.store.runs(status=status, runbook=request.query.get("runbook"), limit=min(limit, 1000))
    except StoreUnavailable as exc:
        return web.json_response({"error": f"store unavailable: {exc}"}, status=503)
    return web.json_response({"runs": [r.to_json() for r in runs]})


async def get_run(request: web.Request) -> web.Response:
    """``GET /api/v1/runs/{id}``."""
    authenticate(request)
    run = await request.app[RUNTIME].store.run(_run_id(request))
    if run is None:
        return web.json_response({"error": "no such run"}, status=404)
    audit = await request.app[RUNTIME].store.audit_records(run_id=run.id)
    return web.json_response({**run.to_json(), "audit": [a.to_json() for a in audit]})


async def _decide(request: web.Request, decision: str) -> web.Response:
    who = authenticate(request)
    engine = _engine(request)
    run_id = _run_id(request)
    body: dict[str, Any] = {}
    if request.can_read_body:
        raw = await read_request(request, "runs")
        if isinstance(raw, web.Response):
            return raw
        try:
            body = parse_json(raw) if raw.strip() else {}
        except BadJSON as exc:
            return web.json_response({"error": f"the body must be JSON: {exc}"}, status=400)
        if not isinstance(body, dict):
            return web.json_response({"error": "the body must be a JSON object"}, status=400)
    if who.startswith("basic:"):
        user = who.removeprefix("basic:")
    else:
        name = body.get("user")
        if not isinstance(name, str) or not name.strip():
            return web.json_response({"error": "name the deciding user: {\"user\": \"...\"}"}, status=400)
        user = f"api:{name.strip()}"
    try:
        if decision == "approve":
            run = await engine.approve(run_id, user)
        else:
            run = await engine.deny(run_id, user, str(body.get("reason", "")))
    except RunNotFound as exc:
        return web.json_response({"error": str(exc)}, status=404)
    except NotAuthorized as exc:
        return web.json_response({"error": str(exc)}, status=403)
    except (RunNotPending, ApprovalExpired) as exc:
        return web.json_response({"error": str(exc)}, status=409)
    except RemediationError as exc:
        return web.json_response({"error": str(exc)}, status=422)
    return web.json_response(run.to_json())


async def approve(request: web.Request) -> web.Response:
    """``POST /api/v1/runs/{id}/approve``."""
    return await _decide(request, "approve")


async def deny(request: web.Request) -> web.Response:
    """``POST /api/v1/runs/{id}/deny``."""
    return await _decide(request, "deny")


async def list_audit(request: web.Request) -> web.Response:
    """``GET /api/v1/audit``: records in sequence order (with their hashes, so a client can verify them)."""
    authenticate(request)
    since = None
    if "since" in request.query:
        try:
            since = parse_since(request.query["since"])
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
    records = await request.app[RUNTIME].store.audit_records(
        since=since,
        runbook=request.query.get("runbook"),
        run_id=_int(request, "run_id"),
        limit=_int(request, "limit", high=MAX_LIMIT),
    )
    return web.json_response({"records": [r.to_json() for r in records]})


async def verify_audit(request: web.Request) -> web.Response:
    """``GET /api/v1/audit/verify``: the chain check (200 when intact, 409 with the problems otherwise)."""
    authenticate(request)
    result = verify(await request.app[RUNTIME].store.audit_chain())
    body = {"ok": result.ok, "records": result.checked, "problems": result.problems, "head_seq": result.head_seq,
            "head_hash": result.head_hash}
    return web.json_response(body, status=200 if result.ok else 409)


def add_routes(app: web.Application) -> None:
    """Register the routes above."""
    app.router.add_get("/api/v1/runs", list_runs)
    app.router.add_get(r"/api/v1/runs/{id:[0-9]+}", get_run)
    app.router.add_post(r"/api/v1/runs/{id:[0-9]+}/approve", approve)
    app.router.add_post(r"/api/v1/runs/{id:[0-9]+}/deny", deny)
    app.router.add_get("/api/v1/audit", list_audit)
    app.router.add_get("/api/v1/audit/verify", verify_audit)
