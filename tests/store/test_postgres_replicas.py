"""Several replicas (several PostgresStore instances) on one database: every piece of work is done once."""

import asyncio
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable

import asyncpg
import pytest

from alert_router.audit import AuditEntry, verify
from alert_router.chat.records import ACTIVE, EscalationChange, NewEscalation
from alert_router.pipeline.dedup import Observation
from alert_router.remediation.runs import Admission, NewRun, RunEffects
from alert_router.store.base import CommitResult, NewOutboxItem, ObservedAlert
from alert_router.store.migrations import LATEST, MIGRATIONS
from alert_router.store.pgsettings import PostgresConfig
from alert_router.store.postgres import PostgresStore, migrate

T0 = 1_800_000_000.0


@pytest.fixture
async def replicas(fresh_pg_database: Callable[[], str]) -> AsyncIterator[list[PostgresStore]]:
    """Four stores on one new database, opened together (each applies migrations if still needed)."""
    dsn = fresh_pg_database()
    stores = [PostgresStore(dsn, PostgresConfig(pool_max=4)) for _ in range(4)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        yield stores
    finally:
        await asyncio.gather(*(s.close() for s in stores))


def seen(fp: str, group: str = "g", starts: float = T0, status: str = "firing") -> ObservedAlert:
    return ObservedAlert(Observation(fp, status, starts, None), group, {"alertname": "A", "fp": fp}, {}, "")


async def test_concurrent_migrations_apply_each_version_once(fresh_pg_database: Callable[[], str]) -> None:
    dsn = fresh_pg_database()
    conns = [await asyncpg.connect(dsn) for _ in range(3)]
    try:
        applied = await asyncio.gather(*(migrate(c) for c in conns))
        # One process applied everything; the others waited on the lock and found nothing left to do.
        assert sorted(applied, key=len) == [[], [], [m.version for m in MIGRATIONS]]
        rows = await conns[0].fetch("SELECT version FROM schema_version ORDER BY version")
        assert [r[0] for r in rows] == list(range(1, LATEST + 1))
    finally:
        for c in conns:
            await c.close()
    # Three stores opening at once on a fresh database all succeed, too.
    dsn2 = fresh_pg_database()
    stores = [PostgresStore(dsn2) for _ in range(3)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        ids = await asyncio.gather(*(s.enqueue(b"{}", "g", T0) for s in stores))
        assert len(set(ids)) == 3
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_store_refuses_an_old_schema_when_migrations_are_manual(fresh_pg_database: Callable[[], str]) -> None:
    from alert_router.errors import StoreUnavailable

    dsn = fresh_pg_database()
    manual = PostgresStore(dsn, PostgresConfig(migrate=False))
    with pytest.raises(StoreUnavailable, match="alert-router migrate"):
        await manual.open()
    auto = PostgresStore(dsn)
    await auto.open()
    await auto.close()
    await manual.open()  # now the schema is current
    await manual.close()


async def test_inbox_claims_never_hand_an_item_twice(replicas: list[PostgresStore]) -> None:
    for i in range(200):
        await replicas[i % 4].enqueue(f"{i}".encode(), f"g{i % 25}", T0 + i)
    committed: list[tuple[int, int]] = []  # (replica, inbox id)
    claimed: Counter[int] = Counter()
    per_group: dict[str, list[int]] = {}

    async def worker(n: int, store: PostgresStore) -> None:
        idle = 0
        while idle < 5:
            items = await store.claim_inbox(f"r{n}", 7, 60, time.time())
            if not items:
                idle += 1
                await asyncio.sleep(0.01)
                continue
            idle = 0
            for it in items:
                claimed[it.id] += 1
                per_group.setdefault(it.group_key, []).append(it.id)
                res = await store.commit_inbox(it, f"r{n}", [], lambda c: [], 3600, time.time())
                assert res.committed
                committed.append((n, it.id))

    await asyncio.gather(*(worker(n, s) for n, s in enumerate(replicas)))
    assert len(committed) == 200
    assert set(claimed.values()) == {1}
    assert len({n for n, _ in committed}) > 1  # the work really was shared
    for ids in per_group.values():  # a group's bodies were processed in arrival order
        assert ids == sorted(ids)
    assert (await replicas[0].depth(time.time())).inbox == 0


async def test_outbox_claims_are_exclusive_and_ordered_per_group(replicas: list[PostgresStore]) -> None:
    await replicas[0].enqueue(b"{}", "seed", T0)
    (seed,) = await replicas[0].claim_inbox("r0", 1, 60, time.time())
    plan = [NewOutboxItem("notify", f"d{i % 3}", f"g{i % 10}", {"n": i}) for i in range(300)]
    await replicas[0].commit_inbox(seed, "r0", [seen("x")], lambda c: plan, 3600, time.time())
    finished: list[int] = []
    claims: Counter[int] = Counter()

    async def worker(n: int, store: PostgresStore) -> None:
        idle = 0
        while idle < 5:
            items = await store.claim_outbox("notify", f"r{n}", 5, 60, time.time())
            if not items:
                idle += 1
                await asyncio.sleep(0.01)
                continue
            idle = 0
            for it in items:
                claims[it.payload["n"]] += 1
                await asyncio.sleep(random.random() / 1000)
                assert await store.finish_outbox(it, f"r{n}", ok=True, now=time.time())
                finished.append(it.payload["n"])

    await asyncio.gather(*(worker(n, s) for n, s in enumerate(replicas)))
    assert sorted(finished) == list(range(300))
    assert set(claims.values()) == {1}
    for key in {(i % 3, i % 10) for i in range(300)}:
        order = [n for n in finished if (n % 3, n % 10) == key]
        assert order == sorted(order), f"group {key} delivered out of order"


async def test_concurrent_dedup_reports_each_change_once(replicas: list[PostgresStore]) -> None:
    # Rounds of 40 copies of overlapping alert sets, in different orders and group keys (so they are claimed in
    # parallel): first the alerts fire, then they resolve. Each state change is reported exactly once, nothing
    # deadlocks, and the stored state is the last one.
    fps = [f"fp{i:02d}" for i in range(12)]
    for status in ("firing", "resolved"):
        for i in range(40):
            await replicas[i % 4].enqueue(f"{i}".encode(), f"{status}{i}", T0)
        results: list[CommitResult] = []

        async def worker(
            n: int, store: PostgresStore, status: str = status, results: list[CommitResult] = results
        ) -> None:
            rng = random.Random(n)
            while True:
                items = await store.claim_inbox(f"r{n}", 2, 60, time.time())
                if not items:
                    return
                for it in items:
                    obs = [seen(fp, it.group_key, status=status) for fp in rng.sample(fps, 8)]
                    results.append(await store.commit_inbox(it, f"r{n}", obs, lambda c: [], 3600, time.time()))

        await asyncio.gather(*(worker(n, s) for n, s in enumerate(replicas)))
        assert len(results) == 40 and all(r.committed for r in results)
        changes = Counter(fp for r in results for fp in r.changed)
        assert all(v == 1 for v in changes.values()), (status, changes)
        stored = {a.fingerprint for a in await replicas[1].alerts(status)}
        assert set(changes) == stored


async def test_dead_replica_work_returns_after_its_lease(replicas: list[PostgresStore]) -> None:
    a, b = replicas[0], replicas[1]
    await a.enqueue(b"{}", "g", T0)
    now = time.time()
    (item,) = await a.claim_inbox("a", 10, 0.5, now)
    assert await b.claim_inbox("b", 10, 30, now + 0.2) == []  # still leased to a
    (again,) = await b.claim_inbox("b", 10, 30, now + 0.6)  # a's lease ran out: b takes over
    assert again.id == item.id and again.attempts == 2
    res = await b.commit_inbox(again, "b", [seen("z")], lambda c: [NewOutboxItem("notify", "d", "g", {})], 60, now)
    assert res.committed
    assert not (await a.commit_inbox(item, "a", [seen("z")], lambda c: [], 60, now)).committed
    (w,) = await a.claim_outbox("notify", "a", 10, 0.5, now + 1)
    (w2,) = await b.claim_outbox("notify", "b", 10, 30, now + 2)
    assert w2.id == w.id
    assert not await a.finish_outbox(w, "a", ok=True, now=now + 2)
    assert await b.finish_outbox(w2, "b", ok=True, now=now + 2, message_ref={"ts": "1"})
    assert await a.message_ref("d", "g") == {"ts": "1"}


async def test_audit_chain_stays_verifiable_with_concurrent_writers(replicas: list[PostgresStore]) -> None:
    async def writer(n: int, store: PostgresStore) -> None:
        for i in range(15):
            await store.append_audit([AuditEntry("test", {"writer": n, "i": i}), AuditEntry("second", {})], time.time())

    await asyncio.gather(*(writer(n, s) for n, s in enumerate(replicas)))
    chain = await replicas[2].audit_chain()
    assert [r.seq for r in chain.records] == list(range(1, 121))
    result = verify(chain)
    assert result.ok, result.problems
    # Pruning (concurrently with more appends) keeps it verifiable through the anchor.
    cut = chain.records[59].ts + 1e-6
    pruned, _ = await asyncio.gather(replicas[0].prune_audit(cut), writer(9, replicas[3]))
    assert pruned >= 60
    after = await replicas[1].audit_chain()
    assert after.anchor_seq >= 60 and verify(after).ok


async def test_one_run_per_trigger_and_one_per_target(replicas: list[PostgresStore]) -> None:
    def new_run(trigger: str, target: str = "prod/deploy/api") -> NewRun:
        return NewRun("restart", target, "fp1", "g", "running", True, "alert", trigger, {"alert": {}})

    def admission(owner: str) -> Admission:
        return Admission(cooldown=0, max_runs=0, window=3600, owner=owner, lease_until=time.time() + 60)

    def effects(rec, refusal):  # type: ignore[no-untyped-def]
        return RunEffects(audit=[AuditEntry("run", {"refused": refusal is not None}, run_id=rec.id)])

    # The same trigger delivered to every replica at once: one run.
    out = await asyncio.gather(
        *(s.begin_run(new_run("t1"), admission(f"r{n}"), time.time(), effects) for n, s in enumerate(replicas))
    )
    assert sorted(created for _, created in out) == [False, False, False, True]
    assert len({rec.id for rec, _ in out}) == 1
    # Different triggers on one target at once: one admitted, the others refused by the target lock.
    out = await asyncio.gather(
        *(
            s.begin_run(new_run(f"u{n}", "prod/deploy/web"), admission(f"r{n}"), time.time(), effects)
            for n, s in enumerate(replicas)
        )
    )
    statuses = Counter(rec.status for rec, _ in out)
    assert statuses == {"running": 1, "skipped": 3}
    assert verify(await replicas[0].audit_chain()).ok
    runs = await replicas[3].runs(runbook="restart")
    assert len(runs) == 5


async def test_prune_removes_done_work_and_expired_state(replicas: list[PostgresStore]) -> None:
    s = replicas[0]
    await s.enqueue(b"{}", "g", T0)
    (it,) = await s.claim_inbox("w", 1, 60, time.time())
    await s.commit_inbox(it, "w", [seen("old")], lambda c: [NewOutboxItem("notify", "d", "g", {})], 10, time.time())
    (w,) = await s.claim_outbox("notify", "w", 1, 60, time.time())
    await s.finish_outbox(w, "w", ok=True, now=time.time())
    await s.enqueue(b"{}", "g2", T0)  # pending: never pruned
    later = time.time() + 100
    assert await s.prune(later, later) == 3  # the done body, the done notification, the expired state
    assert await s.alert("old") is None
    assert (await s.depth(later)).inbox == 1


async def test_escalations_from_several_replicas_are_claimed_once(replicas: list[PostgresStore]) -> None:
    await replicas[0].start_escalations([NewEscalation(f"f{i}", "r", T0, "g", T0, 1) for i in range(60)], T0)
    claims: Counter[str] = Counter()

    async def worker(n: int, s: PostgresStore) -> None:
        while batch := await s.claim_escalations(f"r{n}", 4, 60, T0 + 1):
            for e in batch:
                claims[e.fingerprint] += 1
            assert await s.update_escalations(
                [EscalationChange(e.fingerprint, e.rule, e.starts_at, 1, T0 + 1000, ACTIVE) for e in batch],
                f"r{n}", T0 + 1, audit=[AuditEntry("escalated", {"n": len(batch)})],
            )

    await asyncio.gather(*(worker(n, s) for n, s in enumerate(replicas)))
    assert len(claims) == 60 and set(claims.values()) == {1}
    assert verify(await replicas[0].audit_chain()).ok
