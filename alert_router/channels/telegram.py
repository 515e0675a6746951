"""The ``telegram`` receiver: HTML messages through python-telegram-bot's ``Bot``, edited in place.

Every dynamic value is HTML-escaped by the template sandbox; the message is fitted into Telegram's
4,096 characters without breaking a tag (fewer alerts listed, then a balanced trim), or split into
several messages with ``long_messages: split``. Buttons (Ack, Run runbook when a runbook applies, and a row
of Silence 1h / 4h / 24h) carry
``callback_data`` of at most 64 bytes (see :mod:`alert_router.render.actions`).

One message per Alertmanager group and chat: later notifications edit it (``editMessageText``);
"message is not modified" counts as success; a message that can no longer be edited (deleted, too
old) is replaced by a new one. The ``Bot`` is created on the first send (``initialize()`` checks the
token with ``getMe``) and shut down by :meth:`TelegramChannel.aclose`.
"""

from __future__ import annotations

import asyncio
import html
import re
import warnings
from datetime import timedelta
from typing import Any, Literal, Self

import structlog
from pydantic import SecretStr, ValidationInfo, field_validator, model_validator
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions, ReplyParameters
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.request import HTTPXRequest

from alert_router.channels.base import ChannelContext, ChannelError, ChannelType, MessageRef, RateLimit
from alert_router.configbase import ConfigModel, secret
from alert_router.durations import Duration
from alert_router.errors import FailureReason
from alert_router.graph.files import load_pictures, new_pictures, posted_keys
from alert_router.models import Notification
from alert_router.render import defaults
from alert_router.render.actions import SILENCES, message_actions, pending_approvals
from alert_router.render.context import build_context
from alert_router.render.support import (
    RunbooksFor,
    links_option,
    missing_when_enabled,
    redact,
    report_template_errors,
    runbook_applies,
    runbooks_option,
    template_field,
)
from alert_router.render.telegram_html import TELEGRAM_LIMIT, split_html, trim_html, visible_length
from alert_router.render.templates import Template, fit
from alert_router.render.thread import acked_now, thread_notes

log = structlog.get_logger("alert_router.channels.telegram")
NOT_MODIFIED = "message is not modified"
JITTER_MARGIN = 1.05
"""Default rates are this much under the published ones: time to render and send varies per message."""
GONE = ("message to edit not found", "message can't be edited", "message_id_invalid")
CONTINUED = "(continued above)"


class TelegramConfig(ConfigModel):
    """``telegram: {token_file: ..., chat_id: -1001234567890}``: a bot token and a chat id (or ``@channel``)."""

    token: SecretStr | None = None
    chat_id: int | str = 0
    api_url: str = "https://api.telegram.org/bot"
    timeout: Duration = 10.0
    template: str | None = None
    actions: bool = True
    long_messages: Literal["trim", "split"] = "trim"
    message_thread_id: int | None = None

    @field_validator("chat_id", mode="before")
    @classmethod
    def _chat_id(cls, value: Any) -> Any:
        if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
            return int(value.strip())
        return value

    @field_validator("template")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        return template_field(value, "html")

    @model_validator(mode="after")
    def _complete(self, info: ValidationInfo) -> Self:
        missing_when_enabled(info, token=self.token, chat_id=self.chat_id)
        return self


