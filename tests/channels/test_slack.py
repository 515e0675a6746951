# ruff: noqa: RUF001 - the look-alike backtick is what code spans show
"""The Slack channel against the loopback Web API stand-in, through slack-sdk's real AsyncWebClient."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from alert_router.channels.base import ChannelError
from alert_router.channels.slack import SlackChannel, SlackConfig
from alert_router.errors import FailureReason
from alert_router.render.actions import Action, decode_action
from alert_router.render.context import group_id, short_id
from tests.channels.helpers import HOSTILE, alert, notification
from tests.standins.slack import SlackStandin, validate_blocks


def make(standin: SlackStandin, **kw: Any) -> SlackChannel:
    cfg = SlackConfig.model_validate(
        {"token": standin.token, "channel": "C0ALERTS", "api_url": standin.base_url, "timeout": 2, **kw}
    )
    return SlackChannel("slack", cfg, {"alertmanager_url": "http://am:9093", "grafana_url": "http://grafana"})


@pytest.fixture
async def slack(slack_standin: SlackStandin) -> AsyncIterator[SlackChannel]:
    ch = make(slack_standin)
    yield ch
    await ch.aclose()


def texts(blocks: list[dict[str, Any]]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


async def test_posts_block_kit_message_with_buttons(slack: SlackChannel, slack_standin: SlackStandin) -> None:
    """A firing group becomes one Block Kit message: header, body, links, three buttons naming the alert."""
    n = notification([alert(annotations={"summary": "Model service might be down!", "description": "no traffic"})])
    ref = await slack.send(n, None)
    [msg] = slack_standin.messages["C0ALERTS"]
    assert ref == {"channel": "C0ALERTS", "ts": msg.ts, "status": "firing"}
    assert msg.blocks is not None and validate_blocks(msg.blocks) == []
    assert msg.blocks[0]["type"] == "header"
    assert "[FIRING:1] ModelServiceDown" in msg.blocks[0]["text"]["text"]
    assert "🔴" in msg.blocks[0]["text"]["text"]
    body = texts(msg.blocks)
    assert "Model service might be down!" in body and "no traffic" in body
    assert "`namespace=prod`" in body
    assert "<http://prometheus:9090/graph?g0.expr=up|Source>" in body
    assert "http://grafana|Grafana>" in body
    actions = next(b for b in msg.blocks if b["type"] == "actions")
    ids = [e["action_id"] for e in actions["elements"]]
    assert ids == ["alert_router.ack", "alert_router.silence"]  # no runbook applies: no Run runbook button
    menu = actions["elements"][1]
    assert menu["type"] == "static_select" and [o["text"]["text"] for o in menu["options"]] == [
        "Silence 1h", "Silence 4h", "Silence 24h"]
    values = [actions["elements"][0]["value"], *(o["value"] for o in menu["options"])]
    decoded = [decode_action(v) for v in values]
    assert [d.action for d in decoded if d] == [Action.ACK, Action.SILENCE_1H, Action.SILENCE_4H, Action.SILENCE_24H]
    assert all(d and d.alert == short_id(n.alerts[0].fingerprint) for d in decoded)
    assert all(d and d.group == group_id(n.group_key) for d in decoded)
    assert msg.text.startswith("🔴 [FIRING:1] ModelServiceDown")
    assert "Model service might be down!" in msg.text


async def test_resolution_edits_the_same_message(slack: SlackChannel, slack_standin: SlackStandin) -> None:
    """Resolving edits the message with chat.update (RESOLVED, how long it fired, no buttons) and says so in its
    thread, so the channel is notified (an edit notifies nobody)."""
    firing = alert()
    ref = await slack.send(notification([firing]), None)
    resolved = alert(status="resolved")
    ref2 = await slack.send(notification([resolved]), ref)
    [msg, reply] = slack_standin.messages["C0ALERTS"]
    assert msg.edits == 1
    assert reply.thread_ts == msg.ts and reply.text == "✅ Resolved — fired for 3h12m"
    assert ref2 == {"channel": "C0ALERTS", "ts": msg.ts, "status": "resolved"}
    assert msg.blocks is not None
    assert "[RESOLVED] ModelServiceDown" in msg.blocks[0]["text"]["text"]
    assert "fired for 3h12m" in msg.blocks[0]["text"]["text"]
    assert not any(b["type"] == "actions" for b in msg.blocks)
    assert [r.method for r in slack_standin.requests] == ["chat.postMessage", "chat.update", "chat.postMessage"]


async def test_group_firing_again_gets_a_new_message(slack: SlackChannel, slack_standin: SlackStandin) -> None:
    """After a group resolved, a new firing is a new incident: a new message, the old one stays resolved."""
    ref = await slack.send(notification([alert(status="resolved")]), None)
    ref2 = await slack.send(notification([alert()]), ref)
    assert ref2 is not None and ref is not None and ref2["ts"] != ref["ts"]
    assert len(slack_standin.messages["C0ALERTS"]) == 2


async def test_vanished_message_is_replaced(slack: SlackChannel, slack_standin: SlackStandin) -> None:
    """chat.update on a message Slack no longer has (message_not_found) falls back to a new post."""
    ref = await slack.send(notification(), {"channel": "C0ALERTS", "ts": "1.000001", "status": "firing"})
    assert ref is not None and ref["ts"] != "1.000001"
    assert [r.error for r in slack_standin.requests] == ["message_not_found", None]


@pytest.mark.parametrize(
    ("setup", "reason", "retryable", "retry_after"),
    [
        (lambda s: s.rate_limit_next(1, retry_after=7), FailureReason.RATE_LIMITED, True, 7.0),
        (lambda s: s.fail_next(1, 500), FailureReason.SERVER_ERROR, True, None),
        (lambda s: s.fail_next(1, 503), FailureReason.SERVER_ERROR, True, None),
        (lambda s: s.revoke_token(), FailureReason.AUTH, False, None),
    ],
)
async def test_failures_are_classified(
    slack: SlackChannel, slack_standin: SlackStandin, setup: Any, reason: FailureReason, retryable: bool,
    retry_after: float | None,
) -> None:
    """429 → retryable with Retry-After; 5xx → retryable; revoked token → permanent."""
    setup(slack_standin)
    with pytest.raises(ChannelError) as err:
        await slack.send(notification(), None)
    assert err.value.reason is reason
    assert err.value.retryable is retryable
    assert err.value.retry_after == retry_after


async def test_unknown_channel_and_bad_token_are_permanent(slack_standin: SlackStandin) -> None:
    """channel_not_found and invalid_auth never succeed on retry."""
    for kw, reason in (({"channel": "C0NOPE"}, FailureReason.NOT_FOUND), ({"token": "xoxb-wrong"}, FailureReason.AUTH)):
        ch = make(slack_standin, **kw)
        try:
            with pytest.raises(ChannelError) as err:
                await ch.send(notification(), None)
            assert err.value.reason is reason and not err.value.retryable
        finally:
            await ch.aclose()


async def test_timeout_and_connection_errors_are_retryable(slack_standin: SlackStandin) -> None:
    """A slow API (client timeout) and a closed port are both retryable."""
    ch = make(slack_standin, timeout=0.3)
    slack_standin.delay_next(1, seconds=2)
    try:
        with pytest.raises(ChannelError) as err:
            await ch.send(notification(), None)
        assert err.value.reason is FailureReason.TIMEOUT and err.value.retryable
    finally:
        await ch.aclose()
    cfg = SlackConfig(token="xoxb-x", channel="C1", api_url="http://127.0.0.1:9/api/", timeout=2)
    dead = SlackChannel("slack", cfg)
    try:
        with pytest.raises(ChannelError) as err:
            await dead.send(notification(), None)
        assert err.value.reason is FailureReason.CONNECTION and err.value.retryable
    finally:
        await dead.aclose()


async def test_huge_group_fits_slack_limits(slack: SlackChannel, slack_standin: SlackStandin) -> None:
    """400 alerts with long annotations: ≤ 50 blocks, sections ≤ 3000 chars, accepted, the rest counted."""
    alerts = [
        alert("HighModelLatency", severity="warning", labels={"pod": f"model-api-{i}"},
              annotations={"summary": "s" * 400, "description": "d" * 2000})
        for i in range(400)
    ]
    await slack.send(notification(alerts), None)
    [msg] = slack_standin.messages["C0ALERTS"]
    assert msg.blocks is not None and len(msg.blocks) <= 50 and validate_blocks(msg.blocks) == []
    body = texts(msg.blocks)
    assert "more alerts in this group" in body or body.count("model-api-") >= 400


async def test_hostile_values_render_inert(slack: SlackChannel, slack_standin: SlackStandin) -> None:
    """Mentions, links and formatting in label values cannot act: < > & are escaped, markers defused."""
    annotations = {"summary": HOSTILE["angle"], "description": HOSTILE["stars"]}
    n = notification([alert(labels=HOSTILE, annotations=annotations)])
    await slack.send(n, None)
    [msg] = slack_standin.messages["C0ALERTS"]
    assert msg.blocks is not None and validate_blocks(msg.blocks) == []
    everything = msg.text + texts(msg.blocks)
    assert "<!channel>" not in everything and "<b>" not in everything and "<a href" not in everything
    assert "&lt;!channel&gt;" in everything
    # the only raw "<" left are our own links
    for chunk in everything.split("<")[1:]:
        assert chunk.startswith(("http://", "https://")), chunk[:40]
    prose = re.sub(r"```.*?```|`[^`]*`", "", everything)  # code spans show their content verbatim
    assert "*bold*" not in prose and "_italic_" not in prose  # defused: shown as code spans
    assert "`*bold*` `_italic_` `~strike~`" in everything and "\u200b" not in everything


async def test_enrichment_and_runbook_results_are_shown(slack: SlackChannel, slack_standin: SlackStandin) -> None:
    """Log excerpts (the Loki contract), runbook outcomes and acks appear; nothing when absent."""
    a = alert()
    extra = {
        "enrichment": {
            "logs": [{"query": '{namespace="prod"}', "status": "ok", "reason": None,
                      "lines": [{"ts": "2026-11-27T00:00:01Z", "pod": "model-api-1", "line": "Traceback `boom` <x>"}],
                      "fingerprints": [a.fingerprint]},
                     {"query": "q2", "status": "unavailable", "reason": "loki timed out", "lines": [],
                      "fingerprints": []}],
            "links": {a.fingerprint: {"grafana": "http://grafana/explore?x=1", "silence": "http://am/#/silences/new"}},
        },
        "runbook_runs": [{"run_id": "7", "runbook": "restart-model-api", "status": "succeeded",
                          "summary": "rolled out", "dry_run": True}],
        "acked_by": {a.fingerprint: "alice"},
    }
    await slack.send(notification([a], extra=extra), None)
    body = texts(slack_standin.messages["C0ALERTS"][0].blocks or [])
    assert "```model-api-1 Traceback ˋboomˋ &lt;x&gt;```" in body
    assert "Logs unavailable: loki timed out" in body
    assert "restart-model-api" in body and "(dry run)" in body and "rolled out" in body
    assert "acked by alice" in body
    assert "<http://grafana/explore?x=1|Grafana>" in body
    await slack.send(notification([alert("Other")], group_key="g2"), None)
    assert "Logs" not in texts(slack_standin.messages["C0ALERTS"][1].blocks or [])


async def test_receiver_template_and_broken_template(slack_standin: SlackStandin) -> None:
    """A receiver template replaces the body; one that fails at runtime falls back and is reported."""
    good = make(slack_standin, template="Custom {{ alerts|length }} {{ alerts[0].name|bold }} {{ '<&>' }}")
    bad = make(slack_standin, template="{{ alerts[0].nope.deeper }}")
    try:
        n = notification()
        await good.send(n, None)
        assert "template_errors" not in n.extra
        assert "Custom 1 *ModelServiceDown* &lt;&amp;&gt;" in texts(slack_standin.messages["C0ALERTS"][0].blocks or [])
        n2 = notification()
        await bad.send(n2, None)
        assert n2.extra["template_errors"] and "UndefinedError" in n2.extra["template_errors"][0]
        assert "ModelServiceDown summary" in texts(slack_standin.messages["C0ALERTS"][1].blocks or [])
    finally:
        await good.aclose()
        await bad.aclose()


def test_config_requires_token_only_when_enabled() -> None:
    """A disabled receiver validates without secrets; an enabled one names what is missing."""
    SlackConfig.model_validate({}, context={"enabled": False})
    with pytest.raises(ValueError, match="needs token, channel"):
        SlackConfig.model_validate({}, context={"enabled": True})
    with pytest.raises(ValueError, match="line 1"):
        SlackConfig.model_validate({"token": "x", "channel": "C", "template": "{% if %}"})


async def test_digest_lists_every_alert_of_a_full_chunk(slack: SlackChannel, slack_standin: SlackStandin) -> None:
    """A storm digest of digest_capacity alerts with long values lists each one; no buttons on a digest."""
    from alert_router.pipeline.throttle import coalesce
    from alert_router.store.base import OutboxItem

    alerts = [alert("N" * 80 + str(i), labels={"deployment": "d" * 40, "pod": "p" * 40},
                    annotations={"summary": "s" * 120}) for i in range(slack.digest_capacity)]
    n = notification(alerts)
    [digest] = coalesce([OutboxItem(1, "notify", "slack", n.group_key, n.model_dump(mode="json"), 1, 0.0)],
                        "slack", slack.digest_capacity)
    await slack.send(digest, None)
    [msg] = slack_standin.messages["C0ALERTS"]
    body = texts(msg.blocks or [])
    assert all(f"`{a.fingerprint[:8]}`" in body for a in alerts)
    assert "did not fit" not in body and not any(b["type"] == "actions" for b in msg.blocks or [])


async def test_crash_after_post_edits_the_posted_message_instead_of_leaving_it_firing(
    slack_standin: SlackStandin,
) -> None:
    """A post whose reference was never recorded (SIGKILL mid-send) is found by its metadata, not posted again.

    After the restart the delivery is claimed again (attempts 2) with no reference: the channel looks the
    delivery id up with ``conversations.history`` and edits that message; the resolve then edits it too, so
    nothing is left saying FIRING.
    """
    n = notification(extra={"delivery_id": 41, "delivery_attempts": 1})
    before_crash = make(slack_standin)
    await before_crash.send(n, None)  # posted; the process dies before the reference is stored
    [posted] = slack_standin.messages["C0ALERTS"]
    assert posted.metadata == {"event_type": "alert_router_notification",
                               "event_payload": {"delivery_id": "41", "group_id": group_id(n.group_key)}}
    after_restart = make(slack_standin)
    try:
        retry = notification(extra={"delivery_id": 41, "delivery_attempts": 2})
        ref = await after_restart.send(retry, None)
        assert ref is not None and ref["ts"] == posted.ts
        assert len(slack_standin.messages["C0ALERTS"]) == 1
        done = notification([alert(status="resolved")], extra={"delivery_id": 42, "delivery_attempts": 1})
        await after_restart.send(done, ref)
    finally:
        await before_crash.aclose()
        await after_restart.aclose()
    [only] = [m for m in slack_standin.messages["C0ALERTS"] if m.thread_ts is None]
    assert "[RESOLVED]" in only.blocks[0]["text"]["text"]  # type: ignore[index]
    assert not any(m.blocks and "FIRING" in m.blocks[0]["text"]["text"] for m in slack_standin.all_messages())
    lookups = [r for r in slack_standin.requests if r.method == "conversations.history"]
    assert len(lookups) == 1  # only the re-claimed delivery looked; first attempts do not


async def test_retry_without_an_earlier_post_posts_once(slack: SlackChannel, slack_standin: SlackStandin) -> None:
    """A re-claimed delivery whose first attempt never reached Slack finds nothing and posts."""
    ref = await slack.send(notification(extra={"delivery_id": 5, "delivery_attempts": 3}), None)
    [msg] = slack_standin.messages["C0ALERTS"]
    assert ref is not None and ref["ts"] == msg.ts


async def test_run_runbook_button_only_when_a_runbook_applies(slack_standin: SlackStandin) -> None:
    cfg = SlackConfig.model_validate({"token": slack_standin.token, "channel": "C0ALERTS",
                                      "api_url": slack_standin.base_url})
    ch = SlackChannel("slack", cfg, runbooks_for=lambda labels: ["restart"] if labels.get("deployment") else [])
    try:
        await ch.send(notification([alert()]), None)
        await ch.send(notification([alert(labels={"deployment": "model-api"})], group_key="g2"), None)
    finally:
        await ch.aclose()
    plain, with_runbook = slack_standin.messages["C0ALERTS"]

    def ids(m: Any) -> list[str]:
        return [e["action_id"] for b in m.blocks if b["type"] == "actions" for e in b["elements"]]

    assert "alert_router.rb" not in ids(plain)
    assert ids(with_runbook) == ["alert_router.ack", "alert_router.silence", "alert_router.rb"]
    assert validate_blocks(with_runbook.blocks) == []


def test_shipped_config_tells_chat_channels_which_alerts_have_a_runbook() -> None:
    """The app hands Slack and Telegram the same runbook lookup the Run runbook command uses."""
    from pathlib import Path

    from alert_router.app import build_channels
    from alert_router.config import load

    config = load(Path(__file__).resolve().parents[2] / "alert-router.yaml", {})
    channels = build_channels(config)
    for name in ("slack", "telegram"):
        lookup = getattr(channels[name], "runbooks_for", None)
        assert lookup is not None
        assert lookup({"alertname": "ModelServiceDown", "deployment": "model-api", "namespace": "prod"}) == [
            "restart-model-api"]
        assert lookup({"alertname": "DiskFull", "namespace": "prod"}) == []


async def test_acks_and_resolves_reply_in_the_thread_once(slack: SlackChannel, slack_standin: SlackStandin) -> None:
    """An ack and a resolve each post one short thread reply; a re-render that changes nothing posts none."""
    a = alert()
    ref = await slack.send(notification([a]), None)
    acked = notification([a], extra={"acked_by": {a.fingerprint: "rita"}})
    ref = await slack.send(acked, ref)
    assert ref is not None and ref["acked"] == [a.fingerprint]
    ref = await slack.send(acked, ref)  # the same ack again (another receiver's re-render): no second reply
    ref = await slack.send(notification([alert(status="resolved")]), ref)
    parent, *replies = slack_standin.messages["C0ALERTS"]
    assert [r.text for r in replies] == [f"👀 rita acked {short_id(a.fingerprint)} ModelServiceDown",
                                         "✅ Resolved — fired for 3h12m"]
    assert all(r.thread_ts == parent.ts for r in replies) and parent.edits == 3
    assert "[RESOLVED]" in parent.blocks[0]["text"]["text"]  # type: ignore[index]  # the living message
