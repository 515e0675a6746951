"""A loopback stand-in for Discord's webhook endpoints, written from Discord's API docs.

    async with DiscordStandin() as discord:
        url = discord.webhook_url        # http://127.0.0.1:PORT/api/webhooks/<id>/<token>
        [msg] = discord.messages         # messages the webhook posted, as they stand now

What it honours (discord.com/developers/docs: "Webhook", "Message" embed limits, "Rate Limits",
"Opcodes and Status Codes"):

* ``POST /api/webhooks/{id}/{token}`` (Execute Webhook): ``?wait=true`` answers 200 with the message object
  (its ``id``), otherwise 204; ``thread_id`` is kept. ``PATCH /api/webhooks/{id}/{token}/messages/{message_id}``
  (Edit Webhook Message) answers 200 with the message; ``GET`` of the same path returns it.
* An unknown webhook id: 404 ``{"message": "Unknown Webhook", "code": 10015}``; a wrong token: 401
  ``{"message": "Invalid Webhook Token", "code": 50027}``; an unknown message: 404 ``{"code": 10008}``.
* A message needs content or embeds (400, code 50006). Limits (400 "Invalid Form Body", code 50035, with the
  offending fields): content 2,000 characters, 10 embeds, title 256, description 4,096, 25 fields (name 256,
  value 1,024), footer 2,048, author 256, and 6,000 characters across all embeds of the message; ``color``
  an integer 0-0xFFFFFF.
* Rate limits per webhook (``enforce_rate``; Discord's webhook bucket is 5 requests per 2 seconds): every answer
  carries ``X-RateLimit-Limit``/``-Remaining``/``-Reset-After``/``-Bucket``; a 429 has the JSON body
  ``{"message", "retry_after" (seconds, a float), "global": false}``, ``Retry-After`` (whole seconds) and
  ``X-RateLimit-Scope: user``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from tests.standins.httpapi import HttpApiStandin

WEBHOOK_ID = "1234567890123456789"
WEBHOOK_TOKEN = "wh-Secret_Token-abcdefghijklmnopqrstuvwxyz0123456789"
CHANNEL_ID = "987654321098765432"
MAX_CONTENT, MAX_EMBEDS, MAX_TOTAL = 2000, 10, 6000
EMBED_LIMITS = {"title": 256, "description": 4096}
MAX_FIELDS, MAX_FIELD_NAME, MAX_FIELD_VALUE, MAX_FOOTER, MAX_AUTHOR = 25, 256, 1024, 2048, 256


@dataclass
class DiscordMessage:
    """A message a webhook posted, as it stands now, with every earlier version in ``history``."""

    id: str
    webhook_id: str
    content: str
    embeds: list[dict[str, Any]]
    allowed_mentions: dict[str, Any] | None
    thread_id: str | None = None
    username: str | None = None
    edits: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)

    def as_api(self) -> dict[str, Any]:
        """The message object Discord returns."""
        return {"id": self.id, "type": 0, "content": self.content, "channel_id": self.thread_id or CHANNEL_ID,
                "webhook_id": self.webhook_id, "embeds": self.embeds, "attachments": [], "mentions": [],
                "mention_roles": [], "mention_everyone": False, "pinned": False, "tts": False,
                "timestamp": datetime.now(UTC).isoformat(),
                "edited_timestamp": datetime.now(UTC).isoformat() if self.edits else None,
                "author": {"id": self.webhook_id, "username": self.username or "alerts", "bot": True}}


def embed_errors(embeds: Any) -> dict[str, Any]:
    """Discord's form errors for ``embeds`` (empty when valid)."""
    if not isinstance(embeds, list):
        return {"embeds": "must be an array"}
    errors: dict[str, Any] = {}
    if len(embeds) > MAX_EMBEDS:
        errors["embeds"] = f"Must be {MAX_EMBEDS} or fewer in length."
    total = 0
    for i, embed in enumerate(embeds):
        if not isinstance(embed, dict):
            errors[f"embeds.{i}"] = "must be an object"
            continue
        for name, limit in EMBED_LIMITS.items():
            value = embed.get(name, "")
            if not isinstance(value, str) or len(value) > limit:
                errors[f"embeds.{i}.{name}"] = f"Must be {limit} or fewer in length."
            total += len(value) if isinstance(value, str) else 0
        color = embed.get("color")
        if color is not None and (not isinstance(color, int) or not 0 <= color <= 0xFFFFFF):
            errors[f"embeds.{i}.color"] = "Must be an integer between 0 and 16777215."
        fields = embed.get("fields", [])
        if len(fields) > MAX_FIELDS:
            errors[f"embeds.{i}.fields"] = f"Must be {MAX_FIELDS} or fewer in length."
        for j, f in enumerate(fields):
            name, value = str(f.get("name", "")), str(f.get("value", ""))
            if not name or len(name) > MAX_FIELD_NAME or not value or len(value) > MAX_FIELD_VALUE:
                errors[f"embeds.{i}.fields.{j}"] = "Field name and value are required and within limits."
            total += len(name) + len(value)
        footer = str((embed.get("footer") or {}).get("text", ""))
        author = str((embed.get("author") or {}).get("name", ""))
        if len(footer) > MAX_FOOTER:
            errors[f"embeds.{i}.footer.text"] = f"Must be {MAX_FOOTER} or fewer in length."
        if len(author) > MAX_AUTHOR:
            errors[f"embeds.{i}.author.name"] = f"Must be {MAX_AUTHOR} or fewer in length."
        total += len(footer) + len(author)
    if total > MAX_TOTAL:
        errors["embeds"] = f"Embed size exceeds maximum size of {MAX_TOTAL}"
    return errors


