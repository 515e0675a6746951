"""POST /slack/commands and /slack/interactions: signatures verified before anything runs, quick answers,
replies through response_url, and the button round trip through the Slack stand-in."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import pytest
from aiohttp import web

from alert_router.api import slack as slack_api
from tests.chat.support import (
    FP,
    SHORT,
    SLACK_SECRET,
    alert_payload,
    chat_config,
    slack_headers,
    slash_body,
)
from tests.helpers import JSON_TYPE, running_app, wait_for
from tests.standins.slack import SlackStandin, start_site

SLACK_CHAT = f"  slack: {{signing_secret: {SLACK_SECRET}, response_url_prefixes: ['http://127.0.0.1:']}}\n"


class Catcher:
    """A loopback endpoint standing in for Slack's response_url."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.posts.append(await request.json())
        return web.Response(text="ok")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/response"


@pytest.fixture
async def catcher() -> AsyncIterator[Catcher]:
    c = Catcher()
    app = web.Application()
    app.router.add_post("/response", c.handle)
    c.runner, c.port = await start_site(app)
    try:
        yield c
    finally:
        await c.runner.cleanup()


def rejected(rt: Any) -> float:
    """How many requests the chat endpoints refused before parsing (the metric)."""
    return sum(s.value for m in rt.metrics.registry.collect() if m.name == "alert_router_chat_rejected_requests"
               for s in m.samples if s.name.endswith("_total"))


async def chat_records(rt: Any) -> list[Any]:
    return [r for r in await rt.store.audit_records() if r.event.startswith("chat_")]


async def firing(client: Any, rt: Any) -> None:
    r = await client.post("/webhook", data=json.dumps(alert_payload()).encode(), headers=JSON_TYPE)
    assert r.status == 200
    await wait_for(lambda: rt.store.alert(FP))


async def test_valid_signature_runs_the_command_and_answers_inline(tmp_path: Path) -> None:
    async with running_app(chat_config(tmp_path, SLACK_CHAT)) as (client, rt):
        await firing(client, rt)
        body = slash_body(f"ack {SHORT}")
        r = await client.post("/slack/commands", data=body, headers=slack_headers(body))
        assert r.status == 200
        answer = await r.json()
        assert answer["response_type"] == "in_channel" and answer["text"].startswith(f"rita acked {SHORT}")
        assert (await rt.store.alert(FP)).acked_by == "rita"
        (rec,) = await chat_records(rt)
        assert (rec.event, rec.actor, rec.details["platform"], rec.details["chat_id"]) == (
            "chat_command", "rita", "slack", "C0ALERTS")


def tampered(body: bytes) -> tuple[bytes, dict[str, str]]:
    headers = slack_headers(body)
    return body.replace(b"URESP", b"UADMIN"), headers


@pytest.mark.parametrize(
    ("case", "make"),
    [
        ("wrong secret", lambda b: (b, slack_headers(b, secret="not-the-signing-secret"))),
        ("tampered body", tampered),
        ("replayed old timestamp", lambda b: (b, slack_headers(b, timestamp=int(time.time()) - 301))),
        ("timestamp from the future", lambda b: (b, slack_headers(b, timestamp=int(time.time()) + 400))),
        ("no signature", lambda b: (b, {"Content-Type": "application/x-www-form-urlencoded"})),
        ("garbage timestamp", lambda b: (b, {**slack_headers(b), "X-Slack-Request-Timestamp": "yesterday"})),
    ],
)
@pytest.mark.parametrize("endpoint", ["/slack/commands", "/slack/interactions"])
async def test_requests_failing_verification_get_401_and_execute_nothing(
    tmp_path: Path, case: str, make: Any, endpoint: str
) -> None:
    async with running_app(chat_config(tmp_path, SLACK_CHAT)) as (client, rt):
        await firing(client, rt)
        if endpoint == "/slack/commands":
            original = slash_body(f"ack {SHORT}")
        else:
            original = button_body("ar1:ack:" + SHORT + ":00000000", "http://127.0.0.1:9/r")
        body, headers = make(original)
        r = await client.post(endpoint, data=body, headers=headers)
        assert r.status == 401, case
        chat = rt.services["chat"]
        await chat.background.drain()
        assert (await rt.store.alert(FP)).acked_by is None
        assert await chat_records(rt) == []
        assert rejected(rt) == 1


