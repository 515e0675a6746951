"""Helpers for the chat tests: a config with users and roles, alert bodies, ingestion, fakes for the engine."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alert_router.chat.alertmanager import AlertmanagerClient, AlertmanagerError, Silence
from alert_router.chat.settings import AlertmanagerApiConfig
from alert_router.config import Config
from alert_router.metrics import Metrics
from alert_router.pipeline.ingest import Ingestor
from alert_router.remediation.engine import NotAuthorized
from alert_router.remediation.runs import RunRecord
from alert_router.store.base import Store
from tests.helpers import fixture_json, write_config

USERS = """\
chat:
  users:
    - {name: vera, slack: UVIEWER, telegram: 101, role: viewer}
    - {name: rita, slack: URESP, telegram: 102, role: responder}
    - {name: adam, slack: UADMIN, telegram: 103, role: admin}
"""

ROLES = {None: ("UNKNOWN", 999), "viewer": ("UVIEWER", 101), "responder": ("URESP", 102), "admin": ("UADMIN", 103)}
"""Role -> (Slack user id, Telegram user id) of the configured test users; ``None`` is somebody unknown."""

RUNBOOK = """\
name: restart
match: ['alertname="ModelServiceDown"']
target: {kind: Deployment, namespace: "{{ labels.namespace }}", name: "{{ labels.deployment }}"}
guards:
  allowed_namespaces: [prod]
  require_approval: true
steps:
  - action: rollout_restart
"""

RULES = """\
rules:
  - name: pager
    match: ['severity="critical"']
    receivers: [file]
    runbooks: [restart]
    escalate: {after: 10m, receivers: [lead], repeat: 2}
default:
  receivers: [file]
"""

RECEIVERS = """\
receivers:
  - name: file
    file: {path: out.jsonl, fsync: false}
  - name: lead
    file: {path: lead.jsonl, fsync: false}
