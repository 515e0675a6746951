"""The store's side of remediation: atomic admission (lock, cooldown, max_runs), leases, CAS updates, read-only use."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from alert_router.audit import AuditEntry
from alert_router.errors import StoreUnavailable
from alert_router.remediation.commands import open_for_reading
from alert_router.remediation.runs import Admission, NewRun, Refusal, RunChange, RunEffects, RunRecord
from alert_router.store import create_store
from alert_router.store.base import NewOutboxItem, Store

T0 = 1_800_000_000.0


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """Both backends must give the same answers (PostgreSQL: a fresh database per test)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'runs.db'}"
    else:
        url = request.getfixturevalue("fresh_pg_database")()
    s = create_store(url)
    await s.open()
    try:
        yield s
    finally:
        await s.close()


def new_run(target: str = "Deployment/prod/api", trigger: str | None = None, status: str = "running") -> NewRun:
    return NewRun("restart", target, "fp", "g", status, False, "alert", trigger, {"steps": []})


def admission(owner: str = "a", lease_until: float = T0 + 60, cooldown: float = 600, max_runs: int = 2,
              window: float = 3600) -> Admission:
    return Admission(cooldown, max_runs, window, owner, lease_until)


def effects(record: RunRecord, refusal: Refusal | None) -> RunEffects:
    event = "skipped" if refusal else "matched"
    return RunEffects([AuditEntry(event, {"guard": refusal.guard if refusal else None}, run_id=record.id)],
                      [NewOutboxItem("notify", "file", "g", {"run": record.id})])


async def finish(store: Store, run: RunRecord, at: float) -> None:
    done = await store.update_run(run.id, expect=["running"], change=RunChange(status="succeeded", finished=True,
                                                                                release_lock=True), now=at)
    assert done is not None and done.status == "succeeded"


async def test_lock_cooldown_and_max_runs_are_checked_atomically(store: Store) -> None:
    first, created = await store.begin_run(new_run(), admission(), T0, effects)
    assert created and first.status == "running" and first.started_at == T0
    locked, _ = await store.begin_run(new_run(), admission(), T0 + 1, effects)
    assert locked.status == "skipped" and "still running" in locked.summary
    other, _ = await store.begin_run(new_run("Deployment/prod/other"), admission(), T0 + 1, effects)
    assert other.status == "running"  # another target is not blocked
    await finish(store, first, T0 + 10)
    cooled, _ = await store.begin_run(new_run(), admission(), T0 + 20, effects)
    assert cooled.status == "skipped" and cooled.data["refusal"]["guard"] == "cooldown"
    second, _ = await store.begin_run(new_run(), admission(), T0 + 700, effects)
    assert second.status == "running"
    await finish(store, second, T0 + 710)
    capped, _ = await store.begin_run(new_run(), admission(), T0 + 1400, effects)
    assert capped.status == "skipped" and capped.data["refusal"]["guard"] == "max_runs"
    later, _ = await store.begin_run(new_run(), admission(), T0 + 3700, effects)  # first run left the window
    assert later.status == "running"
    audit = await store.audit_records()
    assert [a.event for a in audit] == ["matched", "skipped", "matched", "skipped", "matched", "skipped", "matched"]
    assert (await store.depth(T0)).outbox["notify"] == 7


async def test_a_trigger_creates_at_most_one_run(store: Store) -> None:
    first, created = await store.begin_run(new_run(trigger="outbox:9"), admission(), T0, effects)
    again, created_again = await store.begin_run(new_run(trigger="outbox:9"), admission(), T0 + 1, effects)
    assert created and not created_again and again.id == first.id
    assert len(await store.runs()) == 1 and len(await store.audit_records()) == 1


async def test_an_expired_lock_is_taken_over(store: Store) -> None:
    stale, _ = await store.begin_run(new_run(), admission(owner="dead", lease_until=T0 + 5, cooldown=0), T0, effects)
    fresh, _ = await store.begin_run(new_run(), admission(owner="b", cooldown=0), T0 + 1, effects)
    assert fresh.status == "skipped"  # lease still valid
    took, _ = await store.begin_run(new_run(), admission(owner="b", cooldown=0, max_runs=5), T0 + 6, effects)
    assert took.status == "running"
    assert await store.renew_run(stale.id, "dead", T0 + 100)  # the stale run's own row is still its own...
    assert not await store.renew_run(took.id, "dead", T0 + 100)  # ...but not the new one


