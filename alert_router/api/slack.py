"""``POST /slack/commands`` (the slash command) and ``POST /slack/interactions`` (button clicks).

Every request is verified before anything in it is parsed: the v0 signature (HMAC-SHA256 of
``v0:<timestamp>:<raw body>`` with the app's signing secret, over the bytes as they arrived, compared in
constant time) and the timestamp, which must be within 5 minutes of now. Failures get 401 and execute
nothing, whatever the headers and body hold (text or not). A verified request is parsed and checked
(400 when malformed), and then, just before anything runs, recorded in the store by its signature:
a request seen before is refused with 401 (Slack never re-sends slash commands or clicks), on every
replica and after a restart, for as long as its timestamp could pass (:data:`REMEMBER`).

Slack wants an answer within 3 seconds. A slash command is answered inline when it finishes within
:data:`INLINE_BUDGET`; otherwise the answer is "working on it" and the result follows through the
request's ``response_url``. Button clicks are acknowledged at once (an empty 200) and their result
goes to ``response_url``; an ack also edits the alert's message through the normal delivery path
(the message shows "acked by …"). ``response_url`` must start with one of
``chat.slack.response_url_prefixes`` (``https://hooks.slack.com/`` by default).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

import aiohttp
import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError

from alert_router.api.body import read_request
from alert_router.api.errors import json_error
from alert_router.api.jsonbody import BadJSON, parse_json
from alert_router.appkeys import RUNTIME
from alert_router.chat.authz import Identity
from alert_router.chat.commands import CommandService, Reply
from alert_router.chat.metrics import ChatMetrics
from alert_router.chat.settings import SlackChatConfig
from alert_router.chat.tasks import Background
from alert_router.configbase import secret

FORM_TYPE = "application/x-www-form-urlencoded"
"""How Slack sends slash commands and interactions (signed; nothing else is taken)."""

log = structlog.get_logger("alert_router.slack")

MAX_AGE = 300
"""Seconds a request timestamp may be off (Slack's replay window)."""
REMEMBER = 2 * MAX_AGE
"""How long after its timestamp a request's signature is remembered: its whole window, with room for replicas
whose clocks disagree by up to :data:`MAX_AGE`."""
INLINE_BUDGET = 2.5
"""How long a slash command may run before the answer moves to ``response_url``."""
MAX_TEXT = 3900


def slack_escape(text: str) -> str:
    """Escape ``&``, ``<`` and ``>`` as Slack's mrkdwn requires."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_unescape(text: str) -> str:
    """Undo the escaping Slack applies to slash-command text."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def slack_signature(signing_secret: str, timestamp: str, body: bytes) -> str:
    """Slack's v0 request signature: ``v0=`` + hex HMAC-SHA256 of ``v0:<timestamp>:<body>`` (the raw bytes)."""
    base = b"v0:" + timestamp.encode("ascii") + b":" + body
    return "v0=" + hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()


class _Id(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str | None = None


class _User(_Id):
    username: str | None = None
    name: str | None = None


class _Container(BaseModel):
    model_config = ConfigDict(extra="ignore")
    channel_id: str | None = None


class _Action(BaseModel):
    model_config = ConfigDict(extra="ignore")
    action_id: str | None = None
    value: str | None = None


class Interaction(BaseModel):
    """The fields of an interaction payload (a button click) that alert-router reads, with their types checked."""

    model_config = ConfigDict(extra="ignore")
    type: str | None = None
    team: _Id | None = None
    user: _User | None = None
    channel: _Id | None = None
    container: _Container | None = None
    response_url: str | None = None
    actions: list[_Action] | None = None


class SlackBridge:
    """Verifies Slack requests, runs them through the :class:`CommandService` and answers."""

    def __init__(
        self,
        cfg: SlackChatConfig,
        commands: CommandService,
        *,
        metrics: ChatMetrics | None = None,
        background: Background | None = None,
    ) -> None:
        self.cfg = cfg
        self.commands = commands
        self.metrics = metrics or commands.metrics
        self.background = background or Background()
        self._signing_secret = secret(cfg.signing_secret)
        self._session: aiohttp.ClientSession | None = None

    # -- verification -------------------------------------------------------------------------------

    def verify(self, body: bytes, headers: Mapping[str, str]) -> str | None:
        """Return why the request is refused, or ``None`` when its signature and timestamp are good."""
        timestamp = headers.get("X-Slack-Request-Timestamp", "").strip()
        signature = headers.get("X-Slack-Signature", "").strip()
        if not timestamp or not signature:
            return "missing signature headers"
        if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
            return "bad timestamp"
        if abs(self.commands.clock.now() - int(timestamp)) > MAX_AGE:
            return "stale timestamp"
        expected = slack_signature(self._signing_secret, timestamp, body).encode()
        # header values arrive as UTF-8 decoded with surrogateescape: compare the bytes that were sent
        if not hmac.compare_digest(expected, signature.encode("utf-8", "surrogateescape")):
            return "bad signature"
        return None

    async def first_time(self, headers: Mapping[str, str]) -> bool:
        """Record a verified request by its signature; ``False`` when it was seen before (a replay).

        Raises :class:`~alert_router.errors.StoreUnavailable` when the store cannot say.
        """
        now = self.commands.clock.now()
        ts = int(headers["X-Slack-Request-Timestamp"].strip())
        signature = headers["X-Slack-Signature"].strip()
        return await self.commands.store.remember_request("slack", signature, now, ts + REMEMBER)

    # -- replies ------------------------------------------------------------------------------------

    @staticmethod
    def message(reply: Reply, *, replace_original: bool | None = None) -> dict[str, Any]:
        """The JSON of a reply (``in_channel`` when public, else only for the sender)."""
        text = reply.text if len(reply.text) <= MAX_TEXT else reply.text[:MAX_TEXT] + "…"
        body: dict[str, Any] = {
            "response_type": "in_channel" if reply.public else "ephemeral",
            "text": slack_escape(text),
        }
        if replace_original is not None:
            body["replace_original"] = replace_original
        return body

    def response_url_allowed(self, url: str) -> bool:
        """Whether ``url`` starts with one of the configured prefixes."""
        return bool(url) and any(url.startswith(p) for p in self.cfg.response_url_prefixes)

    async def respond(self, url: str, reply: Reply) -> bool:
        """POST ``reply`` to a ``response_url`` (one retry on a connection error or 5xx); return success."""
        if not self.response_url_allowed(url):
            log.warning("slack response_url refused (not under chat.slack.response_url_prefixes)", url=url[:100])
            return False
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.cfg.timeout))
        body = self.message(reply, replace_original=False)
        for attempt in (1, 2):
            try:
                async with self._session.post(url, json=body) as r:
                    await r.read()
                    if r.status < 500:
                        if r.status >= 400:
                            log.warning("slack response_url refused the reply", status=r.status)
                        return r.status < 400
            except (TimeoutError, aiohttp.ClientError) as exc:
                log.warning("slack response_url post failed", error=str(exc), attempt=attempt)
            if attempt == 1:
                await asyncio.sleep(0.5)
        return False

    async def _run_and_respond(self, identity: Identity, value: str, url: str) -> Reply:
        reply = await self.commands.execute_button(identity, value)
        await self.respond(url, reply)
        return reply

    async def _respond_later(self, task: asyncio.Task[Reply], url: str) -> None:
        reply = await task
        await self.respond(url, reply)

    # -- endpoints ----------------------------------------------------------------------------------

    def _refuse(self, request: web.Request, reason: str) -> web.Response:
        self.metrics.rejected_requests.labels("slack", reason.replace(" ", "_")).inc()
        log.warning("slack request refused", reason=reason)
        return json_error(request, 401, reason)

    async def _replayed(self, request: web.Request) -> web.Response | None:
        """``None`` the first time this signed request is seen, else the 401 that refuses the replay."""
        if await self.first_time(request.headers):
            return None
        return self._refuse(request, "replayed request")

    async def handle_command(self, request: web.Request) -> web.Response:
        """A slash command: verify, run (inline when quick), answer."""
        body = await read_request(request, "slack", FORM_TYPE)
        if isinstance(body, web.Response):
            return body
        problem = self.verify(body, request.headers)
        if problem:
            return self._refuse(request, problem)
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}
        if self.cfg.team_id and form.get("team_id") != self.cfg.team_id:
            return json_error(request, 403, "wrong workspace")
        if form.get("command") != self.cfg.command:
            return web.json_response(self.message(Reply(f"alert-router answers {self.cfg.command}.", ok=False)))
        identity = Identity("slack", form.get("user_id", ""), form.get("channel_id", ""), form.get("user_name", ""))
        if not identity.user_id:
            return json_error(request, 400, "no user_id")
        refused = await self._replayed(request)
        if refused is not None:
            return refused
        task = self.background.spawn(self.commands.execute_text(identity, slack_unescape(form.get("text", ""))))
        done, _ = await asyncio.wait({task}, timeout=INLINE_BUDGET)
        if done:
            return web.json_response(self.message(task.result()))
        self.background.spawn(self._respond_later(task, form.get("response_url", "")))
        return web.json_response(self.message(Reply("Working on it…")))

    async def handle_interaction(self, request: web.Request) -> web.Response:
        """A button click: verify, acknowledge at once, run in the background and answer via ``response_url``."""
        body = await read_request(request, "slack", FORM_TYPE)
        if isinstance(body, web.Response):
            return body
        problem = self.verify(body, request.headers)
        if problem:
            return self._refuse(request, problem)
        form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        try:
            payload = Interaction.model_validate(parse_json(form.get("payload", [""])[0]))
        except BadJSON as exc:
            return json_error(request, 400, f"payload: {exc}")
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in err["loc"])
            return json_error(request, 400, f"payload{'.' + where if where else ''}: {err['msg']}")
        if self.cfg.team_id and (payload.team is None or payload.team.id != self.cfg.team_id):
            return json_error(request, 403, "wrong workspace")
        if payload.type != "block_actions":
            return web.Response(status=200)
        actions = [a for a in payload.actions or [] if (a.action_id or "").startswith("alert_router.")]
        if not actions:
            return web.Response(status=200)
        refused = await self._replayed(request)
        if refused is not None:
            return refused
        user = payload.user or _User()
        channel = (payload.channel.id if payload.channel else None) or (
            payload.container.channel_id if payload.container else None)
        identity = Identity("slack", user.id or "", channel or "", user.username or user.name or "")
        url = payload.response_url or ""
        for action in actions:
            self.background.spawn(self._run_and_respond(identity, action.value or "", url))
        return web.Response(status=200)

    async def aclose(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None


def _bridge(request: web.Request) -> SlackBridge | None:
    bridge = request.app[RUNTIME].services.get("chat.slack")
    return bridge if isinstance(bridge, SlackBridge) else None


async def slack_commands(request: web.Request) -> web.Response:
    """``POST /slack/commands``; 404 while Slack commands are not configured."""
    bridge = _bridge(request)
    if bridge is None:
        return web.json_response({"error": "Slack commands are not configured"}, status=404)
    started = time.perf_counter()
    response = await bridge.handle_command(request)
    log.debug("slack command answered", seconds=round(time.perf_counter() - started, 3), status=response.status)
    return response


async def slack_interactions(request: web.Request) -> web.Response:
    """``POST /slack/interactions``; 404 while Slack commands are not configured."""
    bridge = _bridge(request)
    if bridge is None:
        return web.json_response({"error": "Slack commands are not configured"}, status=404)
    return await bridge.handle_interaction(request)


def add_routes(app: web.Application) -> None:
    """Register the Slack endpoints."""
    app.router.add_post("/slack/commands", slack_commands)
    app.router.add_post("/slack/interactions", slack_interactions)
