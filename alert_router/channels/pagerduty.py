"""The ``pagerduty`` receiver: PagerDuty Events API v2 (``POST /v2/enqueue``), one incident per group.

Every event carries ``dedup_key`` = SHA-256 of the Alertmanager group key (what Alertmanager's own notifier
sends), so a repeat or an update never opens a second incident and a resolve closes the right one; once
resolved, PagerDuty opens a new incident for the next ``trigger`` with the same key (a group that fires again).

* firing → ``trigger`` with ``payload`` {``summary`` (≤ 1,024 characters), ``source``, ``severity`` from the
  alert's ``severity`` label, ``timestamp``, ``component``, ``group``, ``class``, ``custom_details`` (labels,
  every alert, the Loki excerpt, runbook outcomes, who acked)}, ``links`` (Prometheus graph, Grafana,
  Alertmanager, silence form, runbook) and ``images`` (``extra["images"]``: ``[{src, href, alt}]``, https only);
* every firing alert acknowledged in chat (``extra["acked_by"]``, set by the ack command's re-notification)
  → ``acknowledge``;
* resolved → ``resolve``.

PagerDuty answers 202; 400 (an invalid event, an unknown routing key) is permanent; 429 and 5xx are retryable.
A 429 has no ``Retry-After`` in PagerDuty's docs, which ask for a retry some 30 s later: ``throttle_wait``.
Events are at most 512 KB: a large group lists fewer alerts in ``custom_details`` until it fits.
The reference kept per group is ``{"dedup_key", "status"}`` (``firing``, ``acked`` or ``resolved``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, Literal, Self

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

from alert_router.channels.base import ChannelContext, ChannelType, MessageRef, RateLimit
from alert_router.channels.http import HttpResponse, JsonHttp, retry_after_seconds, secret_values
from alert_router.configbase import ConfigModel, secret
from alert_router.durations import Duration
from alert_router.models import Notification
from alert_router.render import incident
from alert_router.render.context import build_context
from alert_router.render.escape import clip, safe_url
from alert_router.render.support import links_option, missing_when_enabled
from alert_router.render.templates import fit

Severity = Literal["critical", "error", "warning", "info"]
SEVERITY_MAP: dict[str, Severity] = {
    "critical": "critical", "page": "critical", "fatal": "critical", "emergency": "critical",
    "error": "error", "high": "error", "major": "error",
    "warning": "warning", "warn": "warning", "medium": "warning", "minor": "warning",
    "info": "info", "informational": "info", "low": "info", "none": "info",
}
"""The alert's ``severity`` label (lower case) → PagerDuty severity; ``severities:`` in the config adds to it."""
MAX_SUMMARY = 1024
MAX_EVENT_BYTES = 500_000
"""Under PagerDuty's 512 KB per event, with room for the HTTP framing."""
EVENTS_PER_MINUTE = 120
"""PagerDuty's documented limit per integration key."""
JITTER_MARGIN = 1.05
ROUTING_KEY_LENGTH = 32
"""An Events API v2 integration (routing) key: 32 ASCII letters and digits."""


class PagerDutyConfig(ConfigModel):
    """``pagerduty: {routing_key_file: ...}``: an Events API v2 integration key (32 characters)."""

    routing_key: SecretStr | None = None
    url: str = "https://events.pagerduty.com/v2/enqueue"
    timeout: Duration = 10.0
    source: str = ""
    severities: dict[str, Severity] = Field(default_factory=dict)
    default_severity: Severity = "error"
    throttle_wait: Duration = 30.0

    @field_validator("routing_key")
    @classmethod
    def _routing_key(cls, value: SecretStr | None) -> SecretStr | None:
        key = value.get_secret_value() if value is not None else ""
        if key and not (len(key) == ROUTING_KEY_LENGTH and key.isascii() and key.isalnum()):
            # What PagerDuty answers with a 400 at the first page; said here, by `check`, without the key.
            raise ValueError(f"routing_key must be an Events API v2 integration key: {ROUTING_KEY_LENGTH} letters "
                             f"and digits (this one has {len(key)} characters)")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        return value

    @model_validator(mode="after")
    def _complete(self, info: ValidationInfo) -> Self:
        missing_when_enabled(info, routing_key=self.routing_key)
        return self


