"""The data that flows through the pipeline: the webhook body, alerts and notifications."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from alert_router.errors import PayloadError

ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)

MAX_KEY_BYTES = 1024
"""The longest ``groupKey`` or ``fingerprint`` kept as sent (in UTF-8 bytes); longer ones are shortened.

Both are index keys in the store, and PostgreSQL refuses an index entry over about 2.7 KB; a key that long
would be answered 503 for ever. :func:`short_key` keeps its first bytes and a hash of the whole, so two
long keys stay apart and the same key always shortens the same way.
"""

_NUL_ESCAPE = re.compile(rb"(?<!\\)((?:\\\\)*)\\u0000")
"""A JSON ``\\u0000`` escape (preceded by an even run of backslashes, so not an escaped backslash)."""


def clean_body(body: bytes) -> bytes:
    """``body`` with every U+0000 in its JSON strings replaced by U+FFFD (the replacement character).

    PostgreSQL's text cannot hold U+0000, and Alertmanager would retry a body the store cannot take for
    ever; SQLite could, but both stores keep the same thing. JSON text cannot carry a raw NUL byte inside a
    string (it is a control character), so the escape is the only spelling there is to replace.
    """
    if b"\\u0000" not in body:
        return body
    return _NUL_ESCAPE.sub(rb"\1\\ufffd", body)


def short_key(key: str, limit: int = MAX_KEY_BYTES) -> str:
    """``key`` if it is at most ``limit`` UTF-8 bytes, else its first bytes, ``~`` and a SHA-256 prefix of it."""
    if len(key) * 4 <= limit:
        return key
    raw = key.encode("utf-8")
    if len(raw) <= limit:
        return key
    digest = hashlib.sha256(raw).hexdigest()[:32]
    head = raw[: limit - len(digest) - 1].decode("utf-8", "ignore")
    return f"{head}~{digest}"


class Alert(BaseModel):
    """One alert as Alertmanager sends it (unknown fields are kept)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    status: Literal["firing", "resolved"]
    labels: dict[str, str] = Field(min_length=1)  # checked in pydantic-core: no Python call per alert
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: datetime = Field(alias="startsAt")
    ends_at: datetime = Field(default=ZERO_TIME, alias="endsAt")
    generator_url: str = Field(default="", alias="generatorURL")
    fingerprint: str = Field(min_length=1)

    @property
    def name(self) -> str:
        """The ``alertname`` label, or ``"(unnamed)"``."""
        return self.labels.get("alertname", "(unnamed)")

    @property
    def severity(self) -> str:
        """The ``severity`` label, or ``"none"``."""
        return self.labels.get("severity", "none")

    @property
    def is_firing(self) -> bool:
        """Whether the alert is firing."""
        return self.status == "firing"

    def ends_at_or_none(self) -> datetime | None:
        """``endsAt`` unless it is Alertmanager's zero time (a firing alert)."""
        return None if self.ends_at.year <= 1 else self.ends_at

    def wire(self) -> dict[str, Any]:
        """Render back in Alertmanager's field names, with timestamps in RFC 3339."""
        return self.model_dump(mode="json", by_alias=True)


class WebhookPayload(BaseModel):
    """The body of Alertmanager's webhook (version 4); unknown fields are accepted."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    version: Literal["4"]
    group_key: str = Field(alias="groupKey", min_length=1)
    status: Literal["firing", "resolved"]
    receiver: str = ""
    alerts: list[Alert] = Field(min_length=1)
    group_labels: dict[str, str] = Field(default_factory=dict, alias="groupLabels")
    common_labels: dict[str, str] = Field(default_factory=dict, alias="commonLabels")
    common_annotations: dict[str, str] = Field(default_factory=dict, alias="commonAnnotations")
    external_url: str = Field(default="", alias="externalURL")
    truncated_alerts: int = Field(default=0, alias="truncatedAlerts", ge=0)


def parse_payload(body: bytes) -> WebhookPayload:
    """Validate a webhook body; raise :class:`PayloadError` naming the first bad field.

    U+0000 becomes U+FFFD (:func:`clean_body`), and an over-long ``groupKey`` or ``fingerprint`` is shortened
    (:func:`short_key`), so whatever is parsed can be stored.
    """
    try:
        payload = WebhookPayload.model_validate_json(clean_body(body))
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        loc = ".".join(str(p) for p in err["loc"])
        if err["type"] == "json_invalid":
            raise PayloadError(f"body is not valid JSON: {err['msg']}", None) from None
        if err["type"] == "model_type" and not loc:
            raise PayloadError("body must be a JSON object", None) from None
        if loc == "version":
            raise PayloadError(
                f'unsupported webhook version {err.get("input")!r}: alert-router understands version "4"',
                "version",
            ) from None
        if err["type"] == "too_short" and loc.endswith(".labels"):
            raise PayloadError(f"{loc}: an alert needs at least one label", loc) from None
        raise PayloadError(f"{loc}: {err['msg']}", loc or None) from None
    payload.group_key = short_key(payload.group_key)
    for a in payload.alerts:
        if len(a.fingerprint) * 4 > MAX_KEY_BYTES:
            a.fingerprint = short_key(a.fingerprint)
    return payload


class Notification(BaseModel):
    """What one receiver is asked to deliver: one Alertmanager group's alerts after a state change."""

    receiver: str
    rule: str
    group_key: str
    status: Literal["firing", "resolved"]
    alerts: list[Alert]
    changed: list[str] = Field(default_factory=list, description="fingerprints whose state changed")
    group_labels: dict[str, str] = Field(default_factory=dict)
    common_labels: dict[str, str] = Field(default_factory=dict)
    common_annotations: dict[str, str] = Field(default_factory=dict)
    external_url: str = ""
    truncated_alerts: int = 0
    received_at: datetime
    extra: dict[str, Any] = Field(default_factory=dict, description="enrichment, digests and other stage output")

    @property
    def firing(self) -> list[Alert]:
        """The firing alerts."""
        return [a for a in self.alerts if a.is_firing]

    @property
    def resolved(self) -> list[Alert]:
        """The resolved alerts."""
        return [a for a in self.alerts if not a.is_firing]

    def record(self) -> dict[str, Any]:
        """A JSON-ready summary, as written by the ``file`` receiver."""
        return {
            "receiver": self.receiver,
            "rule": self.rule,
            "group_key": self.group_key,
            "status": self.status,
            "received_at": self.received_at.isoformat(),
            "changed": self.changed,
            "truncated_alerts": self.truncated_alerts,
            "group_labels": self.group_labels,
            "alerts": [
                {
                    "fingerprint": a.fingerprint,
                    "status": a.status,
                    "labels": a.labels,
                    "annotations": a.annotations,
                    "startsAt": a.starts_at.isoformat(),
                    "endsAt": (e.isoformat() if (e := a.ends_at_or_none()) else None),
                    "generatorURL": a.generator_url,
                }
                for a in self.alerts
            ],
            **({"extra": self.extra} if self.extra else {}),
        }
