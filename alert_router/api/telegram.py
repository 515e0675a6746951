"""Telegram commands: ``POST /telegram/webhook``, or long polling for setups without public HTTPS.

Webhook mode: Telegram sends every update with the header ``X-Telegram-Bot-Api-Secret-Token`` holding
the secret given to ``setWebhook`` (``alert-router telegram set-webhook URL`` registers it); the header
is compared in constant time and a missing or wrong one gets 403 with nothing executed. Polling mode:
a background worker calls ``getUpdates`` (long poll) and handles the same updates; it removes a webhook
first, since Telegram refuses ``getUpdates`` while one is set.

Messages: ``/ack 2bb1035c``, ``/silence 2bb1035c 2h``, ``/runbook approve 12`` … (``/cmd@this_bot`` in groups;
commands addressed to another bot are ignored; in a private chat the slash may be left out). Button
presses (callback queries) always get an ``answerCallbackQuery``, whatever happens, so the client's
spinner stops; public results are also posted to the chat. An update Telegram re-delivers (same
``update_id``) is handled once: update ids are recorded in the store for :data:`REMEMBER` (Telegram keeps
an undelivered update for 24 hours), so a re-delivery is ignored on every replica and after a restart, in
webhook and in polling mode. A body that is not a Telegram update gets 400 and runs nothing.
"""

from __future__ import annotations

import asyncio
import hmac
from datetime import timedelta
from typing import Any

import structlog
from aiohttp import web
from telegram import Bot, CallbackQuery, LinkPreviewOptions, Message, ReplyParameters, Update
from telegram.error import Conflict, InvalidToken, TelegramError
from telegram.request import HTTPXRequest

from alert_router.api.body import read_request
from alert_router.api.errors import json_error
from alert_router.api.jsonbody import BadJSON, parse_json
from alert_router.appkeys import RUNTIME
from alert_router.chat.authz import Identity
from alert_router.chat.commands import CommandService, Reply
from alert_router.chat.metrics import ChatMetrics
from alert_router.chat.settings import TelegramChatConfig
from alert_router.chat.tasks import Background
from alert_router.configbase import secret
from alert_router.errors import StoreUnavailable

log = structlog.get_logger("alert_router.telegram")

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name, not a secret
ALLOWED_UPDATES = ["message", "callback_query"]
INLINE_BUDGET = 8.0
"""How long the webhook waits for a command before answering 200 and finishing in the background."""
MAX_TEXT = 4096
MAX_ANSWER = 200
REMEMBER = 86400.0
"""Seconds an update id is remembered (Telegram re-delivers an update for up to 24 hours)."""


def build_bot(cfg: TelegramChatConfig) -> Bot:
    """A ``Bot`` for the chat token, with timeouts from the config (long polls get their own pool)."""
    t = cfg.timeout
    request = HTTPXRequest(connection_pool_size=8, read_timeout=t, write_timeout=t, connect_timeout=t, pool_timeout=t)
    poll_request = HTTPXRequest(connection_pool_size=1, read_timeout=t, write_timeout=t, connect_timeout=t,
                                pool_timeout=t)
    return Bot(secret(cfg.token), base_url=cfg.api_url, request=request, get_updates_request=poll_request)


