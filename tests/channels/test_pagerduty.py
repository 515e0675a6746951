"""The PagerDuty channel against the Events API v2 stand-in: event shapes, dedup keys, acks, limits, failures."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from alert_router.channels.base import ChannelError
from alert_router.channels.pagerduty import PagerDutyChannel, PagerDutyConfig
from alert_router.chat.authz import Identity
from alert_router.errors import FailureReason
from tests.channels.helpers import alert, notification, write_config
from tests.helpers import JSON_TYPE, fixture_bytes, running_app, settle, wait_for
from tests.standins.pagerduty import PagerDutyStandin

LINKS = {"alertmanager_url": "http://am:9093", "grafana_url": "https://grafana.example"}
GROUP = '{}:{alertname="ModelServiceDown", namespace="prod"}'


def make(standin: PagerDutyStandin, **kw: Any) -> PagerDutyChannel:
    cfg = PagerDutyConfig.model_validate(
        {"routing_key": standin.routing_key, "url": standin.url, "timeout": 2, "throttle_wait": 1, **kw})
    return PagerDutyChannel("pagerduty", cfg, LINKS)


@pytest.fixture
async def pd(pagerduty_standin: PagerDutyStandin) -> AsyncIterator[PagerDutyChannel]:
    channel = make(pagerduty_standin)
    yield channel
    await channel.aclose()


async def test_trigger_carries_summary_severity_details_and_links(
    pd: PagerDutyChannel, pagerduty_standin: PagerDutyStandin
) -> None:
    """One trigger: dedup_key = SHA-256 of the group key (as Alertmanager sends), PD-CEF fields, links."""
    a = alert(labels={"instance": "10.0.0.7:8080", "deployment": "model-api"},
              annotations={"summary": "Model service might be down!", "description": "no traffic"})
    extra = {"enrichment": {"logs": [{"query": '{app="model-api"}', "status": "ok",
                                      "lines": [{"ts": "1", "pod": "model-api-1", "line": "Traceback boom"}],
                                      "fingerprints": [a.fingerprint]}],
                            "kubernetes": [{"target": "Deployment/prod/model-api", "status": "ok",
                                            "summary": "3/3 pods CrashLoopBackOff, OOMKilled",
                                            "fingerprints": [a.fingerprint]}]},
             "runbook_runs": [{"run_id": "7", "runbook": "restart-model-api", "status": "succeeded"}]}
    ref = await pd.send(notification([a], group_key=GROUP, extra=extra), None)
    key = hashlib.sha256(GROUP.encode()).hexdigest()
    assert ref == {"dedup_key": key, "status": "firing"}
    [event] = pagerduty_standin.events
    assert event["event_action"] == "trigger" and event["dedup_key"] == key
    payload = event["payload"]
    assert payload["summary"] == "[FIRING:1] ModelServiceDown · prod: Model service might be down!"
    assert payload["severity"] == "critical" and payload["source"] == "10.0.0.7:8080"
    assert (payload["component"], payload["group"], payload["class"]) == ("model-api", "prod", "ModelServiceDown")
    assert payload["timestamp"].startswith("2026-11-27T00:00:00")
    details = payload["custom_details"]
    assert details["firing"] == 1 and details["alerts"][0]["labels"]["instance"] == "10.0.0.7:8080"
    assert details["alerts"][0]["description"] == "no traffic"
    assert details["logs"] == [{"query": '{app="model-api"}', "status": "ok", "lines": ["model-api-1 Traceback boom"]}]
    assert details["runbook_runs"][0]["runbook"] == "restart-model-api"
    assert details["kubernetes"] == ["Deployment/prod/model-api: 3/3 pods CrashLoopBackOff, OOMKilled"]
    texts = [link["text"] for link in event["links"]]
    assert texts == ["Prometheus graph", "Grafana", "Alertmanager", "Silence in Alertmanager"]
    assert event["client"] == "alert-router" and event["client_url"] == "http://alertmanager:9093"
    [incident] = pagerduty_standin.alerts()
    assert incident.status == "triggered"


@pytest.mark.parametrize(
    ("severity", "config", "expected"),
    [("critical", {}, "critical"), ("warning", {}, "warning"), ("info", {}, "info"), ("page", {}, "critical"),
     ("High", {}, "error"), ("bogus", {}, "error"), ("bogus", {"default_severity": "warning"}, "warning"),
     ("p1", {"severities": {"P1": "critical"}}, "critical")],
)
async def test_severity_comes_from_the_severity_label(
    pagerduty_standin: PagerDutyStandin, severity: str, config: dict[str, Any], expected: str
) -> None:
    channel = make(pagerduty_standin, **config)
    try:
        await channel.send(notification([alert(severity=severity)]), None)
    finally:
        await channel.aclose()
    assert pagerduty_standin.events[0]["payload"]["severity"] == expected


async def test_repeat_resolve_and_fire_again_follow_one_incident_per_episode(
    pd: PagerDutyChannel, pagerduty_standin: PagerDutyStandin
) -> None:
    ref = await pd.send(notification(), None)
    ref = await pd.send(notification([alert(), alert("Second")]), ref)
    ref = await pd.send(notification([alert(status="resolved")]), ref)
    assert ref is not None and ref["status"] == "resolved"
    [incident] = pagerduty_standin.alerts()
    assert incident.actions == ["trigger", "trigger", "resolve"] and incident.status == "resolved"
    assert pagerduty_standin.events[2] == {"routing_key": pagerduty_standin.routing_key,
                                           "dedup_key": incident.dedup_key, "event_action": "resolve"}
    await pd.send(notification(), ref)
    assert [a.status for a in pagerduty_standin.alerts()] == ["resolved", "triggered"]


async def test_chat_ack_sends_acknowledge(pd: PagerDutyChannel, pagerduty_standin: PagerDutyStandin) -> None:
    """All firing alerts acked: acknowledge (only); later changes update the acknowledged incident."""
    a = alert()
    ref = await pd.send(notification([a]), None)
    acked = {"acked_by": {a.fingerprint: "rita"}}
    ref = await pd.send(notification([a], extra=acked), ref)
    assert ref is not None and ref["status"] == "acked"
    assert [e["event_action"] for e in pagerduty_standin.events] == ["trigger", "acknowledge"]
    ref = await pd.send(notification([a, alert("Other", status="resolved")], extra=acked), ref)
    assert [e["event_action"] for e in pagerduty_standin.events][-1] == "trigger"
    [incident] = pagerduty_standin.alerts()
    assert incident.status == "acknowledged"
    assert incident.payload["custom_details"]["acked_by"] == ["rita"]


async def test_ack_of_a_group_pagerduty_never_saw_opens_then_acknowledges(
    pd: PagerDutyChannel, pagerduty_standin: PagerDutyStandin
) -> None:
    a = alert()
    await pd.send(notification([a], extra={"acked_by": {a.fingerprint: "rita"}}), None)
    assert [e["event_action"] for e in pagerduty_standin.events] == ["trigger", "acknowledge"]
    assert pagerduty_standin.alerts()[0].status == "acknowledged"


async def test_limits_summary_1024_and_event_512kb(pd: PagerDutyChannel, pagerduty_standin: PagerDutyStandin) -> None:
    """A 5,000-character summary is cut to 1,024; 2,000 alerts with long descriptions fit in 512 KB."""
    await pd.send(notification([alert(annotations={"summary": "s" * 5000})], group_key="g1"), None)
    assert len(pagerduty_standin.events[0]["payload"]["summary"]) == 1024
    many = [alert(f"A{i}", labels={"pod": f"p{i}"}, annotations={"summary": "x" * 500, "description": "d" * 2000})
            for i in range(2000)]
    await pd.send(notification(many, group_key="g2"), None)
    event = pagerduty_standin.events[1]
    details = event["payload"]["custom_details"]
    assert 0 < len(details["alerts"]) < 2000 and details["alerts_not_listed"] == 2000 - len(details["alerts"])
    assert len(json.dumps(event).encode()) <= 512 * 1024
    assert [r.status for r in pagerduty_standin.requests] == [202, 202]


async def test_only_https_images_are_attached(pd: PagerDutyChannel, pagerduty_standin: PagerDutyStandin) -> None:
    images = [{"src": "https://graphs.example/p95.png", "href": "https://grafana.example/d/1", "alt": "p95"},
              {"src": "http://insecure/graph.png"}, "junk"]
    await pd.send(notification(extra={"images": images}), None)
    assert pagerduty_standin.events[0]["images"] == [images[0]]


@pytest.mark.parametrize(
    ("setup", "reason", "retryable", "retry_after"),
    [
        (lambda s: s.fail_next(1, 500), FailureReason.SERVER_ERROR, True, None),
        (lambda s: s.fail_next(1, 503), FailureReason.SERVER_ERROR, True, None),
        (lambda s: s.rate_limit_next(1), FailureReason.RATE_LIMITED, True, 1.0),  # throttle_wait: no Retry-After
        (lambda s: setattr(s, "retry_after_header", 7) or s.rate_limit_next(1), FailureReason.RATE_LIMITED, True, 7.0),
        (lambda s: s.routing_keys.clear(), FailureReason.INVALID, False, None),
    ],
)
async def test_failures_are_classified(
    pd: PagerDutyChannel, pagerduty_standin: PagerDutyStandin, setup: Any, reason: FailureReason, retryable: bool,
    retry_after: float | None,
) -> None:
    """5xx and 429 retryable (429 after Retry-After, else throttle_wait); 400 permanent, with PagerDuty's text."""
    setup(pagerduty_standin)
    with pytest.raises(ChannelError) as err:
        await pd.send(notification(), None)
    assert (err.value.reason, err.value.retryable, err.value.retry_after) == (reason, retryable, retry_after)
    if reason is FailureReason.INVALID:
        assert "Invalid routing key" in str(err.value)
    assert pagerduty_standin.routing_key not in str(err.value)


