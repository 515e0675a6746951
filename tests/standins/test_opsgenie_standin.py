"""The Opsgenie stand-in answers like the Alert API: GenieKey auth, 202 + requestId, alias dedup, 422/429."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.standins.opsgenie import OpsgenieStandin


async def call(standin: OpsgenieStandin, method: str, path: str, body: Any = None, *, key: str | None = None,
               params: dict[str, str] | None = None) -> tuple[int, dict[str, Any], dict[str, str]]:
    headers = {"Authorization": f"GenieKey {key or standin.api_key}"}
    async with aiohttp.ClientSession() as session, session.request(
        method, standin.base_url + path, json=body, headers=headers, params=params
    ) as resp:
        return resp.status, await resp.json(content_type=None), dict(resp.headers)


ALIAS = {"identifierType": "alias"}


async def test_create_dedups_by_alias_while_open_then_close_and_recreate(opsgenie_standin: OpsgenieStandin) -> None:
    """Same alias while open: one alert, count 2, the first message kept; after close a new alert."""
    status, body, headers = await call(opsgenie_standin, "POST", "/v2/alerts",
                                       {"message": "Disk full", "alias": "g1", "priority": "P1"})
    assert status == 202 and body["result"] == "Request will be processed"
    assert body["requestId"] == headers["X-Request-ID"]
    await call(opsgenie_standin, "POST", "/v2/alerts", {"message": "Disk full again", "alias": "g1"})
    [alert] = opsgenie_standin.alerts
    assert (alert.count, alert.message, alert.priority) == (2, "Disk full", "P1")
    status, _, _ = await call(opsgenie_standin, "POST", "/v2/alerts/g1/close", {"note": "fixed"}, params=ALIAS)
    assert status == 202 and alert.status == "closed" and alert.notes == ["fixed"]
    await call(opsgenie_standin, "POST", "/v2/alerts", {"message": "Disk full", "alias": "g1"})
    assert [a.status for a in opsgenie_standin.alerts] == ["closed", "open"]


async def test_acknowledge_update_and_request_status(opsgenie_standin: OpsgenieStandin) -> None:
    """Acks and updates by alias apply; a close of an unknown alias is 202 but fails in its request status."""
    await call(opsgenie_standin, "POST", "/v2/alerts", {"message": "m", "alias": "g1"})
    await call(opsgenie_standin, "POST", "/v2/alerts/g1/acknowledge", {"user": "alice"}, params=ALIAS)
    await call(opsgenie_standin, "PUT", "/v2/alerts/g1/description", {"description": "new"}, params=ALIAS)
    await call(opsgenie_standin, "PUT", "/v2/alerts/g1/priority", {"priority": "P2"}, params=ALIAS)
    [alert] = opsgenie_standin.alerts
    assert (alert.acknowledged, alert.owner, alert.description, alert.priority) == (True, "alice", "new", "P2")
    status, body, _ = await call(opsgenie_standin, "POST", "/v2/alerts/nope/close", {}, params=ALIAS)
    assert status == 202
    _, result, _ = await call(opsgenie_standin, "GET", f"/v2/alerts/requests/{body['requestId']}")
    assert result["data"]["isSuccess"] is False and result["data"]["status"] == "Alert does not exist"
    _, got, _ = await call(opsgenie_standin, "GET", "/v2/alerts/g1", params=ALIAS)
    assert got["data"]["acknowledged"] is True and got["data"]["priority"] == "P2"


async def test_wrong_or_disabled_key_is_401(opsgenie_standin: OpsgenieStandin) -> None:
    status, body, _ = await call(opsgenie_standin, "POST", "/v2/alerts", {"message": "m"}, key="wrong")
    assert status == 401 and body["message"] == "Could not authenticate"
    opsgenie_standin.disable()
    assert (await call(opsgenie_standin, "POST", "/v2/alerts", {"message": "m"}))[0] == 401
    assert opsgenie_standin.alerts == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"message": "m" * 131}, "message"),
        ({"message": ""}, "message"),
        ({"message": "m", "alias": "a" * 513}, "alias"),
        ({"message": "m", "description": "d" * 15_001}, "description"),
        ({"message": "m", "priority": "P0"}, "priority"),
        ({"message": "m", "tags": ["t"] * 21}, "tags"),
        ({"message": "m", "tags": ["t" * 51]}, "tags"),
        ({"message": "m", "details": {"k": "v" * 8000}}, "details"),
        ({"message": "m", "source": "s" * 101}, "source"),
        ({"message": "m", "responders": [{"type": "team"}]}, "responders"),
    ],
)
async def test_limits_are_422(opsgenie_standin: OpsgenieStandin, body: dict[str, Any], field: str) -> None:
    status, answer, _ = await call(opsgenie_standin, "POST", "/v2/alerts", body)
    assert status == 422 and field in answer["errors"]
    assert answer["message"] == "Request body is not processable. Please check the errors."


async def test_not_json_is_400_and_throttling_is_429_with_its_window(opsgenie_standin: OpsgenieStandin) -> None:
    async with aiohttp.ClientSession() as session, session.post(
        opsgenie_standin.base_url + "/v2/alerts", data=b"{nope",
        headers={"Authorization": f"GenieKey {opsgenie_standin.api_key}", "Content-Type": "application/json"},
    ) as resp:
        assert resp.status == 400
    opsgenie_standin.rate_limit_next(1, retry_after=60)
    status, body, headers = await call(opsgenie_standin, "POST", "/v2/alerts", {"message": "m"})
    assert status == 429 and "too many requests" in body["message"]
    assert headers["X-RateLimit-State"] == "THROTTLED" and headers["X-RateLimit-Period-In-Sec"] == "60"
    opsgenie_standin.enforce_rate(1.0, burst=1)
    codes = [(await call(opsgenie_standin, "POST", "/v2/alerts", {"message": "m"}))[0] for _ in range(2)]
    assert codes == [202, 429]
