"""The ``opsgenie`` receiver: the Opsgenie Alert API (``/v2/alerts``), one alert per group, kept by alias.

The alias is SHA-256 of the Alertmanager group key (what Alertmanager's own notifier uses; at most 512
characters allowed, 64 used). Opsgenie keeps one open alert per alias: a create for an open alias only
counts another occurrence, so

* firing → ``POST /v2/alerts`` {``message`` (≤ 130), ``alias``, ``description`` (≤ 15,000: the group as
  plain text, with the Loki excerpt), ``priority`` P1 to P5 from the alert's ``severity`` label, ``tags``,
  ``details`` (the group's labels and links), ``entity``, ``source``, ``responders``}; when the group changes
  while its alert is open (``update_alerts``), ``PUT …/message``, ``…/description`` and ``…/priority`` for what
  changed;
* every firing alert acknowledged in chat → ``POST /v2/alerts/{alias}/acknowledge?identifierType=alias`` with
  the acking user;
* resolved → ``POST /v2/alerts/{alias}/close?identifierType=alias``.

``Authorization: GenieKey <key>`` (an API integration's key); ``region: us|eu`` picks ``api.opsgenie.com`` or
``api.eu.opsgenie.com``. Opsgenie answers 202 with a ``requestId`` and processes the request later (a
request that fails then, such as closing an alert somebody deleted, is not reported back). 429 (with
``X-RateLimit-Period-In-Sec``) and 5xx are retryable; 401/403 (bad or disabled key), 402, 400 and 422 are not.
The reference kept per group: ``{"alias", "status", "message", "description", "priority"}`` (the last three as
short hashes, to send only what changed).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Literal, Self

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

from alert_router.channels.base import ChannelContext, ChannelType, MessageRef, RateLimit
from alert_router.channels.http import JsonHttp, retry_after_seconds, secret_values
from alert_router.configbase import ConfigModel, secret
from alert_router.durations import Duration
from alert_router.models import Notification
from alert_router.render import defaults, incident
from alert_router.render.context import build_context
from alert_router.render.escape import clip, oneline
from alert_router.render.support import links_option, missing_when_enabled
from alert_router.render.templates import Template, fit

Priority = Literal["P1", "P2", "P3", "P4", "P5"]
PRIORITY_MAP: dict[str, Priority] = {
    "critical": "P1", "page": "P1", "fatal": "P1", "emergency": "P1",
    "error": "P2", "high": "P2", "major": "P2",
    "warning": "P3", "warn": "P3", "medium": "P3", "minor": "P4", "low": "P4",
    "info": "P5", "informational": "P5", "none": "P5",
}
"""The alert's ``severity`` label (lower case) → Opsgenie priority; ``priorities:`` in the config adds to it."""
API_URLS = {"us": "https://api.opsgenie.com", "eu": "https://api.eu.opsgenie.com"}
MAX_MESSAGE = 130
MAX_DESCRIPTION = 15_000
MAX_DETAILS = 8_000
"""Characters of all ``details`` keys and values together."""
MAX_TAGS, MAX_TAG = 20, 50
MAX_USER, MAX_SOURCE, MAX_ENTITY = 100, 100, 512
JITTER_MARGIN = 1.05


class Responder(ConfigModel):
    """Who Opsgenie notifies: ``{type: team, name: ml-oncall}`` (or ``id``; users by ``username``)."""

    type: Literal["team", "user", "escalation", "schedule"]
    id: str = ""
    name: str = ""
    username: str = ""

    @model_validator(mode="after")
    def _named(self) -> Self:
        if not (self.id or self.name or self.username):
            raise ValueError("a responder needs id, name or username")
        return self

    def wire(self) -> dict[str, str]:
        """The responder as the Alert API takes it."""
        return {k: v for k, v in self.model_dump().items() if v}


