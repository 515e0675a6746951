"""Heartbeats, reclaiming a dead process's claims, queue ages and the dead-man's switch, on both stores."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alert_router.remediation.runs import Admission, NewRun, RunEffects
from alert_router.store.base import DeadmanState, NewOutboxItem, Store
from alert_router.store.sqlite import SQLiteStore
from tests.store.test_contract import T0, notify, seen

LEASE = 60.0


async def claimed_everything(store: Store, owner: str, at: float) -> None:
    """``owner`` holds an inbox body, a notification, a runbook trigger and a running run at ``at``."""
    await store.enqueue(b"{}", "g1", at)
    (item,) = await store.claim_inbox("other", 1, LEASE, at)
    await store.commit_inbox(
        item, "other", [seen("fp1")], lambda c: [notify("d1"), NewOutboxItem("runbook", "rb", "g1", {})], 60, at
    )
    await store.enqueue(b"{}", "g2", at)
    assert len(await store.claim_inbox(owner, 1, LEASE, at)) == 1
    assert len(await store.claim_outbox("notify", owner, 5, LEASE, at)) == 1
    assert len(await store.claim_outbox("runbook", owner, 5, LEASE, at)) == 1
    run, created = await store.begin_run(
        NewRun("restart", "Deployment/prod/api", "fp1", "g1", "running", False, "alert", None, {"steps": []}),
        Admission(600, 2, 3600, owner, at + LEASE), at, lambda r, refusal: RunEffects([], []),
    )
    assert created and run.owner == owner


async def test_heartbeats_count_the_processes_alive(store: Store) -> None:
    assert await store.heartbeat("a", T0, T0, T0 - 3) == 1
    assert await store.heartbeat("b", T0, T0 + 1, T0 - 2) == 2
    assert await store.heartbeat("a", T0, T0 + 5, T0 + 2) == 1  # b's last heartbeat is older than that


async def test_a_dead_process_gives_its_claims_back_before_their_leases_run_out(store: Store) -> None:
    await store.heartbeat("dead", T0, T0, T0)
    await store.heartbeat("alive", T0, T0 + 4, T0)
    await claimed_everything(store, "dead", T0 + 1)
    now = T0 + 5  # the leases run until T0 + 61
    assert await store.claim_outbox("notify", "alive", 5, LEASE, now) == []
    assert await store.reclaim(dead_before=now - 3, now=now) == {"inbox": 1, "notify": 1, "runbook": 1, "run": 1}
    # Taken over at once, not after the lease.
    assert len(await store.claim_inbox("alive", 5, LEASE, now)) == 1
    assert len(await store.claim_outbox("notify", "alive", 5, LEASE, now)) == 1
    assert len(await store.claim_outbox("runbook", "alive", 5, LEASE, now)) == 1
    orphans = await store.orphaned_runs("alive", now + 0.001)
    assert [r.owner for r in orphans] == ["dead"]
    # Once: the dead process is forgotten, and the claims just taken stay with their new owner.
    assert await store.reclaim(dead_before=now - 3, now=now) == {}
    assert await store.heartbeat("alive", T0, now, now - 3) == 1


async def test_a_live_process_keeps_its_claims(store: Store) -> None:
    await store.heartbeat("alive", T0, T0 + 4, T0)
    await store.heartbeat("old", T0, T0, T0)
    await claimed_everything(store, "alive", T0 + 1)
    assert await store.reclaim(dead_before=T0 + 2, now=T0 + 5) == {}
    assert await store.claim_outbox("notify", "x", 5, LEASE, T0 + 5) == []


async def test_a_retired_process_is_reclaimed_at_once(store: Store) -> None:
    await store.heartbeat("leaving", T0, T0 + 10, T0)
    await claimed_everything(store, "leaving", T0 + 10)
    await store.retire("leaving")
    assert (await store.reclaim(dead_before=T0 + 8, now=T0 + 11)).get("notify") == 1


async def test_reclaim_by_several_processes_at_once_happens_once(store: Store) -> None:
    await store.heartbeat("dead", T0, T0, T0)
    await claimed_everything(store, "dead", T0 + 1)
    results = await asyncio.gather(*(store.reclaim(T0 + 2, T0 + 5) for _ in range(4)))
    assert sorted(r.get("notify", 0) for r in results) == [0, 0, 0, 1]


async def test_oldest_pending_per_queue(store: Store) -> None:
    assert await store.oldest_pending(T0) == {}
    await store.enqueue(b"{}", "g1", T0)
    (item,) = await store.claim_inbox("w", 1, LEASE, T0 + 1)
    await store.commit_inbox(item, "w", [seen("fp1")], lambda c: [notify("d1")], 60, T0 + 2)
    await store.enqueue(b"{}", "g2", T0 + 3)
    ages = await store.oldest_pending(T0 + 10)
    assert ages == {"inbox": 7.0, "notify": 8.0}


def page(state: DeadmanState) -> list[NewOutboxItem]:
    return [notify("pager", "deadman", status=state.status, last_seen=state.last_seen, fired_at=state.fired_at)]


async def pages(store: Store, at: float) -> list[dict[str, object]]:
    items = await store.claim_outbox("notify", "reader", 100, LEASE, at)
    for i in items:
        await store.finish_outbox(i, "reader", ok=True, now=at)
    return [i.payload for i in items]


async def test_the_deadman_fires_once_and_resolves_once(store: Store) -> None:
    first = await store.deadman_check("am", T0, T0 - 300, page)
    assert (first.status, first.last_seen, first.changed) == ("ok", T0, False)  # a new switch starts at now
    await store.deadman_beat("am", T0 + 10, T0 + 10, page)
    assert (await store.deadman_check("am", T0 + 300, T0 + 300 - 300, page)).status == "ok"
    # Three processes notice the silence together: one page.
    states = await asyncio.gather(*(store.deadman_check("am", T0 + 400, T0 + 100, page) for _ in range(3)))
    assert sorted(s.changed for s in states) == [False, False, True]
    assert {s.status for s in states} == {"firing"}
    assert await pages(store, T0 + 401) == [{"status": "firing", "last_seen": T0 + 10, "fired_at": T0 + 400}]
    assert not (await store.deadman_check("am", T0 + 500, T0 + 200, page)).changed
    # A heartbeat received before the page does not resolve it; one received after does, once.
    assert not (await store.deadman_beat("am", T0 + 399, T0 + 450, page)).changed
    beats = await asyncio.gather(*(store.deadman_beat("am", T0 + 600, T0 + 600, page) for _ in range(3)))
    assert sorted(s.changed for s in beats) == [False, False, True]
    assert {(s.status, s.last_seen) for s in beats} == {("ok", T0 + 600)}
    assert await pages(store, T0 + 601) == [{"status": "ok", "last_seen": T0 + 600, "fired_at": T0 + 400}]


async def test_sqlite_reports_the_claims_a_crashed_process_left_once(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SQLiteStore(path)
    await store.open()
    await claimed_everything(store, "crashed", T0)
    await store.close()  # as a crash would leave them: claimed
    again = SQLiteStore(path)
    await again.open()
    try:
        assert await again.reclaim(T0, T0 + 1) == {"inbox": 1, "notify": 1, "runbook": 1}
        assert await again.reclaim(T0, T0 + 1) == {}
        assert len(await again.claim_outbox("notify", "new", 5, LEASE, T0 + 1)) == 1
    finally:
        await again.close()
