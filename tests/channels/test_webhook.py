"""The webhook channel against a loopback aiohttp server: body, bearer, HMAC signature, status mapping."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from alert_router.channels.base import ChannelError
from alert_router.channels.webhook import SIGNATURE_HEADER, WebhookChannel, WebhookReceiverConfig
from alert_router.errors import FailureReason
from tests.channels.helpers import HOSTILE, alert, notification


@dataclass
class Sink:
    """Records requests; answers with the queued statuses (then 200)."""

    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    answers: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((dict(request.headers), await request.read()))
        status, headers = self.answers.pop(0) if self.answers else (200, {})
        return web.Response(status=status, headers=headers, text="ok")


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    s = Sink()
    app = web.Application()
    app.router.add_post("/hook/{secret}", s.handle)
    async with TestServer(app, host="127.0.0.1") as server:
        s.url = str(server.make_url("/hook/s3cr3tpath"))
        yield s


def make(sink: Sink, **kw: Any) -> WebhookChannel:
    return WebhookChannel("hook", WebhookReceiverConfig.model_validate({"url": sink.url, "timeout": 2, **kw}))


async def test_json_body_bearer_and_signature(sink: Sink) -> None:
    """The default body carries every alert; the signature is the HMAC-SHA256 of the exact bytes."""
    ch = make(sink, bearer_token="tok", hmac_secret="k3y", headers={"X-Team": "ml"})
    try:
        n = notification([alert(labels=HOSTILE)], extra={"delivery_id": 42})
        assert await ch.send(n, None) is None
    finally:
        await ch.aclose()
    [(headers, body)] = sink.requests
    assert headers["Authorization"] == "Bearer tok" and headers["X-Team"] == "ml"
    assert headers["Content-Type"] == "application/json" and headers["X-Alert-Router-Delivery"] == "42"
    expected = "sha256=" + hmac.new(b"k3y", body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers[SIGNATURE_HEADER], expected)
    doc = json.loads(body)
    assert doc["status"] == "firing" and doc["title"] == "[FIRING:1] ModelServiceDown · prod"
    assert doc["alerts"][0]["labels"]["angle"] == HOSTILE["angle"]  # exact, unescaped in JSON
    assert doc["alerts"][0]["labels"]["long"] == HOSTILE["long"]


async def test_receiver_template_is_json_safe(sink: Sink) -> None:
    """Every {{ expression }} is a JSON value, so hostile text cannot break the document."""
    ch = make(sink, template='{"text": {{ title ~ " " ~ alerts[0].labels.angle }}, "n": {{ count }}}')
    bad = make(sink, template='{"text": {{ alerts[0].nope.deeper }}}')
    broken_json = make(sink, template="not json {{ count }}")
    try:
        await ch.send(notification([alert(labels=HOSTILE)]), None)
        n = notification()
        await bad.send(n, None)
        n2 = notification()
        await broken_json.send(n2, None)
    finally:
        for c in (ch, bad, broken_json):
            await c.aclose()
    first = json.loads(sink.requests[0][1])
    assert first == {"text": "[FIRING:1] ModelServiceDown · prod " + HOSTILE["angle"], "n": 1}
    assert json.loads(sink.requests[1][1])["source"] == "alert-router"  # fell back to the default body
    assert json.loads(sink.requests[2][1])["source"] == "alert-router"
    assert n.extra["template_errors"] and n2.extra["template_errors"]


@pytest.mark.parametrize(
    ("status", "headers", "reason", "retryable", "retry_after"),
    [
        (429, {"Retry-After": "12"}, FailureReason.RATE_LIMITED, True, 12.0),
        (500, {}, FailureReason.SERVER_ERROR, True, None),
        (503, {}, FailureReason.SERVER_ERROR, True, None),
        (408, {}, FailureReason.SERVER_ERROR, True, None),
        (401, {}, FailureReason.AUTH, False, None),
        (404, {}, FailureReason.NOT_FOUND, False, None),
        (400, {}, FailureReason.REJECTED, False, None),
        (302, {"Location": "http://127.0.0.1:9/x"}, FailureReason.REJECTED, False, None),
    ],
)
async def test_status_mapping(
    sink: Sink, status: int, headers: dict[str, str], reason: FailureReason, retryable: bool,
    retry_after: float | None,
) -> None:
    sink.answers.append((status, headers))
    ch = make(sink)
    try:
        with pytest.raises(ChannelError) as err:
            await ch.send(notification(), None)
    finally:
        await ch.aclose()
    assert (err.value.reason, err.value.retryable, err.value.retry_after) == (reason, retryable, retry_after)
    assert "s3cr3tpath" not in str(err.value)


async def test_connection_refused_is_retryable_and_url_is_not_leaked() -> None:
    ch = WebhookChannel("hook", WebhookReceiverConfig(url="http://127.0.0.1:9/hook/s3cr3tpath", timeout=2))
    try:
        with pytest.raises(ChannelError) as err:
            await ch.send(notification(), None)
    finally:
        await ch.aclose()
    assert err.value.retryable and err.value.reason is FailureReason.CONNECTION
    assert "s3cr3tpath" not in str(err.value)
    assert "s3cr3tpath" not in ch.destination()


def test_url_file(tmp_path: Any) -> None:
    """url_file (like every secret) reads the URL from a mounted file."""
    f = tmp_path / "url"
    f.write_text("https://n8n.example/webhook/abc\n")
    assert WebhookReceiverConfig.model_validate({"url_file": str(f)}).url.get_secret_value().endswith("/abc")  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="http"):
        WebhookReceiverConfig.model_validate({"url": "ftp://x"})
