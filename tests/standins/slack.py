"""A loopback stand-in for the Slack Web API, driven through the real ``slack_sdk`` clients.

The stand-in is an aiohttp application bound to ``127.0.0.1:0`` inside the running event loop.
Point a client at :attr:`SlackStandin.base_url`::

    async with SlackStandin(token="xoxb-test") as slack:
        client = AsyncWebClient(token="xoxb-test", base_url=slack.base_url)
        await client.chat_postMessage(channel="C0ALERTS", text="hi")
        assert slack.messages["C0ALERTS"][0].text == "hi"

What it honours, as Slack documents it (docs.slack.dev/reference/methods):

* ``chat.postMessage``, ``chat.update``, ``chat.postEphemeral`` and ``auth.test``, with JSON bodies
  (what ``AsyncWebClient`` sends for chat methods), form-encoded bodies and query parameters.
* The token comes from ``Authorization: Bearer`` or a ``token`` parameter; none → ``not_authed``,
  a wrong one → ``invalid_auth``, a revoked one → ``token_revoked``; all with HTTP 200 and ``ok: false``.
* ``channel_not_found``, ``no_text``, ``msg_too_long`` (text over 40,000 characters),
  ``invalid_blocks_format`` and ``invalid_blocks`` (more than 50 blocks, section text over 3,000
  characters, header text over 150, ...), ``message_not_found`` for ``chat.update`` of an unknown ts.
* Message metadata (docs.slack.dev, "Using message metadata"): ``metadata`` on ``chat.postMessage`` and
  ``chat.update`` is a JSON object with a string ``event_type`` (letters, digits, underscores) and an object
  ``event_payload`` (``invalid_metadata_format`` when not an object, ``invalid_metadata_schema`` otherwise);
  ``chat.update`` without it keeps the message's metadata.
* ``conversations.history``: the channel's messages, not thread replies, newest first, after ``oldest`` and
  before ``latest`` (both exclusive unless ``inclusive``), ``limit`` per page (default 100, at most 999),
  ``has_more`` and ``response_metadata.next_cursor``; each message's ``metadata`` only with
  ``include_all_metadata``.
* Rate limiting: HTTP 429, a ``Retry-After`` header in whole seconds and ``{"ok":false,"error":"ratelimited"}``.
* File uploads the way ``files_upload_v2`` does them (docs.slack.dev, files.getUploadURLExternal and
  files.completeUploadExternal): ``files.getUploadURLExternal`` (``filename`` and ``length`` required,
  ``length`` 0 → ``missing_argument``, ``alt_txt`` over 1,000 characters → ``alt_txt_too_large``, over
  ``max_file_bytes`` → ``file_upload_size_restricted``) returns an ``upload_url`` on this stand-in and a
  ``file_id``; the bytes are POSTed there raw or as a multipart ``file`` field (200 ``OK - <bytes>``; an
  unknown ticket 404, more bytes than announced 413, fewer 400); ``files.completeUploadExternal`` (``files``
  a JSON array of ``{id, title}``; an id never uploaded, or completed before, → ``file_not_found``;
  ``channel_id`` unknown → ``channel_not_found``; ``thread_ts`` that is no message of that channel →
  ``invalid_arguments``, an assumption: the docs list no specific error) shares the files as one message in the
  channel or thread (:attr:`SlackStandin.files`, :class:`SlackMessage` ``files``). It counts against the
  channel's rate like a chat message.

The module also holds the small fault and rate helpers that the Telegram stand-in reuses.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import time
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal

from aiohttp import web

# ---------------------------------------------------------------------------------------------------------
# Shared helpers (also used by tests.standins.telegram)
# ---------------------------------------------------------------------------------------------------------

FaultKind = Literal["error", "ratelimit", "delay"]


@dataclass
class Fault:
    """One injected fault, consumed by the next matching request.

    ``kind`` is ``"error"`` (answer ``status``), ``"ratelimit"`` (answer 429 with ``retry_after``)
    or ``"delay"`` (sleep ``delay`` seconds, then answer normally). ``method`` limits the fault to
    one API method; ``None`` matches every method.
    """

    kind: FaultKind
    status: int = 500
    retry_after: float = 1
    delay: float = 0.0
    method: str | None = None


class FaultQueue:
    """An ordered queue of injected faults; each request consumes at most one matching fault."""

    def __init__(self) -> None:
        self._faults: deque[Fault] = deque()

    def push(self, fault: Fault, n: int) -> None:
        """Queue ``n`` copies of ``fault``."""
        if n < 0:
            raise ValueError("n must be >= 0")
        for _ in range(n):
            self._faults.append(Fault(fault.kind, fault.status, fault.retry_after, fault.delay, fault.method))

    def pop(self, method: str) -> Fault | None:
        """Remove and return the first fault that applies to ``method``, or ``None``."""
        for fault in self._faults:
            if fault.method is None or fault.method.lower() == method.lower():
                self._faults.remove(fault)
                return fault
        return None

    def clear(self) -> None:
        """Forget every queued fault."""
        self._faults.clear()

    def __len__(self) -> int:
        return len(self._faults)


class FaultControls:
    """The fault-injection controls every stand-in offers; the class using it sets ``self.faults``."""

    faults: FaultQueue

    def fail_next(self, n: int = 1, status: int = 500, method: str | None = None) -> None:
        """Answer the next ``n`` requests (of ``method``, if given) with HTTP ``status``."""
        self.faults.push(Fault("error", status=status, method=method), n)

    def rate_limit_next(self, n: int = 1, retry_after: float = 1, method: str | None = None) -> None:
        """Answer the next ``n`` requests with the platform's 429, asking for ``retry_after`` seconds."""
        self.faults.push(Fault("ratelimit", retry_after=retry_after, method=method), n)

    def delay_next(self, n: int = 1, seconds: float = 1.0, method: str | None = None) -> None:
        """Hold the next ``n`` requests for ``seconds`` before answering (to exercise client timeouts)."""
        self.faults.push(Fault("delay", delay=seconds, method=method), n)


