"""The behaviour table every receiver passes, run through the whole service against each platform's stand-in.

| behaviour | Slack | Telegram | PagerDuty | Opsgenie | Teams | Discord |
|---|---|---|---|---|---|---|
| one thing per group state change | message | message | incident (dedup_key) | alert (alias) | card | message |
| resolve | edits it | edits it | resolves it | closes it | a resolved card | edits it |
| 429 waits for | Retry-After | retry_after | throttle_wait | X-RateLimit-Period-In-Sec | Retry-After | retry_after |
| permanent | revoked token | revoked token | unknown routing key | disabled key | deleted workflow | deleted webhook |

Each row is one test, parametrized over the platforms (harnesses in ``tests/channels/platforms.py``).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from alert_router.pipeline.throttle import coalesce
from alert_router.store.base import OutboxItem
from tests.channels.helpers import alert, notification, post, sample, webhook_body, write_config
from tests.channels.platforms import PLATFORMS, Platform, started
from tests.helpers import fixture_bytes, fixture_json, read_jsonl, running_app, settle

ALL = sorted(PLATFORMS)


@pytest.fixture(params=ALL)
async def platform(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Platform]:
    """Each platform's harness, its stand-in started."""
    monkeypatch.setenv("PTB_TIMEDELTA", "true")  # PTB's RetryAfter warns otherwise (see chat_fixtures)
    async with started(request.param) as harness:
        yield harness


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[list[str]]:
    """Every log line of the test (structlog events and the standard library's records), as text."""
    lines: list[str] = []
    with capture_logs() as events, caplog.at_level(logging.DEBUG):
        yield lines
        lines.extend(json.dumps(e, default=str) for e in events)
        lines.extend(r.getMessage() for r in caplog.records)


def only(name: str) -> str:
    return f"rules:\n  - name: people\n    match: []\n    receivers: [{name}]\ndefault:\n  receivers: [file]\n"


def assert_no_secret(platform: Platform, texts: list[str]) -> None:
    for secret in platform.secrets():
        leaks = [t for t in texts if secret in t]
        assert not leaks, f"a {platform.name} secret appears in: {leaks[0][:300]}"


async def test_one_thing_per_group_state_change_and_resolve_closes_it(tmp_path: Path, platform: Platform) -> None:
    """Firing shows one thing; a repeat sends nothing; after a restart the resolve closes/edits it (Teams: a
    resolved card); firing again opens a new one."""
    cfg = write_config(tmp_path, platform.receiver(), rules=only(platform.name))
    async with running_app(cfg) as (client, rt):
        await post(client, fixture_bytes("firing-service-down.json"))
        await settle(rt)
        sends = len(platform.sends())
        await post(client, fixture_bytes("repeat-service-down.json"))
        await settle(rt)
    [first] = platform.things()
    assert not first.resolved
    assert "ModelServiceDown" in first.text and "Model service might be down" in first.text
    assert len(platform.sends()) == sends, "a repeat of the same state was sent again"
    async with running_app(cfg) as (client, rt):  # a new process: the reference comes from the store
        await post(client, fixture_bytes("resolved-service-down.json"))
        await settle(rt)
    things = platform.things()
    if platform.edits:
        assert len(things) == 1 and things[0].resolved
    else:
        assert len(things) == 2 and things[1].resolved and not things[0].resolved
    again = fixture_json("firing-service-down.json")
    again["alerts"][0]["startsAt"] = "2026-11-27T09:00:00Z"
    async with running_app(cfg) as (client, rt):
        await post(client, again)
        await settle(rt)
    latest = platform.things()
    assert len(latest) == len(things) + 1 and not latest[-1].resolved
    assert [t.resolved for t in latest[:-1]] == [t.resolved for t in things]


async def test_429_and_5xx_are_retried_with_the_platforms_wait(
    tmp_path: Path, platform: Platform, logs: list[str]
) -> None:
    """A 500, then two 429s asking for 1 s: delivered once, never sooner than the platform asked."""
    platform.fail_next(1, 500)
    platform.rate_limit_next(2, 1.0)
    cfg = write_config(tmp_path, platform.receiver(), rules=only(platform.name))
    async with running_app(cfg) as (client, rt):
        await post(client, fixture_bytes("firing-service-down.json"))
        await settle(rt, timeout=20)
        name = platform.name
        assert sample(rt, "alert_router_delivery_failures_total", receiver=name, reason="server_error") == 1
        assert sample(rt, "alert_router_delivery_failures_total", receiver=name, reason="rate_limited") == 2
        assert sample(rt, "alert_router_notifications_total", receiver=name, outcome="sent") == 1
    sends = platform.sends()
    assert [s for _, s in sends][:3] == [500, 429, 429] and len(sends) == 4 and 200 <= sends[3][1] < 300
    for (before, _), (after, _) in itertools.pairwise(sends[1:]):
        assert after - before >= 0.95, "retried before the platform's wait elapsed"
    assert len(platform.things()) == 1
    assert_no_secret(platform, logs)


