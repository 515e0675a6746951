"""Silences against a real Alertmanager on loopback, driven from a signed Slack slash command.

The alert travels Alertmanager → webhook → store; ``silence <id> 1h`` creates a real silence through
API v2 (matchers = the alert's labels, ``createdBy`` = the chat user); Alertmanager then reports the
alert as suppressed by that silence; ``unsilence <id>`` expires it and the alert is active again.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from alert_router.app import build_app
from alert_router.appkeys import RUNTIME
from alert_router.chat.alertmanager import AlertmanagerClient, AlertmanagerError
from alert_router.chat.settings import AlertmanagerApiConfig
from alert_router.config import load
from alert_router.matchers import parse_matchers
from tests.chat.support import SLACK_SECRET, chat_config, slack_headers, slash_body
from tests.helpers import wait_for
from tests.procs.alertmanager import free_port

pytestmark = pytest.mark.e2e

LABELS = {"alertname": "ChatSilenceE2E", "severity": "critical", "namespace": "prod", "instance": "10.0.0.7:8080"}


async def test_silence_and_unsilence_from_slack_against_a_real_alertmanager(
    tmp_path: Path, alertmanager_factory: Any
) -> None:
    port = free_port()
    [am] = await alertmanager_factory([f"http://127.0.0.1:{port}/webhook"])
    cfg = chat_config(tmp_path, f"  slack: {{signing_secret: {SLACK_SECRET}}}\n  alertmanager: {{url: '{am.url}'}}\n")
    app = build_app(load(cfg, {}))
    async with TestClient(TestServer(app, host="127.0.0.1", port=port)) as client:
        rt = app[RUNTIME]
        await am.push_alerts([{"labels": LABELS, "annotations": {"summary": "e2e"}}])

        async def stored() -> Any:
            name = LABELS["alertname"]
            return next((a for a in await rt.store.alerts("firing") if a.labels.get("alertname") == name), None)

        alert = await wait_for(stored, timeout=20)

        body = slash_body(f"silence {alert.fingerprint[:8]} 1h e2e maintenance")
        r = await client.post("/slack/commands", data=body, headers=slack_headers(body))
        assert r.status == 200
        answer = await r.json()
        assert answer["response_type"] == "in_channel", answer
        found = re.search(r"Silence id: (\S+)", answer["text"])
        assert found, answer["text"]
        silence_id = found.group(1)
        assert f"{am.url}/#/silences/{silence_id}" in answer["text"]

        (silence,) = [s for s in await am.silences() if s["id"] == silence_id]
        assert silence["createdBy"] == "rita" and silence["comment"] == "e2e maintenance"
        assert silence["status"]["state"] == "active"
        assert sorted((m["name"], m["value"], m["isRegex"], m["isEqual"]) for m in silence["matchers"]) == sorted(
            (k, v, False, True) for k, v in LABELS.items())

        async def suppressed() -> bool:
            alerts = await am.alerts(filter=LABELS)
            return bool(alerts) and alerts[0]["status"]["state"] == "suppressed" \
                and silence_id in alerts[0]["status"]["silencedBy"]

        await wait_for(suppressed, timeout=10)

        body = slash_body(f"unsilence {silence_id}")
        r = await client.post("/slack/commands", data=body, headers=slack_headers(body))
        assert r.status == 200
        assert f"expired silence {silence_id}" in (await r.json())["text"]
        (silence,) = [s for s in await am.silences() if s["id"] == silence_id]
        assert silence["status"]["state"] == "expired"

        async def active_again() -> bool:
            alerts = await am.alerts(filter=LABELS)
            return bool(alerts) and alerts[0]["status"]["state"] == "active" and not alerts[0]["status"]["silencedBy"]

        await wait_for(active_again, timeout=10)
        records = [r for r in await rt.store.audit_records() if r.event == "chat_command"]
        assert [(r.details["command"], r.details["outcome"], r.details.get("silence_id")) for r in records] == [
            ("silence", "ok", silence_id), ("unsilence", "ok", silence_id)]


async def test_client_against_a_real_alertmanager(alertmanager_factory: Any) -> None:
    [am] = await alertmanager_factory(["http://127.0.0.1:9/unused"])
    client = AlertmanagerClient(AlertmanagerApiConfig(url=am.url, timeout=5))
    try:
        status = await client.status()
        assert status["versionInfo"]["version"].startswith("0.")
        now = datetime.now(UTC)
        sid = await client.create_silence(parse_matchers('{alertname="X", job=~"a|b"}'), starts_at=now,
                                          ends_at=now + timedelta(minutes=30), created_by="tester", comment="c")
        got = await client.silence(sid)
        assert got.state == "active" and got.created_by == "tester"
        assert got.matchers_text() == '{alertname="X", job=~"a|b"}'
        assert [s.id for s in await client.silences(['alertname="X"'])] == [sid]
        await client.expire_silence(sid)
        await client.expire_silence(sid)  # expiring twice is fine
        assert (await client.silence(sid)).state == "expired"
        with pytest.raises(AlertmanagerError) as err:
            await client.silence("00000000-0000-0000-0000-000000000000")
        assert err.value.status == 404
        with pytest.raises(AlertmanagerError, match="must not match the empty string"):
            await client.create_silence(parse_matchers('job=~".*"'), starts_at=now, ends_at=now + timedelta(hours=1),
                                        created_by="t", comment="c")
        assert [s.id for s in await client.silences()] == [sid], "nothing was created for the refused silence"
    finally:
        await client.aclose()


async def test_unreachable_alertmanager_is_reported_after_retries() -> None:
    client = AlertmanagerClient(AlertmanagerApiConfig(url=f"http://127.0.0.1:{free_port()}", timeout=1, retries=1))
    try:
        with pytest.raises(AlertmanagerError, match="unreachable"):
            await client.status()
    finally:
        await client.aclose()
