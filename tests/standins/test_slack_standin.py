"""The Slack stand-in behaves like the Web API when driven through slack-sdk's AsyncWebClient."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from tests.standins.slack import SlackStandin, peak_rate


def client(standin: SlackStandin, token: str | None = None) -> AsyncWebClient:
    return AsyncWebClient(token=token or standin.token, base_url=standin.base_url, timeout=5)


async def test_post_message_is_stored_and_answered_like_slack(slack_standin: SlackStandin) -> None:
    blocks = [{"type": "header", "text": {"type": "plain_text", "text": "Disk full"}},
              {"type": "section", "text": {"type": "mrkdwn", "text": "*node-1* at 99%"}}]
    resp = await client(slack_standin).chat_postMessage(channel="C0ALERTS", text="Disk full", blocks=blocks)
    assert resp["ok"] is True
    assert resp["channel"] == "C0ALERTS"
    secs, micros = resp["ts"].split(".")
    assert secs.isdigit()
    assert len(micros) == 6
    assert resp["message"]["text"] == "Disk full"
    assert resp["message"]["blocks"] == blocks
    stored = slack_standin.messages["C0ALERTS"]
    assert [m.ts for m in stored] == [resp["ts"]]
    assert stored[0].blocks == blocks
    assert stored[0].edits == 0


async def test_channel_by_name_is_stored_under_its_id(slack_standin: SlackStandin) -> None:
    resp = await client(slack_standin).chat_postMessage(channel="#c0ops", text="hello")
    assert resp["channel"] == "C0OPS"
    assert slack_standin.messages["C0OPS"][0].text == "hello"


async def test_ts_values_are_unique_and_increasing(slack_standin: SlackStandin) -> None:
    c = client(slack_standin)
    tss = [(await c.chat_postMessage(channel="C0ALERTS", text=f"m{i}"))["ts"] for i in range(5)]
    assert len(set(tss)) == 5
    assert [float(t) for t in tss] == sorted(float(t) for t in tss)


async def test_update_edits_message_and_keeps_history(slack_standin: SlackStandin) -> None:
    c = client(slack_standin)
    ts = (await c.chat_postMessage(channel="C0ALERTS", text="firing"))["ts"]
    resp = await c.chat_update(channel="C0ALERTS", ts=ts, text="resolved")
    assert resp["ts"] == ts
    assert resp["text"] == "resolved"
    assert "edited" in resp["message"]
    msg = slack_standin.messages["C0ALERTS"][0]
    assert msg.text == "resolved"
    assert msg.edits == 1
    assert msg.history[0]["text"] == "firing"


async def test_update_of_unknown_ts_is_message_not_found(slack_standin: SlackStandin) -> None:
    with pytest.raises(SlackApiError) as err:
        await client(slack_standin).chat_update(channel="C0ALERTS", ts="1700000000.000100", text="x")
    assert err.value.response["error"] == "message_not_found"
    assert err.value.response.status_code == 200


async def test_unknown_channel_is_channel_not_found(slack_standin: SlackStandin) -> None:
    with pytest.raises(SlackApiError) as err:
        await client(slack_standin).chat_postMessage(channel="C0NOPE", text="x")
    assert err.value.response["error"] == "channel_not_found"
    assert slack_standin.messages.get("C0NOPE", []) == []


async def test_wrong_token_is_invalid_auth(slack_standin: SlackStandin) -> None:
    with pytest.raises(SlackApiError) as err:
        await client(slack_standin, token="xoxb-wrong").chat_postMessage(channel="C0ALERTS", text="x")
    assert err.value.response.status_code == 200
    assert err.value.response["error"] == "invalid_auth"
    assert slack_standin.messages["C0ALERTS"] == []


async def test_revoked_token_is_token_revoked(slack_standin: SlackStandin) -> None:
    c = client(slack_standin)
    assert (await c.auth_test())["bot_id"] == slack_standin.bot_id
    slack_standin.revoke_token()
    with pytest.raises(SlackApiError) as err:
        await c.auth_test()
    assert err.value.response["error"] == "token_revoked"


async def test_missing_token_is_not_authed(slack_standin: SlackStandin) -> None:
    async with aiohttp.ClientSession() as session, session.post(
        slack_standin.base_url + "chat.postMessage", json={"channel": "C0ALERTS", "text": "x"}
    ) as resp:
        body = await resp.json()
    assert body == {"ok": False, "error": "not_authed"}


async def test_form_encoded_body_and_token_parameter_are_accepted(slack_standin: SlackStandin) -> None:
    blocks = [{"type": "divider"}, {"type": "section", "text": {"type": "plain_text", "text": "form"}}]
    form = {"token": slack_standin.token, "channel": "C0OPS", "text": "via form", "blocks": json.dumps(blocks)}
    async with aiohttp.ClientSession() as session, session.post(
        slack_standin.base_url + "chat.postMessage", data=form
    ) as resp:
        body = await resp.json()
    assert body["ok"] is True
    assert slack_standin.messages["C0OPS"][0].blocks == blocks


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"blocks": [{"type": "divider"}] * 51}, "invalid_blocks"),
        ({"blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}]}, "invalid_blocks"),
        ({"blocks": [{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}]}, "invalid_blocks"),
        ({"blocks": [{"type": "header", "text": {"type": "mrkdwn", "text": "h"}}]}, "invalid_blocks"),
        ({"blocks": [{"type": "no_such_block"}]}, "invalid_blocks"),
        ({"blocks": "[not json"}, "invalid_blocks_format"),
        ({"text": "x" * 40_001}, "msg_too_long"),
    ],
)
async def test_validation_errors(slack_standin: SlackStandin, kwargs: dict[str, object], error: str) -> None:
    kwargs = {"text": "fallback", **kwargs}
    with pytest.raises(SlackApiError) as err:
        await client(slack_standin).chat_postMessage(channel="C0ALERTS", **kwargs)  # type: ignore[arg-type]
    assert err.value.response["error"] == error
    assert slack_standin.messages["C0ALERTS"] == []


async def test_invalid_blocks_names_the_offending_field(slack_standin: SlackStandin) -> None:
    blocks: list[dict[str, Any]] = [
        {"type": "divider"}, {"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}]
    with pytest.raises(SlackApiError) as err:
        await client(slack_standin).chat_postMessage(channel="C0ALERTS", text="t", blocks=blocks)
    assert err.value.response["errors"] == ["must be less than 3001 characters [json-pointer:/blocks/1/text/text]"]


async def test_no_text_and_no_blocks_is_no_text(slack_standin: SlackStandin) -> None:
    with pytest.raises(SlackApiError) as err, pytest.warns(UserWarning, match="text"):
        await client(slack_standin).chat_postMessage(channel="C0ALERTS")
    assert err.value.response["error"] == "no_text"


async def test_limits_at_the_boundary_are_accepted(slack_standin: SlackStandin) -> None:
    blocks = [{"type": "header", "text": {"type": "plain_text", "text": "h" * 150}},
              {"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3000}}]
    blocks += [{"type": "divider"}] * 48
    await client(slack_standin).chat_postMessage(channel="C0ALERTS", text="t" * 40_000, blocks=blocks)
    assert len(slack_standin.messages["C0ALERTS"][0].blocks or []) == 50


async def test_rate_limit_next_gives_429_with_retry_after(slack_standin: SlackStandin) -> None:
    slack_standin.rate_limit_next(1, retry_after=7)
    c = client(slack_standin)
    with pytest.raises(SlackApiError) as err:
        await c.chat_postMessage(channel="C0ALERTS", text="x")
    assert err.value.response.status_code == 429
    assert err.value.response.headers["Retry-After"] == "7"
    assert err.value.response["error"] == "ratelimited"
    assert slack_standin.messages["C0ALERTS"] == []
    await c.chat_postMessage(channel="C0ALERTS", text="x")
    assert len(slack_standin.messages["C0ALERTS"]) == 1


async def test_sdk_rate_limit_retry_handler_recovers(slack_standin: SlackStandin) -> None:
    slack_standin.rate_limit_next(1, retry_after=0)
    c = client(slack_standin)
    c.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=1))
    await c.chat_postMessage(channel="C0ALERTS", text="retried")
    assert [r.status for r in slack_standin.requests] == [429, 200]
    assert slack_standin.messages["C0ALERTS"][0].text == "retried"


async def test_fail_next_gives_server_error_once(slack_standin: SlackStandin) -> None:
    slack_standin.fail_next(1, status=503)
    c = client(slack_standin)
    with pytest.raises(SlackApiError) as err:
        await c.chat_postMessage(channel="C0ALERTS", text="x")
    assert err.value.response.status_code == 503
    await c.chat_postMessage(channel="C0ALERTS", text="x")
    assert len(slack_standin.messages["C0ALERTS"]) == 1


async def test_fault_limited_to_one_method(slack_standin: SlackStandin) -> None:
    slack_standin.fail_next(1, status=500, method="chat.update")
    c = client(slack_standin)
    ts = (await c.chat_postMessage(channel="C0ALERTS", text="a"))["ts"]
    with pytest.raises(SlackApiError):
        await c.chat_update(channel="C0ALERTS", ts=ts, text="b")
    assert slack_standin.messages["C0ALERTS"][0].edits == 0


async def test_delay_next_trips_client_timeout(slack_standin: SlackStandin) -> None:
    slack_standin.delay_next(1, seconds=2.0)
    c = AsyncWebClient(token=slack_standin.token, base_url=slack_standin.base_url,
                       timeout=0.2)  # type: ignore[arg-type]  # aiohttp takes float seconds
    with pytest.raises(asyncio.TimeoutError):
        await c.chat_postMessage(channel="C0ALERTS", text="slow")


async def test_enforced_rate_answers_429_and_peak_rate_is_recorded(slack_standin: SlackStandin) -> None:
    slack_standin.enforce_rate(per_second=1.0)
    c = client(slack_standin)
    await c.chat_postMessage(channel="C0ALERTS", text="1")
    with pytest.raises(SlackApiError) as err:
        await c.chat_postMessage(channel="C0ALERTS", text="2")
    assert err.value.response.status_code == 429
    assert int(err.value.response.headers["Retry-After"]) >= 1
    # The limit is per channel.
    await c.chat_postMessage(channel="C0OPS", text="other channel")
    assert slack_standin.peak_rate("C0ALERTS") == 1
    assert slack_standin.peak_rate("C0ALERTS", accepted_only=False) == 2


async def test_post_ephemeral(slack_standin: SlackStandin) -> None:
    resp = await client(slack_standin).chat_postEphemeral(channel="C0OPS", user="U123", text="only you")
    assert resp["message_ts"]
    assert slack_standin.ephemeral["C0OPS"][0]["user"] == "U123"
    assert slack_standin.messages["C0OPS"] == []


def test_peak_rate_window() -> None:
    assert peak_rate([], 1.0) == 0
    assert peak_rate([0.0, 0.5, 0.99, 1.0, 1.5], 1.0) == 3
    assert peak_rate([0.0, 2.0, 4.0], 1.0) == 1


async def test_metadata_and_conversations_history_as_documented(slack_standin: SlackStandin) -> None:
    """metadata is checked and kept; history lists parents newest first, pages with a cursor, shows metadata on ask."""
    c = client(slack_standin)
    meta = {"event_type": "alert_router_notification", "event_payload": {"delivery_id": "7"}}
    first = await c.chat_postMessage(channel="C0ALERTS", text="one", metadata=meta)
    await c.chat_postMessage(channel="C0ALERTS", text="reply", thread_ts=first["ts"])
    second = await c.chat_postMessage(channel="C0ALERTS", text="two")
    bad_meta = {"event_type": "has space", "event_payload": {}}
    with pytest.raises(SlackApiError) as bad:
        await c.chat_postMessage(channel="C0ALERTS", text="x", metadata=bad_meta)
    assert bad.value.response["error"] == "invalid_metadata_schema"
    plain = await c.conversations_history(channel="C0ALERTS")
    assert [m["text"] for m in plain["messages"]] == ["two", "one"] and "metadata" not in plain["messages"][1]
    page = await c.conversations_history(channel="C0ALERTS", limit=1, include_all_metadata=True)
    assert page["has_more"] is True and [m["ts"] for m in page["messages"]] == [second["ts"]]
    rest = await c.conversations_history(channel="C0ALERTS", limit=1, include_all_metadata=True,
                                         cursor=page["response_metadata"]["next_cursor"])
    assert rest["messages"][0]["metadata"] == meta and rest["has_more"] is False
    after = await c.conversations_history(channel="C0ALERTS", oldest=first["ts"])
    assert [m["ts"] for m in after["messages"]] == [second["ts"]]  # oldest is exclusive
    await c.chat_update(channel="C0ALERTS", ts=first["ts"], text="one, edited")
    kept = await c.conversations_history(channel="C0ALERTS", include_all_metadata=True)
    assert kept["messages"][1]["metadata"] == meta  # an update without metadata keeps it
