"""Builders shared by the channel, render and throttle tests: alerts, notifications, webhook bodies, configs."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from alert_router.appkeys import Runtime
from alert_router.models import Alert, Notification

T0 = datetime(2026, 11, 27, 0, 0, 0, tzinfo=UTC)

HOSTILE = {
    "angle": "<!channel> <b>bold</b> <a href='javascript:x'>x</a> </code>",
    "amp": "a & b &amp; &nbsp; &#0; &",
    "stars": "*bold* _italic_ ~strike~ `code` ```block```",
    "quote": "\"double\" 'single' \\ back",
    "long": "L" * 6000 + "<end>",
    "emoji": "🔥 naïve ünïcödé",
}
"""Label values that must render inert on every channel."""


def fp(name: str) -> str:
    """A stable 16-hex fingerprint for a test alert name."""
    return hashlib.sha256(name.encode()).hexdigest()[:16]


def alert(
    name: str = "ModelServiceDown",
    *,
    severity: str = "critical",
    status: str = "firing",
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    starts: datetime = T0,
    ends: datetime | None = None,
    key: str | None = None,
) -> Alert:
    """An Alert as Alertmanager sends it."""
    lab = {"alertname": name, "severity": severity, "namespace": "prod", **(labels or {})}
    body: dict[str, Any] = {
        "status": status,
        "labels": lab,
        "annotations": annotations if annotations is not None else {"summary": f"{name} summary"},
        "startsAt": starts.isoformat(),
        "endsAt": (ends or (starts + timedelta(hours=3, minutes=12)) if status == "resolved" else
                   datetime(1, 1, 1, tzinfo=UTC)).isoformat(),
        "generatorURL": "http://prometheus:9090/graph?g0.expr=up",
        "fingerprint": fp(key or json.dumps(lab, sort_keys=True)),
    }
    return Alert.model_validate(body)


def notification(
    alerts: list[Alert] | None = None,
    *,
    receiver: str = "slack",
    group_key: str = '{}:{alertname="ModelServiceDown", namespace="prod"}',
    extra: dict[str, Any] | None = None,
    received_at: datetime | None = None,
) -> Notification:
    """A Notification holding ``alerts`` (one firing alert by default)."""
    alerts = alerts if alerts is not None else [alert()]
    return Notification(
        receiver=receiver,
        rule="test",
        group_key=group_key,
        status="firing" if any(a.is_firing for a in alerts) else "resolved",
        alerts=alerts,
        changed=[a.fingerprint for a in alerts],
        group_labels={"alertname": alerts[0].name, "namespace": "prod"} if alerts else {},
        common_labels={},
        external_url="http://alertmanager:9093",
        received_at=received_at or (T0 + timedelta(minutes=40)),
        extra=extra or {},
    )


def webhook_body(alerts: list[Alert], group_key: str, status: str | None = None) -> dict[str, Any]:
    """An Alertmanager webhook body (version 4) for ``alerts``."""
    firing = any(a.is_firing for a in alerts)
    return {
        "version": "4",
        "groupKey": group_key,
        "status": status or ("firing" if firing else "resolved"),
        "receiver": "alert-router",
        "alerts": [a.wire() for a in alerts],
        "groupLabels": {"alertname": alerts[0].name},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "truncatedAlerts": 0,
    }


def write_config(tmp: Path, receivers: str, *, rules: str | None = None, delivery: str = "") -> Path:
    """A config under ``tmp`` with ``receivers`` (YAML list items) and rules sending everything to them."""
    (tmp / "rules").mkdir(parents=True, exist_ok=True)
    (tmp / "runbooks").mkdir(parents=True, exist_ok=True)
    names = [line.split("name:", 1)[1].strip() for line in receivers.splitlines() if "- name:" in line]
    people = [n for n in names if n != "file"]
    (tmp / "rules" / "rules.yaml").write_text(
        rules
        or (
            "rules:\n  - name: record\n    match: []\n    receivers: [file]\n    continue: true\n"
            f"  - name: people\n    match: []\n    receivers: [{', '.join(people)}]\n"
            "default:\n  receivers: [file]\n"
        )
    )
    cfg = (
        f"data_dir: {tmp / 'data'}\n"
        "ingest: {poll_interval: 0.1}\n"
        f"delivery: {{retry_for: 8s, attempt_timeout: 3s, postpone: 0.3s{', ' + delivery if delivery else ''}}}\n"
        "receivers:\n"
        "  - name: file\n    file: {path: out.jsonl, fsync: false}\n"
        f"{receivers}"
        "rules: rules/\nrunbooks: runbooks/\n"
    )
    path = tmp / "alert-router.yaml"
    path.write_text(cfg)
    return path


def sample(rt: Runtime, name: str, **labels: str) -> float:
    """A metric's current value (0 when the series does not exist)."""
    return rt.metrics.registry.get_sample_value(name, labels) or 0.0


async def post(client: Any, body: bytes | dict[str, Any]) -> None:
    """POST a webhook body to the running app and require 200."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = await client.post("/webhook", data=data, headers={"Content-Type": "application/json"})
    assert r.status == 200, await r.text()
