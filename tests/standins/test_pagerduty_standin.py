"""The PagerDuty stand-in answers like the Events API v2: dedup by key, 202/400/429, PagerDuty's limits."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.standins.pagerduty import PagerDutyStandin


def trigger(standin: PagerDutyStandin, dedup_key: str | None = "k1", **payload: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "routing_key": standin.routing_key, "event_action": "trigger",
        "payload": {"summary": "Disk full on db-1", "source": "db-1", "severity": "critical", **payload},
    }
    if dedup_key is not None:
        event["dedup_key"] = dedup_key
    return event


async def post(standin: PagerDutyStandin, body: Any) -> tuple[int, dict[str, Any], dict[str, str]]:
    async with aiohttp.ClientSession() as session, session.post(standin.url, json=body) as resp:
        return resp.status, await resp.json(content_type=None), dict(resp.headers)


async def test_trigger_repeat_resolve_and_fire_again(pagerduty_standin: PagerDutyStandin) -> None:
    """One alert per dedup_key while open; a trigger after the resolve opens a new one."""
    status, body, _ = await post(pagerduty_standin, trigger(pagerduty_standin))
    assert (status, body) == (202, {"status": "success", "message": "Event processed", "dedup_key": "k1"})
    await post(pagerduty_standin, trigger(pagerduty_standin, summary="Disk still full"))
    [alert] = pagerduty_standin.alerts()
    assert alert.status == "triggered" and alert.actions == ["trigger", "trigger"]
    assert alert.summary == "Disk still full"
    resolve = {"routing_key": pagerduty_standin.routing_key, "dedup_key": "k1", "event_action": "resolve"}
    assert (await post(pagerduty_standin, resolve))[0] == 202
    assert alert.status == "resolved"
    await post(pagerduty_standin, trigger(pagerduty_standin))
    assert [a.status for a in pagerduty_standin.alerts("k1")] == ["resolved", "triggered"]


async def test_acknowledge_keeps_the_alert_acknowledged_through_triggers(pagerduty_standin: PagerDutyStandin) -> None:
    """An acknowledged alert stays acknowledged when more triggers arrive; ack/resolve of nothing is dropped."""
    ack = {"routing_key": pagerduty_standin.routing_key, "dedup_key": "k1", "event_action": "acknowledge"}
    assert (await post(pagerduty_standin, ack))[0] == 202
    assert pagerduty_standin.alerts() == [] and len(pagerduty_standin.dropped) == 1
    await post(pagerduty_standin, trigger(pagerduty_standin))
    await post(pagerduty_standin, ack)
    await post(pagerduty_standin, trigger(pagerduty_standin))
    [alert] = pagerduty_standin.alerts()
    assert alert.status == "acknowledged" and alert.actions == ["trigger", "acknowledge", "trigger"]


async def test_trigger_without_dedup_key_gets_a_fresh_one(pagerduty_standin: PagerDutyStandin) -> None:
    _, first, _ = await post(pagerduty_standin, trigger(pagerduty_standin, dedup_key=None))
    _, second, _ = await post(pagerduty_standin, trigger(pagerduty_standin, dedup_key=None))
    assert first["dedup_key"] != second["dedup_key"] and len(pagerduty_standin.alerts()) == 2


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"routing_key": "short"}, "Length of 'routing_key' is incorrect (should be 32 characters)"),
        ({"routing_key": "X" * 31 + "-"}, "'routing_key' cannot contain non-alphanumeric characters."),
        ({"routing_key": "Z" * 32}, "Invalid routing key"),
        ({"event_action": "page"}, "'event_action' must be one of trigger, acknowledge, resolve"),
        ({"dedup_key": "d" * 256}, "'dedup_key' must be a string of at most 255 characters"),
        ({"payload": {"summary": "s" * 1025, "source": "x", "severity": "critical"}},
         "'payload.summary' is too long (maximum 1024 characters)"),
        ({"payload": {"summary": "s", "source": "x", "severity": "page"}},
         "'payload.severity' must be one of critical, error, warning, info"),
        ({"payload": {"summary": "s", "severity": "info"}}, "'payload.source' is missing or blank"),
        ({"images": [{"src": "http://insecure/graph.png"}]}, "'images[0].src' must be an https URL"),
        ({"links": [{"text": "no href"}]}, "'links[0].href' is missing or blank"),
    ],
)
async def test_invalid_events_are_400_with_pagerduty_errors(
    pagerduty_standin: PagerDutyStandin, change: dict[str, Any], error: str
) -> None:
    status, body, _ = await post(pagerduty_standin, {**trigger(pagerduty_standin), **change})
    assert status == 400
    assert body["status"] == "invalid event" and body["message"] == "Event object is invalid"
    assert error in body["errors"]
    assert pagerduty_standin.alerts() == []


async def test_resolve_needs_a_dedup_key_and_events_are_at_most_512kb(pagerduty_standin: PagerDutyStandin) -> None:
    status, body, _ = await post(pagerduty_standin, {"routing_key": pagerduty_standin.routing_key,
                                                     "event_action": "resolve"})
    assert status == 400 and "'dedup_key' is missing or blank" in body["errors"]
    big = trigger(pagerduty_standin, custom_details={"blob": "x" * (512 * 1024)})
    status, body, _ = await post(pagerduty_standin, big)
    assert status == 400 and body["errors"] == ["Event object is too large"]


async def test_rate_limit_is_a_429_without_retry_after(pagerduty_standin: PagerDutyStandin) -> None:
    """Over the integration's rate: 429 "throttle event" and, as documented, no Retry-After header."""
    pagerduty_standin.enforce_rate(120 / 60, burst=3)
    statuses = [(await post(pagerduty_standin, trigger(pagerduty_standin, dedup_key=f"k{i}")))[0] for i in range(4)]
    assert statuses == [202, 202, 202, 429]
    status, body, headers = await post(pagerduty_standin, trigger(pagerduty_standin, dedup_key="k9"))
    assert status == 429 and body["status"] == "throttle event" and "Retry-After" not in headers
    assert len(pagerduty_standin.alerts()) == 3


async def test_injected_server_errors(pagerduty_standin: PagerDutyStandin) -> None:
    pagerduty_standin.fail_next(1, 503)
    async with aiohttp.ClientSession() as session, session.post(pagerduty_standin.url,
                                                                json=trigger(pagerduty_standin)) as resp:
        assert resp.status == 503
    assert (await post(pagerduty_standin, trigger(pagerduty_standin)))[0] == 202
    assert pagerduty_standin.statuses() == [503, 202]