class PagerDutyChannel:
    """Triggers, acknowledges and resolves one PagerDuty incident per group."""

    digest_capacity = 500
    """Alerts listed (compactly) in one storm digest event's ``custom_details``."""

    edits_in_place = True
    """A group's incident follows the group (storm control sends each swept group's latest state after a digest)."""

    def __init__(self, receiver: str, cfg: PagerDutyConfig, links: dict[str, Any] | None = None) -> None:
        self.receiver = receiver
        self.cfg = cfg
        self.links = links or {}
        self.http = JsonHttp("pagerduty", cfg.timeout, lambda: secret_values(secret(cfg.routing_key)))
        self.severities = {**SEVERITY_MAP, **{k.lower(): v for k, v in cfg.severities.items()}}

    def destination(self) -> str:
        """The integration (its routing key, hashed)."""
        return "pagerduty:" + hashlib.sha256(secret(self.cfg.routing_key).encode()).hexdigest()[:12]

    def rate_limit(self) -> RateLimit | None:
        """About 120 events per minute per integration key (5% under), in bursts of up to 10."""
        return RateLimit(EVENTS_PER_MINUTE / 60 / JITTER_MARGIN, 10.0)

    def severity(self, ctx: Mapping[str, Any]) -> Severity:
        """The PagerDuty severity of the group's most severe alert."""
        return self.severities.get(str(ctx.get("severity") or "").lower(), self.cfg.default_severity)

    def trigger(self, notification: Notification, dedup_key: str) -> dict[str, Any]:
        """The ``trigger`` event for ``notification``, fitted into 512 KB by listing fewer alerts."""

        def attempt(n: int | None) -> tuple[dict[str, Any], int]:
            ctx = build_context(notification, links=self.links, max_alerts=n)
            event = self._trigger_event(ctx, dedup_key, notification.extra.get("images"))
            return event, len(json.dumps(event, ensure_ascii=False).encode("utf-8"))

        event, _size = fit(len(notification.alerts), attempt, lambda r: r[1] <= MAX_EVENT_BYTES)
        return event

    def _trigger_event(self, ctx: Mapping[str, Any], dedup_key: str, images: Any = None) -> dict[str, Any]:
        digest = ctx.get("digest")
        alerts = [
            ({"name": a["name"], "status": a["status"], "severity": a["severity"], "id": a["short_id"],
              "labels": dict(a["key_labels"][:4]), "summary": clip(str(a["summary"]), 200)}
             if digest else incident.alert_record(a))
            for a in ctx["alerts"]
        ]
        details: dict[str, Any] = {
            "status": ctx["status"],
            "firing": len(ctx["firing_alerts"]),
            "resolved": len(ctx["resolved_alerts"]),
            "group_labels": ctx["group_labels"],
            "common_labels": ctx["common_labels"],
            "alerts": alerts,
        }
        if ctx["more"]:
            details["alerts_not_listed"] = ctx["more"]
        if ctx["truncated_alerts"]:
            details["truncated_by_alertmanager"] = ctx["truncated_alerts"]
        if digest:
            details["digest"] = {k: digest[k] for k in ("groups", "notifications", "part", "parts")}
        if ctx["logs"]:
            details["logs"] = incident.log_records(ctx)
        if ctx["kubernetes"]:
            details["kubernetes"] = [f"{k['target']}: {k['summary']}" for k in ctx["kubernetes"]]
        if ctx["runbook_runs"]:
            details["runbook_runs"] = ctx["runbook_runs"]
        if acked := incident.acked_by(ctx):
            details["acked_by"] = acked
        if ctx.get("fallback_from"):
            details["delivered_here_because"] = f"{ctx['fallback_from']} failed: {ctx.get('fallback_reason') or ''}"
        details.update(receiver=ctx["receiver"], rule=ctx["rule"], group_key=ctx["group_key"])
        starts = sorted(a["starts_at"] for a in ctx["firing_alerts"] if a.get("starts_at"))
        payload: dict[str, Any] = {
            "summary": incident.headline(ctx, MAX_SUMMARY),
            "source": clip(self.cfg.source or incident.first_label(ctx, incident.SOURCE_LABELS) or "alert-router",
                           255),
            "severity": self.severity(ctx),
            "timestamp": starts[0] if starts else ctx["received_at"],
            "custom_details": details,
        }
        for key, names in (("component", incident.COMPONENT_LABELS), ("group", incident.GROUP_LABELS),
                           ("class", ("alertname",))):
            if value := incident.first_label(ctx, names):
                payload[key] = clip(value, 255)
        event: dict[str, Any] = {
            "routing_key": secret(self.cfg.routing_key),
            "event_action": "trigger",
            "dedup_key": dedup_key,
            "payload": payload,
            "client": "alert-router",
            "links": [{"href": url, "text": text} for text, url in incident.links(ctx)],
        }
        if client_url := safe_url(ctx.get("external_url") or ""):
            event["client_url"] = client_url
        if pictures := https_images(images):
            event["images"] = pictures
        return event

    async def _post(self, event: dict[str, Any]) -> HttpResponse:
        response = await self.http.request("POST", self.cfg.url, event)
        if response.ok:
            return response
        data = response.data if isinstance(response.data, Mapping) else {}
        detail = str(data.get("message") or "")
        errors = data.get("errors")
        if isinstance(errors, list) and errors:
            detail += ": " + "; ".join(str(e) for e in errors)
        wait = None
        if response.status == 429:
            wait = retry_after_seconds(response.headers.get("Retry-After")) or self.cfg.throttle_wait
        raise self.http.error(response, detail or response.text, wait)

    async def send(self, notification: Notification, previous: MessageRef | None) -> MessageRef | None:
        """Send the event(s) for the group's new state; return ``{"dedup_key", "status"}``."""
        dedup_key = incident.group_hash(notification.group_key)
        short = {"routing_key": secret(self.cfg.routing_key), "dedup_key": dedup_key}
        before = str(previous.get("status")) if previous else None
        if not notification.firing:
            await self._post({**short, "event_action": "resolve"})
            return {"dedup_key": dedup_key, "status": "resolved"}
        ctx = build_context(notification, links=self.links, max_alerts=0)
        acked = bool(incident.acked_by(ctx))
        if acked and before == "firing":
            await self._post({**short, "event_action": "acknowledge"})
            return {"dedup_key": dedup_key, "status": "acked"}
        await self._post(self.trigger(notification, dedup_key))
        if acked and before != "acked":  # acked before PagerDuty had this incident open: open it, then ack
            await self._post({**short, "event_action": "acknowledge"})
        return {"dedup_key": dedup_key, "status": "acked" if acked else "firing"}

    async def aclose(self) -> None:
        """Close the HTTP session."""
        await self.http.aclose()


def https_images(raw: Any) -> list[dict[str, str]]:
    """``extra["images"]`` (``[{src, href, alt}]``, filled by a graph stage) as PagerDuty takes them: https only."""
    out = []
    for image in raw if isinstance(raw, list) else []:
        src = str(image.get("src", "")) if isinstance(image, Mapping) else ""
        if src.startswith("https://") and safe_url(src):
            item = {"src": src}
            item.update({k: str(image[k]) for k in ("href", "alt") if image.get(k)})
            out.append(item)
    return out


def _build(receiver: str, cfg: Any, ctx: ChannelContext) -> PagerDutyChannel:
    assert isinstance(cfg, PagerDutyConfig)
    return PagerDutyChannel(receiver, cfg, links_option(ctx.options))


TYPE = ChannelType("pagerduty", PagerDutyConfig, _build, secret_free=False)
