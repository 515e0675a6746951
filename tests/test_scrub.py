"""Upstream error text is scrubbed before it reaches a notification, the audit log or the log: configured secrets
(even ones that look like nothing), credential patterns, control characters, length."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest
import structlog
from aiohttp import web

from alert_router.channels.base import ChannelError
from alert_router.channels.email import map_smtp_error
from alert_router.chat.alertmanager import AlertmanagerError
from alert_router.config import load
from alert_router.enrich.loki import LokiError
from alert_router.errors import FailureReason
from alert_router.logging import configure_logging
from alert_router.redact import MASK
from alert_router.remediation.actions.base import StepFailed
from alert_router.remediation.kube import classify_status
from alert_router.scrub import (
    REASON_CHARS,
    ScrubFilter,
    known_secrets,
    register_secrets,
    scrub,
    scrub_log_event,
    secrets_in,
)
from tests.chat.support import SLACK_SECRET, chat_config, slack_headers, slash_body
from tests.enrich.support import enrich_config
from tests.helpers import JSON_TYPE, fixture_json, read_jsonl, running_app, wait_for, write_config
from tests.standins.loki import LokiStandin
from tests.standins.slack import start_site

# Configured secrets that match no credential pattern on their own: only the registry can catch them.
LOKI_TOKEN = "plainLokiTokenValue42"
AM_TOKEN = "amTokenNothingSpecial7"


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    """The service's own logging, configured as ``serve`` does, into a buffer; restored afterwards."""
    buf = io.StringIO()
    root = logging.getLogger()
    before = list(root.handlers)
    configure_logging("json", "debug", stream=buf)
    try:
        yield buf
    finally:
        structlog.reset_defaults()
        for handler in root.handlers:
            handler.filters = [f for f in handler.filters if not isinstance(f, ScrubFilter)]
            if handler not in before:
                root.removeHandler(handler)


# --------------------------------------------------------------------------- scrub()


def test_a_registered_secret_is_replaced_even_when_it_looks_like_nothing() -> None:
    register_secrets(["nothing-special-value"])
    assert "nothing-special-value" in known_secrets()
    text = "HTTP 401: who is nothing-special-value? (also nothing-special-value%21 and nothing%2Dspecial)"
    assert scrub(text) == f"HTTP 401: who is {MASK}? (also {MASK}%21 and nothing%2Dspecial)"
    register_secrets(["a+b c/d=e"])  # its URL-encoded form too
    assert scrub("GET /x?token=a%2Bb%20c%2Fd%3De") == f"GET /x?token={MASK}"


def test_extra_secrets_patterns_control_characters_and_length() -> None:
    text = "line one\nBearer abc.def.ghi\r\n\x1b[31mred\x00 " + "x" * 1000 + " tail-secret-9"
    out = scrub(text, 120, extra=["tail-secret-9"])
    assert "abc.def.ghi" not in out and "\n" not in out and "\x1b" not in out and "\x00" not in out
    assert out.startswith(f"line one Bearer {MASK} [31mred ") and out.endswith("…") and len(out) == 120
    assert len(scrub("y" * 5000)) == REASON_CHARS
    # redaction happens before the cut: a secret across the cut is not left half visible
    cut = scrub("z" * 90 + " password=hunter2hunter2", 100)
    assert "hunter" not in cut


def test_secrets_in_finds_every_secret_of_a_loaded_config(tmp_path: Path) -> None:
    receivers = (
        "receivers:\n"
        "  - name: file\n    file: {path: out.jsonl}\n"
        "  - name: tg\n    telegram: {token: '12345:tg-bot-token-value', chat_id: '-100'}\n"
        "  - name: hook\n    webhook: {url: 'http://127.0.0.1:9/h', bearer_token: hook-token-value, "
        "hmac_secret: hook-hmac-value}\n"
    )
    path = write_config(tmp_path, f"enrich:\n  loki: {{url: 'http://127.0.0.1:9', bearer_token: {LOKI_TOKEN}}}\n",
                        receivers=receivers)
    config = load(path, {})
    found = set(secrets_in(config))
    assert {"12345:tg-bot-token-value", "hook-token-value", "hook-hmac-value", LOKI_TOKEN} <= found
    assert found <= set(known_secrets())  # load() registered them


