"""The behaviour every store must have: durable inbox, atomic dedup+enqueue, leases, ordering, refs, pruning."""

import asyncio
import time

from alert_router.pipeline.dedup import Observation
from alert_router.store.base import NewOutboxItem, ObservedAlert, Store

T0 = 1_800_000_000.0


def seen(fp: str, status: str = "firing", starts: float = T0, ends: float | None = None) -> ObservedAlert:
    return ObservedAlert(Observation(fp, status, starts, ends), "g1", {"alertname": "A", "fp": fp}, {}, "")


def notify(dest: str, group: str = "g1", **payload: object) -> NewOutboxItem:
    return NewOutboxItem("notify", dest, group, dict(payload))


async def test_enqueue_concurrently_gets_distinct_ids(store: Store) -> None:
    ids = await asyncio.gather(*(store.enqueue(f"body{i}".encode(), f"g{i % 3}", T0) for i in range(50)))
    assert len(set(ids)) == 50
    items = await store.claim_inbox("w", 100, 30, time.time())
    # One per group at a time: later bodies of a group wait for the earlier ones.
    assert sorted(i.group_key for i in items) == ["g0", "g1", "g2"]
    assert all(i.body.startswith(b"body") for i in items)


async def test_enqueue_ids_name_their_own_bodies(store: Store) -> None:
    bodies = [f"body-{i}".encode() for i in range(150)]  # more than one multi-row INSERT's worth
    ids = await asyncio.gather(*(store.enqueue(b, f"g{i}", T0) for i, b in enumerate(bodies)))
    stored = {i.id: i.body for i in await store.claim_inbox("w", 500, 30, time.time())}
    assert [stored[i] for i in ids] == bodies


async def test_a_fingerprint_twice_in_one_body_is_applied_in_order(store: Store) -> None:
    await store.enqueue(b"{}", "g1", T0)
    (item,) = await store.claim_inbox("w", 10, 30, time.time())
    both = [seen("a"), seen("a", "resolved", ends=T0 + 60), seen("b")]
    res = await store.commit_inbox(item, "w", both, lambda c: [], 3600, time.time())
    assert res.committed and res.changed == frozenset({"a", "b"})
    a, b = await store.alert("a"), await store.alert("b")
    assert a is not None and a.status == "resolved"
    assert b is not None and b.status == "firing"


async def test_commit_applies_dedup_and_plans_only_changes(store: Store) -> None:
    calls: list[frozenset[str]] = []

    def plan(changed: frozenset[str]) -> list[NewOutboxItem]:
        calls.append(changed)
        return [notify("file", fps=sorted(changed))] if changed else []

    for _ in range(2):  # the same body twice: the second is a pure repeat
        await store.enqueue(b"{}", "g1", T0)
        (item,) = await store.claim_inbox("w", 10, 30, time.time())
        res = await store.commit_inbox(item, "w", [seen("a"), seen("b")], plan, 3600, time.time())
        assert res.committed
    assert calls == [frozenset({"a", "b"}), frozenset()]
    work = await store.claim_outbox("notify", "w", 10, 30, time.time())
    assert [w.payload["fps"] for w in work] == [["a", "b"]]
    rec = await store.alert("a")
    assert rec is not None and rec.status == "firing" and rec.labels["fp"] == "a"


async def test_commit_refused_after_lease_lost(store: Store) -> None:
    await store.enqueue(b"{}", "g1", T0)
    now = time.time()
    (item,) = await store.claim_inbox("w1", 10, 0.01, now)
    (again,) = await store.claim_inbox("w2", 10, 30, now + 1)  # w1's lease expired
    assert again.id == item.id
    res = await store.commit_inbox(item, "w1", [seen("a")], lambda c: [notify("file")], 3600, now + 1)
    assert not res.committed
    assert await store.claim_outbox("notify", "w", 10, 30, now + 2) == []
    assert (await store.commit_inbox(again, "w2", [seen("a")], lambda c: [notify("file")], 3600, now + 2)).committed


