"""The Telegram channel against the loopback Bot API stand-in, through python-telegram-bot's real Bot."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from alert_router.channels.base import ChannelError
from alert_router.channels.telegram import TelegramChannel, TelegramConfig
from alert_router.errors import FailureReason
from alert_router.render.actions import Action, decode_action
from alert_router.render.context import group_id
from tests.channels.helpers import HOSTILE, alert, notification
from tests.standins.telegram import TelegramStandin, parse_html

PRIVATE, GROUP = 1001, -1002


def make(standin: TelegramStandin, **kw: Any) -> TelegramChannel:
    cfg = TelegramConfig.model_validate(
        {"token": standin.token, "chat_id": PRIVATE, "api_url": standin.base_url, "timeout": 2, **kw}
    )
    return TelegramChannel("telegram", cfg, {"grafana_url": "http://grafana"})


@pytest.fixture
async def tg(telegram_standin: TelegramStandin) -> AsyncIterator[TelegramChannel]:
    ch = make(telegram_standin)
    yield ch
    await ch.aclose()


async def test_sends_html_with_keyboard(tg: TelegramChannel, telegram_standin: TelegramStandin) -> None:
    """One HTML message with Ack and a row of Silence 1h / 4h / 24h buttons whose callback data fits 64 bytes."""
    n = notification([alert(annotations={"summary": "Model service might be down!"})])
    ref = await tg.send(n, None)
    [msg] = telegram_standin.messages[PRIVATE]
    assert ref == {"chat_id": PRIVATE, "message_id": msg.message_id, "extra_ids": [], "status": "firing"}
    assert msg.parse_mode == "HTML"
    assert msg.text.startswith("🔴 [FIRING:1] ModelServiceDown")
    assert "Model service might be down!" in msg.text
    silence = [e for e in msg.entities if e["type"] == "text_link" and "/#/silences/new?filter=" in e["url"]]
    assert len(silence) == 1  # the silence form, as Slack and email carry it
    assert any(e["type"] == "bold" for e in msg.entities)
    assert msg.reply_markup is not None
    rows = msg.reply_markup["inline_keyboard"]
    assert [[b["text"] for b in row] for row in rows] == [["Ack"], ["🔕 Silence 1h", "4h", "24h"]]
    buttons = [b for row in rows for b in row]
    for b in buttons:
        assert len(b["callback_data"].encode()) <= 64
    decoded = [decode_action(b["callback_data"]) for b in buttons]
    assert [d.action for d in decoded if d] == [Action.ACK, Action.SILENCE_1H, Action.SILENCE_4H, Action.SILENCE_24H]
    assert all(d and d.group == group_id(n.group_key) for d in decoded)
    # getMe ran once (initialize), then one sendMessage
    assert [r.method for r in telegram_standin.requests] == ["getMe", "sendMessage"]


async def test_resolution_edits_in_place(tg: TelegramChannel, telegram_standin: TelegramStandin) -> None:
    """editMessageText on resolve (RESOLVED, fired for 3h12m, buttons gone) and a reply saying so; a repeat
    counts as success and replies nothing."""
    ref = await tg.send(notification([alert()]), None)
    resolved = notification([alert(status="resolved")])
    ref2 = await tg.send(resolved, ref)
    [msg, reply] = telegram_standin.messages[PRIVATE]
    assert msg.edits == 1
    assert reply.reply_to == msg.message_id and reply.text == "✅ Resolved — fired for 3h12m"
    assert "[RESOLVED] ModelServiceDown" in msg.text and "fired for 3h12m" in msg.text
    assert msg.reply_markup is None
    assert ref2 is not None and ref2["message_id"] == msg.message_id
    ref3 = await tg.send(resolved, ref2)  # "message is not modified" is not a failure
    assert ref3 == ref2
    assert msg.edits == 1
    assert telegram_standin.requests[-1].error and "not modified" in telegram_standin.requests[-1].error


async def test_deleted_message_is_replaced(tg: TelegramChannel, telegram_standin: TelegramStandin) -> None:
    """If the living message was deleted, a new one is sent instead of failing."""
    ref = await tg.send(notification(), None)
    telegram_standin.messages[PRIVATE].clear()
    ref2 = await tg.send(notification([alert(), alert("Second")]), ref)
    assert ref is not None and ref2 is not None and ref2["message_id"] != ref["message_id"]
    assert len(telegram_standin.messages[PRIVATE]) == 1


async def test_long_message_is_trimmed_without_breaking_tags(
    tg: TelegramChannel, telegram_standin: TelegramStandin
) -> None:
    """200 alerts with long text: fewer are listed (…and N more) and the result parses within 4096 chars."""
    alerts = [alert("HighModelLatency", severity="warning", labels={"pod": f"p{i}"},
                    annotations={"summary": "<s>" * 100, "description": "&" * 600}) for i in range(200)]
    await tg.send(notification(alerts), None)
    [msg] = telegram_standin.messages[PRIVATE]
    assert len(msg.text) <= 4096
    assert "more alerts in this group" in msg.text


async def test_split_mode_sends_every_alert(telegram_standin: TelegramStandin) -> None:
    """long_messages: split sends several valid messages; an edit reuses them."""
    ch = make(telegram_standin, long_messages="split")
    try:
        alerts = [alert("HighModelLatency", severity="warning", labels={"pod": f"pod-{i:03d}"},
                        annotations={"summary": "<b>x</b> & y" * 5}) for i in range(120)]
        ref = await ch.send(notification(alerts), None)
        msgs = telegram_standin.messages[PRIVATE]
        assert ref is not None and len(msgs) >= 2 and ref["extra_ids"] == [m.message_id for m in msgs[1:]]
        joined = "".join(m.text for m in msgs)
        assert all(f"pod-{i:03d}" in joined for i in range(120))
        assert all(len(m.text) <= 4096 for m in msgs)
        resolved = [alert("HighModelLatency", severity="warning", status="resolved", labels={"pod": f"pod-{i:03d}"},
                          annotations={"summary": "<b>x</b> & y" * 5}) for i in range(120)]
        await ch.send(notification(resolved), ref)
        assert len(telegram_standin.messages[PRIVATE]) == len(msgs)
        assert "RESOLVED" in telegram_standin.messages[PRIVATE][0].text
    finally:
        await ch.aclose()


async def test_hostile_values_are_escaped(tg: TelegramChannel, telegram_standin: TelegramStandin) -> None:
    """Tags, entities and quotes in values reach the chat as literal text (the stand-in parses strictly)."""
    n = notification([alert(labels=HOSTILE, annotations={"summary": HOSTILE["angle"], "description": HOSTILE["amp"]})])
    await tg.send(n, None)
    [msg] = telegram_standin.messages[PRIVATE]
    assert "<!channel> <b>bold</b>" in msg.text  # visible as text, not markup
    assert "a & b &amp; &nbsp; &#0; &" in msg.text
    # label values may sit, percent-encoded, in the silence form's filter; no link may *be* javascript:
    assert not any(e["type"] == "text_link" and e.get("url", "").lower().startswith("javascript")
                   for e in msg.entities)
    visible, _ = parse_html(msg.source_text)
    assert visible.strip() == msg.text


@pytest.mark.parametrize(
    ("setup", "reason", "retryable", "retry_after"),
    [
        (lambda s: s.rate_limit_next(1, retry_after=9, method="sendMessage"), FailureReason.RATE_LIMITED, True, 9.0),
        (lambda s: s.fail_next(1, 502, method="sendMessage"), FailureReason.SERVER_ERROR, True, None),
        (lambda s: s.revoke_token(), FailureReason.AUTH, False, None),
    ],
)
async def test_failures_are_classified(
    tg: TelegramChannel, telegram_standin: TelegramStandin, setup: Any, reason: FailureReason, retryable: bool,
    retry_after: float | None,
) -> None:
    """429 → retryable with retry_after; 502 → retryable; a revoked token → permanent (token not in the message)."""
    setup(telegram_standin)
    with pytest.raises(ChannelError) as err:
        await tg.send(notification(), None)
    assert (err.value.reason, err.value.retryable, err.value.retry_after) == (reason, retryable, retry_after)
    assert telegram_standin.token not in str(err.value)


async def test_unknown_chat_is_permanent(telegram_standin: TelegramStandin) -> None:
    ch = make(telegram_standin, chat_id=424242)
    try:
        with pytest.raises(ChannelError) as err:
            await ch.send(notification(), None)
        assert err.value.reason is FailureReason.NOT_FOUND and not err.value.retryable
    finally:
        await ch.aclose()


async def test_connection_refused_is_retryable() -> None:
    ch = TelegramChannel("t", TelegramConfig(token="1:abc", chat_id=1, api_url="http://127.0.0.1:9/bot", timeout=1))
    try:
        with pytest.raises(ChannelError) as err:
            await ch.send(notification(), None)
        assert err.value.retryable and err.value.reason in (FailureReason.CONNECTION, FailureReason.TIMEOUT)
    finally:
        await ch.aclose()


def test_rate_limits_by_chat_kind() -> None:
    """1/s for a private chat, 20/min for groups and channels, and a 30/s bucket shared by the bot."""
    private = TelegramChannel("t", TelegramConfig(token="77:x", chat_id=5))
    group = TelegramChannel("t", TelegramConfig(token="77:x", chat_id=-100123))
    channel = TelegramChannel("t", TelegramConfig(token="77:x", chat_id="@alerts"))
    assert private.rate_limit() is not None and 0.9 < private.rate_limit().rate <= 1.0  # type: ignore[union-attr]
    assert group.rate_limit() is not None and 0.9 * 20 / 60 < group.rate_limit().rate <= 20 / 60  # type: ignore[union-attr]
    assert channel.rate_limit() == group.rate_limit()
    assert private.shared_rate_limits()[0][0] == "telegram-bot:77"
    assert TelegramConfig.model_validate({"chat_id": "-42"}, context={"enabled": False}).chat_id == -42


async def test_digest_lists_every_alert_of_a_full_chunk(tg: TelegramChannel, telegram_standin: TelegramStandin) -> None:
    """A storm digest of digest_capacity alerts with long values still lists each one (no buttons)."""
    from alert_router.pipeline.throttle import coalesce
    from alert_router.store.base import OutboxItem

    alerts = [alert("N" * 80 + str(i), labels={"deployment": "d" * 40, "pod": "p" * 40},
                    annotations={"summary": "<s>&" * 40}) for i in range(tg.digest_capacity)]
    n = notification(alerts)
    [digest] = coalesce([OutboxItem(1, "notify", "telegram", n.group_key, n.model_dump(mode="json"), 1, 0.0)],
                        "telegram", tg.digest_capacity)
    await tg.send(digest, None)
    [msg] = telegram_standin.messages[PRIVATE]
    assert all(a.fingerprint[:8] in msg.text for a in alerts)
    assert "did not fit" not in msg.text and msg.reply_markup is None
    assert msg.text.startswith(f"🔴 {tg.digest_capacity} alerts firing in prod")


async def test_run_runbook_button_only_when_a_runbook_applies(telegram_standin: TelegramStandin) -> None:
    """No runbook for the alert: no Run runbook button; one applies: the button joins Ack."""
    ch = TelegramChannel("telegram", TelegramConfig.model_validate(
        {"token": telegram_standin.token, "chat_id": PRIVATE, "api_url": telegram_standin.base_url}),
        runbooks_for=lambda labels: ["restart"] if labels.get("deployment") else [])
    try:
        await ch.send(notification([alert()]), None)
        await ch.send(notification([alert(labels={"deployment": "model-api"})], group_key="g2"), None)
    finally:
        await ch.aclose()
    plain, with_runbook = telegram_standin.messages[PRIVATE]
    assert plain.reply_markup is not None and with_runbook.reply_markup is not None
    assert [b["text"] for b in plain.reply_markup["inline_keyboard"][0]] == ["Ack"]
    assert [b["text"] for b in with_runbook.reply_markup["inline_keyboard"][0]] == ["Ack", "Run runbook"]


async def test_an_ack_replies_to_the_living_message(tg: TelegramChannel, telegram_standin: TelegramStandin) -> None:
    a = alert()
    ref = await tg.send(notification([a]), None)
    ref = await tg.send(notification([a], extra={"acked_by": {a.fingerprint: "adam"}}), ref)
    ref = await tg.send(notification([a]), ref)  # unack: the ack was taken back
    parent, acked, taken_back = telegram_standin.messages[PRIVATE]
    assert acked.reply_to == parent.message_id and acked.text.startswith("👀 adam acked ")
    assert taken_back.reply_to == parent.message_id and "was taken back" in taken_back.text
    assert parent.edits == 2 and ref is not None and "acked" not in ref