async def test_connection_errors_and_timeouts_are_retryable(pagerduty_standin: PagerDutyStandin) -> None:
    slow = make(pagerduty_standin, timeout=0.3)
    pagerduty_standin.delay_next(1, seconds=2)
    dead = PagerDutyChannel("pd", PagerDutyConfig(routing_key="K" * 32, url="http://127.0.0.1:9/v2/enqueue"))
    try:
        with pytest.raises(ChannelError) as err:
            await slow.send(notification(), None)
        assert err.value.reason is FailureReason.TIMEOUT and err.value.retryable
        with pytest.raises(ChannelError) as err:
            await dead.send(notification(), None)
        assert err.value.reason is FailureReason.CONNECTION and err.value.retryable
    finally:
        await slow.aclose()
        await dead.aclose()


def test_config_needs_a_routing_key_when_enabled(tmp_path: Path) -> None:
    PagerDutyConfig.model_validate({}, context={"enabled": False})
    with pytest.raises(ValueError, match="needs routing_key"):
        PagerDutyConfig.model_validate({}, context={"enabled": True})
    for bad in ("k", "R" * 31, "R" * 31 + "-", "R" * 33):
        with pytest.raises(ValueError, match="32 letters and digits"):
            PagerDutyConfig.model_validate({"routing_key": bad})
    with pytest.raises(ValueError, match="severities"):
        PagerDutyConfig.model_validate({"routing_key": "k", "severities": {"x": "urgent"}})
    key = tmp_path / "key"
    key.write_text("R" * 32 + "\n")
    assert PagerDutyConfig.model_validate({"routing_key_file": str(key)}).routing_key is not None


