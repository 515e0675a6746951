"""``POST /slack/commands`` (the slash command) and ``POST /slack/interactions`` (button clicks).

Every request is verified before anything in it is parsed: the v0 signature (HMAC-SHA256 of
``v0:<timestamp>:<raw body>`` with the app's signing secret, ``slack_sdk.signature.SignatureVerifier``,
constant-time) and the timestamp, which must be within 5 minutes of now (a replayed request is
refused), and a request seen before is refused too (Slack never re-sends slash commands or clicks).
Failures get 401 and execute nothing.

Slack wants an answer within 3 seconds. A slash command is answered inline when it finishes within
:data:`INLINE_BUDGET`; otherwise the answer is "working on it" and the result follows through the
request's ``response_url``. Button clicks are acknowledged at once (an empty 200) and their result
goes to ``response_url``; an ack also edits the alert's message through the normal delivery path
(the message shows "acked by …"). ``response_url`` must start with one of
``chat.slack.response_url_prefixes`` (``https://hooks.slack.com/`` by default).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import aiohttp
import structlog
from aiohttp import web
from slack_sdk.signature import Clock as SlackClock
from slack_sdk.signature import SignatureVerifier

from alert_router.appkeys import RUNTIME
from alert_router.chat.authz import Identity
from alert_router.chat.commands import CommandService, Reply
from alert_router.chat.metrics import ChatMetrics
from alert_router.chat.settings import SlackChatConfig
from alert_router.chat.tasks import Background
from alert_router.configbase import secret

if TYPE_CHECKING:
    from alert_router.chat.clock import Clock

log = structlog.get_logger("alert_router.slack")

MAX_AGE = 300
"""Seconds a request timestamp may be off (Slack's replay window)."""
INLINE_BUDGET = 2.5
"""How long a slash command may run before the answer moves to ``response_url``."""
MAX_TEXT = 3900


def slack_escape(text: str) -> str:
    """Escape ``&``, ``<`` and ``>`` as Slack's mrkdwn requires."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_unescape(text: str) -> str:
    """Undo the escaping Slack applies to slash-command text."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


class _ClockAdapter(SlackClock):
    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def now(self) -> float:
        return self._clock.now()


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
        self.verifier = SignatureVerifier(secret(cfg.signing_secret), clock=_ClockAdapter(commands.clock))
        self._session: aiohttp.ClientSession | None = None
        self._seen: OrderedDict[str, int] = OrderedDict()

    # -- verification -------------------------------------------------------------------------------

    def verify(self, body: bytes, headers: Mapping[str, str]) -> str | None:
        """Return why the request is refused, or ``None`` when its signature and timestamp are good."""
        timestamp = headers.get("X-Slack-Request-Timestamp", "")
        signature = headers.get("X-Slack-Signature", "")
        if not timestamp or not signature:
            return "missing signature headers"
        try:
            ts = int(timestamp)
        except ValueError:
            return "bad timestamp"
        if abs(self.commands.clock.now() - ts) > MAX_AGE:
            return "stale timestamp"
        if not self.verifier.is_valid(body=body, timestamp=timestamp, signature=signature):
            return "bad signature"
        # Slack never re-sends slash commands or button clicks: the same signed request twice is a replay.
        now = self.commands.clock.now()
        while self._seen and next(iter(self._seen.values())) < now - MAX_AGE:
            self._seen.popitem(last=False)
        if signature in self._seen:
            return "replayed request"
        self._seen[signature] = ts
        return None

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

    def _refuse(self, reason: str) -> web.Response:
        self.metrics.rejected_requests.labels("slack", reason.replace(" ", "_")).inc()
        log.warning("slack request refused", reason=reason)
        return web.json_response({"error": reason}, status=401)

    async def handle_command(self, request: web.Request) -> web.Response:
        """A slash command: verify, run (inline when quick), answer."""
        body = await request.read()
        problem = self.verify(body, request.headers)
        if problem:
            return self._refuse(problem)
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}
        if self.cfg.team_id and form.get("team_id") != self.cfg.team_id:
            return web.json_response({"error": "wrong workspace"}, status=403)
        if form.get("command") != self.cfg.command:
            return web.json_response(self.message(Reply(f"alert-router answers {self.cfg.command}.", ok=False)))
        identity = Identity("slack", form.get("user_id", ""), form.get("channel_id", ""), form.get("user_name", ""))
        if not identity.user_id:
            return web.json_response({"error": "no user_id"}, status=400)
        task = self.background.spawn(self.commands.execute_text(identity, slack_unescape(form.get("text", ""))))
        done, _ = await asyncio.wait({task}, timeout=INLINE_BUDGET)
        if done:
            return web.json_response(self.message(task.result()))
        self.background.spawn(self._respond_later(task, form.get("response_url", "")))
        return web.json_response(self.message(Reply("Working on it…")))

    async def handle_interaction(self, request: web.Request) -> web.Response:
        """A button click: verify, acknowledge at once, run in the background and answer via ``response_url``."""
        body = await request.read()
        problem = self.verify(body, request.headers)
        if problem:
            return self._refuse(problem)
        form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        try:
            payload = json.loads(form.get("payload", [""])[0])
        except ValueError:
            return web.json_response({"error": "payload is not JSON"}, status=400)
        if not isinstance(payload, dict):
            return web.json_response({"error": "payload is not an object"}, status=400)
        if self.cfg.team_id and (payload.get("team") or {}).get("id") != self.cfg.team_id:
            return web.json_response({"error": "wrong workspace"}, status=403)
        if payload.get("type") != "block_actions":
            return web.Response(status=200)
        user = payload.get("user") or {}
        channel = (payload.get("channel") or {}).get("id") or (payload.get("container") or {}).get("channel_id", "")
        identity = Identity("slack", str(user.get("id", "")), str(channel or ""),
                            str(user.get("username") or user.get("name") or ""))
        url = str(payload.get("response_url") or "")
        for action in payload.get("actions") or []:
            if not isinstance(action, dict) or not str(action.get("action_id", "")).startswith("alert_router."):
                continue
            self.background.spawn(self._run_and_respond(identity, str(action.get("value", "")), url))
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