async def test_a_signed_request_replayed_within_the_window_is_still_checked_against_its_own_body(
    tmp_path: Path,
) -> None:
    async with running_app(chat_config(tmp_path, SLACK_CHAT)) as (client, rt):
        body = slash_body("help", user_id="UVIEWER")
        headers = slack_headers(body)
        assert (await client.post("/slack/commands", data=body, headers=headers)).status == 200
        other = slash_body("silence alertname=X 1h", user_id="UVIEWER")
        assert (await client.post("/slack/commands", data=other, headers=headers)).status == 401
        replay = await client.post("/slack/commands", data=body, headers=headers)
        assert replay.status == 401 and (await replay.json())["error"] == "replayed request"
        assert len(await chat_records(rt)) == 1


async def test_slack_disabled_without_a_signing_secret(tmp_path: Path) -> None:
    async with running_app(chat_config(tmp_path)) as (client, _):
        body = slash_body("help")
        r = await client.post("/slack/commands", data=body, headers=slack_headers(body))
        assert r.status == 404


async def test_refusals_are_ephemeral_and_audited(tmp_path: Path) -> None:
    async with running_app(chat_config(tmp_path, SLACK_CHAT)) as (client, rt):
        await firing(client, rt)
        body = slash_body(f"ack {SHORT}", user_id="UVIEWER", user_name="vera")
        answer = await (await client.post("/slack/commands", data=body, headers=slack_headers(body))).json()
        assert answer["response_type"] == "ephemeral" and answer["text"].startswith("Sorry vera")
        (rec,) = await chat_records(rt)
        assert rec.event == "chat_refused" and rec.actor == "vera"
        body = slash_body("status", user_id="USTRANGER")
        answer = await (await client.post("/slack/commands", data=body, headers=slack_headers(body))).json()
        assert "USTRANGER" in answer["text"] and answer["response_type"] == "ephemeral"


async def test_mrkdwn_control_characters_are_escaped(tmp_path: Path) -> None:
    async with running_app(chat_config(tmp_path, SLACK_CHAT)) as (client, _):
        body = slash_body("alerts alertname=~\"<b>&\"", user_id="UVIEWER")
        answer = await (await client.post("/slack/commands", data=body, headers=slack_headers(body))).json()
        assert "&lt;b&gt;&amp;" in answer["text"] and "<b>" not in answer["text"]


