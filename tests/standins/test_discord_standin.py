"""The Discord stand-in answers like the webhook API: wait=true, edits, error codes, embed limits, 429 bodies."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.standins.discord import DiscordStandin


async def call(method: str, url: str, body: Any = None,
               params: dict[str, str] | None = None) -> tuple[int, Any, dict[str, str]]:
    async with aiohttp.ClientSession() as session, session.request(method, url, json=body, params=params) as resp:
        data = await resp.json(content_type=None) if resp.status != 204 else None
        return resp.status, data, dict(resp.headers)


EMBED = {"title": "Disk full", "description": "on db-1", "color": 0xE74C3C}


async def test_execute_with_wait_returns_the_message_and_edit_changes_it(discord_standin: DiscordStandin) -> None:
    status, message, headers = await call("POST", discord_standin.webhook_url, {"embeds": [EMBED]},
                                          {"wait": "true"})
    assert status == 200 and message["id"].isdigit() and message["embeds"] == [EMBED]
    assert headers["X-RateLimit-Limit"] == "5" and "X-RateLimit-Reset-After" in headers
    edited = {**EMBED, "title": "Resolved", "color": 0x2ECC71}
    status, again, _ = await call("PATCH", f"{discord_standin.webhook_url}/messages/{message['id']}",
                                  {"embeds": [edited]})
    assert status == 200 and again["id"] == message["id"] and again["edited_timestamp"]
    [stored] = discord_standin.messages
    assert stored.edits == 1 and stored.embeds == [edited] and stored.history[0]["embeds"] == [EMBED]


async def test_without_wait_the_answer_is_204(discord_standin: DiscordStandin) -> None:
    status, data, _ = await call("POST", discord_standin.webhook_url, {"content": "hi"})
    assert (status, data) == (204, None) and discord_standin.messages[0].content == "hi"


async def test_unknown_webhook_token_and_message(discord_standin: DiscordStandin) -> None:
    base = discord_standin.webhook_url.rsplit("/", 2)[0]
    assert (await call("POST", f"{base}/1/x", {"content": "x"}))[1] == {"message": "Unknown Webhook", "code": 10015}
    status, body, _ = await call("POST", f"{base}/{discord_standin.webhook_id}/wrong", {"content": "x"})
    assert status == 401 and body["code"] == 50027
    status, body, _ = await call("PATCH", f"{discord_standin.webhook_url}/messages/42", {"content": "x"})
    assert status == 404 and body["code"] == 10008
    discord_standin.delete_webhook()
    assert (await call("POST", discord_standin.webhook_url, {"content": "x"}))[0] == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"content": "c" * 2001}, "content"),
        ({"embeds": [EMBED] * 11}, "embeds"),
        ({"embeds": [{"title": "t" * 257}]}, "embeds.0.title"),
        ({"embeds": [{"description": "d" * 4097}]}, "embeds.0.description"),
        ({"embeds": [{"description": "d" * 4000}, {"description": "d" * 2001}]}, "embeds"),
        ({"embeds": [{"title": "t", "color": -1}]}, "embeds.0.color"),
        ({"embeds": [{"title": "t", "fields": [{"name": "n", "value": "v"}] * 26}]}, "embeds.0.fields"),
    ],
)
async def test_limits_are_invalid_form_body(discord_standin: DiscordStandin, body: dict[str, Any], field: str) -> None:
    status, answer, _ = await call("POST", discord_standin.webhook_url, body, {"wait": "true"})
    assert status == 400 and answer["code"] == 50035 and field in answer["errors"]
    assert discord_standin.messages == []


async def test_empty_message_is_50006(discord_standin: DiscordStandin) -> None:
    status, answer, _ = await call("POST", discord_standin.webhook_url, {"content": ""})
    assert status == 400 and answer == {"message": "Cannot send an empty message", "code": 50006}


async def test_429_carries_retry_after_as_a_float_and_header(discord_standin: DiscordStandin) -> None:
    """Five per two seconds per webhook: the sixth gets 429 with retry_after seconds (float) and Retry-After."""
    discord_standin.enforce_rate(2.5, burst=5)
    statuses = [(await call("POST", discord_standin.webhook_url, {"content": f"m{i}"}))[0] for i in range(5)]
    assert statuses == [204] * 5
    status, body, headers = await call("POST", discord_standin.webhook_url, {"content": "m6"})
    assert status == 429 and body["global"] is False and 0 < body["retry_after"] <= 1.0
    assert isinstance(body["retry_after"], float)
    assert headers["Retry-After"] == "1" and headers["X-RateLimit-Scope"] == "user"
    assert len(discord_standin.messages) == 5