@pytest.mark.parametrize(
    "build",
    [
        lambda t: ChannelError(FailureReason.AUTH, f"telegram: Forbidden: bot {t} was blocked", retryable=False),
        lambda t: LokiError(FailureReason.AUTH, f"HTTP 401: invalid credentials: Bearer {t}", 401),
        lambda t: AlertmanagerError(f"Alertmanager refused it (HTTP 401): token {t} unknown", status=401),
        lambda t: classify_status(401, json.dumps({"kind": "Status", "message": f"Unauthorized: token {t}",
                                                   "reason": "Unauthorized"})),
        lambda t: StepFailed(FailureReason.REJECTED, f"POST http://hook answered 403: key {t} revoked"),
        lambda t: map_smtp_error(aiosmtplib.SMTPAuthenticationError(535, f"5.7.8 bad credentials {t}")),
    ],
    ids=["channel", "loki", "alertmanager", "kubernetes", "step", "smtp"],
)
def test_every_upstream_error_class_scrubs_its_message(build: Any) -> None:
    token = "upstream-echoed-secret-77"
    register_secrets([token])
    exc = build(token)
    assert token not in str(exc) and MASK in str(exc)


def test_log_processor_and_stdlib_filter_scrub_and_cut() -> None:
    register_secrets(["log-secret-value-1"])
    event = scrub_log_event(None, "warning", {
        "event": "call failed", "error": "401 Bearer abc.def.ghi", "nested": {"body": ["log-secret-value-1"]},
        "exception": "Traceback ...\nValueError: log-secret-value-1", "big": "q" * 10_000,
    })
    assert event["error"] == f"401 Bearer {MASK}" and event["nested"] == {"body": [MASK]}
    assert event["exception"] == f"Traceback ...\nValueError: {MASK}" and len(event["big"]) == 4000
    record = logging.LogRecord("aiohttp.client", logging.WARNING, __file__, 1, "GET %s failed", ("/x?token=abc",),
                               None)
    assert ScrubFilter().filter(record) and record.getMessage() == f"GET /x?token={MASK} failed"


# --------------------------------------------------------------------------- through the service


async def test_loki_echoing_a_token_reaches_no_notification_audit_record_or_log(
    loki_standin: LokiStandin, tmp_path: Path, captured_logs: io.StringIO
) -> None:
    """Loki answers 401 quoting the credential: the notification says why there are no logs, without it."""
    loki_standin.fail_next(5, status=401, body=f"invalid credentials: Bearer {LOKI_TOKEN} (token {LOKI_TOKEN})")
    config = enrich_config(tmp_path, loki_standin.url, f"bearer_token: {LOKI_TOKEN}")
    out = tmp_path / "data" / "out.jsonl"
    async with running_app(config) as (client, rt):
        body = json.dumps(fixture_json("firing-service-down.json")).encode()
        r = await client.post("/webhook", data=body, headers=JSON_TYPE)
        assert r.status == 200
        await wait_for(lambda: read_jsonl(out))
        audit = [r.data for r in await rt.store.audit_records()]
    assert loki_standin.last_query.authorization == f"Bearer {LOKI_TOKEN}"  # it was really sent, and echoed
    (record,) = read_jsonl(out)
    (entry,) = record["extra"]["enrichment"]["logs"]
    assert entry["status"] == "unavailable"
    assert entry["reason"] == f"auth: HTTP 401: invalid credentials: Bearer {MASK} (token {MASK})"
    logs = captured_logs.getvalue()
    assert "Loki query failed" in logs
    for where in (out.read_text(), logs, *audit):
        assert LOKI_TOKEN not in where


async def test_alertmanager_echoing_a_token_reaches_no_chat_reply_audit_record_or_log(
    tmp_path: Path, captured_logs: io.StringIO
) -> None:
    """A chat silence refused by Alertmanager with the credential in its answer: reply, audit and log stay clean."""

    async def refuse(request: web.Request) -> web.Response:
        assert request.headers["Authorization"] == f"Bearer {AM_TOKEN}"
        return web.Response(status=401, text=f"invalid credentials: Bearer {AM_TOKEN}\nsee token {AM_TOKEN}")

    am = web.Application()
    am.router.add_post("/api/v2/silences", refuse)
    runner, port = await start_site(am)
    try:
        chat = (f"  slack: {{signing_secret: {SLACK_SECRET}, response_url_prefixes: ['http://127.0.0.1:']}}\n"
                f"  alertmanager: {{url: 'http://127.0.0.1:{port}', bearer_token: {AM_TOKEN}}}\n")
        async with running_app(chat_config(tmp_path, chat)) as (client, rt):
            body = slash_body("silence alertname=ModelServiceDown 1h")
            r = await client.post("/slack/commands", data=body, headers=slack_headers(body))
            reply = await r.json()
            audit = [r.data for r in await rt.store.audit_records()]
    finally:
        await runner.cleanup()
    assert reply["text"] == f"Alertmanager: Alertmanager refused it (HTTP 401): invalid credentials: Bearer {MASK} " \
                            f"see token {MASK}"
    assert any(MASK in data for data in audit)
    for where in (json.dumps(reply), captured_logs.getvalue(), *audit):
        assert AM_TOKEN not in where