async def test_slow_commands_answer_within_budget_and_reply_via_response_url(
    tmp_path: Path, catcher: Catcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow = web.Application()

    async def status(_: web.Request) -> web.Response:
        await asyncio.sleep(1.0)
        return web.json_response({"versionInfo": {"version": "0.25.0"}, "cluster": {"status": "ready", "peers": []}})

    slow.router.add_get("/api/v2/status", status)
    runner, port = await start_site(slow)
    monkeypatch.setattr(slack_api, "INLINE_BUDGET", 0.2)
    try:
        extra = SLACK_CHAT + f"  alertmanager: {{url: 'http://127.0.0.1:{port}'}}\n"
        async with running_app(chat_config(tmp_path, extra)) as (client, _):
            body = slash_body("status", user_id="UVIEWER", response_url=catcher.url)
            started = time.monotonic()
            r = await client.post("/slack/commands", data=body, headers=slack_headers(body))
            assert time.monotonic() - started < 1.0
            assert (await r.json())["text"] == "Working on it…"
            await wait_for(lambda: catcher.posts, timeout=5)
            (post,) = catcher.posts
            assert "reachable, version 0.25.0" in post["text"] and post["replace_original"] is False
    finally:
        await runner.cleanup()


def button_body(value: str, response_url: str, *, user: str = "URESP", channel: str = "C0ALERTS",
                ts: str = "1700000000.000100") -> bytes:
    payload = {
        "type": "block_actions",
        "team": {"id": "T0STANDIN", "domain": "standin"},
        "user": {"id": user, "username": "rita", "name": "rita", "team_id": "T0STANDIN"},
        "api_app_id": "A0APP",
        "container": {"type": "message", "message_ts": ts, "channel_id": channel, "is_ephemeral": False},
        "trigger_id": "1.2.3",
        "channel": {"id": channel, "name": "alerts"},
        "message": {"type": "message", "ts": ts, "text": "alert"},
        "response_url": response_url,
        "actions": [{"action_id": "alert_router.ack", "block_id": "alert_router_actions_x", "type": "button",
                     "value": value, "action_ts": "1700000001.000200", "text": {"type": "plain_text", "text": "Ack"}}],
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


async def test_response_url_outside_slack_is_not_called(tmp_path: Path, catcher: Catcher) -> None:
    strict = f"  slack: {{signing_secret: {SLACK_SECRET}}}\n"  # default prefix: https://hooks.slack.com/
    async with running_app(chat_config(tmp_path, strict)) as (client, rt):
        await firing(client, rt)
        body = button_body(f"ar1:ack:{SHORT}:00000000", catcher.url)
        assert (await client.post("/slack/interactions", data=body, headers=slack_headers(body))).status == 200
        await rt.services["chat"].background.drain()
        assert catcher.posts == []


async def test_button_round_trip_through_the_slack_standin(
    tmp_path: Path, slack_standin: SlackStandin, catcher: Catcher
) -> None:
    receivers = (
        "receivers:\n  - name: file\n    file: {path: out.jsonl, fsync: false}\n"
        "  - name: lead\n    file: {path: lead.jsonl, fsync: false}\n"
        "  - name: slack\n    slack: {token: xoxb-test-token, channel: C0ALERTS, "
        f"api_url: '{slack_standin.base_url}'}}\n"
    )
    rules = "rules:\n  - name: all\n    receivers: [slack]\ndefault:\n  receivers: [file]\n"
    async with running_app(chat_config(tmp_path, SLACK_CHAT, rules=rules, receivers=receivers)) as (client, rt):
        await firing(client, rt)
        (message,) = await wait_for(lambda: slack_standin.messages["C0ALERTS"], timeout=10)
        buttons = [e for b in message.blocks or [] if b["type"] == "actions" for e in b["elements"]]
        ack = next(b for b in buttons if b["action_id"] == "alert_router.ack")
        assert "acked by" not in json.dumps(message.blocks)

        body = button_body(ack["value"], catcher.url, ts=message.ts)
        started = time.monotonic()
        r = await client.post("/slack/interactions", data=body, headers=slack_headers(body))
        assert r.status == 200 and time.monotonic() - started < 3

        # the edit and the thread reply are two calls: wait for both
        await wait_for(lambda: message.edits >= 1 and len(slack_standin.messages["C0ALERTS"]) == 2, timeout=10)
        assert "acked by rita" in json.dumps(message.blocks)
        update = [q for q in slack_standin.requests if q.method == "chat.update"][-1]
        assert update.params["ts"] == message.ts and update.params["channel"] == "C0ALERTS"
        await wait_for(lambda: catcher.posts, timeout=5)
        assert catcher.posts[0]["text"].startswith(f"rita acked {SHORT}")
        assert catcher.posts[0]["response_type"] == "ephemeral"
        (rec,) = await chat_records(rt)
        assert rec.event == "chat_button" and rec.details["command"] == "ack"
        page, reply = slack_standin.messages["C0ALERTS"]  # the page was edited, not re-posted; a thread reply
        assert page is message and reply.thread_ts == message.ts
        assert reply.text == f"👀 rita acked {SHORT} ModelServiceDown"


async def test_silence_menu_choice_runs_the_silence_it_names(tmp_path: Path, catcher: Catcher) -> None:
    """A pick in the Silence menu (static_select) arrives as `selected_option`; its value is the command."""
    async with running_app(chat_config(tmp_path, SLACK_CHAT)) as (client, rt):
        await firing(client, rt)
        payload = json.loads(parse_qs(button_body("x", catcher.url).decode())["payload"][0])
        value = f"ar1:sil4h:{SHORT}:00000000"
        payload["actions"] = [{"action_id": "alert_router.silence", "block_id": "alert_router_actions_x",
                               "type": "static_select", "action_ts": "1700000001.000200",
                               "selected_option": {"text": {"type": "plain_text", "text": "Silence 4h"},
                                                   "value": value},
                               "placeholder": {"type": "plain_text", "text": "Silence…"}}]
        body = urlencode({"payload": json.dumps(payload)}).encode()
        assert (await client.post("/slack/interactions", data=body, headers=slack_headers(body))).status == 200
        await rt.services["chat"].background.drain()
        (rec,) = await chat_records(rt)
    assert rec.event == "chat_button" and rec.details["command"] == "silence" and rec.details["input"] == value
