"""The Telegram stand-in behaves like the Bot API when driven through python-telegram-bot."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from aiohttp import web
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest, Conflict, InvalidToken, NetworkError, RetryAfter
from telegram.ext import Application, CommandHandler, ContextTypes

from tests.standins.telegram import EntityParseError, TelegramStandin, parse_html

PRIVATE = 1001
GROUP = -1002


@pytest.fixture
async def bot(telegram_standin: TelegramStandin) -> AsyncIterator[Bot]:
    async with Bot(telegram_standin.token, base_url=telegram_standin.base_url) as b:
        yield b


async def test_initialize_calls_get_me(telegram_standin: TelegramStandin, bot: Bot) -> None:
    assert bot.id == telegram_standin.bot_user_id
    assert bot.username == telegram_standin.username
    assert [r.method for r in telegram_standin.requests] == ["getMe"]


async def test_send_message_html_is_parsed_and_stored(telegram_standin: TelegramStandin, bot: Bot) -> None:
    html = '<b>FIRING</b> disk &lt;90%&gt; on <code>node-1</code> <a href="http://x/y?a=1&amp;b=2">graph</a>'
    msg = await bot.send_message(PRIVATE, html, parse_mode="HTML")
    assert msg.text == "FIRING disk <90%> on node-1 graph"
    assert msg.chat.id == PRIVATE
    assert msg.from_user is not None
    assert msg.from_user.is_bot
    kinds = [(e.type, e.offset, e.length) for e in msg.entities]
    assert kinds == [("bold", 0, 6), ("code", 21, 6), ("text_link", 28, 5)]
    assert msg.entities[2].url == "http://x/y?a=1&b=2"
    stored = telegram_standin.messages[PRIVATE]
    assert len(stored) == 1
    assert stored[0].message_id == msg.message_id
    assert stored[0].source_text == html


async def test_message_ids_increase_per_chat(telegram_standin: TelegramStandin, bot: Bot) -> None:
    ids = [(await bot.send_message(GROUP, f"m{i}")).message_id for i in range(3)]
    assert ids == sorted(set(ids))


async def test_text_over_4096_visible_chars_is_rejected(telegram_standin: TelegramStandin, bot: Bot) -> None:
    with pytest.raises(BadRequest, match="Message is too long"):
        await bot.send_message(PRIVATE, "x" * 4097)
    # Markup does not count: 4096 visible characters inside tags are fine.
    msg = await bot.send_message(PRIVATE, "<b>" + "x" * 4096 + "</b>", parse_mode="HTML")
    assert msg.text == "x" * 4096
    # Entities count as one character each.
    with pytest.raises(BadRequest, match="Message is too long"):
        await bot.send_message(PRIVATE, "&amp;" * 4097, parse_mode="HTML")
    assert len(telegram_standin.messages[PRIVATE]) == 1


@pytest.mark.parametrize(
    ("html", "fragment"),
    [
        ("<div>x</div>", 'Unsupported start tag "div"'),
        ("<b>x", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<b><i>x</b></i>", 'Unmatched end tag at byte offset 7, expected "</i>", found "</b>"'),
        ("x</b>", "Unexpected end tag at byte offset 1"),
        ("a < b", 'Unsupported start tag "" at byte offset 2'),
        ("1 <2 x", 'Unsupported start tag "2" at byte offset 2'),
        ("1 <2", "Unclosed start tag at byte offset 2"),
        ("é<x>", 'Unsupported start tag "x" at byte offset 2'),
        ("AT&T", 'Character "&" must be escaped'),
        ("&nbsp;", 'Character "&" must be escaped'),
        ("<span>x</span>", 'Tag "span" must have class "tg-spoiler"'),
        ("<b", "Unclosed start tag"),
    ],
)
async def test_malformed_html_is_rejected(bot: Bot, telegram_standin: TelegramStandin, html: str,
                                          fragment: str) -> None:
    with pytest.raises(BadRequest) as err:
        await bot.send_message(PRIVATE, html, parse_mode="HTML")
    # PTB drops "Bad Request: " and re-capitalises the description, so compare case-insensitively.
    assert err.value.message.lower().startswith("can't parse entities: ")
    assert fragment.lower() in err.value.message.lower()
    assert telegram_standin.messages[PRIVATE] == []


def test_supported_tags_parse() -> None:
    html = ("<strong>a</strong><em>b</em><u>c</u><ins>d</ins><s>e</s><strike>f</strike><del>g</del>"
            '<tg-spoiler>h</tg-spoiler><span class="tg-spoiler">i</span><blockquote>j</blockquote>'
            '<pre><code class="language-python">k</code></pre>&#65;&#x42;&quot;')
    text, entities = parse_html(html)
    assert text == 'abcdefghijkAB"'
    assert [e["type"] for e in entities] == [
        "bold", "italic", "underline", "underline", "strikethrough", "strikethrough", "strikethrough",
        "spoiler", "spoiler", "blockquote", "pre"]
    assert entities[-1]["language"] == "python"


def test_offsets_are_utf16() -> None:
    text, entities = parse_html("\U0001f525 <b>hot</b>")
    assert text == "\U0001f525 hot"
    assert entities == [{"type": "bold", "offset": 3, "length": 3}]


def test_bare_ampersand_allowed_when_not_strict() -> None:
    assert parse_html("AT&T", strict_entities=False)[0] == "AT&T"
    with pytest.raises(EntityParseError):
        parse_html("AT&T")


async def test_plain_text_is_not_parsed(bot: Bot) -> None:
    msg = await bot.send_message(PRIVATE, "a < b & <c>")
    assert msg.text == "a < b & <c>"


async def test_empty_text_after_trimming_is_rejected(bot: Bot) -> None:
    with pytest.raises(BadRequest, match="Message text is empty"):
        await bot.send_message(PRIVATE, "<b> </b>", parse_mode="HTML")


async def test_unknown_chat_is_chat_not_found(bot: Bot) -> None:
    with pytest.raises(BadRequest, match="Chat not found"):
        await bot.send_message(999, "x")


async def test_malformed_token_is_not_found(telegram_standin: TelegramStandin) -> None:
    bad = Bot("not-a-token", base_url=telegram_standin.base_url)
    with pytest.raises(InvalidToken):
        await bad.initialize()
    assert telegram_standin.requests[-1].status == 404
    await bad.shutdown()


async def test_wrong_token_is_unauthorized(telegram_standin: TelegramStandin) -> None:
    wrong = Bot("123456789:AAHwrong-token-xxxxxxxxxxxxxxxxxxxxx", base_url=telegram_standin.base_url)
    with pytest.raises(InvalidToken, match="rejected by the server"):
        await wrong.initialize()
    assert telegram_standin.requests[-1].status == 401
    await wrong.shutdown()


async def test_revoked_token_is_unauthorized(telegram_standin: TelegramStandin, bot: Bot) -> None:
    telegram_standin.revoke_token()
    with pytest.raises(InvalidToken):
        await bot.send_message(PRIVATE, "x")


async def test_callback_data_over_64_bytes_is_rejected(telegram_standin: TelegramStandin, bot: Bot) -> None:
    ok = InlineKeyboardMarkup([[InlineKeyboardButton("Ack", callback_data="a" * 64)]])
    await bot.send_message(PRIVATE, "x", reply_markup=ok)
    # 33 two-byte characters are 66 bytes, though only 33 characters.
    bad = InlineKeyboardMarkup([[InlineKeyboardButton("Ack", callback_data="é" * 33)]])
    with pytest.raises(BadRequest, match="Button_data_invalid"):
        await bot.send_message(PRIVATE, "x", reply_markup=bad)
    assert len(telegram_standin.messages[PRIVATE]) == 1
    assert telegram_standin.messages[PRIVATE][0].callback_data == ["a" * 64]


async def test_rate_limit_next_raises_retry_after(telegram_standin: TelegramStandin, bot: Bot) -> None:
    telegram_standin.rate_limit_next(1, retry_after=5)
    with pytest.raises(RetryAfter) as err:
        await bot.send_message(PRIVATE, "x")
    # The telegram_standin fixture sets PTB_TIMEDELTA=true, so retry_after is a timedelta.
    retry_after = err.value.retry_after
    assert isinstance(retry_after, timedelta)
    assert retry_after.total_seconds() == 5
    assert telegram_standin.messages[PRIVATE] == []
    await bot.send_message(PRIVATE, "x")
    assert len(telegram_standin.messages[PRIVATE]) == 1


async def test_enforced_rate_is_per_chat(telegram_standin: TelegramStandin, bot: Bot) -> None:
    telegram_standin.enforce_rate(per_second=1.0)
    await bot.send_message(PRIVATE, "1")
    with pytest.raises(RetryAfter):
        await bot.send_message(PRIVATE, "2")
    await bot.send_message(GROUP, "other chat")
    assert telegram_standin.peak_rate(PRIVATE) == 1
    assert telegram_standin.peak_rate(PRIVATE, accepted_only=False) == 2


async def test_fail_next_502_is_network_error(telegram_standin: TelegramStandin, bot: Bot) -> None:
    telegram_standin.fail_next(1, status=502)
    with pytest.raises(NetworkError, match="Bad Gateway"):
        await bot.send_message(PRIVATE, "x")


async def test_edit_message_text(telegram_standin: TelegramStandin, bot: Bot) -> None:
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("Ack", callback_data="ack:1")]])
    sent = await bot.send_message(GROUP, "<b>FIRING</b>", parse_mode="HTML", reply_markup=markup)
    edited = await bot.edit_message_text("<b>RESOLVED</b>", chat_id=GROUP, message_id=sent.message_id,
                                         parse_mode="HTML")
    assert not isinstance(edited, bool)
    assert edited.text == "RESOLVED"
    assert edited.edit_date is not None
    stored = telegram_standin.messages[GROUP][0]
    assert stored.edits == 1
    assert stored.history[0]["text"] == "FIRING"
    # editMessageText without reply_markup removes the inline keyboard, as Telegram does.
    assert stored.reply_markup is None
    assert stored.history[0]["reply_markup"] == markup.to_dict()


async def test_edit_that_changes_nothing_is_not_modified(bot: Bot) -> None:
    sent = await bot.send_message(GROUP, "<b>same</b>", parse_mode="HTML")
    with pytest.raises(BadRequest, match="Message is not modified"):
        await bot.edit_message_text("<b>same</b>", chat_id=GROUP, message_id=sent.message_id, parse_mode="HTML")
    # Same visible text but different formatting is a modification.
    await bot.edit_message_text("<i>same</i>", chat_id=GROUP, message_id=sent.message_id, parse_mode="HTML")


async def test_edit_of_unknown_message_is_rejected(bot: Bot) -> None:
    with pytest.raises(BadRequest, match="Message to edit not found"):
        await bot.edit_message_text("x", chat_id=GROUP, message_id=4242)


async def test_get_updates_returns_injected_updates_and_honours_offset(
    telegram_standin: TelegramStandin, bot: Bot
) -> None:
    telegram_standin.inject_message(PRIVATE, "/ack 42")
    updates = await bot.get_updates(timeout=0)
    assert len(updates) == 1
    msg = updates[0].message
    assert msg is not None
    assert msg.text == "/ack 42"
    assert msg.entities[0].type == "bot_command"
    again = await bot.get_updates(timeout=0)
    assert [u.update_id for u in again] == [updates[0].update_id]
    confirmed = await bot.get_updates(offset=updates[0].update_id + 1, timeout=0)
    assert confirmed == ()
    assert telegram_standin.pending_updates() == []


async def test_long_poll_wakes_on_injected_update(telegram_standin: TelegramStandin, bot: Bot) -> None:
    loop = asyncio.get_running_loop()
    loop.call_later(0.1, telegram_standin.inject_message, PRIVATE, "hello")
    started = loop.time()
    updates = await bot.get_updates(timeout=5)
    assert [u.message.text for u in updates if u.message] == ["hello"]
    assert loop.time() - started < 1.0


async def test_long_poll_is_capped(telegram_standin: TelegramStandin, bot: Bot) -> None:
    telegram_standin.poll_cap = 0.2
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await bot.get_updates(timeout=30) == ()
    assert 0.15 < loop.time() - started < 2.0


async def test_callback_query_roundtrip(telegram_standin: TelegramStandin, bot: Bot) -> None:
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("Approve", callback_data="approve:7")]])
    sent = await bot.send_message(GROUP, "run runbook?", reply_markup=markup)
    update_json = telegram_standin.inject_callback_query(GROUP, sent.message_id, "approve:7")
    update = Update.de_json(update_json, bot)
    assert update is not None
    assert update.callback_query is not None
    assert update.callback_query.data == "approve:7"
    assert update.callback_query.message is not None
    assert update.callback_query.message.message_id == sent.message_id
    assert await update.callback_query.answer("Approved") is True
    assert telegram_standin.callback_answers[0].text == "Approved"
    with pytest.raises(BadRequest, match="Query is too old"):
        await bot.answer_callback_query(update.callback_query.id)


async def test_webhook_blocks_get_updates_and_delivers_with_secret(
    telegram_standin: TelegramStandin, bot: Bot
) -> None:
    received: list[tuple[str | None, dict[str, object]]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append((request.headers.get("X-Telegram-Bot-Api-Secret-Token"), await request.json()))
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/tg", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        assert await bot.set_webhook(f"http://127.0.0.1:{port}/tg", secret_token="s3cret")
        with pytest.raises(Conflict):
            await bot.get_updates(timeout=0)
        update = telegram_standin.inject_message(PRIVATE, "/alerts")
        assert await telegram_standin.deliver_to_webhook(update) == 200
        assert received == [("s3cret", update)]
        assert await bot.delete_webhook()
        assert await bot.get_updates(timeout=0) == ()
    finally:
        await runner.cleanup()


async def test_ptb_application_polling_receives_injected_command(telegram_standin: TelegramStandin) -> None:
    seen: asyncio.Queue[list[str]] = asyncio.Queue()

    async def ack(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await seen.put(list(context.args or []))
        assert update.effective_chat is not None
        await context.bot.send_message(update.effective_chat.id, "acked")

    app = Application.builder().token(telegram_standin.token).base_url(telegram_standin.base_url).build()
    app.add_handler(CommandHandler("ack", ack))
    async with app:
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0.0, timeout=1)
        await app.start()
        telegram_standin.inject_message(PRIVATE, "/ack 42")
        assert await asyncio.wait_for(seen.get(), timeout=5) == ["42"]
        await app.updater.stop()
        await app.stop()
    assert [m.text for m in telegram_standin.messages[PRIVATE]] == ["acked"]
    assert any(r.method == "deleteWebhook" for r in telegram_standin.requests)
