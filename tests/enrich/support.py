"""Helpers for the enrichment tests: configs pointing at the Loki stand-in, alerts and notifications."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from alert_router.config import Config, load
from alert_router.models import Alert, Notification
from tests.helpers import DEFAULT_RULES, write_config

NS = 1_000_000_000


def enrich_config(
    tmp: Path,
    loki_url: str,
    loki: str = "",
    *,
    rules: str = DEFAULT_RULES,
    top: str = "",
    env: dict[str, str] | None = None,
) -> Config:
    """A config whose ``enrich.loki`` points at ``loki_url``; ``loki`` adds YAML lines inside ``enrich.loki``."""
    extra = "".join(f"    {line}\n" for line in loki.splitlines() if line.strip())
    body = (
        "links: {alertmanager_url: 'http://am.example:9093', grafana_url: 'http://grafana.example'}\n"
        f"enrich:\n  loki:\n    url: {loki_url}\n{extra}{top}"
    )
    return load(write_config(tmp, body, rules=rules), env or {})


def alert(
    fingerprint: str,
    labels: dict[str, str],
    *,
    starts: datetime | None = None,
    ends: datetime | None = None,
    generator: str = "http://prometheus:9090/graph?g0.expr=up",
) -> Alert:
    starts = starts or datetime.now(UTC) - timedelta(minutes=1)
    data: dict[str, Any] = {
        "status": "resolved" if ends else "firing",
        "labels": labels,
        "annotations": {"summary": "s"},
        "startsAt": starts.isoformat(),
        "endsAt": ends.isoformat() if ends else "0001-01-01T00:00:00Z",
        "generatorURL": generator,
        "fingerprint": fingerprint,
    }
    return Alert.model_validate(data)


def notification(
    alerts: list[Alert], rule: str = "everything", external_url: str = "http://alertmanager.monitoring:9093"
) -> Notification:
    return Notification(
        receiver="file",
        rule=rule,
        group_key='{}:{alertname="X"}',
        status="firing" if any(a.is_firing for a in alerts) else "resolved",
        alerts=alerts,
        changed=[a.fingerprint for a in alerts],
        external_url=external_url,
        received_at=datetime.now(UTC),
    )


def ns(dt: datetime) -> int:
    return int(dt.timestamp()) * NS + dt.microsecond * 1000