async def test_outbox_one_item_per_group_in_order(store: Store) -> None:
    await store.enqueue(b"{}", "g1", T0)
    (item,) = await store.claim_inbox("w", 10, 30, time.time())
    plan = [notify("slack", n=1), notify("slack", n=2), notify("slack", "g2", n=3), notify("file", n=4)]
    await store.commit_inbox(item, "w", [seen("a")], lambda c: plan, 3600, time.time())
    first = await store.claim_outbox("notify", "w", 10, 30, time.time())
    assert sorted(w.payload["n"] for w in first) == [1, 3, 4]
    assert await store.claim_outbox("notify", "w", 10, 30, time.time()) == []
    one = next(w for w in first if w.payload["n"] == 1)
    assert await store.finish_outbox(one, "w", ok=True, now=time.time(), message_ref={"ts": "1.2"})
    (second,) = await store.claim_outbox("notify", "w", 10, 30, time.time())
    assert second.payload["n"] == 2
    assert await store.message_ref("slack", "g1") == {"ts": "1.2"}


async def test_retry_and_lease_expiry(store: Store) -> None:
    await store.enqueue(b"{}", "g1", T0)
    (item,) = await store.claim_inbox("w", 10, 30, time.time())
    await store.commit_inbox(item, "w", [seen("a")], lambda c: [notify("file")], 3600, time.time())
    now = time.time()
    (w,) = await store.claim_outbox("notify", "w1", 10, 30, now)
    assert await store.retry_outbox(w, "w1", now + 100, "boom", now)
    assert await store.claim_outbox("notify", "w1", 10, 30, now + 50) == []
    (w2,) = await store.claim_outbox("notify", "w2", 10, 0.5, now + 101)
    assert w2.attempts == 2
    # w2 dies; after its lease another worker gets the item and the stale owner cannot finish it.
    (w3,) = await store.claim_outbox("notify", "w3", 10, 30, now + 102)
    assert not await store.finish_outbox(w2, "w2", ok=True, now=now + 103)
    assert await store.finish_outbox(w3, "w3", ok=False, now=now + 103, error="x",
                                     follow_ups=[notify("fallback", fallback=True)])
    (fb,) = await store.claim_outbox("notify", "w3", 10, 30, now + 104)
    assert fb.dest == "fallback"


async def test_depth_and_prune(store: Store) -> None:
    await store.enqueue(b"{}", "g1", T0)
    await store.enqueue(b"{}", "g2", T0)
    d = await store.depth(time.time())
    assert d.inbox == 2
    items = await store.claim_inbox("w", 10, 30, time.time())
    for it in items:
        await store.commit_inbox(it, "w", [seen("a")], lambda c: [notify("file")] if c else [], 10, time.time())
    d = await store.depth(time.time())
    assert d.inbox == 0 and d.outbox == {"notify": 1}
    later = time.time() + 100
    assert await store.prune(later, later) >= 3  # two done bodies and the expired state of "a"
    assert await store.alert("a") is None


async def test_a_request_is_remembered_once_until_its_window_ends(store: Store) -> None:
    """Replay protection: the first sighting of a key wins; the same key again is refused until ``keep_until``."""
    assert await store.remember_request("slack", "v0=abc", T0, T0 + 600)
    assert not await store.remember_request("slack", "v0=abc", T0 + 1, T0 + 601)
    assert await store.remember_request("telegram:1", "v0=abc", T0 + 1, T0 + 601), "scopes are separate"
    assert not await store.remember_request("slack", "v0=abc", T0 + 599, T0 + 1200)
    # once its window is over the sighting is forgotten: the key may be seen anew
    assert await store.remember_request("slack", "v0=abc", T0 + 601, T0 + 1200)


async def test_concurrent_sightings_of_one_request_admit_exactly_one(store: Store) -> None:
    results = await asyncio.gather(*(store.remember_request("slack", "same", T0, T0 + 600) for _ in range(20)))
    assert sorted(results) == [False] * 19 + [True]


async def test_expired_sightings_are_pruned(store: Store) -> None:
    for i in range(5):
        assert await store.remember_request("telegram:1", str(i), T0, T0 + 10 + i)
    assert await store.prune(T0 + 13, T0) == 3  # kept until T0+10, +11 and +12: over; +13 and +14 are not
    assert not await store.remember_request("telegram:1", "3", T0 + 13, T0 + 99)
    assert await store.remember_request("telegram:1", "2", T0 + 13, T0 + 99)