class TokenBucket:
    """A token bucket: ``burst`` tokens at most, refilled at ``rate`` tokens per second."""

    def __init__(self, rate: float, burst: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._last = time.monotonic()

    def take(self, now: float | None = None) -> float:
        """Take one token; return 0.0 on success or the seconds to wait until a token is available."""
        now = time.monotonic() if now is None else now
        self._tokens = min(self.burst, self._tokens + max(0.0, now - self._last) * self.rate)
        self._last = max(self._last, now)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self.rate


def peak_rate(times: Iterable[float], window: float = 1.0) -> int:
    """Return the largest number of timestamps that fall in any half-open interval of ``window`` seconds."""
    ordered = sorted(times)
    best = 0
    start = 0
    for end, t in enumerate(ordered):
        while ordered[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best


@dataclass
class RequestRecord:
    """One request a stand-in received: when, which method, its parameters and what it answered."""

    method: str
    params: dict[str, Any]
    at: float
    status: int
    error: str | None
    key: str | None = None


async def start_site(app: web.Application) -> tuple[web.AppRunner, int]:
    """Start ``app`` on 127.0.0.1 with an ephemeral port; return the runner and the port."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None
    sockets = getattr(server, "sockets", None)
    assert sockets
    port = int(sockets[0].getsockname()[1])
    return runner, port


async def read_params(request: web.Request) -> dict[str, Any]:
    """Merge query parameters with a JSON, form-encoded or multipart body into one dict.

    Raises ``ValueError`` if a JSON body does not parse to an object.
    """
    params: dict[str, Any] = dict(request.query)
    if request.can_read_body:
        ctype = request.content_type
        if ctype == "application/json":
            raw = await request.read()
            if raw.strip():
                body = json.loads(raw)
                if not isinstance(body, dict):
                    raise ValueError("JSON body must be an object")
                params.update(body)
        elif ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.post()
            for key, value in form.items():
                params[key] = value if isinstance(value, str) else getattr(value, "file", value)
        else:
            await request.read()
    return params


# ---------------------------------------------------------------------------------------------------------
# Slack
# ---------------------------------------------------------------------------------------------------------

MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_SECTION_FIELDS = 10
MAX_FIELD_TEXT = 2000
MAX_HEADER_TEXT = 150
MAX_MESSAGE_TEXT = 40_000
MAX_CONTEXT_ELEMENTS = 10
MAX_ACTIONS_ELEMENTS = 25
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2000
MAX_PLACEHOLDER = 150
MAX_OPTIONS = 100
MAX_OPTION_TEXT = 75
MAX_OPTION_VALUE = 150
MAX_ACTION_ID = 255
MAX_BLOCK_ID = 255
MAX_FILE_BYTES = 1024**3
MAX_ALT_TXT = 1000
KNOWN_BLOCK_TYPES = frozenset(
    {"section", "header", "divider", "context", "actions", "image", "rich_text", "input", "file", "video",
     "markdown"}
)


@dataclass
class SlackMessage:
    """A message the stand-in holds, as it stands now, with every earlier version in ``history``."""

    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]] | None
    attachments: list[dict[str, Any]] | None = None
    thread_ts: str | None = None
    user: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    edits: int = 0
    files: list[SlackFile] = field(default_factory=list)
    metadata: dict[str, Any] | None = None
    """``{"event_type", "event_payload"}`` as posted (``conversations.history`` shows it on request)."""

    def as_api(self, bot_user: str, bot_id: str, team: str, *, metadata: bool = False) -> dict[str, Any]:
        """Return the message object the way Slack's API shows it (``metadata`` only when asked for)."""
        message: dict[str, Any] = {
            "type": "message",
            "user": bot_user,
            "bot_id": bot_id,
            "team": team,
            "text": self.text,
            "ts": self.ts,
        }
        if self.blocks is not None:
            message["blocks"] = self.blocks
        if self.attachments is not None:
            message["attachments"] = self.attachments
        if self.thread_ts is not None:
            message["thread_ts"] = self.thread_ts
        if self.edits:
            message["edited"] = {"user": bot_user, "ts": self.history[-1]["edited_ts"]}
        if self.files:
            message["files"] = [f.as_api() for f in self.files]
            message["upload"] = True
        if metadata and self.metadata is not None:
            message["metadata"] = dict(self.metadata)
        return message


@dataclass
class SlackFile:
    """A file announced with ``files.getUploadURLExternal``; ``content`` once uploaded, shared once completed."""

    id: str
    filename: str
    length: int
    alt_txt: str | None
    ticket: str
    content: bytes | None = None
    title: str | None = None
    completed: bool = False
    channel: str | None = None
    thread_ts: str | None = None

    def as_api(self) -> dict[str, Any]:
        """The file object as Slack's API shows it (the fields this project reads)."""
        mimetype = "image/png" if (self.content or b"").startswith(b"\x89PNG\r\n\x1a\n") else "application/octet-stream"
        return {"id": self.id, "name": self.filename, "title": self.title or self.filename, "mimetype": mimetype,
                "filetype": "png" if mimetype == "image/png" else "binary", "size": len(self.content or b""),
                "alt_txt": self.alt_txt, "is_external": False}


class SlackApiRefusal(Exception):
    """Raised inside the stand-in to answer ``{"ok": false, "error": ...}`` with HTTP 200."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


class SlackStandin(FaultControls):
    """A loopback Slack Web API for tests; use it as an async context manager or call start/close.

    Args:
        token: the one valid bot token (``Authorization: Bearer <token>``).
        channels: channel IDs that exist, or a mapping of ID to channel name; a message may name a
            channel by ID, by ``name`` or by ``#name``; it is stored under the ID.
        team: team name returned by ``auth.test``.
    """

    bot_user = "U0STANDIN"
    bot_id = "B0STANDIN"
    team_id = "T0STANDIN"

    def __init__(
        self,
        token: str = "xoxb-test-token",
        channels: Sequence[str] | Mapping[str, str] = ("C0ALERTS", "C0OPS"),
        team: str = "standin",
    ) -> None:
        self.token = token
        self.team = team
        if isinstance(channels, Mapping):
            self.channel_names: dict[str, str] = dict(channels)
        else:
            self.channel_names = {cid: cid.lower() for cid in channels}
        self.messages: dict[str, list[SlackMessage]] = defaultdict(list)
        """Messages per channel ID, in the order they were posted."""
        self.ephemeral: dict[str, list[dict[str, Any]]] = defaultdict(list)
        """Ephemeral messages per channel ID (``chat.postEphemeral`` parameters plus ``message_ts``)."""
        self.requests: list[RequestRecord] = []
        """Every request, in arrival order."""
        self.request_times: dict[str, list[float]] = defaultdict(list)
        """``time.monotonic()`` of every chat request per channel ID, accepted or not."""
        self.accepted_times: dict[str, list[float]] = defaultdict(list)
        """``time.monotonic()`` of every chat request per channel ID that Slack accepted."""
        self.faults = FaultQueue()
        self.uploads: dict[str, SlackFile] = {}
        """Every announced file by id, uploaded or not."""
        self.files: list[SlackFile] = []
        """Completed (shared) files, in completion order."""
        self.max_file_bytes = MAX_FILE_BYTES
        self._revoked = False
        self._rate: tuple[float, float] | None = None
        self._buckets: dict[str, TokenBucket] = {}
        self._last_ts_us = 0
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- lifecycle -------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The ``base_url`` to give ``AsyncWebClient`` (ends with ``/api/``)."""
        if not self.port:
            raise RuntimeError("SlackStandin is not started")
        return f"http://127.0.0.1:{self.port}/api/"

    async def start(self) -> SlackStandin:
        """Bind to an ephemeral loopback port and start answering."""
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._handle)
        app.router.add_post("/upload/v1/{ticket}", self._upload)
        self._runner, self.port = await start_site(app)
        return self

    async def close(self) -> None:
        """Stop answering and release the port; delayed requests are woken first."""
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SlackStandin:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- controls for tests (and fail_next / rate_limit_next / delay_next of FaultControls) -------------

    def revoke_token(self) -> None:
        """From now on the configured token answers ``token_revoked``."""
        self._revoked = True

    def restore_token(self) -> None:
        """Undo :meth:`revoke_token`."""
        self._revoked = False

    def enforce_rate(self, per_second: float | None = 1.0, burst: float = 1.0) -> None:
        """Enforce a per-channel limit on chat methods (token bucket); over it answer 429.

        ``per_second=None`` switches enforcement off again.
        """
        self._rate = None if per_second is None else (per_second, burst)
        self._buckets.clear()

    def peak_rate(self, channel: str, window: float = 1.0, accepted_only: bool = True) -> int:
        """Return the most chat requests to ``channel`` seen in any ``window`` seconds."""
        cid = self.resolve_channel(channel) or channel
        times = self.accepted_times[cid] if accepted_only else self.request_times[cid]
        return peak_rate(times, window)

    def resolve_channel(self, channel: str) -> str | None:
        """Return the channel ID for an ID, ``name`` or ``#name``, or ``None`` if it does not exist."""
        if channel in self.channel_names:
            return channel
        name = channel.removeprefix("#")
        for cid, cname in self.channel_names.items():
            if cname == name:
                return cid
        return None

    def add_channel(self, channel_id: str, name: str | None = None) -> None:
        """Make a channel exist."""
        self.channel_names[channel_id] = name or channel_id.lower()

    def all_messages(self) -> list[SlackMessage]:
        """Every stored message across channels, in posting order."""
        return sorted((m for ms in self.messages.values() for m in ms), key=lambda m: float(m.ts))

    # -- request handling ------------------------------------------------------------------------------

    def _next_ts(self) -> str:
        now_us = time.time_ns() // 1000
        self._last_ts_us = max(now_us, self._last_ts_us + 1)
        return f"{self._last_ts_us // 1_000_000}.{self._last_ts_us % 1_000_000:06d}"

    @staticmethod
    def _json(body: dict[str, Any], status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
        return web.json_response(body, status=status, headers=headers)

    def _record(self, method: str, params: dict[str, Any], status: int, error: str | None, key: str | None,
                now: float) -> None:
        self.requests.append(RequestRecord(method, params, now, status, error, key))

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        now = time.monotonic()
        try:
            params = await read_params(request)
        except ValueError:
            self._record(method, {}, 200, "invalid_json", None, now)
            return self._json({"ok": False, "error": "invalid_json"})

        channel_key: str | None = None
        raw_channel = params.get("channel")
        if method == "files.completeUploadExternal" and isinstance(params.get("channel_id"), str):
            raw_channel = params["channel_id"]
        if (method.startswith("chat.") or method == "files.completeUploadExternal") and isinstance(raw_channel, str):
            channel_key = self.resolve_channel(raw_channel) or raw_channel
            self.request_times[channel_key].append(now)

        fault = self.faults.pop(method)
        if fault is not None:
            if fault.kind == "delay":
                # Sleep unless the stand-in is closing, then answer normally.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), timeout=fault.delay)
            elif fault.kind == "ratelimit":
                self._record(method, params, 429, "ratelimited", channel_key, now)
                return self._json({"ok": False, "error": "ratelimited"}, status=429,
                                  headers={"Retry-After": str(fault.retry_after)})
            else:
                error = {503: "service_unavailable", 500: "fatal_error"}.get(fault.status, "internal_error")
                self._record(method, params, fault.status, error, channel_key, now)
                return self._json({"ok": False, "error": error}, status=fault.status)

        auth_error = self._check_auth(request, params)
        if auth_error is not None:
            self._record(method, params, 200, auth_error, channel_key, now)
            return self._json({"ok": False, "error": auth_error})

        if self._rate is not None and channel_key is not None:
            bucket = self._buckets.get(channel_key)
            if bucket is None:
                bucket = self._buckets[channel_key] = TokenBucket(*self._rate)
            wait = bucket.take(now)
            if wait > 0:
                self._record(method, params, 429, "ratelimited", channel_key, now)
                return self._json({"ok": False, "error": "ratelimited"}, status=429,
                                  headers={"Retry-After": str(max(1, math.ceil(wait)))})

        handler = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "chat.postEphemeral": self._post_ephemeral,
            "conversations.history": self._history,
            "files.getUploadURLExternal": self._get_upload_url,
            "files.completeUploadExternal": self._complete_upload,
        }.get(method)
        try:
            if handler is None:
                raise SlackApiRefusal("unknown_method")
            body = handler(params)
        except SlackApiRefusal as refusal:
            self._record(method, params, 200, refusal.error, channel_key, now)
            return self._json({"ok": False, "error": refusal.error, **refusal.extra})
        self._record(method, params, 200, None, channel_key, now)
        if channel_key is not None:
            self.accepted_times[channel_key].append(now)
        return self._json({"ok": True, **body})

    def _check_auth(self, request: web.Request, params: dict[str, Any]) -> str | None:
        header = request.headers.get("Authorization", "")
        token: str | None = None
        if header.startswith("Bearer "):
            token = header.removeprefix("Bearer ").strip()
        elif isinstance(params.get("token"), str):
            token = params["token"]
        params.pop("token", None)
        if not token:
            return "not_authed"
        if token != self.token:
            return "invalid_auth"
        if self._revoked:
            return "token_revoked"
        return None

    def _auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": f"https://{self.team}.slack.com/",
            "team": self.team,
            "user": "alert-router",
            "team_id": self.team_id,
            "user_id": self.bot_user,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _channel(self, params: dict[str, Any]) -> str:
        channel = params.get("channel")
        if not isinstance(channel, str) or not channel:
            raise SlackApiRefusal("channel_not_found")
        cid = self.resolve_channel(channel)
        if cid is None:
            raise SlackApiRefusal("channel_not_found")
        return cid

    @staticmethod
    def _json_arg(params: dict[str, Any], name: str, format_error: str) -> Any:
        """A JSON argument as sent (JSON body) or encoded in a string (form); ``format_error`` if it does not parse."""
        value = params.get(name)
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError as exc:
                raise SlackApiRefusal(format_error) from exc
        return value

    @classmethod
    def _json_list(cls, params: dict[str, Any], name: str, format_error: str) -> list[dict[str, Any]] | None:
        value = cls._json_arg(params, name, format_error)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise SlackApiRefusal(format_error)
        return value

    def _content(self, params: dict[str, Any]) -> tuple[str | None, list[dict[str, Any]] | None,
                                                        list[dict[str, Any]] | None]:
        text = params.get("text")
        if text is not None and not isinstance(text, str):
            text = str(text)
        blocks = self._json_list(params, "blocks", "invalid_blocks_format")
        attachments = self._json_list(params, "attachments", "invalid_attachments")
        if blocks is not None:
            errors = validate_blocks(blocks)
            if errors:
                raise SlackApiRefusal("invalid_blocks", errors=errors,
                                      response_metadata={"messages": [f"[ERROR] {e}" for e in errors]})
        if text is not None and len(text) > MAX_MESSAGE_TEXT:
            raise SlackApiRefusal("msg_too_long")
        return text, blocks, attachments

    @classmethod
    def _metadata(cls, params: dict[str, Any]) -> dict[str, Any] | None:
        """The ``metadata`` argument as Slack checks it: a JSON object with a string ``event_type`` and an
        object ``event_payload`` (``invalid_metadata_format`` / ``invalid_metadata_schema`` otherwise)."""
        value = cls._json_arg(params, "metadata", "invalid_metadata_format")
        if value is None:
            return None
        if not isinstance(value, dict):
            raise SlackApiRefusal("invalid_metadata_format")
        event_type, payload = value.get("event_type"), value.get("event_payload")
        if not isinstance(event_type, str) or not re.fullmatch(r"[A-Za-z0-9_]{1,255}", event_type) \
                or not isinstance(payload, dict):
            raise SlackApiRefusal("invalid_metadata_schema")
        return {"event_type": event_type, "event_payload": payload}

    def _history(self, params: dict[str, Any]) -> dict[str, Any]:
        """``conversations.history``: the channel's messages (not thread replies), newest first, between
        ``oldest`` and ``latest`` (exclusive unless ``inclusive``), ``limit`` per page (default 100, at most
        999) with a ``cursor``; ``metadata`` only with ``include_all_metadata``."""
        cid = self._channel(params)

        def flag(name: str) -> bool:
            return str(params.get(name, "")).lower() in ("1", "true")

        try:
            oldest = float(params.get("oldest") or 0)
            latest = float(params["latest"]) if params.get("latest") else math.inf
            limit = min(999, max(1, int(params.get("limit") or 100)))
            offset = int(str(params.get("cursor") or "0").removeprefix("next_ts:") or 0)
        except ValueError as exc:
            raise SlackApiRefusal("invalid_arguments") from exc
        inclusive = flag("inclusive")
        found = [
            m for m in reversed(self.messages[cid])
            if (m.thread_ts is None or m.thread_ts == m.ts)
            and (oldest <= float(m.ts) if inclusive else oldest < float(m.ts))
            and (float(m.ts) <= latest if inclusive else float(m.ts) < latest)
        ]
        page = found[offset: offset + limit]
        more = offset + limit < len(found)
        body: dict[str, Any] = {
            "messages": [m.as_api(self.bot_user, self.bot_id, self.team_id, metadata=flag("include_all_metadata"))
                         for m in page],
            "has_more": more,
            "pin_count": 0,
        }
        if more:
            body["response_metadata"] = {"next_cursor": f"next_ts:{offset + limit}"}
        return body

    def _post_message(self, params: dict[str, Any]) -> dict[str, Any]:
        cid = self._channel(params)
        metadata = self._metadata(params)
        text, blocks, attachments = self._content(params)
        if not text and not blocks and not attachments:
            raise SlackApiRefusal("no_text")
        thread_ts = params.get("thread_ts")
        if thread_ts is not None:
            thread_ts = str(thread_ts)
            if not any(m.ts == thread_ts for m in self.messages[cid]):
                raise SlackApiRefusal("thread_not_found")
        message = SlackMessage(
            channel=cid, ts=self._next_ts(), text=text or "", blocks=blocks, attachments=attachments,
            thread_ts=thread_ts, user=self.bot_user, params=dict(params), metadata=metadata,
        )
        self.messages[cid].append(message)
        return {"channel": cid, "ts": message.ts,
                "message": message.as_api(self.bot_user, self.bot_id, self.team_id)}

    def _update(self, params: dict[str, Any]) -> dict[str, Any]:
        cid = self._channel(params)
        ts = params.get("ts")
        if ts is None:
            raise SlackApiRefusal("message_not_found")
        message = next((m for m in self.messages[cid] if m.ts == str(ts)), None)
        if message is None:
            raise SlackApiRefusal("message_not_found")
        metadata = self._metadata(params)
        text, blocks, attachments = self._content(params)
        if text is None and blocks is None and attachments is None:
            raise SlackApiRefusal("no_text")
        if metadata is not None:
            message.metadata = metadata
        message.history.append({"text": message.text, "blocks": message.blocks,
                                "attachments": message.attachments, "edited_ts": self._next_ts()})
        if text is not None:
            message.text = text
        if blocks is not None:
            message.blocks = blocks or None
        if attachments is not None:
            message.attachments = attachments or None
        message.edits += 1
        message.params = dict(params)
        return {"channel": cid, "ts": message.ts, "text": message.text,
                "message": message.as_api(self.bot_user, self.bot_id, self.team_id)}

    def _post_ephemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        cid = self._channel(params)
        if not params.get("user"):
            raise SlackApiRefusal("user_not_in_channel")
        text, blocks, attachments = self._content(params)
        if not text and not blocks and not attachments:
            raise SlackApiRefusal("no_text")
        ts = self._next_ts()
        self.ephemeral[cid].append({**params, "text": text, "blocks": blocks, "message_ts": ts})
        return {"message_ts": ts}

    # -- file uploads (files_upload_v2) ----------------------------------------------------------------

    def _get_upload_url(self, params: dict[str, Any]) -> dict[str, Any]:
        filename = params.get("filename")
        raw_length = params.get("length")
        if not isinstance(filename, str) or not filename or raw_length in (None, ""):
            raise SlackApiRefusal("invalid_arguments")
        try:
            length = int(str(raw_length))
        except ValueError:
            raise SlackApiRefusal("invalid_arguments") from None
        if length <= 0:
            raise SlackApiRefusal("missing_argument")
        alt = params.get("alt_txt")
        if isinstance(alt, str) and len(alt) > MAX_ALT_TXT:
            raise SlackApiRefusal("alt_txt_too_large")
        if length > self.max_file_bytes:
            raise SlackApiRefusal("file_upload_size_restricted")
        file_id = f"F{len(self.uploads) + 1:010d}"
        ticket = f"{file_id}-{time.time_ns():x}"
        self.uploads[file_id] = SlackFile(file_id, filename, length, alt if isinstance(alt, str) else None, ticket)
        return {"upload_url": f"http://127.0.0.1:{self.port}/upload/v1/{ticket}", "file_id": file_id}

    async def _upload(self, request: web.Request) -> web.Response:
        ticket = request.match_info["ticket"]
        file = next((f for f in self.uploads.values() if f.ticket == ticket), None)
        if file is None:
            return web.Response(status=404, text="Not Found")
        if request.content_type == "multipart/form-data":
            form = await request.post()
            part = form.get("file") or form.get("filename")
            data = part.file.read() if hasattr(part, "file") else str(part or "").encode()
        else:
            data = await request.read()
        self.requests.append(RequestRecord("upload", {"ticket": ticket, "bytes": len(data)}, time.monotonic(),
                                           200, None, None))
        if len(data) > file.length:
            return web.Response(status=413, text="Request Entity Too Large")
        if len(data) < file.length:
            return web.Response(status=400, text=f"length mismatch: expected {file.length}, got {len(data)}")
        file.content = data
        return web.Response(text=f"OK - {len(data)}")

    def _complete_upload(self, params: dict[str, Any]) -> dict[str, Any]:
        items = self._json_list(params, "files", "invalid_arguments")
        if not items or not all(isinstance(i.get("id"), str) for i in items):
            raise SlackApiRefusal("invalid_arguments")
        found = [self.uploads.get(i["id"]) for i in items]
        if any(f is None or f.content is None or f.completed for f in found):
            raise SlackApiRefusal("file_not_found")
        files = [f for f in found if f is not None]
        channel = params.get("channel_id") or None
        thread_ts = params.get("thread_ts") or None
        cid = None
        if channel is not None:
            cid = self.resolve_channel(str(channel))
            if cid is None:
                raise SlackApiRefusal("channel_not_found")
        if thread_ts is not None and (cid is None or not any(m.ts == str(thread_ts) for m in self.messages[cid])):
            raise SlackApiRefusal("invalid_arguments")
        for f, item in zip(files, items, strict=True):
            f.title = str(item.get("title") or f.filename)
            f.completed = True
            f.channel, f.thread_ts = cid, None if thread_ts is None else str(thread_ts)
            self.files.append(f)
        if cid is not None:
            comment = params.get("initial_comment")
            self.messages[cid].append(SlackMessage(
                channel=cid, ts=self._next_ts(), text=str(comment or ""), blocks=None, thread_ts=f.thread_ts,
                user=self.bot_user, params=dict(params), files=files,
            ))
        return {"files": [{"id": f.id, "title": f.title} for f in files]}


def _text_object_errors(obj: Any, pointer: str, max_len: int, plain_only: bool = False) -> list[str]:
    if not isinstance(obj, dict):
        return [f"must be a text object [json-pointer:{pointer}]"]
    kinds = ("plain_text",) if plain_only else ("plain_text", "mrkdwn")
    errors: list[str] = []
    if obj.get("type") not in kinds:
        errors.append(f"must be one of {', '.join(kinds)} [json-pointer:{pointer}/type]")
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        errors.append(f"must be more than 0 characters [json-pointer:{pointer}/text]")
    elif len(text) > max_len:
        errors.append(f"must be less than {max_len + 1} characters [json-pointer:{pointer}/text]")
    return errors


def validate_blocks(blocks: list[dict[str, Any]]) -> list[str]:
    """Validate Block Kit blocks the way ``chat.postMessage`` does; return Slack-style error strings."""
    if len(blocks) > MAX_BLOCKS:
        return [f"must provide an array with no more than {MAX_BLOCKS} items [json-pointer:/blocks]"]
    errors: list[str] = []
    block_ids: set[str] = set()
    for i, block in enumerate(blocks):
        ptr = f"/blocks/{i}"
        kind = block.get("type")
        if kind not in KNOWN_BLOCK_TYPES:
            errors.append(f"unsupported type: {kind} [json-pointer:{ptr}/type]")
            continue
        block_id = block.get("block_id")
        if block_id is not None:
            if not isinstance(block_id, str) or len(block_id) > MAX_BLOCK_ID:
                errors.append(f"must be less than {MAX_BLOCK_ID + 1} characters [json-pointer:{ptr}/block_id]")
            elif block_id in block_ids:
                errors.append(f"duplicate block_id [json-pointer:{ptr}/block_id]")
            else:
                block_ids.add(block_id)
        if kind == "section":
            if "text" not in block and "fields" not in block:
                errors.append(f"must provide either text or fields [json-pointer:{ptr}]")
            if "text" in block:
                errors += _text_object_errors(block["text"], f"{ptr}/text", MAX_SECTION_TEXT)
            if "fields" in block:
                fields = block["fields"]
                if not isinstance(fields, list) or len(fields) > MAX_SECTION_FIELDS:
                    errors.append(
                        f"must provide an array with no more than {MAX_SECTION_FIELDS} items "
                        f"[json-pointer:{ptr}/fields]")
                else:
                    for j, f in enumerate(fields):
                        errors += _text_object_errors(f, f"{ptr}/fields/{j}", MAX_FIELD_TEXT)
        elif kind == "header":
            errors += _text_object_errors(block.get("text"), f"{ptr}/text", MAX_HEADER_TEXT, plain_only=True)
        elif kind == "context":
            elements = block.get("elements")
            if not isinstance(elements, list) or not elements or len(elements) > MAX_CONTEXT_ELEMENTS:
                errors.append(f"must provide an array of 1 to {MAX_CONTEXT_ELEMENTS} items "
                              f"[json-pointer:{ptr}/elements]")
            else:
                for j, el in enumerate(elements):
                    if isinstance(el, dict) and el.get("type") in ("plain_text", "mrkdwn"):
                        errors += _text_object_errors(el, f"{ptr}/elements/{j}", MAX_SECTION_TEXT)
        elif kind == "actions":
            elements = block.get("elements")
            if not isinstance(elements, list) or not elements or len(elements) > MAX_ACTIONS_ELEMENTS:
                errors.append(f"must provide an array of 1 to {MAX_ACTIONS_ELEMENTS} items "
                              f"[json-pointer:{ptr}/elements]")
            else:
                for j, el in enumerate(elements):
                    errors += _element_errors(el, f"{ptr}/elements/{j}")
    return errors


def _element_errors(el: Any, ptr: str) -> list[str]:
    if not isinstance(el, dict) or not isinstance(el.get("type"), str):
        return [f"must be an element object [json-pointer:{ptr}]"]
    errors: list[str] = []
    action_id = el.get("action_id")
    if action_id is not None and (not isinstance(action_id, str) or len(action_id) > MAX_ACTION_ID):
        errors.append(f"must be less than {MAX_ACTION_ID + 1} characters [json-pointer:{ptr}/action_id]")
    if el["type"] == "static_select":
        if el.get("placeholder") is not None:
            errors += _text_object_errors(el["placeholder"], f"{ptr}/placeholder", MAX_PLACEHOLDER, plain_only=True)
        options = el.get("options")
        if not isinstance(options, list) or not 1 <= len(options) <= MAX_OPTIONS:
            errors.append(f"must provide an array of 1 to {MAX_OPTIONS} items [json-pointer:{ptr}/options]")
        else:
            for k, option in enumerate(options):
                if not isinstance(option, dict):
                    errors.append(f"must be an option object [json-pointer:{ptr}/options/{k}]")
                    continue
                errors += _text_object_errors(option.get("text"), f"{ptr}/options/{k}/text", MAX_OPTION_TEXT,
                                              plain_only=True)
                value = option.get("value")
                if not isinstance(value, str) or len(value) > MAX_OPTION_VALUE:
                    errors.append(f"must be less than {MAX_OPTION_VALUE + 1} characters "
                                  f"[json-pointer:{ptr}/options/{k}/value]")
    if el["type"] == "button":
        errors += _text_object_errors(el.get("text"), f"{ptr}/text", MAX_BUTTON_TEXT, plain_only=True)
        value = el.get("value")
        if value is not None and (not isinstance(value, str) or len(value) > MAX_BUTTON_VALUE):
            errors.append(f"must be less than {MAX_BUTTON_VALUE + 1} characters [json-pointer:{ptr}/value]")
    return errors
