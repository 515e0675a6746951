"""The Opsgenie channel against the Alert API stand-in: alias lifecycle, priorities, updates, acks, limits, failures."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from alert_router.channels.base import ChannelError
from alert_router.channels.opsgenie import OpsgenieChannel, OpsgenieConfig
from alert_router.errors import FailureReason
from tests.channels.helpers import alert, notification
from tests.standins.opsgenie import OpsgenieStandin

LINKS = {"alertmanager_url": "http://am:9093", "grafana_url": "https://grafana.example"}


def make(standin: OpsgenieStandin, **kw: Any) -> OpsgenieChannel:
    cfg = OpsgenieConfig.model_validate({"api_key": standin.api_key, "api_url": standin.base_url, "timeout": 2, **kw})
    return OpsgenieChannel("opsgenie", cfg, LINKS)


@pytest.fixture
async def og(opsgenie_standin: OpsgenieStandin) -> AsyncIterator[OpsgenieChannel]:
    channel = make(opsgenie_standin)
    yield channel
    await channel.aclose()


def methods(standin: OpsgenieStandin) -> list[str]:
    return [r.method for r in standin.requests]


async def test_create_carries_alias_message_priority_description_and_details(
    og: OpsgenieChannel, opsgenie_standin: OpsgenieStandin
) -> None:
    a = alert(labels={"pod": "model-api-1"}, annotations={"summary": "Model service might be down!",
                                                          "description": "no traffic for 5m"})
    n = notification([a])
    ref = await og.send(n, None)
    alias = hashlib.sha256(n.group_key.encode()).hexdigest()
    [created] = opsgenie_standin.alerts
    assert created.alias == alias and ref is not None and ref["alias"] == alias and ref["status"] == "firing"
    assert created.message == "[FIRING:1] ModelServiceDown · prod: Model service might be down!"
    assert created.priority == "P1" and created.tags == ["alert-router", "critical"]
    assert "Summary:     Model service might be down!" in created.description
    assert "no traffic for 5m" in created.description and "Labels:      namespace=prod" in created.description
    assert created.details["namespace"] == "prod" and created.details["Silence in Alertmanager"].startswith("http")
    assert created.entity == "model-api-1" and created.source == "alert-router"
    assert opsgenie_standin.requests[0].params["alias"] == alias


@pytest.mark.parametrize(
    ("severity", "config", "expected"),
    [("critical", {}, "P1"), ("error", {}, "P2"), ("warning", {}, "P3"), ("minor", {}, "P4"), ("info", {}, "P5"),
     ("unknown", {}, "P3"), ("unknown", {"default_priority": "P4"}, "P4"), ("sev1", {"priorities": {"SEV1": "P1"}},
                                                                               "P1")],
)
async def test_priority_comes_from_the_severity_label(
    opsgenie_standin: OpsgenieStandin, severity: str, config: dict[str, Any], expected: str
) -> None:
    channel = make(opsgenie_standin, **config)
    try:
        await channel.send(notification([alert(severity=severity)]), None)
    finally:
        await channel.aclose()
    assert opsgenie_standin.alerts[0].priority == expected


async def test_group_changes_update_only_what_changed_then_resolve_closes(
    og: OpsgenieChannel, opsgenie_standin: OpsgenieStandin
) -> None:
    """An open alert: a create counts an occurrence, PUTs carry only what changed; resolve closes by alias."""
    first = alert()
    ref = await og.send(notification([first]), None)
    ref = await og.send(notification([first]), ref)  # the same content again
    assert methods(opsgenie_standin) == ["create", "create"]
    ref = await og.send(notification([first, alert("Second", severity="warning")]), ref)
    assert methods(opsgenie_standin)[2:] == ["create", "update-message", "update-description"]
    [a] = opsgenie_standin.alerts
    assert a.count == 3 and a.message == "[FIRING:2] ModelServiceDown · prod" and "Second" in a.description
    ref = await og.send(notification([alert("Second", severity="warning")]), ref)  # priority drops to P3
    assert "update-priority" in methods(opsgenie_standin) and a.priority == "P3"
    ref = await og.send(notification([alert(status="resolved")]), ref)
    assert ref is not None and ref["status"] == "resolved" and a.status == "closed"
    assert a.notes == ["Resolved in Alertmanager after 3h12m."]
    await og.send(notification([alert()]), ref)
    assert [x.status for x in opsgenie_standin.alerts] == ["closed", "open"]


async def test_update_alerts_false_only_creates(opsgenie_standin: OpsgenieStandin) -> None:
    channel = make(opsgenie_standin, update_alerts=False)
    try:
        ref = await channel.send(notification([alert()]), None)
        await channel.send(notification([alert(), alert("Second")]), ref)
    finally:
        await channel.aclose()
    assert methods(opsgenie_standin) == ["create", "create"]


async def test_chat_ack_acknowledges_with_the_user(og: OpsgenieChannel, opsgenie_standin: OpsgenieStandin) -> None:
    a = alert()
    ref = await og.send(notification([a]), None)
    ref = await og.send(notification([a], extra={"acked_by": {a.fingerprint: "rita"}}), ref)
    assert methods(opsgenie_standin) == ["create", "acknowledge"]
    assert ref is not None and ref["status"] == "acked"
    [created] = opsgenie_standin.alerts
    assert created.acknowledged and created.owner == "rita" and created.notes == ["Acknowledged in chat by rita."]


async def test_limits_message_description_details(og: OpsgenieChannel, opsgenie_standin: OpsgenieStandin) -> None:
    """Long values are cut to Opsgenie's limits: message 130, description 15,000, details 8,000 in all."""
    huge = {f"label{i}": "v" * 500 for i in range(30)}
    texts = {"summary": "s" * 400, "description": "d" * 900}
    many = [alert(f"A{i}", labels={"pod": f"p{i}", **huge}, annotations=texts) for i in range(200)]
    await og.send(notification(many), None)
    assert [r.status for r in opsgenie_standin.requests] == [202]
    [created] = opsgenie_standin.alerts
    assert len(created.message) <= 130 and len(created.description) <= 15_000
    assert sum(len(k) + len(v) for k, v in created.details.items()) <= 8000
    assert "more alert" in created.description


