"""A loopback stand-in for the PagerDuty Events API v2 (``POST /v2/enqueue``), written from PagerDuty's docs.

    async with PagerDutyStandin() as pd:
        url = pd.url                     # http://127.0.0.1:PORT/v2/enqueue
        key = pd.routing_key             # a valid 32-character integration key
        ...
        [alert] = pd.alerts()            # alerts (incidents) in the order they were opened

What it honours (developer.pagerduty.com, "Send an Alert Event", "Events API v2 Overview", "Rate Limits"):

* ``routing_key`` must be 32 alphanumeric characters and a known integration key; ``event_action`` is
  ``trigger``, ``acknowledge`` or ``resolve``; ``dedup_key`` at most 255 characters, required for acknowledge
  and resolve; a trigger needs ``payload.summary`` (≤ 1,024 characters), ``payload.source`` and
  ``payload.severity`` (critical, error, warning, info); ``images[].src`` must be https; ``links[].href`` is
  required; the whole event at most 512 KB. Otherwise: 400 ``{"status": "invalid event", "message": "Event
  object is invalid", "errors": [...]}``.
* 202 ``{"status": "success", "message": "Event processed", "dedup_key": ...}``. A trigger with the
  ``dedup_key`` of an open alert adds to it; once resolved, the next trigger opens a new alert; acknowledge
  and resolve without an open alert are dropped (still 202). A trigger without ``dedup_key`` gets a new one.
* Rate limit (``enforce_rate``; PagerDuty's is about 120 events per minute per integration key): 429
  ``{"status": "throttle event", ...}`` with no ``Retry-After`` (PagerDuty documents none), unless
  ``retry_after_header`` is set.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.standins.httpapi import HttpApiStandin

ROUTING_KEY = "R0UT1NGKEY0000000000000000000001"
MAX_EVENT_BYTES = 512 * 1024
SEVERITIES = ("critical", "error", "warning", "info")


@dataclass
class PagerDutyAlert:
    """An alert PagerDuty opened for a ``dedup_key``, with every event applied to it."""

    routing_key: str
    dedup_key: str
    status: str  # triggered | acknowledged | resolved
    payload: dict[str, Any]
    links: list[dict[str, Any]] = field(default_factory=list)
    images: list[dict[str, Any]] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    """Every event applied, in order (``trigger``, ``acknowledge``, ``resolve``)."""

    @property
    def summary(self) -> str:
        """The latest trigger's summary."""
        return str(self.payload.get("summary", ""))


