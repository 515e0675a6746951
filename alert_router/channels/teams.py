"""The ``teams`` receiver: Microsoft Teams through a Workflows (Power Automate) webhook and an Adaptive Card.

Office 365 connectors are retired; a Teams channel now takes alerts through a workflow built on the trigger
"When a Teams webhook request is received" (the template "Post to a channel when a webhook request is
received"). The workflow's URL carries a signature (``sig=``) and is a secret. The body::

    {"type": "message", "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive",
                                         "contentUrl": null, "content": {"type": "AdaptiveCard", ...}}]}

The card has the same content as the Slack message: the headline (coloured by severity, green once
resolved), each alert with its summary, key labels (a FactSet), description and how long it has fired, the
Loki excerpt in monospace, runbook outcomes, and buttons (``Action.OpenUrl``) to the silence form,
Alertmanager, Grafana, the Prometheus graph and the runbook. Teams webhooks cannot edit a message, so every
change of the group posts a card; a resolution posts a resolved card. Values are Markdown-escaped.

The workflow answers 202 as soon as it has the request and posts the card afterwards: a card Teams cannot
post (over about 28 KB) is lost without an error, so cards are fitted to 20,000 bytes by listing fewer alerts.
429 (``Retry-After``) and 5xx are retryable; 400, 401/403 (a wrong signature), 404 (a deleted workflow) are not.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from pydantic import SecretStr, ValidationInfo, field_validator, model_validator

from alert_router.channels.base import ChannelContext, ChannelType, MessageRef, RateLimit
from alert_router.channels.http import JsonHttp, retry_after_seconds, secret_values
from alert_router.configbase import ConfigModel, secret
from alert_router.durations import Duration
from alert_router.models import Notification
from alert_router.render import incident
from alert_router.render import markdown as md
from alert_router.render.context import build_context
from alert_router.render.escape import clip, oneline
from alert_router.render.slack_blocks import header_text
from alert_router.render.support import links_option, missing_when_enabled
from alert_router.render.templates import fit

CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
CARD_VERSION = "1.4"
MAX_BYTES = 20_000
"""The fitted size of a whole request body. Teams documents about 28 KB per message; a card near that is
refused by some tenants once Teams re-encodes it, so cards stay well under."""
MAX_ACTIONS = 5
MAX_LOG_LINES = 15
COLORS = {"critical": "Attention", "error": "Attention", "high": "Attention", "warning": "Warning", "info": "Accent"}
JITTER_MARGIN = 1.05


class TeamsConfig(ConfigModel):
    """``teams: {webhook_url_file: ...}``: the URL of a Teams workflow started by a webhook request."""

    webhook_url: SecretStr | None = None
    timeout: Duration = 10.0
    actions: bool = True

    @field_validator("webhook_url")
    @classmethod
    def _url(cls, value: SecretStr | None) -> SecretStr | None:
        url = value.get_secret_value() if value is not None else ""
        if url and not url.startswith(("http://", "https://")):
            raise ValueError("webhook_url must start with https://")
        return value

    @model_validator(mode="after")
    def _complete(self, info: ValidationInfo) -> Self:
        missing_when_enabled(info, webhook_url=self.webhook_url)
        return self


def _text(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": text or " ", "wrap": True, **style}


def _alert_elements(a: Mapping[str, Any]) -> list[dict[str, Any]]:
    items = [_text(md.alert_headline(a), spacing="Medium")]
    if a["key_labels"]:
        items.append({"type": "FactSet", "facts": [{"title": k, "value": v} for k, v in md.label_pairs(a)]})
    if a.get("description"):
        items.append(_text(md.md_escape(clip(str(a["description"]), 500)), isSubtle=True))
    items.append(_text(md.status_line(a, code=False), isSubtle=True, size="Small"))
    return items


def build_card(ctx: Mapping[str, Any], actions: bool = True) -> dict[str, Any]:
    """The Adaptive Card for one notification (before fitting)."""
    if ctx["resolved"]:
        color = "Good"
    elif ctx["acked"]:
        color = "Default"
    else:
        color = COLORS.get(str(ctx["severity"]).lower(), "Default")
    body: list[dict[str, Any]] = [
        _text(md.md_escape(oneline(header_text(ctx))), weight="Bolder", size="Medium", color=color)
    ]
    if note := md.fallback_note(ctx):
        body.append(_text(note, isSubtle=True))
    if escalation := md.escalation_note(ctx, code=False):
        body.append(_text(escalation, color="Attention"))
    for a in ctx["alerts"]:
        if ctx["digest"] or ctx["count"] > 5:
            body.append(_text(md.compact_line(a, code=False), spacing="None"))
        else:
            body.extend(_alert_elements(a))
    if more := md.more_line(ctx):
        body.append(_text(more, isSubtle=True))
    if ctx["truncated_alerts"]:
        body.append(_text(f"Alertmanager left out {ctx['truncated_alerts']} more (max_alerts).", isSubtle=True))
    if not ctx["digest"]:
        for entry in ctx["logs"]:
            body.append(_text(md.log_heading(entry, code=False), spacing="Medium"))
            if entry["status"] == "ok":
                body.extend(_text(md.md_escape(clip(oneline(line), 300)), fontType="Monospace", size="Small",
                                  spacing="None") for line in entry["text"][:MAX_LOG_LINES])
        body.extend(_text(md.runbook_line(r, code=False)) for r in ctx["runbook_runs"])
        if message := md.runbook_message(ctx):
            body.append(_text(message))
    body.append(_text(md.md_escape(f"alert-router · {ctx['receiver']} · group {ctx['group_id']}"), isSubtle=True,
                      size="Small", spacing="Medium"))
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": CARD_VERSION,
        "body": body,
        "msteams": {"width": "Full"},
    }
    if actions and not ctx["digest"]:
        buttons = [{"type": "Action.OpenUrl", "title": text, "url": url} for text, url in incident.links(ctx)]
        silence = [b for b in buttons if b["title"].startswith("Silence")]
        ordered = silence + [b for b in buttons if b not in silence]
        if ordered:
            card["actions"] = ordered[:MAX_ACTIONS]
    return card


def message(card: Mapping[str, Any]) -> dict[str, Any]:
    """The request body the workflow's trigger takes: a message with the card as its one attachment."""
    return {"type": "message",
            "attachments": [{"contentType": CARD_CONTENT_TYPE, "contentUrl": None, "content": dict(card)}]}


