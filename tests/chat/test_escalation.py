"""Escalation with a controllable clock: fires after N minutes, repeats M times, stops on ack or resolution,
and resumes correctly (no repeat, no loss) after a restart."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from alert_router.chat.authz import Identity
from alert_router.chat.clock import ManualClock
from alert_router.chat.commands import CommandService
from alert_router.chat.escalation import CLOSE_KIND, Escalator
from alert_router.config import Config, load
from alert_router.store import create_store
from alert_router.store.base import Store
from alert_router.store.sqlite import SQLiteStore
from tests.chat.support import FP, SHORT, FakeAlertmanager, alert_payload, chat_config, ingest
from tests.helpers import JSON_TYPE, read_jsonl, running_app, wait_for

GROUP_KEY = '{}:{alertname="ModelServiceDown", namespace="prod"}'
MIN = 60.0


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return load(chat_config(tmp_path), {})


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "data" / "esc.db")
    await s.open()
    try:
        yield s
    finally:
        await s.close()


async def escalations_sent(store: SQLiteStore) -> list[dict]:
    """The escalation notifications enqueued for the `lead` receiver, in order."""
    return [n.payload for n in await store.sent_notices(GROUP_KEY) if n.dest == "lead"]


async def started(store: Store, config: Config) -> tuple[ManualClock, Escalator, float]:
    clock = ManualClock(time.time())
    assert await ingest(store, config, alert_payload())
    alert = await store.alert(FP)
    assert alert is not None and alert.changed_at is not None
    esc = Escalator(store, config, owner="esc-1", clock=clock)
    assert await esc.tick() == 0
    return clock, esc, alert.changed_at


async def test_fires_after_n_minutes_then_repeats_up_to_m_times(store: SQLiteStore, config: Config) -> None:
    clock, esc, since = await started(store, config)
    (timer,) = await store.escalations()
    assert (timer.rule, timer.status, timer.step, timer.due_at) == ("pager", "active", 0, since + 10 * MIN)

    await clock.set(since + 10 * MIN - 1)
    assert await esc.tick() == 0 and await escalations_sent(store) == []

    await clock.set(since + 10 * MIN)
    assert await esc.tick() == 1
    (first,) = await escalations_sent(store)
    assert first["receiver"] == "lead" and first["rule"] == "pager" and first["group_key"] == GROUP_KEY
    assert [a["fingerprint"] for a in first["alerts"]] == [FP]
    assert first["extra"]["escalation"]["step"] == 1 and first["extra"]["escalation"]["repeat"] == 2
    notices = [n for n in await store.sent_notices(GROUP_KEY) if n.dest == "lead"]
    assert notices[0].message_key == f"{GROUP_KEY}#escalation:pager:1"  # a new message, not an edit of the page

    await clock.advance(5 * MIN)
    assert await esc.tick() == 0
    await clock.advance(5 * MIN)
    assert await esc.tick() == 1
    assert [p["extra"]["escalation"]["step"] for p in await escalations_sent(store)] == [1, 2]
    (timer,) = await store.escalations()
    assert (timer.status, timer.step) == ("done", 2)

    await clock.advance(60 * MIN)
    assert await esc.tick() == 0
    assert len(await escalations_sent(store)) == 2
    events = [r for r in await store.audit_records() if r.event == "escalated"]
    assert [(r.details["step"], r.details["receivers"]) for r in events] == [(1, ["lead"]), (2, ["lead"])]


async def test_ack_stops_it(store: SQLiteStore, config: Config) -> None:
    clock, esc, since = await started(store, config)
    commands = CommandService(store, config, alertmanager=FakeAlertmanager(), clock=clock)
    await clock.set(since + 3 * MIN)
    reply = await commands.execute_text(Identity("slack", "URESP", "C0"), f"ack {SHORT}")
    assert reply.ok and "Escalation stopped." in reply.text
    (timer,) = await store.escalations()
    assert (timer.status, timer.reason, timer.stopped_by) == ("stopped", "acked", "rita")
    await clock.set(since + 30 * MIN)
    assert await esc.tick() == 0
    assert await escalations_sent(store) == []


async def test_ack_between_claim_and_fire_wins(store: SQLiteStore, config: Config) -> None:
    clock, esc, since = await started(store, config)
    await clock.set(since + 11 * MIN)
    (claimed,) = await store.claim_escalations("esc-1", 10, 60, clock.now())
    commands = CommandService(store, config, alertmanager=FakeAlertmanager(), clock=clock)
    await commands.execute_text(Identity("telegram", "102", "1"), f"ack {SHORT}")
    assert not await esc._fire("pager", GROUP_KEY, [claimed], clock.now())
    assert await escalations_sent(store) == []


async def test_resolution_stops_it(store: SQLiteStore, config: Config) -> None:
    clock, esc, since = await started(store, config)
    assert await ingest(store, config, alert_payload(status="resolved"))
    await clock.set(since + 10 * MIN)
    assert await esc.tick() == 0
    (timer,) = await store.escalations()
    assert (timer.status, timer.reason) == ("stopped", "resolved")
    assert await escalations_sent(store) == []


@pytest.fixture(params=["sqlite", "postgresql"])
async def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    url = (f"sqlite:///{tmp_path / 'any.db'}" if request.param == "sqlite"
           else request.getfixturevalue("fresh_pg_database")())
    s = create_store(url)
    await s.open()
    try:
        yield s
    finally:
        await s.close()


async def lead_messages(store: Store) -> dict[str, str]:
    """The lead's escalation messages (outbox key) and the latest state sent to each."""
    return {n.message_key: n.payload["status"] for n in await store.sent_notices(GROUP_KEY) if n.dest == "lead"}