class PagerDutyStandin(HttpApiStandin):
    """The Events API v2 enqueue endpoint, holding alerts per routing key and ``dedup_key``."""

    def __init__(self, routing_keys: tuple[str, ...] = (ROUTING_KEY,)) -> None:
        super().__init__()
        self.routing_keys = set(routing_keys)
        self.routing_key = routing_keys[0]
        self.events: list[dict[str, Any]] = []
        """Every accepted event, as received."""
        self.dropped: list[dict[str, Any]] = []
        """Accepted acknowledge/resolve events that matched no open alert."""
        self._alerts: list[PagerDutyAlert] = []
        self.retry_after_header: int | None = None

    @property
    def url(self) -> str:
        """The enqueue URL."""
        return f"{self.base_url}/v2/enqueue"

    def routes(self, app: web.Application) -> None:
        """``POST /v2/enqueue``."""
        app.router.add_post("/v2/enqueue", self._enqueue)

    def alerts(self, dedup_key: str | None = None) -> list[PagerDutyAlert]:
        """Alerts in the order they were opened (only those of ``dedup_key``, if given)."""
        return [a for a in self._alerts if dedup_key is None or a.dedup_key == dedup_key]

    def open_alert(self, routing_key: str, dedup_key: str) -> PagerDutyAlert | None:
        """The triggered or acknowledged alert for the key, if any."""
        for a in reversed(self._alerts):
            if a.routing_key == routing_key and a.dedup_key == dedup_key and a.status != "resolved":
                return a
        return None

    def error_response(self, status: int) -> web.Response:
        """PagerDuty's servers failing: a plain error page."""
        return web.Response(status=status, text="Internal Server Error" if status == 500 else "Service Unavailable")

    def throttled(self, wait: float, key: str) -> web.Response:
        """PagerDuty's 429 (its docs show no ``Retry-After``; ``retry_after_header`` adds one)."""
        headers = {"Retry-After": str(self.retry_after_header)} if self.retry_after_header is not None else {}
        message = "Requests for this service are arriving too quickly.  Please retry later."
        return web.json_response({"status": "throttle event", "message": message}, status=429, headers=headers)

    @staticmethod
    def _invalid(errors: list[str]) -> web.Response:
        return web.json_response({"status": "invalid event", "message": "Event object is invalid", "errors": errors},
                                 status=400)

    async def _enqueue(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            event = json.loads(raw)
        except ValueError:
            event = None
        params = event if isinstance(event, dict) else {}
        key = str(params.get("routing_key", ""))
        intercepted = await self.intercept("enqueue", key, params)
        if intercepted is not None:
            return intercepted
        errors = ["Event object is too large"] if len(raw) > MAX_EVENT_BYTES else []
        errors += self.validate(event) if not errors else []
        if errors:
            self.record("enqueue", params, 400, "; ".join(errors), key)
            return self._invalid(errors)
        dedup_key = self._apply(params)
        self.record("enqueue", params, 202, None, key)
        return web.json_response({"status": "success", "message": "Event processed", "dedup_key": dedup_key},
                                 status=202)

    def validate(self, event: Any) -> list[str]:
        """The errors PagerDuty reports for ``event`` (empty when valid)."""
        if not isinstance(event, dict):
            return ["Event object is not a valid JSON object"]
        errors: list[str] = []
        key = event.get("routing_key")
        if not isinstance(key, str) or not key:
            errors.append("'routing_key' is missing or blank")
        else:
            if len(key) != 32:
                errors.append("Length of 'routing_key' is incorrect (should be 32 characters)")
            if not key.isalnum():
                errors.append("'routing_key' cannot contain non-alphanumeric characters.")
            if not errors and key not in self.routing_keys:
                errors.append("Invalid routing key")
        action = event.get("event_action")
        if action not in ("trigger", "acknowledge", "resolve"):
            errors.append("'event_action' must be one of trigger, acknowledge, resolve")
        dedup = event.get("dedup_key")
        if dedup is not None and (not isinstance(dedup, str) or len(dedup) > 255):
            errors.append("'dedup_key' must be a string of at most 255 characters")
        if action in ("acknowledge", "resolve") and not dedup:
            errors.append("'dedup_key' is missing or blank")
        if action == "trigger":
            errors += self._payload_errors(event.get("payload"))
            for i, image in enumerate(event.get("images") or []):
                if not isinstance(image, dict) or not str(image.get("src", "")).startswith("https://"):
                    errors.append(f"'images[{i}].src' must be an https URL")
            for i, link in enumerate(event.get("links") or []):
                if not isinstance(link, dict) or not link.get("href"):
                    errors.append(f"'links[{i}].href' is missing or blank")
        return errors

    @staticmethod
    def _payload_errors(payload: Any) -> list[str]:
        if not isinstance(payload, dict):
            return ["'payload' is missing or not an object"]
        errors = []
        summary = payload.get("summary")
        if not isinstance(summary, str) or not summary.strip():
            errors.append("'payload.summary' is missing or blank")
        elif len(summary) > 1024:
            errors.append("'payload.summary' is too long (maximum 1024 characters)")
        if not isinstance(payload.get("source"), str) or not payload["source"].strip():
            errors.append("'payload.source' is missing or blank")
        if payload.get("severity") not in SEVERITIES:
            errors.append("'payload.severity' must be one of critical, error, warning, info")
        details = payload.get("custom_details")
        if details is not None and not isinstance(details, dict):
            errors.append("'payload.custom_details' must be an object")
        return errors

    def _apply(self, event: dict[str, Any]) -> str:
        self.events.append(event)
        key = str(event["routing_key"])
        action = str(event["event_action"])
        dedup = str(event.get("dedup_key") or uuid.uuid4().hex)
        alert = self.open_alert(key, dedup)
        if action == "trigger":
            if alert is None:
                alert = PagerDutyAlert(key, dedup, "triggered", {})
                self._alerts.append(alert)
            alert.payload = dict(event["payload"])
            alert.links = list(event.get("links") or [])
            alert.images = list(event.get("images") or [])
        elif alert is None:
            self.dropped.append(event)
            return dedup
        elif action == "acknowledge":
            alert.status = "acknowledged"
        else:
            alert.status = "resolved"
        alert.actions.append(action)
        return dedup
