"""The ``webhook`` receiver: a JSON POST to any URL (n8n, a chat relay, an internal tool).

The body is :func:`default_body` (documented in ``docs/channels.md``) or the receiver's ``template``,
rendered in the ``json`` sandbox where every ``{{ expression }}`` becomes a JSON value; output that is
not valid JSON falls back to the default body. Optional ``Authorization: Bearer`` and, with
``hmac_secret``, ``X-Alert-Router-Signature: sha256=<hex HMAC-SHA256 of the exact body bytes>``.
``X-Alert-Router-Delivery`` carries the outbox id so receivers can drop the rare duplicate delivery.

2xx is success; 429 (with ``Retry-After``), 408, 5xx and transport errors are retryable; other
statuses (3xx included: redirects are not followed) are permanent.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import hmac
import json
import time
from typing import Any, Self

import aiohttp
from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

from alert_router import __version__
from alert_router.channels.base import ChannelContext, ChannelError, ChannelType, MessageRef, RateLimit
from alert_router.configbase import ConfigModel, secret
from alert_router.durations import Duration
from alert_router.errors import FailureReason
from alert_router.models import Notification
from alert_router.render import defaults
from alert_router.render.context import build_context
from alert_router.render.support import (
    links_option,
    missing_when_enabled,
    redact,
    report_template_errors,
    template_field,
)
from alert_router.render.templates import Template

SIGNATURE_HEADER = "X-Alert-Router-Signature"
DELIVERY_HEADER = "X-Alert-Router-Delivery"


class WebhookReceiverConfig(ConfigModel):
    """``webhook: {url_file: ..., hmac_secret_file: ..., timeout: 10s}``."""

    url: SecretStr | None = None
    bearer_token: SecretStr | None = None
    hmac_secret: SecretStr | None = None
    timeout: Duration = 10.0
    headers: dict[str, str] = Field(default_factory=dict)
    template: str | None = None

    @field_validator("template")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        return template_field(value, "json")

    @field_validator("url")
    @classmethod
    def _url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value() and not value.get_secret_value().startswith(
            ("http://", "https://")
        ):
            raise ValueError("url must start with http:// or https://")
        return value

    @model_validator(mode="after")
    def _complete(self, info: ValidationInfo) -> Self:
        missing_when_enabled(info, url=self.url)
        return self


def default_body(context: dict[str, Any]) -> dict[str, Any]:
    """The JSON body sent when the receiver has no template."""
    return {
        "version": "1",
        "source": "alert-router",
        "receiver": context["receiver"],
        "rule": context["rule"],
        "group_key": context["group_key"],
        "group_id": context["group_id"],
        "status": context["status"],
        "title": context["title"],
        "fired_for": context["fired_for"] or None,
        "group_labels": context["group_labels"],
        "common_labels": context["common_labels"],
        "common_annotations": context["common_annotations"],
        "external_url": context["external_url"],
        "truncated_alerts": context["truncated_alerts"],
        "changed": context["changed"],
        "alerts": context["all_alerts"],
        "logs": context["logs"],
        "kubernetes": context["kubernetes"],
        "runbook_runs": context["runbook_runs"],
        "graphs": [
            {k: g[k] for k in ("status", "reason", "url", "title", "describe", "query")} for g in context["graphs"]
        ],
        "digest": context["digest"],
        "escalation": context["escalation"],
        "fallback_from": context["fallback_from"],
    }


def sign(secret_value: str, body: bytes) -> str:
    """The signature header value for ``body``: ``sha256=<hex>``."""
    return "sha256=" + hmac.new(secret_value.encode(), body, hashlib.sha256).hexdigest()


def _retry_after(value: str | None) -> float:
    if not value:
        return 1.0
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else 1.0


class WebhookChannel:
    """POSTs one JSON document per notification."""

    digest_capacity = 1000
    """Alerts carried in one storm digest body."""

    def __init__(self, receiver: str, cfg: WebhookReceiverConfig, links: dict[str, Any] | None = None) -> None:
        self.receiver = receiver
        self.cfg = cfg
        self.links = links or {}
        self.template = (
            Template("json", defaults.WEBHOOK, cfg.template, name="template", receiver=receiver, validate=json.loads)
            if cfg.template
            else None
        )
        self._session: aiohttp.ClientSession | None = None

    def destination(self) -> str:
        """The URL (hashed: webhook URLs often embed a secret)."""
        return "webhook:" + hashlib.sha256(secret(self.cfg.url).encode()).hexdigest()[:12]

    def rate_limit(self) -> RateLimit | None:
        """No limit unless configured on the receiver."""
        return None

    def body(self, notification: Notification) -> bytes:
        """The request body for ``notification``."""
        ctx = build_context(notification, links=self.links)
        errors: list[str] = []
        if self.template is not None:
            rendered = self.template.render(ctx, errors)
            if not errors:
                report_template_errors(notification, errors)
                return rendered.encode("utf-8")
        report_template_errors(notification, errors)
        return json.dumps(default_body(ctx), ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    async def send(self, notification: Notification, previous: MessageRef | None) -> MessageRef | None:
        """POST the body; classify the answer."""
        url = secret(self.cfg.url)
        if not url:
            raise ChannelError(FailureReason.INVALID, "webhook: no url configured", retryable=False)
        body = self.body(notification)
        headers = {
            **self.cfg.headers,
            "Content-Type": "application/json",
            "User-Agent": f"alert-router/{__version__}",
        }
        if notification.extra.get("delivery_id") is not None:
            headers[DELIVERY_HEADER] = str(notification.extra["delivery_id"])
        if token := secret(self.cfg.bearer_token):
            headers["Authorization"] = f"Bearer {token}"
        if key := secret(self.cfg.hmac_secret):
            headers[SIGNATURE_HEADER] = sign(key, body)
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.cfg.timeout))
        secrets = [url, secret(self.cfg.bearer_token), secret(self.cfg.hmac_secret)]
        try:
            async with self._session.post(url, data=body, headers=headers, allow_redirects=False) as resp:
                await resp.read()
                status = resp.status
                retry_after = resp.headers.get("Retry-After")
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise ChannelError(FailureReason.TIMEOUT, "webhook: request timed out", retryable=True) from exc
        except (aiohttp.ClientError, OSError) as exc:
            message = redact(f"webhook: {type(exc).__name__}: {exc}", secrets)
            raise ChannelError(FailureReason.CONNECTION, message, retryable=True) from exc
        if 200 <= status < 300:
            return None
        what = f"webhook: HTTP {status}"
        if status == 429:
            raise ChannelError(FailureReason.RATE_LIMITED, what, retryable=True, retry_after=_retry_after(retry_after))
        if status >= 500 or status == 408:
            raise ChannelError(FailureReason.SERVER_ERROR, what, retryable=True)
        if status in (401, 403):
            raise ChannelError(FailureReason.AUTH, what, retryable=False)
        if status in (404, 410):
            raise ChannelError(FailureReason.NOT_FOUND, what, retryable=False)
        raise ChannelError(FailureReason.REJECTED, what, retryable=False)

    async def aclose(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            await asyncio.sleep(0)
        self._session = None


def _build(receiver: str, cfg: Any, ctx: ChannelContext) -> WebhookChannel:
    assert isinstance(cfg, WebhookReceiverConfig)
    return WebhookChannel(receiver, cfg, links_option(ctx.options))


TYPE = ChannelType("webhook", WebhookReceiverConfig, _build, secret_free=False)
