"""POST /telegram/webhook (secret token checked in constant time), long polling, set-webhook, and the button
round trip through the Telegram stand-in (message edited, callback answered)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from alert_router.cli import main as cli_main
from tests.chat.support import FP, SHORT, alert_payload, chat_config
from tests.helpers import JSON_TYPE, running_app, wait_for
from tests.standins.telegram import TelegramStandin

SECRET = "wh-secret_0123456789"
GROUP = -1002


def telegram_chat(standin: TelegramStandin, mode: str = "webhook") -> str:
    return (f"  telegram: {{token: '{standin.token}', api_url: '{standin.base_url}', mode: {mode}, "
            f"webhook_secret: {SECRET}, poll_timeout: 1s}}\n")


def user(standin: TelegramStandin, role: str) -> dict[str, Any]:
    ids = {"viewer": (101, "vera"), "responder": (102, "rita"), "admin": (103, "adam"), "stranger": (999, "eve")}
    uid, name = ids[role]
    return standin.user(uid, name.title(), name)


async def chat_records(rt: Any) -> list[Any]:
    return [r for r in await rt.store.audit_records() if r.event.startswith("chat_")]


async def webhook_url(client: Any) -> str:
    return str(client.make_url("/telegram/webhook"))


async def firing(client: Any, rt: Any) -> None:
    r = await client.post("/webhook", data=json.dumps(alert_payload()).encode(), headers=JSON_TYPE)
    assert r.status == 200
    await wait_for(lambda: rt.store.alert(FP))


async def test_right_secret_runs_the_command_and_replies_in_the_chat(
    tmp_path: Path, telegram_standin: TelegramStandin
) -> None:
    async with running_app(chat_config(tmp_path, telegram_chat(telegram_standin))) as (client, rt):
        await firing(client, rt)
        assert await rt.services["chat.telegram"].set_webhook(await webhook_url(client))
        assert telegram_standin.webhook is not None and telegram_standin.webhook["secret_token"] == SECRET
        update = telegram_standin.inject_message(GROUP, f"/ack@alert_router_test_bot {SHORT}",
                                                 user(telegram_standin, "responder"))
        assert await telegram_standin.deliver_to_webhook(update) == 200
        assert (await rt.store.alert(FP)).acked_by == "rita"
        (reply,) = await wait_for(lambda: telegram_standin.messages[GROUP], timeout=5)
        assert reply.text.startswith(f"rita acked {SHORT}")
        assert json.loads(reply.params["reply_parameters"])["message_id"] == update["message"]["message_id"]
        (rec,) = await chat_records(rt)
        assert (rec.event, rec.actor, rec.details["platform"], rec.details["chat_id"]) == (
            "chat_command", "rita", "telegram", str(GROUP))


@pytest.mark.parametrize("headers", [{}, {"X-Telegram-Bot-Api-Secret-Token": "wrong"},
                                     {"X-Telegram-Bot-Api-Secret-Token": SECRET + "x"},
                                     {"X-Telegram-Bot-Api-Secret-Token": ""}])
async def test_wrong_secret_token_gets_403_and_executes_nothing(
    tmp_path: Path, telegram_standin: TelegramStandin, headers: dict[str, str]
) -> None:
    async with running_app(chat_config(tmp_path, telegram_chat(telegram_standin))) as (client, rt):
        await firing(client, rt)
        update = telegram_standin.inject_message(GROUP, f"/ack {SHORT}", user(telegram_standin, "admin"))
        r = await client.post("/telegram/webhook", json=update, headers=headers)
        assert r.status == 403
        await rt.services["chat"].background.drain()
        assert (await rt.store.alert(FP)).acked_by is None
        assert await chat_records(rt) == []
        assert telegram_standin.messages[GROUP] == []


async def test_webhook_is_404_without_a_telegram_token(
    tmp_path: Path, telegram_standin: TelegramStandin
) -> None:
    update = {"update_id": 1, "message": {"message_id": 1, "date": 0, "chat": {"id": 1, "type": "private"}}}
    async with running_app(chat_config(tmp_path, "")) as (client, _):
        r = await client.post("/telegram/webhook", json=update, headers={"X-Telegram-Bot-Api-Secret-Token": SECRET})
        assert r.status == 404


async def test_messages_for_other_bots_and_chatter_are_ignored_and_duplicates_run_once(
    tmp_path: Path, telegram_standin: TelegramStandin
) -> None:
    async with running_app(chat_config(tmp_path, telegram_chat(telegram_standin))) as (client, rt):
        await firing(client, rt)
        await rt.services["chat.telegram"].set_webhook(await webhook_url(client))
        rita = user(telegram_standin, "responder")
        for text in (f"/ack@some_other_bot {SHORT}", "good morning everyone"):
            update = telegram_standin.inject_message(GROUP, text, rita)
            assert await telegram_standin.deliver_to_webhook(update) == 200
        assert await chat_records(rt) == []
        update = telegram_standin.inject_message(GROUP, "/status", rita)
        assert await telegram_standin.deliver_to_webhook(update) == 200
        assert await telegram_standin.deliver_to_webhook(update) == 200  # Telegram re-delivers
        assert len(await chat_records(rt)) == 1
        # in a private chat the slash may be left out
        update = telegram_standin.inject_message(1001, "alerts", user(telegram_standin, "viewer"))
        assert await telegram_standin.deliver_to_webhook(update) == 200
        (listing,) = telegram_standin.messages[1001]
        assert listing.text.startswith("1 firing alert(s):")


async def test_button_round_trip_through_the_telegram_standin(
    tmp_path: Path, telegram_standin: TelegramStandin
) -> None:
    receivers = (
        "receivers:\n  - name: file\n    file: {path: out.jsonl, fsync: false}\n"
        "  - name: lead\n    file: {path: lead.jsonl, fsync: false}\n"
        f"  - name: tg\n    telegram: {{token: '{telegram_standin.token}', chat_id: {GROUP}, "
        f"api_url: '{telegram_standin.base_url}'}}\n"
    )
    rules = "rules:\n  - name: all\n    receivers: [tg]\ndefault:\n  receivers: [file]\n"
    cfg = chat_config(tmp_path, telegram_chat(telegram_standin), rules=rules, receivers=receivers)
    async with running_app(cfg) as (client, rt):
        await rt.services["chat.telegram"].set_webhook(await webhook_url(client))
        await firing(client, rt)
        (page,) = await wait_for(lambda: telegram_standin.messages[GROUP], timeout=10)
        ack = next(d for d in page.callback_data if d.startswith("ar1:ack:"))
        assert "acked by" not in page.text

        # somebody unknown presses Ack: refused, answered with an alert, nothing changes
        eve = user(telegram_standin, "stranger")
        stranger = telegram_standin.inject_callback_query(GROUP, page.message_id, ack, eve)
        assert await telegram_standin.deliver_to_webhook(stranger) == 200
        (refusal,) = telegram_standin.callback_answers
        assert refusal.callback_query_id == stranger["callback_query"]["id"]
        assert refusal.show_alert and refusal.text and refusal.text.startswith("Sorry")
        assert (await rt.store.alert(FP)).acked_by is None and page.edits == 0

        press = telegram_standin.inject_callback_query(GROUP, page.message_id, ack, user(telegram_standin, "responder"))
        assert await telegram_standin.deliver_to_webhook(press) == 200
        answer = telegram_standin.callback_answers[-1]
        assert answer.callback_query_id == press["callback_query"]["id"]
        assert not answer.show_alert and answer.text and answer.text.startswith(f"rita acked {SHORT}")
        # the edit and the reply are two calls: wait for both
        await wait_for(lambda: page.edits >= 1 and len(telegram_standin.messages[GROUP]) == 2, timeout=10)
        assert "acked by rita" in page.text
        page_, reply = telegram_standin.messages[GROUP]  # the page was edited; the ack replied to it
        assert page_ is page and reply.reply_to == page.message_id
        assert reply.text == f"👀 rita acked {SHORT} ModelServiceDown"
        events = [(r.event, r.actor) for r in await chat_records(rt)]
        assert events == [("chat_refused", "telegram:999"), ("chat_button", "rita")]


async def test_callback_is_answered_even_for_a_foreign_button(
    tmp_path: Path, telegram_standin: TelegramStandin
) -> None:
    async with running_app(chat_config(tmp_path, telegram_chat(telegram_standin))) as (client, rt):
        await rt.services["chat.telegram"].set_webhook(await webhook_url(client))
        bot_message = await rt.services["chat.telegram"].bot()
        sent = await bot_message.send_message(GROUP, "hello")
        press = telegram_standin.inject_callback_query(GROUP, sent.message_id, "not-ours",
                                                       user(telegram_standin, "admin"))
        assert await telegram_standin.deliver_to_webhook(press) == 200
        (answer,) = telegram_standin.callback_answers
        assert answer.show_alert and "not one of alert-router's" in (answer.text or "")


async def test_long_polling_mode(tmp_path: Path, telegram_standin: TelegramStandin) -> None:
    telegram_standin.webhook = {"url": "https://example.invalid/hook"}  # a stale webhook the poller must remove
    async with running_app(chat_config(tmp_path, telegram_chat(telegram_standin, "polling"))) as (client, rt):
        await firing(client, rt)
        telegram_standin.inject_message(GROUP, f"/ack {SHORT}", user(telegram_standin, "responder"))
        await wait_for(lambda: telegram_standin.messages[GROUP], timeout=10)
        assert telegram_standin.webhook is None
        assert (await rt.store.alert(FP)).acked_by == "rita"
        telegram_standin.inject_message(GROUP, "/help", user(telegram_standin, "viewer"))
        await wait_for(lambda: len(telegram_standin.messages[GROUP]) == 2, timeout=10)
        assert "/ack <id>" in telegram_standin.messages[GROUP][1].text
        headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
        r = await client.post("/telegram/webhook", json={"update_id": 5}, headers=headers)
        assert r.status == 404  # no webhook endpoint in polling mode


async def test_cli_set_webhook_registers_the_url_with_the_secret(
    tmp_path: Path, telegram_standin: TelegramStandin
) -> None:
    cfg = chat_config(tmp_path, telegram_chat(telegram_standin))
    url = "https://alerts.example.com/telegram/webhook"
    code = await asyncio.to_thread(cli_main, ["telegram", "set-webhook", url, "--config", str(cfg)])
    assert code == 0
    assert telegram_standin.webhook is not None
    assert telegram_standin.webhook["url"] == url and telegram_standin.webhook["secret_token"] == SECRET
    assert json.loads(telegram_standin.webhook["allowed_updates"]) == ["message", "callback_query"]
    assert await asyncio.to_thread(cli_main, ["telegram", "webhook-info", "--config", str(cfg)]) == 0
    assert await asyncio.to_thread(cli_main, ["telegram", "delete-webhook", "--config", str(cfg)]) == 0
    assert telegram_standin.webhook is None
