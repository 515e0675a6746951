"""The store side of chat commands (SQLite): short-id lookups, acks with their effects, notices, timers."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from alert_router.audit import AuditEntry
from alert_router.chat.records import AckSnapshot, NewEscalation
from alert_router.config import Config, load
from alert_router.store.base import NewOutboxItem
from alert_router.store.sqlite import SQLiteStore
from tests.chat.support import FP, alert_payload, chat_config, ingest

GROUP_KEY = '{}:{alertname="ModelServiceDown", namespace="prod"}'


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return load(chat_config(tmp_path), {})


@pytest.fixture
async def store(tmp_path: Path, config: Config) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "data" / "chat.db")
    await s.open()
    try:
        assert await ingest(s, config, alert_payload())
        yield s
    finally:
        await s.close()


def no_effects(_: AckSnapshot) -> tuple[list[NewOutboxItem], list[AuditEntry]]:
    return [], []


async def test_find_alerts_by_prefix(store: SQLiteStore, config: Config) -> None:
    await ingest(store, config, alert_payload("2bb1ffff00000000", alertname="Other"))
    assert {a.fingerprint for a in await store.find_alerts("2BB1")} == {FP, "2bb1ffff00000000"}
    assert [a.fingerprint for a in await store.find_alerts("2bb10")] == [FP]
    assert await store.find_alerts("") == [] and await store.find_alerts("zzzz") == []
    await ingest(store, config, alert_payload(status="resolved"))
    assert [a.fingerprint for a in await store.find_alerts("2bb1", status="firing")] == ["2bb1ffff00000000"]


async def test_ack_and_acks(store: SQLiteStore) -> None:
    result = await store.ack_alerts([FP, FP, "missing0"], "rita", 100.0, no_effects)
    snap = result.snapshot
    assert [a.fingerprint for a in snap.acked] == [FP] and snap.missing == ["missing0"]
    assert snap.group_acks == {GROUP_KEY: {FP: "rita"}}
    assert await store.acks([FP, "missing0"]) == {FP: "rita"}
    again = await store.ack_alerts([FP], "adam", 101.0, no_effects)
    assert again.snapshot.acked == [] and [a.acked_by for a in again.snapshot.already] == ["rita"]


async def test_a_failing_ack_writes_nothing(store: SQLiteStore) -> None:
    def boom(_: AckSnapshot) -> tuple[list[NewOutboxItem], list[AuditEntry]]:
        raise RuntimeError("planner bug")

    await store.start_escalations([NewEscalation(FP, "pager", 0.0, GROUP_KEY, 1e12, 1)], 1.0)
    with pytest.raises(RuntimeError):
        await store.ack_alerts([FP], "rita", 100.0, boom)
    alert = await store.alert(FP)
    assert alert is not None and alert.acked_by is None
    assert [t.status for t in await store.escalations()] == ["active"]
    assert await store.audit_records() == []


async def test_refiring_clears_the_ack(store: SQLiteStore, config: Config) -> None:
    await store.ack_alerts([FP], "rita", 100.0, no_effects)
    await ingest(store, config, alert_payload(status="resolved"))
    await ingest(store, config, alert_payload(starts_at="2026-11-27T02:00:00Z"))
    assert await store.acks([FP]) == {}


async def test_sent_notices_are_the_latest_per_receiver_and_message(store: SQLiteStore) -> None:
    now = time.time()
    (first,) = await store.claim_outbox("notify", "w", 10, 60, now)
    await store.finish_outbox(first, "w", ok=True, now=now, message_ref={"ts": "1"})
    payload = {**first.payload, "status": "firing", "marker": 2}
    escalation = f"{GROUP_KEY}#escalation:pager:1"
    other_group = GROUP_KEY.replace("prod", "dev")
    await with_outbox(store, [NewOutboxItem("notify", "file", GROUP_KEY, payload),
                              NewOutboxItem("notify", "lead", escalation, payload),
                              NewOutboxItem("notify", "file", other_group, payload),
                              NewOutboxItem("notify", "gone", GROUP_KEY, payload)], fail_dest="gone")
    notices = await store.sent_notices(GROUP_KEY)
    assert [(n.dest, n.message_key, n.payload.get("marker")) for n in notices] == [
        ("file", GROUP_KEY, 2), ("lead", escalation, 2)]


async def with_outbox(store: SQLiteStore, items: list[NewOutboxItem], *, fail_dest: str) -> None:
    """Enqueue ``items`` (through an ack's effects) and fail the ones for ``fail_dest``."""
    await store.ack_alerts([FP], "rita", time.time(), lambda _: (items, []))
    for item in await store.claim_outbox("notify", "f", 100, 60, time.time()):
        if item.dest == fail_dest:
            await store.finish_outbox(item, "f", ok=False, now=time.time(), error="permanent")
        else:
            await store.retry_outbox(item, "f", 0, "later", time.time())


async def test_prune_drops_finished_timers_only(store: SQLiteStore) -> None:
    await store.start_escalations([NewEscalation(FP, "a", 0.0, GROUP_KEY, 1e12, 1),
                                   NewEscalation(FP, "b", 0.0, GROUP_KEY, 1e12, 1)], 1.0)
    await store.ack_alerts([FP], "rita", 2.0, no_effects)  # stops both
    await store.start_escalations([NewEscalation("other000", "a", 0.0, GROUP_KEY, 1e12, 1)], 3.0)
    await store.prune(time.time(), done_before=10.0)
    assert [(t.fingerprint, t.status) for t in await store.escalations()] == [("other000", "active")]


async def test_unack_clears_the_ack_and_resumes_the_timers_it_stopped(store: SQLiteStore) -> None:
    alert = await store.alert(FP)
    assert alert is not None
    await store.start_escalations([NewEscalation(FP, "pager", alert.starts_at, GROUP_KEY, 50.0, 3)], 1.0)
    await store.ack_alerts([FP], "rita", 10.0, no_effects)
    result = await store.ack_alerts([FP, "missing0"], "adam", 100.0, no_effects, undo=True)
    assert [a.fingerprint for a in result.snapshot.acked] == [FP] and result.stopped_escalations == 1
    assert result.snapshot.missing == ["missing0"] and await store.acks([FP]) == {}
    (timer,) = await store.escalations()
    assert timer.status == "active" and timer.due_at == 100.0  # was due at 50: due now, not in the past
    again = await store.ack_alerts([FP], "adam", 101.0, no_effects, undo=True)
    assert again.snapshot.acked == [] and [a.fingerprint for a in again.snapshot.already] == [FP]