async def test_permanent_failure_goes_to_the_fallback_and_is_audited(
    tmp_path: Path, platform: Platform, logs: list[str]
) -> None:
    """Broken credentials: tried once, counted, audited, delivered to the fallback; no secret anywhere."""
    reason = platform.break_credentials()
    receivers = platform.receiver(common="    fallback: file\n")
    async with running_app(write_config(tmp_path, receivers, rules=only(platform.name))) as (client, rt):
        await post(client, fixture_bytes("firing-service-down.json"))
        await settle(rt)
        name = platform.name
        assert sample(rt, "alert_router_notifications_total", receiver=name, outcome="failed") == 1
        assert sample(rt, "alert_router_delivery_failures_total", receiver=name, reason=reason) == 1
        assert sample(rt, "alert_router_notifications_total", receiver="file", outcome="sent") == 1
        audit = [r for r in await rt.store.audit_records() if r.event == "delivery_failed"]
        metrics = (await (await client.get("/metrics")).read()).decode()
    assert len(audit) == 1 and audit[0].target == f"receiver/{name}"
    assert audit[0].details["reason"] == reason and audit[0].details["fallback"] == "file"
    [rec] = read_jsonl(tmp_path / "data" / "out.jsonl")
    assert rec["extra"]["fallback_from"] == name and rec["extra"]["fallback_reason"].startswith(reason)
    assert len(platform.standin.requests) == 1, "a permanent failure was retried"
    assert platform.things() == []
    texts = [*logs, json.dumps(audit[0].details), json.dumps(rec), metrics]
    assert_no_secret(platform, texts)


@pytest.mark.timeout(90)
async def test_storm_digests_stay_within_the_platforms_limits(tmp_path: Path, platform: Platform) -> None:
    """40 groups at once past a threshold of 5: digests, fewer sends than groups, nothing refused, every alert
    shown by its short id."""
    receivers = platform.receiver(common="    rate_limit: {rate: 4, burst: 2}\n")
    cfg = write_config(tmp_path, receivers, rules=only(platform.name), delivery="storm: {threshold: 5}")
    long = {"deployment": "d" * 40, "pod": "p" * 40}
    short_ids = []
    async with running_app(cfg) as (client, rt):
        bodies = []
        for g in range(40):
            alerts = [alert(f"Storm{g}" + "N" * 60, labels={**long, "pod": f"{'p' * 40}{g}-{i}"},
                            annotations={"summary": "s" * 150}) for i in range(5)]
            short_ids += [a.fingerprint[:8] for a in alerts]
            bodies.append(webhook_body(alerts, group_key=f"storm-{g}"))
        await asyncio.gather(*(post(client, b) for b in bodies))
        await settle(rt, timeout=70)
        digested = sample(rt, "alert_router_notifications_total", receiver=platform.name, outcome="digested")
    assert digested > 0
    assert platform.refused() == []
    assert len(platform.sends()) < 40
    shown = platform.shown()
    missing = [s for s in short_ids if s not in shown]
    assert not missing, f"{len(missing)} alerts never shown, e.g. {missing[:3]}"


async def test_a_full_digest_with_the_longest_values_fits(platform: Platform) -> None:
    """A digest of ``digest_capacity`` alerts, each with long names, labels and summaries, is accepted whole."""
    channel = platform.channel()
    capacity = int(getattr(channel, "digest_capacity", 0))
    assert capacity > 0
    alerts = [alert("N" * 80 + str(i), labels={"deployment": "d" * 40, "pod": "p" * 40 + str(i)},
                    annotations={"summary": "s&<*_`[x](y)" * 20}) for i in range(capacity)]
    n = notification(alerts, receiver=platform.name)
    item = OutboxItem(1, "notify", platform.name, n.group_key, n.model_dump(mode="json"), 1, 0.0)
    [digest] = coalesce([item], platform.name, capacity)
    try:
        await channel.send(digest, None)
    finally:
        await channel.aclose()
    assert platform.refused() == []
    shown = platform.shown()
    assert all(a.fingerprint[:8] in shown for a in alerts)
    assert "did not fit" not in shown