async def test_a_group_that_resolves_resolves_its_escalation_messages(any_store: Store, config: Config) -> None:
    """A lead paged by escalation sees the page resolve: every escalation message is updated, once."""
    clock, esc, since = await started(any_store, config)
    await clock.set(since + 10 * MIN)
    assert await esc.tick() == 1
    await clock.set(since + 20 * MIN)
    assert await esc.tick() == 1
    step1, step2 = f"{GROUP_KEY}#escalation:pager:1", f"{GROUP_KEY}#escalation:pager:2"
    assert await lead_messages(any_store) == {step1: "firing", step2: "firing"}

    assert await ingest(any_store, config, alert_payload(status="resolved"))
    assert await esc.tick() == 2
    assert await lead_messages(any_store) == {step1: "resolved", step2: "resolved"}
    resolved = [n for n in await any_store.sent_notices(GROUP_KEY) if n.dest == "lead"]
    assert {n.payload["extra"]["escalation"]["step"] for n in resolved} == {1, 2}
    assert all(n.payload["receiver"] == "lead" and n.payload["alerts"][0]["status"] == "resolved" for n in resolved)
    assert await esc.tick() == 0, "each escalation message is resolved once"
    assert (await any_store.depth(clock.now())).outbox.get(CLOSE_KIND, 0) == 0


async def test_a_group_that_resolves_before_escalating_sends_the_lead_nothing(any_store: Store, config: Config) -> None:
    clock, esc, since = await started(any_store, config)
    assert await ingest(any_store, config, alert_payload(status="resolved"))
    assert await esc.tick() == 0
    assert await lead_messages(any_store) == {}
    await clock.set(since + 30 * MIN)
    assert await esc.tick() == 0
    assert await lead_messages(any_store) == {}


async def test_a_new_firing_episode_gets_a_new_timer(store: SQLiteStore, config: Config) -> None:
    _, esc, _ = await started(store, config)
    assert await ingest(store, config, alert_payload(status="resolved"))
    assert await ingest(store, config, alert_payload(starts_at="2026-11-27T01:00:00Z"))
    await esc.tick()
    timers = sorted(await store.escalations(), key=lambda t: t.starts_at)
    assert len(timers) == 2 and timers[1].status == "active"


async def test_resumes_correctly_after_a_restart(tmp_path: Path, config: Config) -> None:
    path = tmp_path / "data" / "restart.db"
    first = SQLiteStore(path)
    await first.open()
    clock, esc, since = await started(first, config)
    await clock.set(since + 10 * MIN)
    assert await esc.tick() == 1  # step 1 sent before the "crash"
    await clock.set(since + 20 * MIN)
    assert len(await first.claim_escalations("dead-process", 10, 3600, clock.now())) == 1  # claimed, never finished
    await first.close()

    second = SQLiteStore(path)
    await second.open()
    try:
        fresh = Escalator(second, config, owner="esc-2", clock=clock)  # nothing in memory
        assert await fresh.tick() == 1, "the dead process's claim is released at startup: step 2 fires now"
        assert [p["extra"]["escalation"]["step"] for p in await escalations_sent(second)] == [1, 2]
        await clock.advance(60 * MIN)
        assert await fresh.tick() == 0
        (timer,) = await second.escalations()
        assert (timer.status, timer.step) == ("done", 2)
    finally:
        await second.close()


async def test_timer_not_due_yet_survives_a_restart_and_fires_on_time(tmp_path: Path, config: Config) -> None:
    path = tmp_path / "data" / "restart2.db"
    first = SQLiteStore(path)
    await first.open()
    clock, _, since = await started(first, config)
    await first.close()
    second = SQLiteStore(path)
    await second.open()
    try:
        esc = Escalator(second, config, owner="esc-2", clock=clock)
        await clock.set(since + 9 * MIN)
        assert await esc.tick() == 0
        await clock.set(since + 10 * MIN)
        assert await esc.tick() == 1
    finally:
        await second.close()


async def test_the_running_service_delivers_escalations_to_the_next_receivers(tmp_path: Path) -> None:
    rules = """\
rules:
  - name: pager
    match: ['severity="critical"']
    receivers: [file]
    escalate: {after: 1s, receivers: [lead]}
default:
  receivers: [file]
"""
    cfg = chat_config(tmp_path, "  escalation: {poll_interval: 0.1}\n", rules=rules)
    async with running_app(cfg) as (client, _):
        import json

        r = await client.post("/webhook", data=json.dumps(alert_payload()).encode(), headers=JSON_TYPE)
        assert r.status == 200
        lead = await wait_for(lambda: read_jsonl(tmp_path / "data" / "lead.jsonl"), timeout=10)
        assert lead[0]["rule"] == "pager" and lead[0]["extra"]["escalation"]["step"] == 1
        assert [a["fingerprint"] for a in lead[0]["alerts"]] == [FP]

        r = await client.post("/webhook", data=json.dumps(alert_payload(status="resolved")).encode(), headers=JSON_TYPE)
        assert r.status == 200
        lead = await wait_for(lambda: [x for x in read_jsonl(tmp_path / "data" / "lead.jsonl")
                                       if x["status"] == "resolved"], timeout=10)
    assert lead[0]["extra"]["escalation"]["step"] == 1, "the escalation message itself is resolved"
