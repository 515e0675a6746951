"""Read a request body whole, however it arrives, and never more of it than the cap.

``request.content.read(n)`` returns what has arrived so far, not the body: a body that comes in several TCP
segments (any body over a few kilobytes, any body over a real network) would be cut short. :func:`read_body`
reads until the end of the body (``Content-Length`` or the last chunk of a chunked body), whatever the
segmentation, and answers for the three ways that can go wrong:

* **Too large** — more than ``limit`` bytes (announced, or counted while reading a chunked body):
  :class:`BodyTooLarge`, answered 413 as soon as the cap is crossed; no more than the cap and one read's
  worth is ever held.
* **Not JSON** — a ``Content-Type`` other than ``application/json`` (a ``charset`` parameter is fine; Slack's
  endpoints take the form bodies Slack sends instead):
  :class:`WrongContentType`, answered 415 before a byte of the body is read. Form and multipart bodies are
  what a web page in a browser can post cross-origin without asking, so they are never taken.
* **Incomplete** — the client went away, the body ended before its announced length, or it did not arrive
  within ``webhook.read_timeout``: :class:`BodyIncomplete`. That is *not* the sender's mistake, and Alertmanager treats
  every 4xx as final and drops the notification, so it is answered 503 (retry), logged and counted in
  ``alert_router_body_incomplete_total{endpoint}``.

Every endpoint that takes a body (the webhook, Slack, Telegram, the runs API) reads it through
:func:`read_body` or :func:`read_request`.
"""

from __future__ import annotations

import asyncio

import structlog
from aiohttp import web

from alert_router.api.errors import json_error
from alert_router.appkeys import RUNTIME
from alert_router.streams import BodyIncomplete, BodyTooLarge, read_capped

log = structlog.get_logger("alert_router.api")

__all__ = [
    "REFUSED_OUTCOME",
    "BodyError",
    "BodyIncomplete",
    "BodyTooLarge",
    "WrongContentType",
    "read_body",
    "read_request",
    "refusal",
]

JSON_TYPE = "application/json"


class WrongContentType(Exception):
    """The request's ``Content-Type`` is not the one the endpoint takes (``expected``)."""

    def __init__(self, expected: str) -> None:
        self.expected = expected
        super().__init__(f"Content-Type must be {expected}")


BodyError = BodyTooLarge | BodyIncomplete | WrongContentType
"""What :func:`read_body` raises."""


async def read_body(
    request: web.Request, limit: int, within: float, *, content_type: str | None = JSON_TYPE
) -> bytes:
    """The whole body of ``request``: at most ``limit`` bytes, within ``within`` seconds.

    ``content_type`` is the media type required (``None``: any). Raises :class:`WrongContentType`,
    :class:`BodyTooLarge` or :class:`BodyIncomplete` as described in the module docstring.
    """
    if content_type is not None and request.content_type != content_type:
        raise WrongContentType(content_type)
    announced = request.content_length
    if announced is not None and announced > limit:
        raise BodyTooLarge(limit, announced)
    body = await read_capped(request.content, limit, within)
    if announced is not None and len(body) != announced:
        raise BodyIncomplete(f"the body ended after {len(body)} of {announced} bytes", len(body))
    return body


def refusal(request: web.Request, endpoint: str, exc: BodyError) -> web.Response:
    """The answer to a body that could not be read, logged and counted; see the module docstring."""
    if isinstance(exc, WrongContentType):
        got = request.headers.get("Content-Type", "")
        log.warning("request refused: wrong media type", endpoint=endpoint, content_type=got, expected=exc.expected)
        return json_error(request, 415, f"{exc} (got {got or 'none'!r})")
    if isinstance(exc, BodyTooLarge):
        log.error("request refused: body too large", endpoint=endpoint, limit=exc.limit, size=exc.size)
        size = f"of {exc.size} bytes " if exc.size is not None else ""
        return json_error(request, 413, f"body {size}exceeds the limit of {exc.limit} bytes", limit=exc.limit)
    _incomplete(request, endpoint, str(exc), exc.received)
    resp = json_error(request, 503, f"the body did not arrive whole ({exc}); retry")
    resp.headers["Retry-After"] = "5"
    return resp


def _incomplete(request: web.Request, endpoint: str, reason: str, received: int | None) -> None:
    request.app[RUNTIME].metrics.body_incomplete.labels(endpoint).inc()
    log.error(
        "request body incomplete: not taken (answered 503 if the sender is still there, so it retries)",
        endpoint=endpoint,
        reason=reason,
        received=received,
        remote=request.remote,
    )


REFUSED_OUTCOME = {413: "too_large", 415: "unsupported_media_type", 503: "incomplete"}
"""The ``alert_router_webhooks_total`` outcome of each status :func:`read_request` refuses a body with."""


async def read_request(
    request: web.Request, endpoint: str, content_type: str | None = JSON_TYPE
) -> bytes | web.Response:
    """The body of ``request`` under the configured cap and read timeout, or the refusal to answer with.

    ``endpoint`` labels the log line and the metric; ``content_type`` is the media type required. A
    server that cancels a handler when its client goes away (``handler_cancellation``) cancels the read:
    that too is counted as an incomplete body before the cancellation goes on.
    """
    settings = request.app[RUNTIME].config.settings.webhook
    try:
        return await read_body(request, settings.max_body_bytes, settings.read_timeout, content_type=content_type)
    except (WrongContentType, BodyTooLarge, BodyIncomplete) as exc:
        return refusal(request, endpoint, exc)
    except asyncio.CancelledError:
        if request.transport is None or request.transport.is_closing():
            _incomplete(request, endpoint, "the client went away before the body ended", None)
        raise