class OpsgenieConfig(ConfigModel):
    """``opsgenie: {api_key_file: ..., region: eu}``: an API integration's key."""

    api_key: SecretStr | None = None
    region: Literal["us", "eu"] = "us"
    api_url: str = ""
    timeout: Duration = 10.0
    priorities: dict[str, Priority] = Field(default_factory=dict)
    default_priority: Priority = "P3"
    tags: list[str] = Field(default_factory=lambda: ["alert-router"])
    responders: list[Responder] = Field(default_factory=list)
    source: str = "alert-router"
    update_alerts: bool = True

    @field_validator("api_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("api_url must start with http:// or https://")
        return value

    @model_validator(mode="after")
    def _complete(self, info: ValidationInfo) -> Self:
        missing_when_enabled(info, api_key=self.api_key)
        return self

    @property
    def base_url(self) -> str:
        """``api_url``, else the region's API (``https://api.opsgenie.com`` or ``https://api.eu.opsgenie.com``)."""
        return (self.api_url or API_URLS[self.region]).rstrip("/")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


class OpsgenieChannel:
    """Creates, updates, acknowledges and closes one Opsgenie alert per group."""

    digest_capacity = 80
    """Alerts listed in one storm digest's description (one line of at most ~160 characters each)."""

    edits_in_place = True
    """A group's alert follows the group (storm control sends each swept group's latest state after a digest)."""

    def __init__(self, receiver: str, cfg: OpsgenieConfig, links: dict[str, Any] | None = None) -> None:
        self.receiver = receiver
        self.cfg = cfg
        self.links = links or {}
        self.http = JsonHttp("opsgenie", cfg.timeout, lambda: secret_values(secret(cfg.api_key)))
        self.priorities = {**PRIORITY_MAP, **{k.lower(): v for k, v in cfg.priorities.items()}}
        self.text = Template("text", defaults.EMAIL_TEXT, name="description", receiver=receiver)

    def destination(self) -> str:
        """The integration (its key, hashed)."""
        return "opsgenie:" + hashlib.sha256(secret(self.cfg.api_key).encode()).hexdigest()[:12]

    def rate_limit(self) -> RateLimit | None:
        """One group change per second in bursts of 3 (each may take up to three requests).

        Opsgenie's Alert API limits requests per minute and per second by plan without publishing the numbers
        for every plan; a 429 says which window was exceeded (``X-RateLimit-Period-In-Sec``).
        """
        return RateLimit(1.0 / JITTER_MARGIN, 3.0)

    def priority(self, ctx: Mapping[str, Any]) -> Priority:
        """The priority of the group's most severe alert."""
        return self.priorities.get(str(ctx.get("severity") or "").lower(), self.cfg.default_priority)

    def description(self, notification: Notification) -> str:
        """The group as plain text (≤ 15,000 characters): every alert in full, or one line each in a digest."""

        def attempt(n: int | None) -> str:
            ctx = build_context(notification, links=self.links, max_alerts=n)
            if ctx["digest"]:
                lines = [str(ctx["title"]), "", *(incident.compact_text_line(a) for a in ctx["alerts"])]
                if ctx["more"]:
                    lines.append(f"...and {ctx['more']} more alerts that did not fit.")
                return "\n".join(lines)
            return self.text.render(ctx).strip()

        text = fit(len(notification.alerts), attempt, lambda t: len(t) <= MAX_DESCRIPTION)
        if len(text) <= MAX_DESCRIPTION:
            return text
        more = len(notification.alerts) - 1  # not even one alert fitted: fit() rendered one
        note = "\n… (cut to Opsgenie's 15,000 characters" + (f"; {more} more alerts not shown)" if more > 0 else ")")
        return clip(text, MAX_DESCRIPTION - len(note), end="") + note

    def create_body(self, notification: Notification, ctx: Mapping[str, Any], alias: str) -> dict[str, Any]:
        """The ``POST /v2/alerts`` body."""
        tags: list[str] = []
        for tag in [*self.cfg.tags, str(ctx.get("severity") or "")]:
            tag = clip(oneline(tag), MAX_TAG)
            if tag and tag != "none" and tag not in tags:
                tags.append(tag)
        body: dict[str, Any] = {
            "message": incident.headline(ctx, MAX_MESSAGE),
            "alias": alias,
            "description": self.description(notification),
            "priority": self.priority(ctx),
            "tags": tags[:MAX_TAGS],
            "details": self.details(ctx),
            "source": clip(self.cfg.source, MAX_SOURCE),
        }
        if entity := incident.first_label(ctx, incident.SOURCE_LABELS):
            body["entity"] = clip(entity, MAX_ENTITY)
        if self.cfg.responders:
            body["responders"] = [r.wire() for r in self.cfg.responders]
        return body

    @staticmethod
    def details(ctx: Mapping[str, Any]) -> dict[str, str]:
        """The group's labels and links as string pairs, at most 8,000 characters in all."""
        escalation = ctx.get("escalation")
        pairs = [("escalation", str(escalation["text"]))] if escalation else []
        pairs += [*(ctx.get("group_labels") or {}).items(), *(ctx.get("common_labels") or {}).items()]
        pairs += [(text, url) for text, url in incident.links(ctx)]
        pairs += [("alerts_firing", str(len(ctx["firing_alerts"]))), ("group_id", str(ctx["group_id"]))]
        out: dict[str, str] = {}
        used = 0
        for key, value in pairs:
            key, value = clip(str(key), 100), clip(str(value), 1000)
            if key in out or used + len(key) + len(value) > MAX_DETAILS:
                continue
            out[key] = value
            used += len(key) + len(value)
        return out

    async def _call(self, method: str, path: str, body: dict[str, Any], *, by_alias: bool = True) -> None:
        response = await self.http.request(
            method,
            f"{self.cfg.base_url}{path}",
            body,
            headers={"Authorization": f"GenieKey {secret(self.cfg.api_key)}"},
            params={"identifierType": "alias"} if by_alias else None,
        )
        if response.ok:
            return
        data = response.data if isinstance(response.data, Mapping) else {}
        detail = str(data.get("message") or "")
        errors = data.get("errors")
        if isinstance(errors, Mapping) and errors:
            detail += ": " + "; ".join(f"{k}: {v}" for k, v in errors.items())
        wait = None
        if response.status == 429:
            wait = retry_after_seconds(response.headers.get("Retry-After")) or retry_after_seconds(
                response.headers.get("X-RateLimit-Period-In-Sec")) or 1.0
        raise self.http.error(response, detail or response.text, wait)

    async def send(self, notification: Notification, previous: MessageRef | None) -> MessageRef | None:
        """Create/update, acknowledge or close the group's alert; return the reference."""
        alias = incident.group_hash(notification.group_key)
        before = str(previous.get("status")) if previous else None
        source = clip(self.cfg.source, MAX_SOURCE)
        if not notification.firing:
            ctx = build_context(notification, links=self.links, max_alerts=0)
            note = "Resolved in Alertmanager" + (f" after {ctx['fired_for']}" if ctx["fired_for"] else "") + "."
            await self._call("POST", f"/v2/alerts/{alias}/close", {"source": source, "user": "alert-router",
                                                                    "note": note})
            return {"alias": alias, "status": "resolved"}
        ctx = build_context(notification, links=self.links, max_alerts=0)
        acked = incident.acked_by(ctx)
        ref = dict(previous or {})
        if not (acked and before == "firing"):  # an ack of an open alert needs no create
            body = self.create_body(notification, ctx, alias)
            await self._call("POST", "/v2/alerts", body, by_alias=False)
            digest = bool(ctx["digest"])  # a digest's alias may be open with an older digest: always update
            if digest or (self.cfg.update_alerts and before in ("firing", "acked")):
                for field, value in (("message", body["message"]), ("description", body["description"]),
                                     ("priority", body["priority"])):
                    mark = value if field == "priority" else _digest(value)
                    if digest or ref.get(field) != mark:
                        await self._call("PUT", f"/v2/alerts/{alias}/{field}", {field: value})
            ref.update(message=_digest(body["message"]), description=_digest(body["description"]),
                       priority=body["priority"])
        if acked and before != "acked":
            users = clip(", ".join(acked), MAX_USER)
            await self._call("POST", f"/v2/alerts/{alias}/acknowledge",
                             {"user": users, "source": source, "note": f"Acknowledged in chat by {users}."})
        ref.update(alias=alias, status="acked" if acked else "firing")
        return ref

    async def aclose(self) -> None:
        """Close the HTTP session."""
        await self.http.aclose()


def _build(receiver: str, cfg: Any, ctx: ChannelContext) -> OpsgenieChannel:
    assert isinstance(cfg, OpsgenieConfig)
    return OpsgenieChannel(receiver, cfg, links_option(ctx.options))


TYPE = ChannelType("opsgenie", OpsgenieConfig, _build, secret_free=False)
