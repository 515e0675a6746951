"""A loopback stand-in for the Telegram Bot API, driven through python-telegram-bot.

Point PTB at it with ``Bot(token, base_url=standin.base_url)``: PTB calls ``{base_url}{token}/{method}``.
It answers in the Bot API envelope, ``{"ok": true, "result": ...}`` or
``{"ok": false, "error_code": 400, "description": "Bad Request: ..."}``, and PTB maps the status codes to its
exceptions (400 → ``BadRequest``, 401/404 → ``InvalidToken``, 429 + ``parameters.retry_after`` → ``RetryAfter``).

Methods: ``getMe``, ``sendMessage``, ``sendPhoto``, ``editMessageText``, ``editMessageReplyMarkup``,
``answerCallbackQuery``, ``setWebhook``, ``deleteWebhook``, ``getWebhookInfo`` and ``getUpdates`` (returns
updates the test injects, honours ``offset``, ``limit`` and a capped long-poll ``timeout``). Method names match
case-insensitively, as the real API does. Parameters may arrive as query string, form fields (what PTB sends;
non-string values JSON-encoded), multipart or a JSON body.

Validation follows the Bot API and the tdlib HTML parser it uses (td/telegram/MessageEntity.cpp):
unsupported, unclosed or misnested tags are refused with tdlib's messages; text is 1-4096 characters after
entity parsing and trimming; ``callback_data`` is 1-64 bytes; unknown chats, unknown messages and edits
that change nothing are refused with the real descriptions. One deliberate strictness: tdlib lets a bare
``&`` (or an unknown named entity such as ``&nbsp;``) through as a literal, while the Bot API docs require
it to be escaped; the stand-in refuses it unless ``strict_entities=False`` so that missing escaping shows
up in tests.

``sendPhoto`` takes the photo as a multipart upload (what PTB sends for bytes) or a ``file_id`` the stand-in
handed out; an HTTP URL is refused (the stand-in fetches nothing). As the Bot API documents it: at most
10 MB (over it ``Bad Request: file is too big``, an assumption: the docs name no error), width plus height
at most 10,000 and a side ratio of at most 20 (``PHOTO_INVALID_DIMENSIONS``), PNG or JPEG that decodes
(``IMAGE_PROCESS_FAILED``), a caption of at most 1,024 characters after entity parsing, and
``reply_parameters`` (or ``reply_to_message_id``) naming a message of the chat unless
``allow_sending_without_reply`` (``sendMessage`` honours the same; its answer then has ``reply_to_message``).
The answer is a Message with ``photo`` as several PhotoSizes (thumbnails of
90, 320, 800 and 1,280 pixels on the long side, and the original), ``caption`` and ``reply_to_message``;
photos are kept in :attr:`TelegramStandin.photos`. A photo counts against the chat's rate like a message.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import aiohttp
from aiohttp import web

from tests.standins.slack import (
    FaultControls,
    FaultQueue,
    RequestRecord,
    TokenBucket,
    peak_rate,
    read_params,
    start_site,
)

MAX_TEXT = 4096
MAX_CALLBACK_DATA = 64
MAX_CALLBACK_ANSWER = 200
MAX_CAPTION = 1024
MAX_PHOTO_BYTES = 10 * 1024 * 1024
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are exactly "
    "the same as a current content and reply markup of the message"
)

# ---------------------------------------------------------------------------------------------------------
# HTML parse mode (a port of tdlib's parse_html, reduced to what tests need)
# ---------------------------------------------------------------------------------------------------------

SUPPORTED_TAGS = frozenset(
    {"a", "b", "strong", "i", "em", "s", "strike", "del", "u", "ins", "tg-spoiler", "tg-emoji", "span", "pre",
     "code", "blockquote"}
)
_ENTITY_TYPES = {
    "b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline", "ins": "underline",
    "s": "strikethrough", "strike": "strikethrough", "del": "strikethrough", "tg-spoiler": "spoiler",
    "span": "spoiler", "code": "code", "pre": "pre", "blockquote": "blockquote", "a": "text_link",
    "tg-emoji": "custom_emoji",
}
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_ENTITY_RE = re.compile(r"&(?:#([0-9]{1,7})|#[xX]([0-9a-fA-F]{1,6})|([A-Za-z][A-Za-z0-9]*));")
_SPACE = " \t\r\n\f\v"


class EntityParseError(ValueError):
    """HTML that the Bot API refuses; the message is tdlib's, without the ``can't parse entities`` prefix."""


def _utf16_len(s: str) -> int:
    return len(s.encode("utf-16-le")) // 2


def _decode_entity(text: str, i: int) -> tuple[str, int] | None:
    """Decode the character entity at ``text[i] == '&'``; return (character, length) or None."""
    m = _ENTITY_RE.match(text, i)
    if m is None:
        return None
    dec, hexa, name = m.groups()
    if name is not None:
        ch = _NAMED_ENTITIES.get(name)
        return None if ch is None else (ch, m.end() - i)
    code = int(dec) if dec is not None else int(hexa, 16)
    if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return None
    return chr(code), m.end() - i


def parse_html(text: str, strict_entities: bool = True) -> tuple[str, list[dict[str, Any]]]:
    """Parse Bot API HTML into (visible text, entities with UTF-16 offsets).

    Raises :class:`EntityParseError` for anything tdlib refuses, and (with ``strict_entities``) for a
    bare ``&`` or an unsupported named entity.
    """

    def byte_offset(i: int) -> int:
        return len(text[:i].encode("utf-8"))

    out: list[str] = []
    utf16 = 0
    n = len(text)
    # open tags: (tag name, argument, utf16 start offset)
    stack: list[tuple[str, str, int]] = []
    entities: list[dict[str, Any]] = []
    i = 0
    while i < n:
        c = text[i]
        if c == "&":
            decoded = _decode_entity(text, i)
            if decoded is not None:
                ch, length = decoded
                out.append(ch)
                utf16 += _utf16_len(ch)
                i += length
                continue
            if strict_entities:
                raise EntityParseError(
                    f'Character "&" must be escaped as "&amp;" at byte offset {byte_offset(i)}')
        if c != "<":
            out.append(c)
            utf16 += _utf16_len(c)
            i += 1
            continue
        begin = i
        i += 1
        if i < n and text[i] == "/":
            if not stack:
                raise EntityParseError(f"Unexpected end tag at byte offset {byte_offset(begin)}")
            j = i + 1
            while j < n and text[j] not in _SPACE and text[j] != ">":
                j += 1
            end_name = text[i + 1:j].lower()
            while j < n and text[j] in _SPACE:
                j += 1
            if j >= n or text[j] != ">":
                raise EntityParseError(f"Unclosed end tag at byte offset {byte_offset(begin)}")
            tag, argument, start = stack.pop()
            if end_name and end_name != tag:
                raise EntityParseError(
                    f'Unmatched end tag at byte offset {byte_offset(begin)}, expected "</{tag}>", '
                    f'found "</{end_name}>"')
            i = j + 1
            length = utf16 - start
            if length > 0:
                entity = _make_entity(tag, argument, start, length, entities)
                if entity is not None:
                    entities.append(entity)
            continue
        j = i
        while j < n and text[j] not in _SPACE and text[j] != ">":
            j += 1
        tag = text[i:j].lower()
        if j >= n:
            raise EntityParseError(f"Unclosed start tag at byte offset {byte_offset(begin)}")
        if tag not in SUPPORTED_TAGS:
            raise EntityParseError(f'Unsupported start tag "{tag}" at byte offset {byte_offset(begin)}')
        i = j
        argument = ""
        while True:
            while i < n and text[i] in _SPACE:
                i += 1
            if i >= n:
                raise EntityParseError(f"Unclosed start tag at byte offset {byte_offset(begin)}")
            if text[i] == ">":
                i += 1
                break
            attr_begin = i
            while i < n and text[i] not in _SPACE and text[i] not in "=>":
                i += 1
            attr_name = text[attr_begin:i].lower()
            if not attr_name:
                raise EntityParseError(
                    f'Empty attribute name in the tag "{tag}" at byte offset {byte_offset(begin)}')
            while i < n and text[i] in _SPACE:
                i += 1
            if tag == "blockquote" and attr_name == "expandable" and (i >= n or text[i] != "="):
                argument = "expandable"
                continue
            if i >= n or text[i] != "=":
                raise EntityParseError(
                    f'Expected equal sign in declaration of an attribute of the tag "{tag}" at byte offset '
                    f"{byte_offset(begin)}")
            i += 1
            while i < n and text[i] in _SPACE:
                i += 1
            if i >= n:
                raise EntityParseError(f"Unclosed start tag at byte offset {byte_offset(begin)}")
            if text[i] not in "'\"":
                token_begin = i
                while i < n and (text[i].isalnum() or text[i] in ".-"):
                    i += 1
                value = text[token_begin:i].lower()
                if i >= n or (text[i] not in _SPACE and text[i] != ">"):
                    raise EntityParseError(
                        f"Unexpected end of name token at byte offset {byte_offset(token_begin)}")
            else:
                quote = text[i]
                i += 1
                chars: list[str] = []
                while i < n and text[i] != quote:
                    if text[i] == "&":
                        decoded = _decode_entity(text, i)
                        if decoded is not None:
                            chars.append(decoded[0])
                            i += decoded[1]
                            continue
                    chars.append(text[i])
                    i += 1
                if i < n:
                    i += 1
                value = "".join(chars)
            if i >= n:
                raise EntityParseError(f"Unclosed start tag at byte offset {byte_offset(begin)}")
            if (tag == "a" and attr_name == "href") or (tag == "tg-emoji" and attr_name == "emoji-id"):
                argument = value
            elif tag == "code" and attr_name == "class" and value.startswith("language-"):
                argument = value.removeprefix("language-")
            elif tag == "span" and attr_name == "class" and value.startswith("tg-"):
                argument = value.removeprefix("tg-")
        if tag == "span" and argument != "spoiler":
            raise EntityParseError(
                f'Tag "span" must have class "tg-spoiler" at byte offset {byte_offset(begin)}')
        stack.append((tag, argument, utf16))
    if stack:
        raise EntityParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


def _make_entity(tag: str, argument: str, offset: int, length: int,
                 done: list[dict[str, Any]]) -> dict[str, Any] | None:
    kind = _ENTITY_TYPES[tag]
    entity: dict[str, Any] = {"type": kind, "offset": offset, "length": length}
    if tag == "a":
        if not argument:
            return None
        entity["url"] = argument
    elif tag == "tg-emoji":
        if not argument:
            raise EntityParseError('Custom emoji entity must have "emoji-id" attribute')
        entity["custom_emoji_id"] = argument
    elif tag == "blockquote" and argument == "expandable":
        entity["type"] = "expandable_blockquote"
    elif tag == "pre":
        # <pre><code class="language-x">...</code></pre> becomes one pre entity with a language.
        for inner in done:
            if inner["type"] == "code" and inner["offset"] == offset and inner["length"] == length \
                    and "language" in inner:
                done.remove(inner)
                entity["language"] = inner["language"]
                break
    elif tag == "code" and argument:
        entity["language"] = argument
    return entity


def _trim(text: str, entities: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """Strip leading/trailing whitespace as the Bot API does, moving and clipping entities."""
    stripped = text.strip()
    if stripped == text:
        return text, entities
    lead = _utf16_len(text[: len(text) - len(text.lstrip())])
    total = _utf16_len(stripped)
    result = []
    for e in entities:
        start = max(0, e["offset"] - lead)
        end = min(total, e["offset"] + e["length"] - lead)
        if end > start:
            result.append({**e, "offset": start, "length": end - start})
    return stripped, result


# ---------------------------------------------------------------------------------------------------------
# The stand-in
# ---------------------------------------------------------------------------------------------------------


class TelegramApiError(Exception):
    """Raised inside the stand-in to answer with an error envelope."""

    def __init__(self, code: int, description: str, parameters: dict[str, Any] | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters


def _bad(description: str) -> TelegramApiError:
    return TelegramApiError(400, f"Bad Request: {description}")


@dataclass
class TelegramMessage:
    """A message the bot sent, as it stands now; ``history`` holds each earlier version."""

    chat_id: int
    message_id: int
    text: str
    entities: list[dict[str, Any]]
    reply_markup: dict[str, Any] | None
    date: int
    source_text: str
    parse_mode: str | None
    params: dict[str, Any] = field(default_factory=dict)
    edit_date: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    reply_to: int | None = None
    """The message this one replies to (``reply_parameters`` / ``reply_to_message_id``), if it exists."""

    @property
    def edits(self) -> int:
        """How many times the message was edited."""
        return len(self.history)

    @property
    def callback_data(self) -> list[str]:
        """The ``callback_data`` of every inline button, row by row."""
        rows = (self.reply_markup or {}).get("inline_keyboard", [])
        return [b["callback_data"] for row in rows for b in row if "callback_data" in b]


@dataclass
class TelegramPhoto:
    """A photo the bot sent: the bytes as uploaded, their size, the caption and what it replied to."""

    chat_id: int
    message_id: int
    data: bytes
    width: int
    height: int
    caption: str
    caption_entities: list[dict[str, Any]]
    reply_to: int | None
    params: dict[str, Any] = field(default_factory=dict)
    file_id: str = ""


def image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height of a PNG (IHDR) or baseline/progressive JPEG (SOF), or ``None``."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24 and data[12:16] == b"IHDR":
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data.startswith(b"\xff\xd8"):
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                return None
            marker, size = data[i + 1], int.from_bytes(data[i + 2:i + 4], "big")
            if marker in (0xC0, 0xC1, 0xC2):
                return int.from_bytes(data[i + 7:i + 9], "big"), int.from_bytes(data[i + 5:i + 7], "big")
            i += 2 + size
    return None


@dataclass
class CallbackAnswer:
    """A recorded ``answerCallbackQuery`` call."""

    callback_query_id: str
    text: str | None
    show_alert: bool
    params: dict[str, Any]


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def _as_json(value: Any, what: str) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError as exc:
            raise _bad(f"can't parse {what} JSON object") from exc
    return value


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1")
    return bool(value)


class TelegramStandin(FaultControls):
    """A loopback Telegram Bot API for tests; use it as an async context manager or call start/close.

    Args:
        token: the valid bot token, ``"<bot id>:<secret>"``; a well-formed wrong token answers 401, a
            malformed one 404, as the real API does.
        chats: the chats that exist: chat id → type (``private``, ``group``, ``supergroup``, ``channel``).
        strict_entities: refuse a bare ``&`` in HTML (see the module docstring).
        poll_cap: the longest ``getUpdates`` long poll the stand-in honours, in seconds.
    """

    def __init__(
        self,
        token: str = "123456789:AAHstandin-token_0123456789abcdefghi",
        chats: Mapping[int, str] | None = None,
        strict_entities: bool = True,
        poll_cap: float = 1.0,
        username: str = "alert_router_test_bot",
    ) -> None:
        self.token = token
        self.bot_user_id = int(token.split(":", 1)[0])
        self.username = username
        self.chats: dict[int, str] = dict(chats) if chats is not None else {
            1001: "private", -1002: "group", -1001000000003: "supergroup"}
        self.strict_entities = strict_entities
        self.poll_cap = poll_cap
        self.messages: dict[int, list[TelegramMessage]] = defaultdict(list)
        """Messages the bot sent, per chat id, in sending order."""
        self.photos: dict[int, list[TelegramPhoto]] = defaultdict(list)
        """Photos the bot sent, per chat id, in sending order."""
        self.callback_answers: list[CallbackAnswer] = []
        """Every accepted ``answerCallbackQuery``."""
        self.requests: list[RequestRecord] = []
        """Every request, in arrival order (``key`` is the chat id as a string, if any)."""
        self.request_times: dict[int, list[float]] = defaultdict(list)
        """``time.monotonic()`` of each sendMessage/edit request per chat, accepted or not."""
        self.accepted_times: dict[int, list[float]] = defaultdict(list)
        """``time.monotonic()`` of each accepted sendMessage/edit request per chat."""
        self.webhook: dict[str, Any] | None = None
        """The parameters of the last ``setWebhook`` (``url``, ``secret_token``, ...), or ``None``."""
        self.faults = FaultQueue()
        self._updates: list[dict[str, Any]] = []
        self._next_update_id = 100_000
        self._next_message_id: dict[int, int] = defaultdict(lambda: 1)
        self._open_queries: dict[str, dict[str, Any]] = {}
        self._next_query = 1
        self._update_event = asyncio.Event()
        self._closing = asyncio.Event()
        self._rate: tuple[float, float] | None = None
        self._buckets: dict[int, TokenBucket] = {}
        self._revoked = False
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- lifecycle -------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The ``base_url`` for PTB's ``Bot`` (``http://127.0.0.1:PORT/bot``)."""
        if not self.port:
            raise RuntimeError("TelegramStandin is not started")
        return f"http://127.0.0.1:{self.port}/bot"

    async def start(self) -> TelegramStandin:
        """Bind to an ephemeral loopback port and start answering."""
        app = web.Application()
        app.router.add_route("*", r"/bot{token}/{method}", self._handle)
        self._runner, self.port = await start_site(app)
        return self

    async def close(self) -> None:
        """Stop answering, wake pending long polls and release the port."""
        self._closing.set()
        self._update_event.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> TelegramStandin:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- controls for tests (and fail_next / rate_limit_next / delay_next of FaultControls: a 429 carries
    # ``parameters.retry_after``; 502 is what Telegram shows in outages) ------------------------------------

    def revoke_token(self) -> None:
        """From now on the configured token answers 401 Unauthorized."""
        self._revoked = True

    def enforce_rate(self, per_second: float | None = 1.0, burst: float = 1.0) -> None:
        """Enforce a per-chat limit on sendMessage and edits (token bucket); over it answer 429."""
        self._rate = None if per_second is None else (per_second, burst)
        self._buckets.clear()

    def peak_rate(self, chat_id: int, window: float = 1.0, accepted_only: bool = True) -> int:
        """Return the most send/edit requests for ``chat_id`` seen in any ``window`` seconds."""
        times = self.accepted_times[chat_id] if accepted_only else self.request_times[chat_id]
        return peak_rate(times, window)

    def user(self, user_id: int = 4242, first_name: str = "Alice", username: str | None = "alice") -> dict[str, Any]:
        """Return a Bot API ``User`` object for a human user."""
        result: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name}
        if username:
            result["username"] = username
        return result

    def chat_object(self, chat_id: int) -> dict[str, Any]:
        """Return the Bot API ``Chat`` object for a known chat."""
        kind = self.chats[chat_id]
        if kind == "private":
            return {"id": chat_id, "type": "private", "first_name": f"User{chat_id}"}
        return {"id": chat_id, "type": kind, "title": f"Chat {chat_id}"}

    def inject_message(self, chat_id: int, text: str, from_user: dict[str, Any] | None = None) -> dict[str, Any]:
        """Queue an update carrying a user's text message (``/ack 123`` etc.); return the update."""
        if chat_id not in self.chats:
            raise KeyError(f"unknown chat {chat_id}")
        message_id = self._next_message_id[chat_id]
        self._next_message_id[chat_id] += 1
        message: dict[str, Any] = {
            "message_id": message_id, "date": int(time.time()), "chat": self.chat_object(chat_id),
            "from": from_user or self.user(), "text": text,
        }
        if text.startswith("/"):
            command = text.split()[0]
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": _utf16_len(command)}]
        return self._queue({"message": message})

    def inject_callback_query(
        self, chat_id: int, message_id: int, data: str, from_user: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Queue an update for a press of an inline button on a message the bot sent; return the update.

        The callback query id is ``update["callback_query"]["id"]``; it must be answered once.
        """
        sent = next((m for m in self.messages.get(chat_id, []) if m.message_id == message_id), None)
        if sent is None:
            raise KeyError(f"no bot message {message_id} in chat {chat_id}")
        query_id = f"{self.bot_user_id}{self._next_query:08d}"
        self._next_query += 1
        query = {
            "id": query_id, "from": from_user or self.user(), "chat_instance": f"ci{chat_id}",
            "message": self._message_json(sent), "data": data,
        }
        self._open_queries[query_id] = query
        return self._queue({"callback_query": query})

    def requeue(self, update: dict[str, Any]) -> None:
        """Queue ``update`` again, as Telegram does when no later ``getUpdates`` offset confirmed it."""
        self._updates.append(update)
        self._update_event.set()

    def pending_updates(self) -> list[dict[str, Any]]:
        """The queued updates not yet confirmed by a ``getUpdates`` offset."""
        return list(self._updates)

    async def deliver_to_webhook(self, update: dict[str, Any], seconds: float = 5.0) -> int:
        """POST ``update`` to the URL set with ``setWebhook``, with the secret header; return the status.

        Only loopback webhook URLs are accepted. The update stays out of the ``getUpdates`` queue.
        """
        if self.webhook is None:
            raise RuntimeError("no webhook is set")
        url = str(self.webhook["url"])
        if not url.startswith(("http://127.0.0.1", "https://127.0.0.1", "http://localhost", "https://localhost")):
            raise ValueError("the stand-in only delivers to loopback webhooks")
        if update in self._updates:
            self._updates.remove(update)
        headers = {}
        if self.webhook.get("secret_token"):
            headers["X-Telegram-Bot-Api-Secret-Token"] = str(self.webhook["secret_token"])
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=seconds)) as session,
            session.post(url, json=update, headers=headers) as response,
        ):
            await response.read()
            return response.status

    # -- internals -------------------------------------------------------------------------------------

    def _queue(self, payload: dict[str, Any]) -> dict[str, Any]:
        update = {"update_id": self._next_update_id, **payload}
        self._next_update_id += 1
        self._updates.append(update)
        self._update_event.set()
        return update

    def _bot_user(self) -> dict[str, Any]:
        return {"id": self.bot_user_id, "is_bot": True, "first_name": "alert-router", "username": self.username}

    def _message_json(self, m: TelegramMessage) -> dict[str, Any]:
        result: dict[str, Any] = {
            "message_id": m.message_id, "from": self._bot_user(), "chat": self.chat_object(m.chat_id),
            "date": m.date, "text": m.text,
        }
        if m.entities:
            result["entities"] = m.entities
        if m.reply_markup is not None:
            result["reply_markup"] = m.reply_markup
        if m.edit_date is not None:
            result["edit_date"] = m.edit_date
        replied = next((r for r in self.messages.get(m.chat_id, []) if r.message_id == m.reply_to), None)
        if replied is not None:
            result["reply_to_message"] = {k: v for k, v in self._message_json(replied).items()
                                          if k != "reply_to_message"}
        return result

    def _reply_to(self, chat_id: int, params: dict[str, Any]) -> int | None:
        """The message a send replies to: ``reply_parameters`` (or ``reply_to_message_id``) naming a message of
        the chat; one that does not exist is refused unless ``allow_sending_without_reply`` (then no reply)."""
        reply = _as_json(params.get("reply_parameters"), "reply parameters") or {}
        reply_to = _as_int(reply.get("message_id")) if isinstance(reply, dict) else None
        allow = _as_bool(reply.get("allow_sending_without_reply", False)) if isinstance(reply, dict) else False
        if reply_to is None:
            reply_to = _as_int(params.get("reply_to_message_id"))
            allow = _as_bool(params.get("allow_sending_without_reply", False))
        replied = next((m for m in self.messages.get(chat_id, []) if m.message_id == reply_to), None)
        if reply_to is not None and replied is None and not allow:
            raise _bad("message to be replied not found")
        return reply_to if replied is not None else None

    @staticmethod
    def _envelope_error(error: TelegramApiError) -> web.Response:
        body: dict[str, Any] = {"ok": False, "error_code": error.code, "description": error.description}
        if error.parameters:
            body["parameters"] = error.parameters
        return web.json_response(body, status=error.code)

    async def _handle(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        method = request.match_info["method"]
        now = time.monotonic()
        try:
            params = await read_params(request)
        except ValueError:
            params = {}
        chat_key = _as_int(params.get("chat_id"))
        counted = method.lower() in ("sendmessage", "sendphoto", "editmessagetext", "editmessagereplymarkup")
        if counted and chat_key is not None:
            self.request_times[chat_key].append(now)
        try:
            fault = self.faults.pop(method)
            if fault is not None:
                if fault.kind == "delay":
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._closing.wait(), timeout=fault.delay)
                elif fault.kind == "ratelimit":
                    raise TelegramApiError(429, f"Too Many Requests: retry after {fault.retry_after}",
                                           {"retry_after": fault.retry_after})
                else:
                    raise TelegramApiError(fault.status, {
                        500: "Internal Server Error", 502: "Bad Gateway"}.get(fault.status, "Server Error"))
            if not re.fullmatch(r"[0-9]+:[A-Za-z0-9_-]+", token):
                raise TelegramApiError(404, "Not Found")
            if token != self.token or self._revoked:
                raise TelegramApiError(401, "Unauthorized")
            if counted and self._rate is not None and chat_key is not None and chat_key in self.chats:
                bucket = self._buckets.get(chat_key)
                if bucket is None:
                    bucket = self._buckets[chat_key] = TokenBucket(*self._rate)
                wait = bucket.take(now)
                if wait > 0:
                    retry = max(1, math.ceil(wait))
                    raise TelegramApiError(429, f"Too Many Requests: retry after {retry}", {"retry_after": retry})
            handler = {
                "getme": self._get_me,
                "sendmessage": self._send_message,
                "sendphoto": self._send_photo,
                "editmessagetext": self._edit_message_text,
                "editmessagereplymarkup": self._edit_reply_markup,
                "answercallbackquery": self._answer_callback_query,
                "setwebhook": self._set_webhook,
                "deletewebhook": self._delete_webhook,
                "getwebhookinfo": self._get_webhook_info,
            }.get(method.lower())
            if method.lower() == "getupdates":
                result: Any = await self._get_updates(params)
            elif handler is None:
                raise TelegramApiError(404, "Not Found")
            else:
                result = handler(params)
        except TelegramApiError as error:
            self.requests.append(RequestRecord(method, params, now, error.code, error.description,
                                               None if chat_key is None else str(chat_key)))
            return self._envelope_error(error)
        self.requests.append(RequestRecord(method, params, now, 200, None,
                                           None if chat_key is None else str(chat_key)))
        if counted and chat_key is not None:
            self.accepted_times[chat_key].append(now)
        if isinstance(result, tuple):
            value, description = result
            return web.json_response({"ok": True, "result": value, "description": description})
        return web.json_response({"ok": True, "result": result})

    def _get_me(self, params: dict[str, Any]) -> dict[str, Any]:
        return {**self._bot_user(), "can_join_groups": True, "can_read_all_group_messages": False,
                "supports_inline_queries": False, "can_connect_to_business": False, "has_main_web_app": False}

    def _chat(self, params: dict[str, Any]) -> int:
        raw = params.get("chat_id")
        if raw is None or raw == "":
            raise _bad("chat_id is empty")
        chat_id = _as_int(raw)
        if chat_id is None or chat_id not in self.chats:
            raise _bad("chat not found")
        return chat_id

    def _text(self, params: dict[str, Any]) -> tuple[str, list[dict[str, Any]], str | None]:
        source = params.get("text")
        if source is None or source == "":
            raise _bad("message text is empty")
        source = str(source)
        parse_mode = params.get("parse_mode")
        if parse_mode in (None, ""):
            text = source
            entities = _as_json(params.get("entities"), "entities") or []
            parse_mode = None
        elif str(parse_mode).lower() == "html":
            try:
                text, entities = parse_html(source, strict_entities=self.strict_entities)
            except EntityParseError as exc:
                raise _bad(f"can't parse entities: {exc}") from exc
        elif str(parse_mode).lower() in ("markdown", "markdownv2"):
            # Not parsed: the text counts as sent. The project sends HTML; see the module docstring.
            text, entities = source, []
        else:
            raise _bad("unsupported parse_mode")
        text, entities = _trim(text, entities)
        if not text:
            raise _bad("message text is empty")
        if len(text) > MAX_TEXT:
            raise _bad("message is too long")
        return text, entities, None if parse_mode is None else str(parse_mode)

    @staticmethod
    def _reply_markup(params: dict[str, Any]) -> dict[str, Any] | None:
        raw = params.get("reply_markup")
        if raw is None or raw == "":
            return None
        markup = _as_json(raw, "reply keyboard markup")
        if not isinstance(markup, dict):
            raise _bad("can't parse reply keyboard markup JSON object")
        if "inline_keyboard" not in markup:
            return markup
        rows = markup["inline_keyboard"]
        if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
            raise _bad("can't parse inline keyboard markup JSON object")
        for row in rows:
            for button in row:
                if not isinstance(button, dict) or not isinstance(button.get("text"), str):
                    raise _bad("can't parse inline keyboard button: Text must be a String")
                if not button["text"]:
                    raise _bad("inline keyboard button text must be non-empty")
                if "callback_data" in button:
                    data = button["callback_data"]
                    if not isinstance(data, str) or not 1 <= len(data.encode("utf-8")) <= MAX_CALLBACK_DATA:
                        raise _bad("BUTTON_DATA_INVALID")
                elif not any(k in button for k in ("url", "login_url", "switch_inline_query", "web_app",
                                                    "switch_inline_query_current_chat", "copy_text", "pay",
                                                    "callback_game", "switch_inline_query_chosen_chat")):
                    raise _bad("can't parse inline keyboard button: Text buttons are unallowed in the inline "
                               "keyboard")
        return markup

    def _send_message(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = self._chat(params)
        text, entities, parse_mode = self._text(params)
        markup = self._reply_markup(params)
        reply_to = self._reply_to(chat_id, params)
        message_id = self._next_message_id[chat_id]
        self._next_message_id[chat_id] += 1
        message = TelegramMessage(
            chat_id=chat_id, message_id=message_id, text=text, entities=entities, reply_markup=markup,
            date=int(time.time()), source_text=str(params["text"]), parse_mode=parse_mode, params=dict(params),
            reply_to=reply_to,
        )
        self.messages[chat_id].append(message)
        return self._message_json(message)

    def _send_photo(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = self._chat(params)
        raw = params.get("photo")
        if raw is None or raw == "":
            raise _bad("there is no photo in the request")
        if isinstance(raw, str):
            known = next((p for ps in self.photos.values() for p in ps if p.file_id == raw), None)
            if known is None:
                raise _bad("wrong file identifier/HTTP URL specified")
            data = known.data
        else:
            data = raw.read() if hasattr(raw, "read") else bytes(raw)
        if len(data) > MAX_PHOTO_BYTES:
            raise _bad("file is too big")
        size = image_size(data)
        if size is None or min(size) <= 0:
            raise _bad("IMAGE_PROCESS_FAILED")
        width, height = size
        if width + height > 10_000 or max(width, height) / min(width, height) > 20:
            raise _bad("PHOTO_INVALID_DIMENSIONS")
        caption, entities = "", []
        source = params.get("caption")
        if source not in (None, ""):
            if str(params.get("parse_mode") or "").lower() == "html":
                try:
                    caption, entities = parse_html(str(source), strict_entities=self.strict_entities)
                except EntityParseError as exc:
                    raise _bad(f"can't parse entities: {exc}") from exc
            else:
                caption = str(source)
            caption, entities = _trim(caption, entities)
            if len(caption) > MAX_CAPTION:
                raise _bad("message caption is too long")
        reply_to = self._reply_to(chat_id, params)
        message_id = self._next_message_id[chat_id]
        self._next_message_id[chat_id] += 1
        file_id = f"AgAC{chat_id & 0xFFFF:04x}{message_id:06d}"
        photo = TelegramPhoto(chat_id, message_id, data, width, height, caption, entities,
                              reply_to, dict(params), file_id)
        self.photos[chat_id].append(photo)
        sizes = []
        for side in (90, 320, 800, 1280):
            if side < max(width, height):
                ratio = side / max(width, height)
                sizes.append({"file_id": f"{file_id}_{side}", "file_unique_id": f"u{file_id}_{side}",
                              "width": round(width * ratio), "height": round(height * ratio)})
        sizes.append({"file_id": file_id, "file_unique_id": f"u{file_id}", "width": width, "height": height,
                      "file_size": len(data)})
        result: dict[str, Any] = {
            "message_id": message_id, "from": self._bot_user(), "chat": self.chat_object(chat_id),
            "date": int(time.time()), "photo": sizes,
        }
        if caption:
            result["caption"] = caption
        if entities:
            result["caption_entities"] = entities
        replied = next((m for m in self.messages.get(chat_id, []) if m.message_id == reply_to), None)
        if replied is not None:
            result["reply_to_message"] = self._message_json(replied)
        return result

    def _find(self, params: dict[str, Any]) -> TelegramMessage:
        if params.get("inline_message_id"):
            raise _bad("MESSAGE_ID_INVALID")
        chat_id = self._chat(params)
        message_id = _as_int(params.get("message_id"))
        if message_id is None:
            raise _bad("message identifier is not specified")
        message = next((m for m in self.messages.get(chat_id, []) if m.message_id == message_id), None)
        if message is None:
            raise _bad("message to edit not found")
        return message

    def _apply_edit(self, message: TelegramMessage, text: str, entities: list[dict[str, Any]],
                    markup: dict[str, Any] | None, params: dict[str, Any], source: str,
                    parse_mode: str | None) -> dict[str, Any]:
        if text == message.text and entities == message.entities and markup == message.reply_markup:
            raise _bad(NOT_MODIFIED[len("Bad Request: "):])
        message.history.append({"text": message.text, "entities": message.entities,
                                "reply_markup": message.reply_markup, "source_text": message.source_text})
        message.text, message.entities, message.reply_markup = text, entities, markup
        message.source_text, message.parse_mode = source, parse_mode
        message.edit_date = int(time.time())
        message.params = dict(params)
        return self._message_json(message)

    def _edit_message_text(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self._find(params)
        text, entities, parse_mode = self._text(params)
        markup = self._reply_markup(params)
        return self._apply_edit(message, text, entities, markup, params, str(params["text"]), parse_mode)

    def _edit_reply_markup(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self._find(params)
        markup = self._reply_markup(params)
        return self._apply_edit(message, message.text, message.entities, markup, params, message.source_text,
                                message.parse_mode)

    def _answer_callback_query(self, params: dict[str, Any]) -> bool:
        query_id = str(params.get("callback_query_id") or "")
        if query_id not in self._open_queries:
            raise _bad("query is too old and response timeout expired or query ID is invalid")
        text = params.get("text")
        if text is not None and len(str(text)) > MAX_CALLBACK_ANSWER:
            raise _bad("MESSAGE_TOO_LONG")
        del self._open_queries[query_id]
        self.callback_answers.append(CallbackAnswer(query_id, None if text is None else str(text),
                                                    _as_bool(params.get("show_alert", False)), dict(params)))
        return True

    def _set_webhook(self, params: dict[str, Any]) -> tuple[bool, str]:
        url = str(params.get("url") or "")
        if not url:
            return self._delete_webhook(params)
        if not url.startswith(("http://", "https://")):
            raise _bad("invalid webhook URL specified")
        secret = params.get("secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", str(secret)):
            raise _bad("secret token contains unallowed characters")
        self.webhook = dict(params)
        if _as_bool(params.get("drop_pending_updates", False)):
            self._updates.clear()
        return True, "Webhook was set"

    def _delete_webhook(self, params: dict[str, Any]) -> tuple[bool, str]:
        was_set = self.webhook is not None
        self.webhook = None
        if _as_bool(params.get("drop_pending_updates", False)):
            self._updates.clear()
        return True, "Webhook was deleted" if was_set else "Webhook is already deleted"

    def _get_webhook_info(self, params: dict[str, Any]) -> dict[str, Any]:
        info: dict[str, Any] = {"url": "", "has_custom_certificate": False,
                                "pending_update_count": len(self._updates)}
        if self.webhook is not None:
            info["url"] = self.webhook["url"]
        return info

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        if self.webhook is not None:
            raise TelegramApiError(
                409, "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to "
                     "delete the webhook first")
        offset = _as_int(params.get("offset")) or 0
        limit = _as_int(params.get("limit")) or 100
        limit = min(max(limit, 1), 100)
        timeout = max(0.0, min(float(_as_int(params.get("timeout")) or 0), self.poll_cap))
        if offset > 0:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        deadline = time.monotonic() + timeout
        while True:
            selected = self._updates[offset:] if offset < 0 else self._updates
            if selected or self._closing.is_set():
                return selected[:limit]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            self._update_event.clear()
            try:
                await asyncio.wait_for(self._update_event.wait(), timeout=remaining)
            except TimeoutError:
                return []