"""

FP = "2bb1035c662c69e0"
SHORT = FP[:8]


def chat_config(tmp: Path, extra: str = "", *, rules: str = RULES, receivers: str = RECEIVERS,
                users: str = USERS) -> Path:
    """A config with three users (viewer, responder, admin), an escalating rule and an approval runbook."""
    return write_config(tmp, users + extra, rules=rules, runbooks={"restart.yaml": RUNBOOK}, receivers=receivers)


def alert_payload(
    fingerprint: str = FP,
    *,
    alertname: str = "ModelServiceDown",
    status: str = "firing",
    labels: Mapping[str, str] | None = None,
    starts_at: str = "2026-11-27T00:00:00Z",
    group_key: str | None = None,
) -> dict[str, Any]:
    """A real Alertmanager 0.25 body (firing-service-down.json) carrying one alert."""
    body = fixture_json("firing-service-down.json")
    alert = copy.deepcopy(body["alerts"][0])
    all_labels = {"alertname": alertname, "namespace": "prod", "deployment": "model-api", "severity": "critical",
                  **(labels or {})}
    alert.update(labels=all_labels, status=status, fingerprint=fingerprint, startsAt=starts_at)
    alert["endsAt"] = "2026-11-27T00:10:00Z" if status == "resolved" else "0001-01-01T00:00:00Z"
    body.update(alerts=[alert], status=status, commonLabels=all_labels,
                groupLabels={"alertname": alertname, "namespace": all_labels["namespace"]})
    body["groupKey"] = group_key or f'{{}}:{{alertname="{alertname}", namespace="{all_labels["namespace"]}"}}'
    return body


async def ingest(store: Store, config: Config, body: Mapping[str, Any]) -> bool:
    """Store and process one webhook body, as the service does."""
    raw = json.dumps(body).encode()
    now = time.time()
    await store.enqueue(raw, str(body["groupKey"]), now)
    items = await store.claim_inbox("test-ingest", 10, 60, now)
    ingestor = Ingestor(store, config, Metrics(), "test-ingest")
    ok = True
    for item in items:
        ok = await ingestor.process(item) and ok
    return ok


class FakeAlertmanager(AlertmanagerClient):
    """Records silence calls instead of talking to an Alertmanager."""

    def __init__(self) -> None:
        super().__init__(AlertmanagerApiConfig(url="http://127.0.0.1:9"))
        self.created: list[dict[str, Any]] = []
        self.expired: list[str] = []
        self.listed: list[Silence] = []
        self.filters: list[list[str]] = []

    async def create_silence(self, matchers: Any, *, starts_at: datetime, ends_at: datetime, created_by: str,
                             comment: str) -> str:
        self.created.append({"matchers": [m.to_silence() for m in matchers], "starts_at": starts_at,
                             "ends_at": ends_at, "created_by": created_by, "comment": comment})
        return f"sil-{len(self.created)}"

    async def silence(self, silence_id: str) -> Silence:
        if not silence_id.startswith("sil-"):
            raise AlertmanagerError("silence not found", status=404)
        now = datetime.now(UTC)
        return Silence(silence_id, "active", [{"name": "alertname", "value": "X", "isRegex": False,
                                               "isEqual": True}], now, now, "someone", "c")

    async def expire_silence(self, silence_id: str) -> None:
        self.expired.append(silence_id)

    async def silences(self, filters: Sequence[str] = ()) -> list[Silence]:
        """The silences created here (active until they end, unless expired), plus ``listed`` ones."""
        self.filters.append(list(filters))
        out = list(self.listed)
        for i, c in enumerate(self.created, start=1):
            sid = f"sil-{i}"
            state = "expired" if sid in self.expired else "active"
            out.append(Silence(sid, state, c["matchers"], c["starts_at"], c["ends_at"], c["created_by"], c["comment"]))
        return out

    async def status(self) -> dict[str, Any]:
        return {"versionInfo": {"version": "fake"}, "cluster": {"status": "disabled", "peers": []}}


def run_record(run_id: int, status: str, requested_by: str = "x", decided_by: str | None = None) -> RunRecord:
    """A run as the engine returns it."""
    now = time.time()
    return RunRecord(run_id, "restart", "Deployment/prod/model-api", FP, "gk", status, True, requested_by, None, now,
                     now, None, None, None, decided_by, None, None, 0, "", {})


@dataclass
class FakeEngine:
    """Records what chat commands ask of the remediation engine."""

    calls: list[tuple[Any, ...]] = field(default_factory=list)
    approvers: list[str] = field(default_factory=list)

    async def start(self, runbook_name: str, labels: Mapping[str, str], user: str,
                    annotations: Mapping[str, str] | None = None) -> RunRecord:
        self.calls.append(("start", runbook_name, dict(labels), user))
        return run_record(7, "pending_approval", user)

    async def approve(self, run_id: int, user: str) -> RunRecord:
        if self.approvers and user not in self.approvers:
            raise NotAuthorized(f"{user} may not decide")
        self.calls.append(("approve", run_id, user))
        return run_record(run_id, "running", decided_by=user)

    async def deny(self, run_id: int, user: str, reason: str = "") -> RunRecord:
        self.calls.append(("deny", run_id, user, reason))
        return run_record(run_id, "denied", decided_by=user)


SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


def slack_headers(body: bytes, secret: str = SLACK_SECRET, timestamp: int | None = None) -> dict[str, str]:
    """The headers Slack sends with ``body``: a v0 signature over ``v0:<timestamp>:<body>``."""
    import hashlib
    import hmac

    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}",
            "Content-Type": "application/x-www-form-urlencoded"}


def slash_body(text: str, *, user_id: str = "URESP", user_name: str = "rita", channel_id: str = "C0ALERTS",
               command: str = "/alert-router", response_url: str = "http://127.0.0.1:9/response") -> bytes:
    """A slash-command request body, form-encoded as Slack sends it."""
    from urllib.parse import urlencode

    return urlencode({
        "token": "deprecated-verification-token", "team_id": "T0STANDIN", "team_domain": "standin",
        "channel_id": channel_id, "channel_name": "alerts", "user_id": user_id, "user_name": user_name,
        "command": command, "text": text, "api_app_id": "A0APP", "is_enterprise_install": "false",
        "response_url": response_url, "trigger_id": "1.2.3",
    }).encode()
