"""Every answer carries a request id, and every error is JSON: ``{"error": "...", "request_id": "..."}``.

:func:`error_middleware` is the outermost middleware of the application. It gives each request an id
(the caller's ``X-Request-Id`` when it is a plain token of at most 64 characters, else a new random one),
binds it to every log line written while the request is handled, and sends it back in the
``X-Request-Id`` header. Error answers (status 400 and up) get the id in their JSON body too, whether a
handler returned them or raised them (aiohttp's own 404, 405 and 413 included, which would otherwise be
plain text).

A :class:`~alert_router.errors.StoreUnavailable` that reaches it is a 503 with ``Retry-After``. It is also
the last resort: an exception no handler expected is logged with its traceback and answered
with a JSON 500 that names the request id but none of the exception's details. Malformed input must never
get there; each kind has its proper 4xx in its handler.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import hdrs, web

from alert_router.errors import StoreUnavailable

log = structlog.get_logger("alert_router.api")

REQUEST_ID_HEADER = "X-Request-Id"
REQUEST_ID = web.RequestKey("request_id", str)
"""Where the id of the request being handled is kept (``request[REQUEST_ID]``)."""

_CALLER_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_MAX_REWRITE = 64 * 1024
"""Error bodies larger than this are passed through unchanged (errors are a line of JSON)."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def request_id(request: web.Request) -> str:
    """The id of ``request`` (empty outside :func:`error_middleware`)."""
    rid: str = request.get(REQUEST_ID, "")
    return rid


def json_error(request: web.Request, status: int, message: str, **fields: Any) -> web.Response:
    """A JSON error answer: ``{"error": message, **fields, "request_id": ...}``."""
    return web.json_response({"error": message, **fields, "request_id": request_id(request)}, status=status)


def _new_id(incoming: str | None) -> str:
    if incoming is not None and _CALLER_ID.fullmatch(incoming):
        return incoming
    return f"{random.getrandbits(64):016x}"  # unique enough to find a request in the log; not a secret


def _from_http_exception(exc: web.HTTPException, rid: str) -> web.Response:
    """A raised HTTP error (aiohttp's plain text, or a handler's JSON) as a JSON error with the request id."""
    body: dict[str, Any] | None = None
    text = exc.text or ""
    if exc.content_type == "application/json":
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        body = parsed if isinstance(parsed, dict) else None
    if body is None:
        # aiohttp's default text is "404: Not Found"; a handler's own text says more.
        message = text.strip()
        if message == f"{exc.status}: {exc.reason}" or not message:
            message = exc.reason
        body = {"error": message}
    body.setdefault("request_id", rid)
    headers = {k: v for k, v in exc.headers.items() if k not in (hdrs.CONTENT_TYPE, hdrs.CONTENT_LENGTH)}
    return web.json_response(body, status=exc.status, headers=headers)


def _with_request_id(response: web.Response, rid: str) -> None:
    """Add ``request_id`` to a JSON error body a handler returned."""
    body = response.body
    if response.content_type != "application/json" or not isinstance(body, bytes | bytearray):
        return
    if len(body) > _MAX_REWRITE:
        return
    try:
        doc = json.loads(body)
    except ValueError:
        return
    if isinstance(doc, dict) and "request_id" not in doc:
        doc["request_id"] = rid
        response.body = json.dumps(doc).encode()


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give the request an id; turn raised HTTP errors into JSON and anything unexpected into a JSON 500."""
    rid = _new_id(request.headers.get(REQUEST_ID_HEADER))
    request[REQUEST_ID] = rid
    bound = structlog.contextvars.bind_contextvars(request_id=rid)  # on every log line of this request
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = _from_http_exception(exc, rid)
    except asyncio.CancelledError:
        raise
    except StoreUnavailable as exc:
        log.warning("request failed: store unavailable, answered 503", path=request.path, error=str(exc))
        response = web.json_response(
            {"error": "store unavailable, retry later", "request_id": rid}, status=503, headers={"Retry-After": "5"}
        )
    except Exception:
        log.exception(
            "request failed: unexpected error, answered 500",
            method=request.method,
            path=request.path,
            request_id=rid,
        )
        response = web.json_response(
            {"error": "internal error; the service log has the details under this request id", "request_id": rid},
            status=500,
        )
    finally:
        structlog.contextvars.reset_contextvars(**bound)
    if not response.prepared:
        if response.status >= 400 and isinstance(response, web.Response):
            _with_request_id(response, rid)
        response.headers[REQUEST_ID_HEADER] = rid
    return response
