"""The ``discord`` receiver: a channel webhook, one embed per group, edited in place.

The first notification of a group executes the webhook with ``?wait=true`` (Discord then answers with the
message, whose ``id`` is kept); later ones ``PATCH /webhooks/{id}/{token}/messages/{message_id}`` until the
group has resolved; a group that fires again after resolving gets a new message, and a message that is gone
(404, Unknown Message) is replaced by a new one.

The embed: the headline as title (linking to Alertmanager), colour by severity (green once resolved), the
alerts, the Loki excerpt and runbook outcomes as Markdown in the description, links, and a footer naming
the receiver and group. Discord's limits are met by listing fewer alerts: content ≤ 2,000 characters, ≤ 10
embeds, title ≤ 256, description ≤ 4,096, ≤ 25 fields, all embed text together ≤ 6,000. Alert values are
Markdown-escaped and every message goes out with ``allowed_mentions: {"parse": []}``: no alert can ping.

Failures: 429 is retried after the ``retry_after`` Discord sends (seconds, a float; also ``Retry-After``);
5xx and transport errors are retryable; 401 (Invalid Webhook Token), 403, 404 (Unknown Webhook) and 400
(Invalid Form Body) are not. The webhook URL holds a secret token: it never appears in errors or logs.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any, Self

from pydantic import SecretStr, ValidationInfo, field_validator, model_validator

from alert_router.channels.base import ChannelContext, ChannelType, MessageRef, RateLimit
from alert_router.channels.http import HttpResponse, JsonHttp, retry_after_seconds, secret_values
from alert_router.configbase import ConfigModel, secret
from alert_router.durations import Duration
from alert_router.models import Notification
from alert_router.render import markdown as md
from alert_router.render.context import build_context
from alert_router.render.escape import clip, oneline, safe_url
from alert_router.render.slack_blocks import header_text
from alert_router.render.support import links_option, missing_when_enabled
from alert_router.render.templates import fit

MAX_CONTENT = 2000
MAX_EMBEDS = 10
MAX_TITLE = 256
MAX_DESCRIPTION = 4096
MAX_FIELDS = 25
MAX_FOOTER = 2048
MAX_EMBED_TOTAL = 6000
UNKNOWN_MESSAGE = 10008
COLORS = {"critical": 0xE74C3C, "error": 0xE74C3C, "high": 0xE74C3C, "warning": 0xE67E22, "info": 0x3498DB}
RESOLVED_COLOR, ACKED_COLOR, OTHER_COLOR = 0x2ECC71, 0x95A5A6, 0x95A5A6
_WEBHOOK = re.compile(r"/webhooks/(\d+)/([^/?#]+)")
JITTER_MARGIN = 1.05


class DiscordConfig(ConfigModel):
    """``discord: {webhook_url_file: ...}``: a channel webhook URL (``https://discord.com/api/webhooks/ID/TOKEN``)."""

    webhook_url: SecretStr | None = None
    username: str = ""
    avatar_url: str = ""
    thread_id: str = ""
    timeout: Duration = 10.0

    @field_validator("webhook_url")
    @classmethod
    def _url(cls, value: SecretStr | None) -> SecretStr | None:
        url = value.get_secret_value() if value is not None else ""
        if url and not (url.startswith(("http://", "https://")) and _WEBHOOK.search(url)):
            raise ValueError("webhook_url must look like https://discord.com/api/webhooks/<id>/<token>")
        return value

    @model_validator(mode="after")
    def _complete(self, info: ValidationInfo) -> Self:
        missing_when_enabled(info, webhook_url=self.webhook_url)
        return self


def embed_length(embed: Mapping[str, Any]) -> int:
    """The characters Discord counts against 6,000: title, description, field names and values, footer, author."""
    total = len(embed.get("title", "")) + len(embed.get("description", ""))
    total += sum(len(f.get("name", "")) + len(f.get("value", "")) for f in embed.get("fields", []))
    total += len((embed.get("footer") or {}).get("text", "")) + len((embed.get("author") or {}).get("name", ""))
    return total


def _description(ctx: Mapping[str, Any]) -> str:
    parts: list[str] = []
    if note := md.fallback_note(ctx):
        parts.append(note)
    if escalation := md.escalation_note(ctx, code=True):
        parts.append(escalation)
    if ctx["digest"]:
        parts.extend(md.compact_line(a, code=True) for a in ctx["alerts"])
    else:
        for a in ctx["alerts"]:
            if ctx["count"] > 5:
                parts.append(md.compact_line(a, code=True))
                continue
            block = [md.alert_headline(a)]
            if a["key_labels"]:
                block.append(" ".join(md.md_code(f"{k}={v}", 60) for k, v in a["key_labels"]))
            if a.get("description"):
                block.append(md.md_escape(clip(str(a["description"]), 500)))
            block.append(md.status_line(a, code=True))
            if ctx["count"] == 1 and (links := md.links_line(a["links"])):
                block.append(links)
            parts.append("\n".join(block))
    if more := md.more_line(ctx):
        parts.append(more)
    if ctx["truncated_alerts"]:
        parts.append(f"Alertmanager left out {ctx['truncated_alerts']} more (max_alerts).")
    if not ctx["digest"]:
        for entry in ctx["logs"]:
            text = md.log_heading(entry, code=True)
            if entry["status"] == "ok" and entry["text"]:
                text += "\n" + md.md_codeblock(list(entry["text"]), 1000)
            parts.append(text)
        parts.extend(md.runbook_line(r, code=True) for r in ctx["runbook_runs"])
        if message := md.runbook_message(ctx):
            parts.append(message)
        if ctx["count"] > 1 and (links := md.links_line(ctx["links"])):
            parts.append(links)
    return "\n\n".join(parts)


def build_embed(ctx: Mapping[str, Any]) -> dict[str, Any]:
    """The group's embed (before fitting: the description may still be too long)."""
    if ctx["resolved"]:
        color = RESOLVED_COLOR
    elif ctx["acked"]:
        color = ACKED_COLOR
    else:
        color = COLORS.get(str(ctx["severity"]).lower(), OTHER_COLOR)
    embed: dict[str, Any] = {
        "title": clip(md.md_escape(oneline(header_text(ctx))), MAX_TITLE),
        "description": _description(ctx),
        "color": color,
        "footer": {"text": clip(f"alert-router · {ctx['receiver']} · group {ctx['group_id']}", MAX_FOOTER)},
        "timestamp": ctx["received_at"],
    }
    if url := safe_url((ctx.get("links") or {}).get("alertmanager", "")):
        embed["url"] = url
    return embed


def fits(embed: Mapping[str, Any]) -> bool:
    """Whether ``embed`` is within Discord's per-embed and per-message limits."""
    return len(embed.get("description", "")) <= MAX_DESCRIPTION and embed_length(embed) <= MAX_EMBED_TOTAL


def _close_fences(text: str) -> str:
    return text + "\n```" if text.count("```") % 2 else text


class DiscordChannel:
    """Posts and edits one embed per group through a channel webhook."""

    digest_capacity = 25
    """Alerts listed in one storm digest embed (one line of at most ~150 characters each)."""

    edits_in_place = True
    """A group's message is edited as the group changes (storm control refreshes it after a digest)."""

    def __init__(self, receiver: str, cfg: DiscordConfig, links: dict[str, Any] | None = None) -> None:
        self.receiver = receiver
        self.cfg = cfg
        self.links = links or {}
        url = secret(cfg.webhook_url)
        m = _WEBHOOK.search(url)
        self.webhook_id, self.webhook_token = (m.group(1), m.group(2)) if m else ("", "")
        self.url = url.split("?", 1)[0].rstrip("/")
        self.http = JsonHttp("discord", cfg.timeout, lambda: secret_values(url, self.url, self.webhook_token))

    def destination(self) -> str:
        """The webhook (by its id, which is not secret)."""
        return f"discord:{self.webhook_id or hashlib.sha256(self.url.encode()).hexdigest()[:12]}"

    def rate_limit(self) -> RateLimit | None:
        """About 30 messages a minute per webhook channel, in bursts of 5 (what Discord's webhook buckets allow).

        Discord asks clients to follow its ``X-RateLimit-*`` headers rather than fixed numbers; a 429's
        ``retry_after`` holds the destination back for as long as Discord says.
        """
        return RateLimit(30 / 60 / JITTER_MARGIN, 5.0)

    def render(self, notification: Notification) -> dict[str, Any]:
        """The request body: one embed that fits Discord's limits, no content, mentions disabled."""

        def attempt(n: int | None) -> dict[str, Any]:
            return build_embed(build_context(notification, links=self.links, max_alerts=n))

        embed = fit(len(notification.alerts), attempt, fits)
        if not fits(embed):  # one alert whose own text is too long: cut the description, keep it well-formed
            room = min(MAX_DESCRIPTION, MAX_EMBED_TOTAL - (embed_length(embed) - len(embed["description"]))) - 8
            embed["description"] = _close_fences(clip(embed["description"], max(0, room)))
        body: dict[str, Any] = {"embeds": [embed], "allowed_mentions": {"parse": []}}
        if self.cfg.username:
            body["username"] = clip(self.cfg.username, 80)
        if self.cfg.avatar_url:
            body["avatar_url"] = self.cfg.avatar_url
        return body

    def _params(self, wait: bool) -> dict[str, str]:
        params = {"wait": "true"} if wait else {}
        if self.cfg.thread_id:
            params["thread_id"] = self.cfg.thread_id
        return params

    def _error(self, response: HttpResponse) -> Exception:
        data = response.data if isinstance(response.data, Mapping) else {}
        detail = str(data.get("message") or response.text)
        if data.get("code"):
            detail = f"{detail} (code {data['code']})"
        wait = None
        if response.status == 429:
            try:
                wait = float(data["retry_after"])
            except (KeyError, TypeError, ValueError):
                wait = retry_after_seconds(response.headers.get("Retry-After")) or 1.0
        return self.http.error(response, detail, wait)

    async def send(self, notification: Notification, previous: MessageRef | None) -> MessageRef | None:
        """Post the group's message, or edit it when ``previous`` refers to a message still in use."""
        body = self.render(notification)
        status = "firing" if notification.firing else "resolved"
        if previous and previous.get("message_id") and previous.get("webhook") == self.webhook_id:
            reopened = previous.get("status") == "resolved" and status == "firing"
            if not reopened:
                url = f"{self.url}/messages/{previous['message_id']}"
                response = await self.http.request("PATCH", url, body, params=self._params(False))
                gone = response.status == 404 and isinstance(response.data, Mapping) and (
                    response.data.get("code") == UNKNOWN_MESSAGE)
                if response.ok:
                    return {"webhook": self.webhook_id, "message_id": previous["message_id"], "status": status}
                if not gone:
                    raise self._error(response)
        response = await self.http.request("POST", self.url, body, params=self._params(True))
        if not response.ok:
            raise self._error(response)
        data = response.data if isinstance(response.data, Mapping) else {}
        return {"webhook": self.webhook_id, "message_id": str(data.get("id") or ""), "status": status}

    async def aclose(self) -> None:
        """Close the HTTP session."""
        await self.http.aclose()


def _build(receiver: str, cfg: Any, ctx: ChannelContext) -> DiscordChannel:
    assert isinstance(cfg, DiscordConfig)
    return DiscordChannel(receiver, cfg, links_option(ctx.options))


TYPE = ChannelType("discord", DiscordConfig, _build, secret_free=False)