async def test_update_run_is_compare_and_set(store: Store) -> None:
    run, _ = await store.begin_run(new_run(), admission(owner="a"), T0, effects)
    assert await store.update_run(run.id, expect=["running"], expect_owner="b", change=RunChange(status="failed"),
                                  now=T0) is None
    assert await store.update_run(run.id, expect=["pending_approval"], change=RunChange(status="failed"),
                                  now=T0) is None
    assert (await store.run(run.id)).status == "running"  # type: ignore[union-attr]
    changed = await store.update_run(run.id, expect=["running"], expect_owner="a", now=T0 + 1,
                                     change=RunChange(step=1, data={"steps": [{"status": "started"}]}))
    assert changed is not None and changed.step == 1 and changed.data["steps"][0]["status"] == "started"


async def test_orphaned_runs_are_those_whose_process_is_gone(store: Store) -> None:
    # SQLite (one process per file): every run not owned by the caller; PostgreSQL: an expired lease.
    mine, _ = await store.begin_run(new_run("a/b/c"), admission(owner="me", lease_until=T0 + 1000), T0, effects)
    theirs, _ = await store.begin_run(new_run("a/b/d"), admission(owner="gone", lease_until=T0 + 60), T0, effects)
    pending, _ = await store.begin_run(new_run("a/b/e", status="pending_approval"),
                                       admission(owner="gone", lease_until=T0 + 60), T0, effects)
    assert pending.status == "pending_approval" and pending.started_at is None
    assert [r.id for r in await store.orphaned_runs("me", T0 + 61)] == [theirs.id]
    assert mine.id != theirs.id


async def test_pending_runs_hold_the_lock_until_decided(store: Store) -> None:
    pending, _ = await store.begin_run(new_run(status="pending_approval"), admission(lease_until=T0 + 3600), T0,
                                       effects)
    blocked, _ = await store.begin_run(new_run(), admission(), T0 + 10, effects)
    assert blocked.status == "skipped" and "pending_approval" in blocked.summary
    denied = await store.update_run(pending.id, expect=["pending_approval"], now=T0 + 20,
                                    change=RunChange(status="denied", finished=True, release_lock=True))
    assert denied is not None
    free, _ = await store.begin_run(new_run(), admission(), T0 + 30, effects)
    assert free.status == "running"  # a denied request never counts towards the cooldown


async def test_state_survives_reopening(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    s = create_store(url)
    await s.open()
    run, _ = await s.begin_run(new_run(), admission(), T0, effects)
    await finish(s, run, T0 + 5)
    await s.close()
    s = create_store(url)
    await s.open()
    try:
        again, _ = await s.begin_run(new_run(), admission(), T0 + 60, effects)
    finally:
        await s.close()
    assert again.status == "skipped" and again.data["refusal"]["guard"] == "cooldown"


async def test_read_only_store_reads_next_to_the_writer(tmp_path: Path) -> None:
    store = create_store(f"sqlite:///{tmp_path / 'runs.db'}")
    await store.open()
    try:
        await _read_next_to(store, tmp_path)
    finally:
        await store.close()


async def _read_next_to(store: Store, tmp_path: Path) -> None:
    await store.begin_run(new_run(), admission(), T0, effects)
    reader = open_for_reading(f"sqlite:///{tmp_path / 'runs.db'}")
    await reader.open()  # the writer holds the process lock: a read-only open does not need it
    try:
        assert len(await reader.runs()) == 1
        with pytest.raises(StoreUnavailable):
            await reader.append_audit([AuditEntry("x")], T0)
    finally:
        await reader.close()
    with pytest.raises(StoreUnavailable):
        await open_for_reading(f"sqlite:///{tmp_path / 'absent.db'}").open()


async def test_pruning_removes_only_finished_runs_older_than_the_horizon(store: Store) -> None:
    running, _ = await store.begin_run(new_run("Deployment/prod/a"), admission(), T0, effects)
    skipped, _ = await store.begin_run(new_run("Deployment/prod/a"), admission(), T0 + 1, effects)  # locked
    approval = new_run("Deployment/prod/c", status="pending_approval")
    waiting, _ = await store.begin_run(approval, admission(), T0, effects)
    done, _ = await store.begin_run(new_run("Deployment/prod/b"), admission(), T0, effects)
    await finish(store, done, T0 + 10)
    assert skipped.status == "skipped" and waiting.status == "pending_approval"
    assert await store.prune_runs(T0 + 5) == 1  # the skipped run; the finished one was updated at T0 + 10
    assert await store.prune_runs(T0 + 1000) == 1
    left = {r.id: r.status for r in await store.runs()}
    assert left == {running.id: "running", waiting.id: "pending_approval"}
