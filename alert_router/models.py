"""The data that flows through the pipeline: the webhook body, alerts and notifications."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from alert_router.errors import PayloadError

ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)


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
    """Validate a webhook body; raise :class:`PayloadError` naming the first bad field."""
    try:
        return WebhookPayload.model_validate_json(body)
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