def body_size(body: Mapping[str, Any]) -> int:
    """Bytes of ``body`` as sent (compact UTF-8 JSON)."""
    return len(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


class TeamsChannel:
    """Posts one Adaptive Card per notification to a Teams channel through a workflow webhook."""

    digest_capacity = 40
    """Alerts listed in one storm digest card (one line each)."""

    edits_in_place = False
    """Teams webhooks cannot edit a card: no refresh after a digest (it would post a card per group)."""

    def __init__(self, receiver: str, cfg: TeamsConfig, links: dict[str, Any] | None = None) -> None:
        self.receiver = receiver
        self.cfg = cfg
        self.links = links or {}
        self.url = secret(cfg.webhook_url)
        signature = parse_qs(urlsplit(self.url).query).get("sig", [""])[0]
        self.http = JsonHttp("teams", cfg.timeout, lambda: secret_values(self.url, signature))

    def destination(self) -> str:
        """The workflow (its URL, hashed)."""
        return "teams:" + hashlib.sha256(self.url.encode()).hexdigest()[:12]

    def rate_limit(self) -> RateLimit | None:
        """One card per second per workflow, in bursts of 4 (Teams' own limit for channel webhooks is 4 per second)."""
        return RateLimit(1.0 / JITTER_MARGIN, 4.0)

    def render(self, notification: Notification) -> dict[str, Any]:
        """The request body, fitted into :data:`MAX_BYTES` by listing fewer alerts."""

        def attempt(n: int | None) -> dict[str, Any]:
            return message(build_card(build_context(notification, links=self.links, max_alerts=n), self.cfg.actions))

        return fit(len(notification.alerts), attempt, lambda b: body_size(b) <= MAX_BYTES)

    async def send(self, notification: Notification, previous: MessageRef | None) -> MessageRef | None:
        """Post the card (Teams cannot edit: a change or a resolution is a new card)."""
        response = await self.http.request("POST", self.url, self.render(notification))
        if response.ok:
            return None
        data = response.data if isinstance(response.data, Mapping) else {}
        error = data.get("error")
        error = error if isinstance(error, Mapping) else {}
        detail = " ".join(str(error.get(k, "")) for k in ("code", "message")).strip() or response.text
        wait = (retry_after_seconds(response.headers.get("Retry-After")) or 1.0) if response.status == 429 else None
        raise self.http.error(response, detail, wait)

    async def aclose(self) -> None:
        """Close the HTTP session."""
        await self.http.aclose()


def _build(receiver: str, cfg: Any, ctx: ChannelContext) -> TeamsChannel:
    assert isinstance(cfg, TeamsConfig)
    return TeamsChannel(receiver, cfg, links_option(ctx.options))


TYPE = ChannelType("teams", TeamsConfig, _build, secret_free=False)