def _retry_after_seconds(exc: RetryAfter) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PTB 22 warns about the int form unless PTB_TIMEDELTA is set
        value: Any = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class TelegramChannel:
    """Sends and edits one HTML message per group in one Telegram chat."""

    digest_capacity = 20
    """Alerts listed in one storm digest message (one compact line each of at most ~180 characters)."""

    edits_in_place = True
    """A group's message is edited as the group changes (storm control refreshes it after a digest)."""

    def __init__(
        self, receiver: str, cfg: TelegramConfig, links: dict[str, Any] | None = None,
        runbooks_for: RunbooksFor | None = None,
    ) -> None:
        self.receiver = receiver
        self.cfg = cfg
        self.chat_id = cfg.chat_id
        self.links = links or {}
        self.runbooks_for = runbooks_for
        self.template = Template("html", defaults.TELEGRAM, cfg.template, name="template", receiver=receiver)
        self._bot: Bot | None = None
        self._lock = asyncio.Lock()

    def destination(self) -> str:
        """The chat."""
        return f"telegram:{self.chat_id}"

    def rate_limit(self) -> RateLimit | None:
        """About one message per second in a private chat, 20 per minute in a group or channel."""
        if isinstance(self.chat_id, int) and self.chat_id > 0:
            return RateLimit(1.0 / JITTER_MARGIN, 1.0)
        return RateLimit(20 / 60 / JITTER_MARGIN, 1.0)

    def shared_rate_limits(self) -> list[tuple[str, RateLimit]]:
        """About 30 messages per second per bot, whatever the chat."""
        bot_id = secret(self.cfg.token).split(":", 1)[0] or self.receiver
        return [(f"telegram-bot:{bot_id}", RateLimit(30.0, 5.0))]

    def _secrets(self) -> list[str]:
        return [secret(self.cfg.token)]

    def _error(self, exc: Exception) -> ChannelError:
        text = redact(f"telegram: {exc}", self._secrets())
        if isinstance(exc, RetryAfter):
            return ChannelError(
                FailureReason.RATE_LIMITED, text, retryable=True, retry_after=_retry_after_seconds(exc)
            )
        if isinstance(exc, InvalidToken | Forbidden):
            return ChannelError(FailureReason.AUTH, text, retryable=False)
        if isinstance(exc, ChatMigrated):
            return ChannelError(
                FailureReason.NOT_FOUND, f"telegram: the group moved to chat {exc.new_chat_id}", retryable=False
            )
        if isinstance(exc, BadRequest):
            low = exc.message.lower()
            if "chat not found" in low or "chat_id is empty" in low or "thread not found" in low:
                return ChannelError(FailureReason.NOT_FOUND, text, retryable=False)
            if "too long" in low or "can't parse" in low or "button_data_invalid" in low or "empty" in low:
                return ChannelError(FailureReason.INVALID, text, retryable=False)
            return ChannelError(FailureReason.REJECTED, text, retryable=False)
        if isinstance(exc, TimedOut):
            return ChannelError(FailureReason.TIMEOUT, text, retryable=True)
        if isinstance(exc, NetworkError):
            server = re.search(r"\b5\d\d\b|bad gateway|internal server error", exc.message.lower())
            reason = FailureReason.SERVER_ERROR if server else FailureReason.CONNECTION
            return ChannelError(reason, text, retryable=True)
        return ChannelError(FailureReason.UNKNOWN, text, retryable=False)

    async def _get_bot(self) -> Bot:
        async with self._lock:
            if self._bot is None:
                token = secret(self.cfg.token)
                if not token:
                    raise ChannelError(FailureReason.AUTH, "telegram: no token configured", retryable=False)
                t = self.cfg.timeout
                request = HTTPXRequest(
                    connection_pool_size=8, read_timeout=t, write_timeout=t, connect_timeout=t, pool_timeout=t
                )
                self._bot = Bot(token, base_url=self.cfg.api_url, request=request)
            try:
                await self._bot.initialize()
            except TelegramError as exc:
                raise self._error(exc) from None
            return self._bot

    def render(self, notification: Notification) -> tuple[list[str], InlineKeyboardMarkup | None, list[str]]:
        """Return the message part(s), the keyboard and any template errors for ``notification``."""
        errors: list[str] = []

        def attempt(n: int | None) -> tuple[dict[str, Any], str]:
            ctx = build_context(notification, links=self.links, max_alerts=n)
            errs: list[str] = []
            out = self.template.render(ctx, errs).strip()
            if n is None:
                errors.extend(errs)
            return ctx, out

        if self.cfg.long_messages == "split":
            ctx, html = attempt(None)
            parts = split_html(html, TELEGRAM_LIMIT) or ["(empty)"]
        else:
            ctx, html = fit(len(notification.alerts), attempt, lambda r: visible_length(r[1]) <= TELEGRAM_LIMIT)
            parts = [trim_html(html, TELEGRAM_LIMIT)]
        keyboard = None
        if self.cfg.actions and not ctx["digest"]:
            firing = [a["short_id"] for a in ctx["firing_alerts"]]
            actions = message_actions(bool(ctx["firing"]), firing, ctx["group_id"],
                                      runbook=runbook_applies(self.runbooks_for, ctx))
            first = [InlineKeyboardButton(a.label, callback_data=v) for a, v in actions if a not in SILENCES]
            silences = [(a, v) for a, v in actions if a in SILENCES]
            rows = [first] if first else []
            if silences:  # "🔕 Silence 1h", then "4h", "24h": one row
                rows.append([InlineKeyboardButton(("🔕 " + a.label) if i == 0 else a.short_label, callback_data=v)
                             for i, (a, v) in enumerate(silences)])
            approvals = pending_approvals(list(ctx.get("runbook_runs") or []))
            if approvals:
                rows.append([InlineKeyboardButton(label, callback_data=value) for label, value, _ in approvals])
            if rows:
                keyboard = InlineKeyboardMarkup(rows)
        return parts, keyboard, errors

    async def _send_new(
        self, bot: Bot, parts: list[str], keyboard: InlineKeyboardMarkup | None, status: str
    ) -> MessageRef:
        ids: list[int] = []
        for i, part in enumerate(parts):
            message = await bot.send_message(
                chat_id=self.chat_id,
                text=part,
                parse_mode=ParseMode.HTML,
                reply_markup=keyboard if i == 0 else None,
                message_thread_id=self.cfg.message_thread_id,
                link_preview_options=LinkPreviewOptions(is_disabled=True),
            )
            ids.append(message.message_id)
        return {"chat_id": self.chat_id, "message_id": ids[0], "extra_ids": ids[1:], "status": status}

    async def _edit(
        self, bot: Bot, message_id: int, text: str, keyboard: InlineKeyboardMarkup | None
    ) -> bool:
        """Edit one message; ``False`` when it can no longer be edited."""
        try:
            await bot.edit_message_text(
                text=text,
                chat_id=self.chat_id,
                message_id=message_id,
                parse_mode=ParseMode.HTML,
                reply_markup=keyboard,
                link_preview_options=LinkPreviewOptions(is_disabled=True),
            )
        except BadRequest as exc:
            low = exc.message.lower()
            if NOT_MODIFIED in low:
                return True
            if any(g in low for g in GONE):
                return False
            raise
        return True

    def extra_messages(self, notification: Notification, previous: MessageRef | None) -> int:
        """Messages a send posts besides the group's own: one photo per new picture, replies (resolved, acked)."""
        notes = thread_notes(build_context(notification, max_alerts=0), previous) if previous else []
        return len(new_pictures(notification.extra, previous)) + len(notes)

    async def send(self, notification: Notification, previous: MessageRef | None) -> MessageRef | None:
        """Send or edit the group's message, then reply to it with each new picture (``sendPhoto``).

        A photo that cannot be sent does not fail the send (the message is out): it is logged, and
        ``extra["graph_delivery"]`` says why.
        """
        ref = await self._send_text(notification, previous)
        if not ref or not ref.get("message_id"):
            return ref
        same = previous is not None and previous.get("message_id") == ref.get("message_id")
        ctx = build_context(notification, max_alerts=0)
        for note in thread_notes(ctx, previous) if same else []:
            try:
                bot = await self._get_bot()
                await bot.send_message(
                    chat_id=self.chat_id, text=html.escape(note), parse_mode=ParseMode.HTML,
                    reply_parameters=ReplyParameters(int(ref["message_id"]), allow_sending_without_reply=True),
                    message_thread_id=self.cfg.message_thread_id,
                    link_preview_options=LinkPreviewOptions(is_disabled=True),
                )
            except (TelegramError, ChannelError) as exc:
                log.warning("reply not sent; the message itself was edited", receiver=self.receiver,
                            error=redact(f"telegram: {exc}", self._secrets()))
                break
        if acked := acked_now(ctx):
            ref = {**ref, "acked": acked}
        pictures = await load_pictures(new_pictures(notification.extra, previous if same else None))
        added: list[Any] = []
        for g, png in pictures:
            describe = str(g.get("describe") or "")
            caption = f"📈 <b>{html.escape(str(g.get('title', ''))[:300])}</b>" + (
                f"\nfires {html.escape(describe[:200])}" if describe else ""
            )
            try:
                bot = await self._get_bot()
                await bot.send_photo(
                    chat_id=self.chat_id,
                    photo=png,
                    filename=f"graph-{g['id']}.png",
                    caption=caption,
                    parse_mode=ParseMode.HTML,
                    reply_parameters=ReplyParameters(int(ref["message_id"]), allow_sending_without_reply=True),
                    message_thread_id=self.cfg.message_thread_id,
                )
            except (TelegramError, ChannelError) as exc:
                why = redact(f"telegram: picture not sent: {exc}", self._secrets())
                notification.extra["graph_delivery"] = why
                log.warning("picture not sent; the message went without it", receiver=self.receiver, error=why)
                break
            added.append(g)
        keys = posted_keys(previous, same, added)
        return {**ref, "graphs": keys} if keys else ref

    async def _send_text(self, notification: Notification, previous: MessageRef | None) -> MessageRef | None:
        """Send the group's message, or edit it when ``previous`` refers to a message still in use."""
        parts, keyboard, errors = self.render(notification)
        report_template_errors(notification, errors)
        status = "firing" if notification.firing else "resolved"
        bot = await self._get_bot()
        try:
            if previous and previous.get("message_id") and str(previous.get("chat_id")) == str(self.chat_id):
                reopened = previous.get("status") == "resolved" and status == "firing"
                if not reopened:
                    ids = [int(previous["message_id"]), *(int(i) for i in previous.get("extra_ids") or [])]
                    if await self._edit(bot, ids[0], parts[0], keyboard):
                        extra: list[int] = []
                        for i, part in enumerate(parts[1:], start=1):
                            if i < len(ids) and await self._edit(bot, ids[i], part, None):
                                extra.append(ids[i])
                            else:
                                extra.append(int((await self._send_new(bot, [part], None, status))["message_id"]))
                        for leftover in ids[len(parts):]:
                            await self._edit(bot, leftover, CONTINUED, None)
                        return {"chat_id": self.chat_id, "message_id": ids[0], "extra_ids": extra, "status": status}
            return await self._send_new(bot, parts, keyboard, status)
        except TelegramError as exc:
            raise self._error(exc) from None

    async def aclose(self) -> None:
        """Shut the bot's HTTP clients down."""
        if self._bot is not None:
            bot, self._bot = self._bot, None
            await bot.shutdown()


def _build(receiver: str, cfg: Any, ctx: ChannelContext) -> TelegramChannel:
    assert isinstance(cfg, TelegramConfig)
    return TelegramChannel(receiver, cfg, links_option(ctx.options), runbooks_option(ctx.options))


TYPE = ChannelType("telegram", TelegramConfig, _build, secret_free=False)
