"""Malformed requests get a 4xx with a JSON error body carrying a request id, never aiohttp's plain 500.

Each case is one of the inputs an outside review found answered with 500 (issue 15, items 2 and 8), sent
byte for byte over a socket (so header values that are not valid text arrive as an attacker would send them).
The last resort, an error middleware, turns anything unexpected into a JSON 500 with a request id; the
cases here must each get their proper 4xx instead.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import structlog
import structlog.testing
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from alert_router.appkeys import Runtime
from tests.api.test_slack_api import button_body, rejected
from tests.api.test_telegram_api import GROUP, SECRET, telegram_chat, user
from tests.chat.support import FP, SHORT, alert_payload, chat_config, slack_headers, slash_body
from tests.helpers import JSON_TYPE, raw_http, running_app, wait_for, write_config
from tests.standins.telegram import TelegramStandin

TOKEN = "api-token-0123456789"
SLACK = "  slack: {signing_secret: s3cr3t-signing, response_url_prefixes: ['http://127.0.0.1:']}\n"
API_AUTH = f"remediation: {{api_auth: {{bearer_token: {TOKEN}, basic: {{username: ops, password: pw}}}}}}\n"
BEARER = [(b"Authorization", f"Bearer {TOKEN}".encode())]
DEEP = b"[" * 1000 + b"]" * 1000
DEEP_OBJECT = b'{"a":' * 1000 + b"1" + b"}" * 1000


def signed(body: bytes, content_type: bytes = b"application/x-www-form-urlencoded") -> list[tuple[bytes, bytes]]:
    """Headers carrying a valid Slack signature of ``body``."""
    h = slack_headers(body, secret="s3cr3t-signing")
    return [(b"X-Slack-Request-Timestamp", h["X-Slack-Request-Timestamp"].encode()),
            (b"X-Slack-Signature", h["X-Slack-Signature"].encode()), (b"Content-Type", content_type)]


def interaction(**overrides: Any) -> bytes:
    payload = json.loads(_form_payload(button_body("ar1:ack:" + SHORT + ":00000000", "http://127.0.0.1:9/r")))
    payload.update(overrides)
    return urlencode({"payload": json.dumps(payload)}).encode()


def _form_payload(body: bytes) -> str:
    from urllib.parse import parse_qs

    return parse_qs(body.decode())["payload"][0]


@pytest.fixture
async def app(tmp_path: Path, telegram_standin: TelegramStandin) -> AsyncIterator[tuple[TestClient[Any, Any], Runtime]]:
    cfg = chat_config(tmp_path, SLACK + telegram_chat(telegram_standin) + API_AUTH)
    async with running_app(cfg) as (client, rt):
        r = await client.post("/webhook", data=json.dumps(alert_payload()).encode(), headers=JSON_TYPE)
        assert r.status == 200
        await wait_for(lambda: rt.store.alert(FP))
        yield client, rt


def _now() -> bytes:
    return str(int(time.time())).encode()


CASES: list[tuple[str, str, str, list[tuple[bytes, bytes]], bytes, int]] = [
    # (case, method, target, headers, body, expected status)
    ("non-ASCII X-Slack-Signature", "POST", "/slack/commands",
     [(b"X-Slack-Request-Timestamp", _now()), (b"X-Slack-Signature", "v0=é".encode()),
      (b"Content-Type", b"application/x-www-form-urlencoded")], slash_body("help"), 401),
    ("raw bytes in X-Slack-Signature", "POST", "/slack/interactions",
     [(b"X-Slack-Request-Timestamp", _now()), (b"X-Slack-Signature", b"v0=\xff\xfe"),
      (b"Content-Type", b"application/x-www-form-urlencoded")], interaction(), 401),
    ("non-UTF-8 slash command, wrong signature", "POST", "/slack/commands",
     [(b"X-Slack-Request-Timestamp", _now()), (b"X-Slack-Signature", b"v0=" + b"0" * 64),
      (b"Content-Type", b"application/x-www-form-urlencoded")], b"text=\xff\xfe\xc3", 401),
    ("non-UTF-8 interaction, wrong signature", "POST", "/slack/interactions",
     [(b"X-Slack-Request-Timestamp", _now()), (b"X-Slack-Signature", b"v0=" + b"0" * 64),
      (b"Content-Type", b"application/x-www-form-urlencoded")], b"payload=\xff{", 401),
    ("huge Slack timestamp", "POST", "/slack/commands",
     [(b"X-Slack-Request-Timestamp", b"9" * 400), (b"X-Slack-Signature", b"v0=" + b"0" * 64),
      (b"Content-Type", b"application/x-www-form-urlencoded")], b"text=x", 401),
    ("raw bytes in the Telegram secret", "POST", "/telegram/webhook",
     [(b"X-Telegram-Bot-Api-Secret-Token", b"\xff\xfe"), (b"Content-Type", b"application/json")],
     b'{"update_id": 1}', 403),
    ("Basic with a non-ASCII value", "GET", "/api/v1/runs", [(b"Authorization", "Basic é".encode())], b"", 401),
    ("Bearer with raw bytes", "GET", "/api/v1/runs", [(b"Authorization", b"Bearer \xff\xfe")], b"", 401),
    ("Basic with raw bytes", "GET", "/api/v1/audit", [(b"Authorization", b"Basic \xff\xfe")], b"", 401),
    ("huge run id", "GET", "/api/v1/runs/99999999999999999999", BEARER, b"", 404),
    ("huge run id to approve", "POST", "/api/v1/runs/99999999999999999999/approve", BEARER,
     b'{"user": "ops"}', 404),
    ("huge run id to deny", "POST", "/api/v1/runs/99999999999999999999/deny", BEARER, b'{"user": "ops"}', 404),
    ("huge audit run_id", "GET", "/api/v1/audit?run_id=99999999999999999999", BEARER, b"", 400),
    ("huge audit limit", "GET", "/api/v1/audit?limit=99999999999999999999", BEARER, b"", 400),
    ("negative audit limit", "GET", "/api/v1/audit?limit=-5", BEARER, b"", 400),
    ("huge runs limit", "GET", "/api/v1/runs?limit=99999999999999999999", BEARER, b"", 400),
    ("bogus charset on the API", "POST", "/api/v1/runs/424242/approve",
     [*BEARER, (b"Content-Type", b"application/json; charset=x-bogus")], b'{"user": "ops"}', 404),
    ("bogus charset on Telegram", "POST", "/telegram/webhook",
     [(b"X-Telegram-Bot-Api-Secret-Token", SECRET.encode()), (b"Content-Type", b"application/json; charset=x-bogus")],
     b'{"update_id": "x"}', 400),
    ("non-UTF-8 JSON on Telegram", "POST", "/telegram/webhook",
     [(b"X-Telegram-Bot-Api-Secret-Token", SECRET.encode()), (b"Content-Type", b"application/json")],
     b'{"update_id": 1, "x": "\xff"}', 400),
    ("deep JSON on Telegram", "POST", "/telegram/webhook",
     [(b"X-Telegram-Bot-Api-Secret-Token", SECRET.encode()), (b"Content-Type", b"application/json")], DEEP, 400),
    ("deep JSON object on Telegram", "POST", "/telegram/webhook",
     [(b"X-Telegram-Bot-Api-Secret-Token", SECRET.encode()), (b"Content-Type", b"application/json")],
     DEEP_OBJECT, 400),
    ("deep JSON on the API", "POST", "/api/v1/runs/424242/approve", [*BEARER, (b"Content-Type", b"application/json")],
     DEEP_OBJECT, 400),
    ("deep JSON on the webhook", "POST", "/webhook", [(b"Content-Type", b"application/json")], DEEP_OBJECT, 400),
]


@pytest.mark.parametrize(("case", "method", "target", "headers", "body", "status"), CASES, ids=[c[0] for c in CASES])
async def test_malformed_input_gets_its_4xx_with_a_json_error_and_a_request_id(
    app: tuple[TestClient[Any, Any], Runtime], case: str, method: str, target: str,
    headers: list[tuple[bytes, bytes]], body: bytes, status: int,
) -> None:
    client, rt = app
    before = rejected(rt)
    got, answer_headers, raw = await raw_http(client.port or 0, method, target, headers, body)
    assert got == status, (case, raw[:300])
    assert answer_headers["content-type"].startswith("application/json"), case
    doc = json.loads(raw)
    assert isinstance(doc["error"], str) and doc["error"], case
    assert doc["request_id"] and answer_headers["x-request-id"] == doc["request_id"], case
    if target.startswith("/slack/"):
        assert rejected(rt) == before + 1, "a refused Slack request is counted as rejected"
    await rt.services["chat"].background.drain()
    assert (await rt.store.alert(FP)).acked_by is None
    assert [r for r in await rt.store.audit_records() if r.event.startswith("chat_")] == []


SIGNED_CASES: list[tuple[str, str, bytes, int]] = [
    ("deep JSON in the Slack payload", "/slack/interactions", urlencode({"payload": DEEP_OBJECT.decode()}).encode(),
     400),
    ("actions is a number", "/slack/interactions", interaction(actions=1.5), 400),
    ("user is a string", "/slack/interactions", interaction(user="URESP"), 400),
    ("team is a list", "/slack/interactions", interaction(team=[1]), 400),
    ("an action is a list", "/slack/interactions", interaction(actions=[[1]]), 400),
    ("payload is not JSON", "/slack/interactions", b"payload=%7Bnope", 400),
]


@pytest.mark.parametrize(("case", "target", "body", "status"), SIGNED_CASES, ids=[c[0] for c in SIGNED_CASES])
async def test_signed_but_malformed_slack_bodies_get_400_and_run_nothing(
    app: tuple[TestClient[Any, Any], Runtime], case: str, target: str, body: bytes, status: int
) -> None:
    client, rt = app
    got, answer_headers, raw = await raw_http(client.port or 0, "POST", target, signed(body), body)
    assert got == status, (case, raw[:300])
    doc = json.loads(raw)
    assert doc["error"] and doc["request_id"] == answer_headers["x-request-id"]
    await rt.services["chat"].background.drain()
    assert (await rt.store.alert(FP)).acked_by is None


async def test_a_numeric_callback_data_and_lone_surrogates_are_answered_and_audited(
    tmp_path: Path, telegram_standin: TelegramStandin
) -> None:
    """A button press whose data is a number, or whose user name holds a lone surrogate, is still a button press:
    answered (the spinner stops) and written to the audit log, which stays verifiable."""
    async with running_app(chat_config(tmp_path, telegram_chat(telegram_standin) + API_AUTH)) as (client, rt):
        bot = await rt.services["chat.telegram"].bot()
        sent = await bot.send_message(GROUP, "hello")
        press = telegram_standin.inject_callback_query(GROUP, sent.message_id, "x", user(telegram_standin, "admin"))
        press["callback_query"]["data"] = 12345
        odd = telegram_standin.inject_callback_query(GROUP, sent.message_id, "ar1:ack:" + SHORT + ":0",
                                                     user(telegram_standin, "admin"))
        body = json.dumps(odd).replace('"Adam"', '"Ad\\ud800am"').replace('"adam"', '"ad\\udfffam"').encode()
        headers = [(b"X-Telegram-Bot-Api-Secret-Token", SECRET.encode()), (b"Content-Type", b"application/json")]
        for raw in (json.dumps(press).encode(), body):
            status, _, answer = await raw_http(client.port or 0, "POST", "/telegram/webhook", headers, raw)
            assert status == 200, answer
        await rt.services["chat"].background.drain()
        assert [a.callback_query_id for a in telegram_standin.callback_answers] == [
            press["callback_query"]["id"], odd["callback_query"]["id"]]
        records = [r for r in await rt.store.audit_records() if r.event.startswith("chat_")]
        assert [r.details["input"] for r in records] == ["12345", "ar1:ack:" + SHORT + ":0"]
        assert "\ufffd" in records[1].details["user_name"]
        r = await client.get("/api/v1/audit/verify", headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status == 200 and (await r.json())["ok"]


async def test_unexpected_exceptions_become_a_json_500_with_a_request_id() -> None:
    """The last resort: a handler that raises gets a JSON 500 naming the request id; the details stay in the log."""
    from alert_router.api import errors as errors_api

    async def boom(request: web.Request) -> web.Response:
        raise RuntimeError("kaboom-internal-detail")

    app = web.Application(middlewares=[errors_api.error_middleware])
    app.router.add_get("/boom", boom)
    with structlog.testing.capture_logs() as logs:
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            r = await client.get("/boom")
            assert r.status == 500 and r.content_type == "application/json"
            doc = await r.json()
    assert doc["request_id"] == r.headers["X-Request-Id"]
    assert "kaboom" not in doc["error"], "internal details stay in the log"
    (entry,) = [e for e in logs if e["log_level"] == "error"]
    assert entry["request_id"] == doc["request_id"] and entry["path"] == "/boom"


@pytest.mark.parametrize("header", ["Basic é".encode(), b"Basic \xff\xfe", b"Bearer \xff\xfe", b"Basic !!!!"])
async def test_webhook_credentials_that_are_not_text_get_401(tmp_path: Path, header: bytes) -> None:
    cfg = write_config(tmp_path, "auth: {bearer_token: t0ken, basic: {username: am, password: pw}}\n")
    async with running_app(cfg) as (client, rt):
        body = json.dumps(alert_payload()).encode()
        status, headers, raw = await raw_http(client.port or 0, "POST", "/webhook", [(b"Authorization", header)], body)
        assert status == 401, raw
        assert json.loads(raw)["request_id"] == headers["x-request-id"]
        assert (await rt.store.depth(time.time())).inbox == 0


async def test_unknown_routes_and_methods_answer_json(app: tuple[TestClient[Any, Any], Runtime]) -> None:
    client, _ = app
    for method, path, status in (("GET", "/nope", 404), ("GET", "/webhook", 405), ("DELETE", "/api/v1/runs", 405)):
        got, headers, raw = await raw_http(client.port or 0, method, path)
        assert got == status
        doc = json.loads(raw)
        assert doc["error"] and doc["request_id"] == headers["x-request-id"]
    basic = base64.b64encode(b"ops:wrong").decode()
    r = await client.get("/api/v1/runs", headers={"Authorization": f"Basic {basic}"})
    assert r.status == 401 and "WWW-Authenticate" in r.headers
    assert (await r.json())["request_id"] == r.headers["X-Request-Id"]
