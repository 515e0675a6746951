"""Chat and mail delivery through the whole service: build_app, POST /webhook, the real pipeline and stand-ins.

Living messages across restarts, retries honouring Retry-After, permanent failures going to the fallback,
a crash mid-delivery, SMTP outages, disabled receivers, template failures and a small alert storm.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from pathlib import Path

import pytest

from tests.channels.helpers import alert, post, sample, webhook_body, write_config
from tests.helpers import fixture_bytes, read_jsonl, running_app, settle, wait_for
from tests.standins.chat_fixtures import SmtpServerFactory
from tests.standins.slack import SlackStandin
from tests.standins.telegram import TelegramStandin


def slack_rx(s: SlackStandin, extra: str = "", name: str = "slack", opts: str = "") -> str:
    return (f"  - name: {name}\n{extra}    slack: {{token: {s.token}, channel: C0ALERTS, "
            f"api_url: '{s.base_url}', timeout: 2{opts}}}\n")


def telegram_rx(t: TelegramStandin, extra: str = "") -> str:
    return (f"  - name: telegram\n{extra}    telegram: {{token: '{t.token}', chat_id: 1001, "
            f"api_url: '{t.base_url}', timeout: 2}}\n")


async def test_living_message_is_edited_on_resolve_across_a_restart(
    tmp_path: Path, slack_standin: SlackStandin, telegram_standin: TelegramStandin
) -> None:
    """Firing posts one Slack and one Telegram message; after a restart, the resolution edits both and replies."""
    cfg = write_config(tmp_path, slack_rx(slack_standin) + telegram_rx(telegram_standin))
    async with running_app(cfg) as (client, rt):
        await post(client, fixture_bytes("firing-service-down.json"))
        await settle(rt)
    [smsg] = slack_standin.messages["C0ALERTS"]
    [tmsg] = telegram_standin.messages[1001]
    assert "[FIRING:1] ModelServiceDown" in (smsg.blocks or [{}])[0]["text"]["text"]
    assert tmsg.reply_markup is not None
    async with running_app(cfg) as (client, rt):  # a new process: the refs come from the store
        await post(client, fixture_bytes("resolved-service-down.json"))
        await settle(rt)
    [_, sreply] = slack_standin.messages["C0ALERTS"]  # the page, edited, and "resolved" in its thread
    assert smsg.edits == 1 and sreply.thread_ts == smsg.ts and sreply.text.startswith("✅ Resolved")
    assert "[RESOLVED] ModelServiceDown" in (smsg.blocks or [{}])[0]["text"]["text"]
    assert "fired for" in (smsg.blocks or [{}])[0]["text"]["text"]
    [_, treply] = telegram_standin.messages[1001]
    assert tmsg.edits == 1 and treply.reply_to == tmsg.message_id and treply.text.startswith("✅ Resolved")
    assert "[RESOLVED] ModelServiceDown" in tmsg.text and tmsg.reply_markup is None
    assert [r.method for r in slack_standin.requests] == ["chat.postMessage", "chat.update", "chat.postMessage"]


async def test_429_storm_is_honoured_and_500s_are_retried(tmp_path: Path, slack_standin: SlackStandin) -> None:
    """A 500, then three 429s (Retry-After: 1): delivered once, never sooner than Slack asked."""
    slack_standin.fail_next(1, 500, method="chat.postMessage")
    slack_standin.rate_limit_next(3, retry_after=1, method="chat.postMessage")
    async with running_app(write_config(tmp_path, slack_rx(slack_standin))) as (client, rt):
        await post(client, fixture_bytes("firing-service-down.json"))
        await settle(rt, timeout=20)
        assert sample(rt, "alert_router_delivery_failures_total", receiver="slack", reason="rate_limited") == 3
        assert sample(rt, "alert_router_delivery_failures_total", receiver="slack", reason="server_error") == 1
        assert sample(rt, "alert_router_notifications_total", receiver="slack", outcome="sent") == 1
    assert len(slack_standin.messages["C0ALERTS"]) == 1
    reqs = [r for r in slack_standin.requests if r.method == "chat.postMessage"]
    assert [r.status for r in reqs] == [500, 429, 429, 429, 200]
    for before, after in itertools.pairwise(reqs[1:]):
        assert after.at - before.at >= 0.95, "retried before Retry-After elapsed"


async def test_bucket_keeps_a_burst_within_the_channel_limit(tmp_path: Path, slack_standin: SlackStandin) -> None:
    """Six groups at once to one channel go out about one per second, not all together."""
    async with running_app(write_config(tmp_path, slack_rx(slack_standin))) as (client, rt):
        for i in range(6):
            await post(client, webhook_body([alert(f"Burst{i}")], group_key=f"g{i}"))
        await settle(rt, timeout=20)
    times = slack_standin.request_times["C0ALERTS"]
    assert len(slack_standin.messages["C0ALERTS"]) == 6
    assert slack_standin.peak_rate("C0ALERTS", 1.0, accepted_only=False) <= 2
    assert max(times) - min(times) >= 4.5


async def test_revoked_token_goes_to_the_fallback(tmp_path: Path, slack_standin: SlackStandin) -> None:
    """A permanent failure is counted, logged and delivered to the fallback receiver, never silent."""
    slack_standin.revoke_token()
    receivers = slack_rx(slack_standin, extra="    fallback: file\n")
    rules = "rules:\n  - name: chat\n    match: []\n    receivers: [slack]\ndefault:\n  receivers: [file]\n"
    async with running_app(write_config(tmp_path, receivers, rules=rules)) as (client, rt):
        await post(client, fixture_bytes("firing-service-down.json"))
        await settle(rt)
        assert sample(rt, "alert_router_notifications_total", receiver="slack", outcome="failed") == 1
        assert sample(rt, "alert_router_delivery_failures_total", receiver="slack", reason="auth") >= 1
        assert sample(rt, "alert_router_notifications_total", receiver="file", outcome="sent") == 1
        audit = [r for r in await rt.store.audit_records() if r.event == "delivery_failed"]
        assert len(audit) == 1
        assert audit[0].target == "receiver/slack"
        assert audit[0].details["reason"] == "auth" and audit[0].details["fallback"] == "file"
    [rec] = read_jsonl(tmp_path / "data" / "out.jsonl")
    assert rec["receiver"] == "file" and rec["extra"]["fallback_from"] == "slack"
    assert "token_revoked" in rec["extra"]["fallback_reason"]
    assert [r.error for r in slack_standin.requests] == ["token_revoked"]  # permanent: tried once


async def test_crash_mid_delivery_redelivers_pending_only(tmp_path: Path, slack_standin: SlackStandin) -> None:
    """A delivery confirmed before a crash is not repeated; one in flight during the crash is completed after restart.

    The in-flight post reached Slack but its reference was never recorded: after the restart the delivery finds
    that message by its metadata (``conversations.history``) and edits it, so the channel holds one message.
    """
    cfg = write_config(tmp_path, slack_rx(slack_standin))
    async with running_app(cfg) as (client, rt):
        await post(client, webhook_body([alert("Confirmed")], group_key="gA"))
        await settle(rt)
        slack_standin.delay_next(1, seconds=1.5, method="chat.postMessage")
        await post(client, webhook_body([alert("InFlight")], group_key="gB"))
        await wait_for(lambda: len(slack_standin.request_times["C0ALERTS"]) == 2)
    # the process is gone; Slack may still complete the held request (at-least-once), we never confirmed it
    await asyncio.sleep(1.7)
    async with running_app(cfg) as (client, rt):
        await settle(rt)
    posts = [r for r in slack_standin.requests if r.method == "chat.postMessage"]
    names = [json.dumps(r.params.get("blocks")) for r in posts]
    assert sum("Confirmed" in n for n in names) == 1
    assert sum("InFlight" in n for n in names) == 1  # before the crash; after the restart it was found, not reposted
    in_flight = [m for m in slack_standin.messages["C0ALERTS"] if "InFlight" in json.dumps(m.blocks)]
    assert len(in_flight) == 1 and in_flight[0].edits == 1


async def test_smtp_down_then_up_is_delivered_after_retry(
    tmp_path: Path, smtp_server_factory: SmtpServerFactory
) -> None:
    """SMTP refuses connections; once it is back, the queued mail goes out (STARTTLS + AUTH, verified CA)."""
    server = smtp_server_factory("starttls", auth=("alerts", "pw"))
    password = tmp_path / "smtp-password"
    password.write_text("pw\n")
    receivers = (
        "  - name: email\n    email: {"
        f"host: 127.0.0.1, port: {server.port}, mode: starttls, ca_file: '{server.ca_pem}', username: alerts, "
        f"password_file: '{password}', from: alerts@example.test, to: oncall@example.test, timeout: 2}}\n"
    )
    server.set_outage("refuse")
    async with running_app(write_config(tmp_path, receivers)) as (client, rt):
        await post(client, fixture_bytes("firing-service-down.json"))
        await wait_for(lambda: sample(rt, "alert_router_delivery_failures_total", receiver="email",
                                      reason="connection") >= 1)
        assert server.messages == []
        server.recover()
        [msg] = await server.wait_for_messages(1, seconds=15)
        await settle(rt)
    assert msg.tls and msg.auth_user == "alerts"
    assert msg.message["Subject"].startswith("[FIRING:1] ModelServiceDown")


async def test_disabled_receiver_gets_no_work(tmp_path: Path) -> None:
    """`enabled: false` needs no secrets and costs nothing: no outbox item for it; the others are delivered."""
    receivers = "  - name: slack\n    enabled: 'false'\n    slack: {}\n"
    body = fixture_bytes("firing-service-down.json")
    async with running_app(write_config(tmp_path, receivers)) as (client, rt):
        await post(client, body)
        await settle(rt)
        notices = await rt.store.sent_notices(json.loads(body)["groupKey"])
        assert [n.dest for n in notices] == ["file"]
        assert sample(rt, "alert_router_notifications_total", receiver="slack", outcome="skipped") == 0
    assert len(read_jsonl(tmp_path / "data" / "out.jsonl")) == 1


async def test_broken_template_falls_back_and_is_counted(tmp_path: Path, slack_standin: SlackStandin) -> None:
    """A receiver template that fails at runtime: the default is sent and the failure counted."""
    rx = slack_rx(slack_standin, opts=", template: '{{ alerts[0].nope.deeper }}'")
    async with running_app(write_config(tmp_path, rx)) as (client, rt):
        await post(client, fixture_bytes("firing-service-down.json"))
        await settle(rt)
        assert sample(rt, "alert_router_delivery_failures_total", receiver="slack", reason="template") == 1
    [msg] = slack_standin.messages["C0ALERTS"]
    assert "Model service might be down!" in json.dumps(msg.blocks)


@pytest.mark.timeout(60)
async def test_storm_is_coalesced_and_nothing_is_lost(tmp_path: Path, slack_standin: SlackStandin) -> None:
    """40 groups at once past a threshold of 5: digests, fewer messages, within the bucket, every alert shown."""
    async with running_app(write_config(tmp_path, slack_rx(slack_standin), delivery="storm: {threshold: 5}")) as (
        client, rt
    ):
        fingerprints = []
        bodies = []
        for g in range(40):
            alerts = [alert(f"Storm{g}", labels={"pod": f"p{g}-{i}"}) for i in range(5)]
            fingerprints += [a.fingerprint[:8] for a in alerts]
            bodies.append(webhook_body(alerts, group_key=f"storm-{g}"))
        await asyncio.gather(*(post(client, b) for b in bodies))
        start = time.monotonic()
        await settle(rt, timeout=40)
        elapsed = time.monotonic() - start
        digested = sample(rt, "alert_router_notifications_total", receiver="slack", outcome="digested")
    msgs = slack_standin.messages["C0ALERTS"]
    everything = "".join(m.text + json.dumps(m.blocks) for m in msgs)
    assert digested > 0
    assert len(msgs) < 40
    assert all(f in everything for f in fingerprints), "every alert is listed by its short id"
    assert any("alerts firing" in m.text for m in msgs)
    assert slack_standin.peak_rate("C0ALERTS", 1.0, accepted_only=False) <= 2
    assert elapsed < 30