class TelegramBridge:
    """Turns Telegram updates into commands and sends the replies."""

    def __init__(
        self,
        cfg: TelegramChatConfig,
        commands: CommandService,
        *,
        metrics: ChatMetrics | None = None,
        background: Background | None = None,
        bot: Bot | None = None,
    ) -> None:
        self.cfg = cfg
        self.commands = commands
        self.metrics = metrics or commands.metrics
        self.background = background or Background()
        self._bot = bot
        self._initialized = False
        self._lock = asyncio.Lock()
        bot_id = secret(cfg.token).partition(":")[0]
        self.scope = f"telegram:{bot_id if bot_id.isdigit() else 'bot'}"
        """Where this bot's update ids are remembered (ids count per bot)."""

    async def bot(self) -> Bot:
        """The initialized bot (``getMe`` on first use tells its username)."""
        async with self._lock:
            if self._bot is None:
                self._bot = build_bot(self.cfg)
            if not self._initialized:
                await self._bot.initialize()
                self._initialized = True
            return self._bot

    def secret_ok(self, header: str | None) -> bool:
        """Constant-time check of the webhook secret header (as the bytes it arrived as)."""
        expected = secret(self.cfg.webhook_secret)
        if not expected or header is None:
            return False
        return hmac.compare_digest(header.encode("utf-8", "surrogateescape"), expected.encode("utf-8"))

    async def first_time(self, update_id: int) -> bool:
        """Record ``update_id``; ``False`` when it was handled before (raises ``StoreUnavailable``)."""
        now = self.commands.clock.now()
        return await self.commands.store.remember_request(self.scope, str(update_id), now, now + REMEMBER)

    async def dispatch(self, bot: Bot, update: Update) -> None:
        """Handle a parsed update unless it was handled before (used by the poller)."""
        if not await self.first_time(update.update_id):
            log.info("telegram update already handled", update_id=update.update_id)
            return
        await self.handle(bot, update)

    async def handle(self, bot: Bot, update: Update) -> None:
        """Handle a parsed update whose id was just recorded; anything but a message or button press is ignored."""
        if update.callback_query is not None:
            await self._callback(bot, update.callback_query)
        elif update.message is not None and isinstance(update.message.text, str) and update.message.text:
            await self._message(bot, update.message)

    async def handle_new(self, update: Update) -> None:
        """:meth:`handle` with the initialized bot (the webhook records the id before answering)."""
        await self.handle(await self.bot(), update)

    def _command_text(self, bot: Bot, message: Message) -> str | None:
        text = (message.text or "").strip()
        if not text.startswith("/"):
            return text if message.chat.type == "private" else None
        first, _, rest = text.partition(" ")
        word, _, target = first[1:].partition("@")
        if target and target.lower() != (bot.username or "").lower():
            return None
        return f"{word} {rest}".strip()

    @staticmethod
    def _identity(user: Any, chat_id: int | None) -> Identity:
        display = (getattr(user, "username", None) or getattr(user, "first_name", None) or "") if user else ""
        return Identity("telegram", str(user.id) if user else "", str(chat_id) if chat_id is not None else "",
                        str(display))

    async def _message(self, bot: Bot, message: Message) -> None:
        text = self._command_text(bot, message)
        if text is None or message.from_user is None:
            return
        reply = await self.commands.execute_text(self._identity(message.from_user, message.chat.id), text)
        await self._send(bot, message.chat.id, reply, reply_to=message.message_id)

    async def _send(self, bot: Bot, chat_id: int, reply: Reply, reply_to: int | None = None) -> None:
        text = reply.text if len(reply.text) <= MAX_TEXT else reply.text[: MAX_TEXT - 1] + "…"
        try:
            await bot.send_message(
                chat_id=chat_id,
                text=text,
                reply_parameters=ReplyParameters(reply_to, allow_sending_without_reply=True) if reply_to else None,
                link_preview_options=LinkPreviewOptions(is_disabled=True),
            )
        except TelegramError as exc:
            log.warning("telegram reply failed", chat_id=chat_id, error=str(exc))

    async def _callback(self, bot: Bot, query: CallbackQuery) -> None:
        reply = Reply("Something went wrong on alert-router's side.", ok=False)
        chat_id = query.message.chat.id if query.message is not None else None
        try:
            # Telegram sends text; anything else (a number from a forged update) is read as its text.
            data = query.data if isinstance(query.data, str) else ("" if query.data is None else str(query.data))
            reply = await self.commands.execute_button(self._identity(query.from_user, chat_id), data)
        except Exception:
            log.exception("telegram button failed", data=query.data)
        finally:
            answer = reply.text if len(reply.text) <= MAX_ANSWER else reply.text[: MAX_ANSWER - 1] + "…"
            try:
                await bot.answer_callback_query(query.id, text=answer, show_alert=not reply.ok)
            except TelegramError as exc:
                log.warning("answerCallbackQuery failed", error=str(exc))
        if reply.public and chat_id is not None:
            await self._send(bot, chat_id, reply)

    async def poll(self) -> None:
        """Long-poll ``getUpdates`` until cancelled (polling mode)."""
        delay = 1.0
        offset: int | None = None
        removed_webhook = False
        while True:
            try:
                bot = await self.bot()
                if not removed_webhook:
                    await bot.delete_webhook(drop_pending_updates=False)
                    removed_webhook = True
                updates = await bot.get_updates(
                    offset=offset, timeout=timedelta(seconds=self.cfg.poll_timeout), allowed_updates=ALLOWED_UPDATES
                )
                delay = 1.0
            except InvalidToken as exc:
                log.error("telegram bot token refused; polling paused", error=str(exc))
                await asyncio.sleep(60)
                continue
            except Conflict as exc:
                log.warning("telegram getUpdates conflict (a webhook is set, or another poller runs)", error=str(exc))
                removed_webhook = False
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
                continue
            except TelegramError as exc:
                log.warning("telegram getUpdates failed; retrying", error=str(exc), retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
                continue
            for update in updates:
                try:
                    await self.dispatch(bot, update)
                except StoreUnavailable as exc:
                    # not confirmed (offset unchanged): getUpdates returns it again once the store is back
                    log.warning("telegram update postponed: store unavailable", update_id=update.update_id,
                                error=str(exc), retry_in=delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 30.0)
                    break
                except Exception:
                    log.exception("telegram update failed", update_id=update.update_id)
                offset = update.update_id + 1

    async def set_webhook(self, url: str, *, drop_pending_updates: bool = False) -> bool:
        """Register ``url`` with the configured secret token."""
        bot = await self.bot()
        return await bot.set_webhook(
            url,
            secret_token=secret(self.cfg.webhook_secret) or None,
            allowed_updates=ALLOWED_UPDATES,
            drop_pending_updates=drop_pending_updates,
        )

    async def aclose(self) -> None:
        """Shut the bot's HTTP clients down."""
        if self._bot is not None and self._initialized:
            await self._bot.shutdown()
        self._initialized = False


def _bridge(request: web.Request) -> TelegramBridge | None:
    bridge = request.app[RUNTIME].services.get("chat.telegram")
    return bridge if isinstance(bridge, TelegramBridge) else None


def parse_update(data: Any) -> Update | None:
    """``data`` as a Telegram ``Update``, or ``None`` when it is not one."""
    if not isinstance(data, dict):
        return None
    update_id = data.get("update_id")
    if not isinstance(update_id, int) or isinstance(update_id, bool) or not 0 <= update_id < 2**63:
        return None
    try:
        return Update.de_json(data, None)
    except Exception:  # PTB's parsing of a forged update can fail in any way (TypeError, KeyError, ...)
        return None


async def telegram_webhook(request: web.Request) -> web.Response:
    """``POST /telegram/webhook``: 403 without the right secret token; 404 unless webhook mode is configured."""
    bridge = _bridge(request)
    if bridge is None or bridge.cfg.mode != "webhook":
        return json_error(request, 404, "Telegram webhook is not configured")
    if not bridge.secret_ok(request.headers.get(SECRET_HEADER)):
        bridge.metrics.rejected_requests.labels("telegram", "bad_secret_token").inc()
        log.warning("telegram webhook refused: wrong secret token")
        return json_error(request, 403, "forbidden")
    raw = await read_request(request, "telegram")
    if isinstance(raw, web.Response):
        return raw
    try:
        data = parse_json(raw)
    except BadJSON as exc:
        return json_error(request, 400, f"body: {exc}")
    update = parse_update(data)
    if update is None:
        return json_error(request, 400, "not a Telegram update")
    if not await bridge.first_time(update.update_id):
        log.info("telegram update already handled", update_id=update.update_id)
        return web.json_response({"ok": True})
    task = bridge.background.spawn(bridge.handle_new(update), name="telegram-update")
    await asyncio.wait({task}, timeout=INLINE_BUDGET)
    return web.json_response({"ok": True})


def add_routes(app: web.Application) -> None:
    """Register the Telegram webhook endpoint."""
    app.router.add_post("/telegram/webhook", telegram_webhook)


async def webhook_admin(
    cfg: TelegramChatConfig, action: str, url: str = "", *, drop_pending_updates: bool = False
) -> str:
    """``set`` the webhook to ``url`` (with the configured secret token), ``delete`` it, or show its ``info``.

    Used by ``alert-router telegram set-webhook URL`` / ``delete-webhook`` / ``webhook-info``; returns a line
    for people. Raises ``telegram.error.TelegramError`` when Telegram refuses.
    """
    bot = build_bot(cfg)
    async with bot:
        if action == "set":
            token = secret(cfg.webhook_secret)
            if not token:
                raise ValueError("chat.telegram.webhook_secret is not configured: Telegram would send no secret")
            await bot.set_webhook(url, secret_token=token, allowed_updates=ALLOWED_UPDATES,
                                  drop_pending_updates=drop_pending_updates)
            note = "" if url.startswith("https://") else " (note: Telegram only delivers to https:// URLs)"
            return f"webhook set: {url} with the configured secret token{note}"
        if action == "delete":
            await bot.delete_webhook(drop_pending_updates=drop_pending_updates)
            return "webhook deleted"
        info = await bot.get_webhook_info()
        last = info.last_error_message or "-"
        return f"url: {info.url or '(none)'}; pending updates: {info.pending_update_count}; last error: {last}"
