"""The Discord channel against the webhook stand-in: the embed, edits in place, limits, inert values, failures."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from alert_router.channels.base import ChannelError
from alert_router.channels.discord import DiscordChannel, DiscordConfig, embed_length
from alert_router.errors import FailureReason
from tests.channels.helpers import HOSTILE, alert, notification
from tests.standins.discord import DiscordStandin

LINKS = {"alertmanager_url": "http://am:9093", "grafana_url": "http://grafana"}


def make(standin: DiscordStandin, **kw: Any) -> DiscordChannel:
    cfg = DiscordConfig.model_validate({"webhook_url": standin.webhook_url, "timeout": 2, **kw})
    return DiscordChannel("discord", cfg, LINKS)


@pytest.fixture
async def discord(discord_standin: DiscordStandin) -> AsyncIterator[DiscordChannel]:
    channel = make(discord_standin)
    yield channel
    await channel.aclose()


async def test_one_embed_per_group_coloured_by_severity(
    discord: DiscordChannel, discord_standin: DiscordStandin
) -> None:
    a = alert(annotations={"summary": "Model service might be down!", "description": "no traffic"})
    ref = await discord.send(notification([a], receiver="discord"), None)
    [msg] = discord_standin.messages
    assert ref == {"webhook": discord_standin.webhook_id, "message_id": msg.id, "status": "firing"}
    assert msg.allowed_mentions == {"parse": []} and msg.content == ""
    [embed] = msg.embeds
    assert embed["title"] == "🔴 \\[FIRING:1\\] ModelServiceDown · prod"
    assert embed["color"] == 0xE74C3C and embed["url"].startswith("http://alertmanager:9093/#/alerts?filter=")
    assert "**ModelServiceDown** — Model service might be down!" in embed["description"]
    assert "`namespace=prod`" in embed["description"] and "no traffic" in embed["description"]
    assert f"`{a.fingerprint[:8]}`" in embed["description"]
    assert "[Source](http://prometheus:9090/graph?g0.expr=up)" in embed["description"]
    assert "[Silence](http://alertmanager:9093/#/silences/new?filter=" in embed["description"]
    assert embed["footer"]["text"].startswith("alert-router · discord · group ")
    assert discord_standin.requests[0].params["query"] == {"wait": "true"}


async def test_resolution_edits_the_same_message(discord: DiscordChannel, discord_standin: DiscordStandin) -> None:
    ref = await discord.send(notification([alert(severity="warning")]), None)
    assert discord_standin.messages[0].embeds[0]["color"] == 0xE67E22
    ref2 = await discord.send(notification([alert(status="resolved")]), ref)
    [msg] = discord_standin.messages
    assert msg.edits == 1 and ref2 == {**(ref or {}), "status": "resolved"}
    assert "RESOLVED" in msg.embeds[0]["title"] and "fired for 3h12m" in msg.embeds[0]["title"]
    assert msg.embeds[0]["color"] == 0x2ECC71
    assert [r.method for r in discord_standin.requests] == ["execute", "edit"]


async def test_refire_or_a_deleted_message_gets_a_new_message(
    discord: DiscordChannel, discord_standin: DiscordStandin
) -> None:
    ref = await discord.send(notification([alert(status="resolved")]), None)
    ref2 = await discord.send(notification([alert()]), ref)
    assert ref and ref2 and ref2["message_id"] != ref["message_id"]
    discord_standin.delete_message(ref2["message_id"])
    ref3 = await discord.send(notification([alert(), alert("Other")]), ref2)
    assert ref3 and ref3["message_id"] not in (ref["message_id"], ref2["message_id"])
    assert [r.status for r in discord_standin.requests] == [200, 200, 404, 200]


async def test_hostile_values_cannot_ping_link_or_format(
    discord: DiscordChannel, discord_standin: DiscordStandin
) -> None:
    """Mentions, masked links and formatting in labels and annotations stay text; nobody can be pinged."""
    evil = "@everyone <@&123> **bold** [click](javascript:alert(1)) ||spoiler|| # heading"
    await discord.send(notification([alert(labels=HOSTILE, annotations={"summary": evil, "description": evil})]), None)
    [msg] = discord_standin.messages
    description = msg.embeds[0]["description"]
    assert msg.allowed_mentions == {"parse": []}
    assert "**bold**" not in description and "\\*\\*bold\\*\\*" in description
    assert "[click](" not in description and "\\[click\\]" in description
    assert "<@&123>" not in description and "||spoiler||" not in description
    assert "\\[click\\](javascript:alert(1))" in description  # shown as text, not a link
    assert "```block```" not in description  # a label's backticks cannot open a code block


async def test_huge_group_fits_discords_limits(discord: DiscordChannel, discord_standin: DiscordStandin) -> None:
    """400 alerts with long annotations and a long log excerpt: ≤ 4,096 / 6,000 characters, accepted."""
    alerts = [alert("HighModelLatency", severity="warning", labels={"pod": f"model-api-{i}"},
                    annotations={"summary": "s" * 400, "description": "d" * 2000}) for i in range(400)]
    logs = {"enrichment": {"logs": [{"query": "q", "status": "ok", "fingerprints": [],
                                     "lines": [{"ts": "1", "pod": "p", "line": "x" * 300}] * 50}]}}
    await discord.send(notification(alerts, extra=logs), None)
    [msg] = discord_standin.messages
    embed = msg.embeds[0]
    assert len(embed["description"]) <= 4096 and embed_length(embed) <= 6000
    assert "more alerts in this group" in embed["description"]
    assert [r.status for r in discord_standin.requests] == [200]


async def test_one_enormous_alert_is_cut_with_its_code_block_closed(
    discord: DiscordChannel, discord_standin: DiscordStandin
) -> None:
    logs = {"enrichment": {"logs": [{"query": "q", "status": "ok", "fingerprints": [],
                                     "lines": [{"ts": "1", "pod": "p", "line": "y" * 900}] * 10}]}}
    await discord.send(notification([alert(annotations={"summary": "s" * 3000, "description": "d" * 9000})],
                                    extra=logs), None)
    description = discord_standin.messages[0].embeds[0]["description"]
    assert len(description) <= 4096 and description.count("```") % 2 == 0


async def test_thread_and_username_are_sent(discord_standin: DiscordStandin) -> None:
    channel = make(discord_standin, thread_id="555", username="alert-router")
    try:
        ref = await channel.send(notification(), None)
        await channel.send(notification([alert(status="resolved")]), ref)
    finally:
        await channel.aclose()
    assert discord_standin.messages[0].thread_id == "555" and discord_standin.messages[0].username == "alert-router"
    assert discord_standin.requests[0].params["query"] == {"wait": "true", "thread_id": "555"}


@pytest.mark.parametrize(
    ("setup", "reason", "retryable", "retry_after"),
    [
        (lambda s: s.rate_limit_next(1, retry_after=0.25), FailureReason.RATE_LIMITED, True, 0.25),
        (lambda s: s.fail_next(1, 502), FailureReason.SERVER_ERROR, True, None),
        (lambda s: s.delete_webhook(), FailureReason.NOT_FOUND, False, None),
        (lambda s: s.webhooks.update({s.webhook_id: "rotated"}), FailureReason.AUTH, False, None),
    ],
)
async def test_failures_are_classified(
    discord: DiscordChannel, discord_standin: DiscordStandin, setup: Any, reason: FailureReason, retryable: bool,
    retry_after: float | None,
) -> None:
    """429 waits for the body's retry_after (a float); 5xx retryable; unknown webhook and bad token permanent."""
    setup(discord_standin)
    with pytest.raises(ChannelError) as err:
        await discord.send(notification(), None)
    assert (err.value.reason, err.value.retryable, err.value.retry_after) == (reason, retryable, retry_after)
    assert discord_standin.token not in str(err.value)


async def test_transport_errors_never_show_the_webhook_token() -> None:
    url = "http://127.0.0.1:9/api/webhooks/1/s3cret-token-value"
    bad = "http://127.0.0.1:99999/api/webhooks/1/s3cret-token-value"
    for target in (url, bad):
        channel = DiscordChannel("discord", DiscordConfig(webhook_url=target, timeout=2))
        try:
            with pytest.raises(ChannelError) as err:
                await channel.send(notification(), None)
        finally:
            await channel.aclose()
        assert err.value.retryable and err.value.reason is FailureReason.CONNECTION
        assert "s3cret-token-value" not in str(err.value)


def test_config_checks_the_webhook_url() -> None:
    DiscordConfig.model_validate({}, context={"enabled": False})
    with pytest.raises(ValueError, match="needs webhook_url"):
        DiscordConfig.model_validate({}, context={"enabled": True})
    with pytest.raises(ValueError, match="webhooks/<id>/<token>"):
        DiscordConfig.model_validate({"webhook_url": "https://discord.com/channels/1/2"})