async def test_an_ack_in_chat_acknowledges_the_incident(tmp_path: Path, pagerduty_standin: PagerDutyStandin) -> None:
    """Through the service: firing triggers; `ack` from chat re-notifies PagerDuty, which gets acknowledge."""
    receivers = (f"  - name: pagerduty\n    pagerduty: {{routing_key: {pagerduty_standin.routing_key}, "
                 f"url: '{pagerduty_standin.url}', timeout: 2}}\n")
    rules = "rules:\n  - name: pager\n    match: []\n    receivers: [pagerduty]\ndefault:\n  receivers: [file]\n"
    cfg = write_config(tmp_path, receivers, rules=rules)
    cfg.write_text(cfg.read_text() + "chat:\n  users:\n    - {name: rita, slack: URESP, role: responder}\n")
    async with running_app(cfg) as (client, rt):
        r = await client.post("/webhook", data=fixture_bytes("firing-service-down.json"), headers=JSON_TYPE)
        assert r.status == 200
        await wait_for(lambda: pagerduty_standin.alerts())
        reply = await rt.services["chat"].commands.execute_text(Identity("slack", "URESP", "C0"), "ack 2bb1035c")
        assert reply.ok, reply.text
        await wait_for(lambda: pagerduty_standin.alerts()[0].status == "acknowledged")
        await settle(rt)
    assert [e["event_action"] for e in pagerduty_standin.events] == ["trigger", "acknowledge"]


async def test_an_incident_opened_by_escalation_resolves_with_the_group(
    tmp_path: Path, pagerduty_standin: PagerDutyStandin
) -> None:
    """PagerDuty only as an escalation receiver: the group's resolve closes the incident the escalation opened."""
    receivers = (f"  - name: pagerduty\n    pagerduty: {{routing_key: {pagerduty_standin.routing_key}, "
                 f"url: '{pagerduty_standin.url}', timeout: 2}}\n")
    rules = ("rules:\n  - name: pager\n    match: []\n    receivers: [file]\n"
             "    escalate: {after: 1s, receivers: [pagerduty]}\ndefault:\n  receivers: [file]\n")
    cfg = write_config(tmp_path, receivers, rules=rules)
    cfg.write_text(cfg.read_text() + "chat:\n  escalation: {poll_interval: 0.1}\n"
                   "  users:\n    - {name: rita, slack: URESP, role: responder}\n")
    async with running_app(cfg) as (client, rt):
        r = await client.post("/webhook", data=fixture_bytes("firing-service-down.json"), headers=JSON_TYPE)
        assert r.status == 200
        await wait_for(lambda: pagerduty_standin.alerts(), timeout=10)
        assert pagerduty_standin.alerts()[0].status == "triggered"
        r = await client.post("/webhook", data=fixture_bytes("resolved-service-down.json"), headers=JSON_TYPE)
        assert r.status == 200
        await wait_for(lambda: pagerduty_standin.alerts()[0].status == "resolved", timeout=10)
        await settle(rt)
    actions = [e["event_action"] for e in pagerduty_standin.events]
    assert actions[0] == "trigger" and actions[-1] == "resolve" and "resolve" not in actions[:-1]
