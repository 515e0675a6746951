"""The chat side of the store (short ids, acks, escalation timers), pinned on SQLite and PostgreSQL alike."""

import time
from collections.abc import Callable, Sequence

from alert_router.audit import AuditEntry
from alert_router.chat.records import ACTIVE, STOPPED, AckSnapshot, EscalationChange, NewEscalation
from alert_router.pipeline.dedup import Observation
from alert_router.store.base import NewOutboxItem, ObservedAlert, Store

T0 = 1_800_000_000.0


def seen(fp: str, group: str, status: str = "firing", starts: float = T0) -> ObservedAlert:
    return ObservedAlert(Observation(fp, status, starts, None if status == "firing" else starts + 60), group,
                         {"alertname": "A", "fp": fp}, {}, "")


async def ingest(store: Store, group: str, observed: list[ObservedAlert],
                 plan: Callable[[frozenset[str]], Sequence[NewOutboxItem]] = lambda c: []) -> frozenset[str]:
    await store.enqueue(b"{}", group, T0)
    (item,) = await store.claim_inbox("w", 1, 60, time.time())
    res = await store.commit_inbox(item, "w", observed, plan, 3600, time.time())
    assert res.committed
    return res.changed


def effects(snapshot: AckSnapshot) -> tuple[list[NewOutboxItem], list[AuditEntry]]:
    items = [NewOutboxItem("notify", n.dest, n.message_key, {"ack_of": n.id}) for n in snapshot.notices]
    return items, [AuditEntry("ack", {"fps": [a.fingerprint for a in snapshot.acked]}, actor=snapshot.user)]


async def test_find_alerts_by_short_id(store: Store) -> None:
    await ingest(store, "g", [seen("abc123", "g"), seen("abd999", "g"), seen("a_c000", "g", "resolved")])
    assert sorted(a.fingerprint for a in await store.find_alerts(" AB")) == ["abc123", "abd999"]
    assert [a.fingerprint for a in await store.find_alerts("abc")] == ["abc123"]
    assert [a.fingerprint for a in await store.find_alerts("a_")] == ["a_c000"]  # "_" is not a wildcard
    assert await store.find_alerts("a%") == []
    assert [a.fingerprint for a in await store.find_alerts("a", status="resolved")] == ["a_c000"]
    assert await store.find_alerts("  ") == []
    rec = await store.alert("abc123")
    assert rec is not None and rec.changed_at is not None


async def test_ack_stops_escalations_and_a_refire_clears_it(store: Store) -> None:
    await ingest(store, "g1", [seen("f1", "g1"), seen("f2", "g1"), seen("f3", "g1", "resolved")],
                 lambda c: [NewOutboxItem("notify", "slack", "g1", {"n": 1}),
                            NewOutboxItem("notify", "slack", "g1#escalation:r:1", {"n": 2})])
    assert await store.start_escalations(
        [NewEscalation("f1", "r", T0, "g1", T0 + 60, 1), NewEscalation("f1", "r", T0, "g1", T0 + 60, 1)], T0
    ) == 1
    result = await store.ack_alerts(["f1", "f1", "f3", "nope"], "alice", T0 + 5, effects)
    snap = result.snapshot
    assert [a.fingerprint for a in snap.acked] == ["f1"] and snap.acked[0].acked_by == "alice"
    assert [a.fingerprint for a in snap.not_firing] == ["f3"] and snap.missing == ["nope"]
    assert snap.group_acks == {"g1": {"f1": "alice"}}
    assert sorted(n.message_key for n in snap.notices) == ["g1", "g1#escalation:r:1"]
    assert result.stopped_escalations == 1 and result.enqueued == 2
    (esc,) = await store.escalations(fingerprint="f1")
    assert esc.status == STOPPED and esc.stopped_by == "alice"
    again = await store.ack_alerts(["f1", "f2"], "bob", T0 + 6, effects)
    assert [a.fingerprint for a in again.snapshot.already] == ["f1"]
    assert await store.acks(["f1", "f2", "f3"]) == {"f1": "alice", "f2": "bob"}
    assert [a.event for a in await store.audit_records()] == ["ack", "ack"]
    # A new episode (later startsAt) is a change: the ack is cleared.
    assert await ingest(store, "g1", [seen("f1", "g1", starts=T0 + 600)]) == {"f1"}
    assert await store.acks(["f1", "f2"]) == {"f2": "bob"}


async def test_escalation_timers_are_claimed_with_a_lease_and_updated_all_or_nothing(store: Store) -> None:
    timers = [NewEscalation(f"f{i}", "r", T0, "g", T0 + i, 2) for i in range(3)]
    assert await store.start_escalations(timers, T0) == 3
    due = await store.claim_escalations("a", 10, 30, T0 + 1.5)
    assert [e.fingerprint for e in due] == ["f0", "f1"]
    assert await store.claim_escalations("b", 10, 30, T0 + 1.6) == []  # leased to a
    change = [EscalationChange(e.fingerprint, e.rule, e.starts_at, 1, T0 + 100, ACTIVE) for e in due]
    # f1 gets acked meanwhile: the whole update is refused, nothing is written.
    await ingest(store, "g", [seen("f1", "g")])
    await store.ack_alerts(["f1"], "carol", T0 + 2, lambda s: ([], []))
    assert not await store.update_escalations(change, "a", T0 + 3,
                                              follow_ups=[NewOutboxItem("notify", "d", "g#escalation:r:1", {})])
    assert (await store.escalations(fingerprint="f0"))[0].step == 0
    assert (await store.depth(T0)).outbox == {}
    assert await store.update_escalations(change[:1], "a", T0 + 3, audit=[AuditEntry("escalated")])
    (f0,) = await store.escalations(fingerprint="f0")
    assert f0.step == 1 and f0.due_at == T0 + 100
    assert [e.fingerprint for e in await store.escalations(status=ACTIVE)] == ["f2", "f0"]


async def test_unack_clears_the_ack_and_resumes_the_timers_it_stopped(store: Store) -> None:
    await ingest(store, "g1", [seen("f1", "g1")], lambda c: [NewOutboxItem("notify", "slack", "g1", {"n": 1})])
    (alert,) = await store.alerts("firing")
    await store.start_escalations([NewEscalation("f1", "r", alert.starts_at, "g1", T0 + 60, 3)], T0)
    await store.ack_alerts(["f1"], "alice", T0 + 5, effects)
    result = await store.ack_alerts(["f1", "nope"], "bob", T0 + 100, effects, undo=True)
    assert [a.fingerprint for a in result.snapshot.acked] == ["f1"] and result.snapshot.acked[0].acked_by is None
    assert result.stopped_escalations == 1 and result.snapshot.missing == ["nope"]
    assert await store.acks(["f1"]) == {}
    (esc,) = await store.escalations(fingerprint="f1")
    assert esc.status == "active" and esc.due_at == T0 + 100 and esc.stopped_by is None
    again = await store.ack_alerts(["f1"], "bob", T0 + 101, effects, undo=True)
    assert again.snapshot.acked == [] and [a.fingerprint for a in again.snapshot.already] == ["f1"]