def test_region_picks_the_api() -> None:
    assert OpsgenieConfig(api_key="k").base_url == "https://api.opsgenie.com"
    assert OpsgenieConfig(api_key="k", region="eu").base_url == "https://api.eu.opsgenie.com"
    assert OpsgenieConfig(api_key="k", region="eu", api_url="http://127.0.0.1:1/").base_url == "http://127.0.0.1:1"
    with pytest.raises(ValueError, match="region"):
        OpsgenieConfig.model_validate({"api_key": "k", "region": "apac"})
    with pytest.raises(ValueError, match="needs api_key"):
        OpsgenieConfig.model_validate({}, context={"enabled": True})
    with pytest.raises(ValueError, match="responder needs"):
        OpsgenieConfig.model_validate({"api_key": "k", "responders": [{"type": "team"}]})


async def test_responders_are_sent(opsgenie_standin: OpsgenieStandin) -> None:
    channel = make(opsgenie_standin, responders=[{"type": "team", "name": "ml-oncall"}])
    try:
        await channel.send(notification(), None)
    finally:
        await channel.aclose()
    assert opsgenie_standin.alerts[0].responders == [{"type": "team", "name": "ml-oncall"}]


@pytest.mark.parametrize(
    ("setup", "reason", "retryable", "retry_after"),
    [
        (lambda s: s.fail_next(1, 500), FailureReason.SERVER_ERROR, True, None),
        (lambda s: s.rate_limit_next(1, retry_after=60), FailureReason.RATE_LIMITED, True, 60.0),
        (lambda s: s.disable(), FailureReason.AUTH, False, None),
        (lambda s: s.fail_next(1, 422), FailureReason.INVALID, False, None),
    ],
)
async def test_failures_are_classified(
    og: OpsgenieChannel, opsgenie_standin: OpsgenieStandin, setup: Any, reason: FailureReason, retryable: bool,
    retry_after: float | None,
) -> None:
    """5xx and 429 (after X-RateLimit-Period-In-Sec) retryable; 401 and 422 permanent; the key never shown."""
    setup(opsgenie_standin)
    with pytest.raises(ChannelError) as err:
        await og.send(notification(), None)
    assert (err.value.reason, err.value.retryable, err.value.retry_after) == (reason, retryable, retry_after)
    assert opsgenie_standin.api_key not in str(err.value)