class DiscordStandin(HttpApiStandin):
    """Discord's webhook API for one channel webhook (more with :meth:`add_webhook`)."""

    def __init__(self, webhook_id: str = WEBHOOK_ID, token: str = WEBHOOK_TOKEN) -> None:
        super().__init__()
        self.webhooks = {webhook_id: token}
        self.webhook_id = webhook_id
        self.token = token
        self.messages: list[DiscordMessage] = []
        self._next_id = int(time.time() * 1000) << 22

    @property
    def webhook_url(self) -> str:
        """The main webhook's URL (with its secret token)."""
        return f"{self.base_url}/api/webhooks/{self.webhook_id}/{self.token}"

    def add_webhook(self, webhook_id: str, token: str) -> str:
        """Create another webhook; return its URL."""
        self.webhooks[webhook_id] = token
        return f"{self.base_url}/api/webhooks/{webhook_id}/{token}"

    def delete_webhook(self, webhook_id: str | None = None) -> None:
        """Delete a webhook: its URL answers 404 Unknown Webhook from now on."""
        self.webhooks.pop(webhook_id or self.webhook_id, None)

    def delete_message(self, message_id: str) -> None:
        """Delete a message (as a moderator would): editing it answers 404 Unknown Message."""
        self.messages = [m for m in self.messages if m.id != message_id]

    def routes(self, app: web.Application) -> None:
        """Execute, edit and get webhook messages."""
        app.router.add_post("/api/webhooks/{id}/{token}", self._execute)
        app.router.add_patch("/api/webhooks/{id}/{token}/messages/{message_id}", self._edit)
        app.router.add_get("/api/webhooks/{id}/{token}/messages/{message_id}", self._get)

    # -- answers ------------------------------------------------------------------------------------

    def _headers(self, key: str) -> dict[str, str]:
        bucket = self._buckets.get(key)
        remaining = int(bucket._tokens) if bucket is not None else 5
        return {"X-RateLimit-Limit": "5", "X-RateLimit-Remaining": str(max(0, remaining)),
                "X-RateLimit-Reset-After": "2.000", "X-RateLimit-Bucket": f"webhook-{key}"}

    def _json(self, body: Any, status: int, key: str) -> web.Response:
        return web.json_response(body, status=status, headers=self._headers(key))

    def error_response(self, status: int) -> web.Response:
        """Discord failing on its side."""
        return web.json_response({"message": "500: Internal Server Error", "code": 0}, status=status)

    def throttled(self, wait: float, key: str) -> web.Response:
        """Discord's 429: ``retry_after`` in seconds (a float) in the body, whole seconds in ``Retry-After``."""
        headers = {**self._headers(key), "Retry-After": str(max(1, math.ceil(wait))), "X-RateLimit-Scope": "user",
                   "X-RateLimit-Remaining": "0"}
        return web.json_response({"message": "You are being rate limited.", "retry_after": round(wait, 3),
                                  "global": False}, status=429, headers=headers)

    # -- handlers -----------------------------------------------------------------------------------

    async def _begin(self, request: web.Request, method: str) -> tuple[dict[str, Any], str, web.Response | None]:
        webhook_id, token = request.match_info["id"], request.match_info["token"]
        body, params = await self.read_json(request)
        intercepted = await self.intercept(method, webhook_id, params)
        if intercepted is not None:
            return params, webhook_id, intercepted
        if webhook_id not in self.webhooks:
            self.record(method, params, 404, "unknown webhook", webhook_id)
            return params, webhook_id, self._json({"message": "Unknown Webhook", "code": 10015}, 404, webhook_id)
        if token != self.webhooks[webhook_id]:
            self.record(method, params, 401, "invalid webhook token", webhook_id)
            return params, webhook_id, self._json({"message": "Invalid Webhook Token", "code": 50027}, 401,
                                                  webhook_id)
        if body is None or not isinstance(body, dict):
            self.record(method, params, 400, "invalid json", webhook_id)
            return params, webhook_id, self._json({"message": "400: Bad Request", "code": 0}, 400, webhook_id)
        return params, webhook_id, None

    def _form_errors(self, body: dict[str, Any], *, edit: bool) -> web.Response | None:
        content = body.get("content")
        embeds = body.get("embeds")
        errors = embed_errors(embeds) if embeds is not None else {}
        if content is not None and (not isinstance(content, str) or len(content) > MAX_CONTENT):
            errors["content"] = f"Must be {MAX_CONTENT} or fewer in length."
        if errors:
            return web.json_response({"message": "Invalid Form Body", "code": 50035, "errors": errors}, status=400)
        if not edit and not content and not embeds:
            return web.json_response({"message": "Cannot send an empty message", "code": 50006}, status=400)
        return None

    async def _execute(self, request: web.Request) -> web.Response:
        params, key, early = await self._begin(request, "execute")
        if early is not None:
            return early
        invalid = self._form_errors(params, edit=False)
        if invalid is not None:
            self.record("execute", params, 400, invalid.text, key)
            return invalid
        self._next_id += 1 << 22
        message = DiscordMessage(
            id=str(self._next_id), webhook_id=key, content=str(params.get("content") or ""),
            embeds=list(params.get("embeds") or []), allowed_mentions=params.get("allowed_mentions"),
            thread_id=request.query.get("thread_id"), username=params.get("username"),
        )
        self.messages.append(message)
        self.record("execute", {**params, "query": dict(request.query)}, 200, None, key)
        if request.query.get("wait", "false").lower() == "true":
            return self._json(message.as_api(), 200, key)
        return web.Response(status=204, headers=self._headers(key))

    def _message(self, key: str, message_id: str) -> DiscordMessage | None:
        return next((m for m in self.messages if m.id == message_id and m.webhook_id == key), None)

    async def _edit(self, request: web.Request) -> web.Response:
        params, key, early = await self._begin(request, "edit")
        if early is not None:
            return early
        message = self._message(key, request.match_info["message_id"])
        if message is None:
            self.record("edit", params, 404, "unknown message", key)
            return self._json({"message": "Unknown Message", "code": 10008}, 404, key)
        invalid = self._form_errors(params, edit=True)
        if invalid is not None:
            self.record("edit", params, 400, invalid.text, key)
            return invalid
        message.history.append({"content": message.content, "embeds": message.embeds})
        if "content" in params:
            message.content = str(params["content"] or "")
        if "embeds" in params:
            message.embeds = list(params["embeds"] or [])
        if "allowed_mentions" in params:
            message.allowed_mentions = params["allowed_mentions"]
        message.edits += 1
        self.record("edit", params, 200, None, key)
        return self._json(message.as_api(), 200, key)

    async def _get(self, request: web.Request) -> web.Response:
        _params, key, early = await self._begin(request, "get")
        if early is not None:
            return early
        message = self._message(key, request.match_info["message_id"])
        if message is None:
            return self._json({"message": "Unknown Message", "code": 10008}, 404, key)
        return self._json(message.as_api(), 200, key)
