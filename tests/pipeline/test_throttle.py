# ruff: noqa: RUF001, RUF002 - digest headlines use the times sign
"""Token buckets per destination, storm coalescing, and the store queries storm control uses."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from alert_router.channels.base import RateLimit
from alert_router.config import ReceiverSpec
from alert_router.models import Notification
from alert_router.pipeline.throttle import Deferred, DigestStore, StormConfig, Throttle, TokenBucket, coalesce
from alert_router.store.base import NewOutboxItem, OutboxItem
from alert_router.store.sqlite import SQLiteStore
from tests.channels.helpers import alert, notification

ONE_PER_SECOND = RateLimit(1.0)


class Clock:
    def __init__(self) -> None:
        self.t = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds


class FakeChannel:
    def __init__(self, receiver: str = "slack", dest: str = "slack:C1", limit: RateLimit | None = ONE_PER_SECOND,
                 shared: list[tuple[str, RateLimit]] | None = None) -> None:
        self.receiver = receiver
        self._dest = dest
        self._limit = limit
        self._shared = shared

    def destination(self) -> str:
        return self._dest

    def rate_limit(self) -> RateLimit | None:
        return self._limit

    def shared_rate_limits(self) -> list[tuple[str, RateLimit]]:
        return self._shared or []

    async def send(self, notification: Notification, previous: Any) -> Any:  # pragma: no cover - not used
        return None

    async def aclose(self) -> None:  # pragma: no cover
        return None


def spec(name: str, rate: float | None = None, burst: float | None = None) -> ReceiverSpec:
    return ReceiverSpec(name, "slack", None, None, rate, burst, 1)


def test_bucket_spaces_reservations_and_allows_bursts() -> None:
    """rate 1/s burst 1: 0, 1, 2 s; burst 3: three at once, then one per second; idle time refills."""
    clock = Clock()
    one = TokenBucket(1.0, 1.0, clock)
    assert [one.reserve() for _ in range(3)] == [0.0, 1.0, 2.0]
    three = TokenBucket(1.0, 3.0, clock)
    assert [three.reserve() for _ in range(5)] == [0.0, 0.0, 0.0, 1.0, 2.0]
    clock.t += 60
    assert [three.reserve() for _ in range(4)] == [0.0, 0.0, 0.0, 1.0]


def test_bucket_penalty_holds_the_destination() -> None:
    """A Retry-After pushes every later reservation past it."""
    clock = Clock()
    b = TokenBucket(2.0, 1.0, clock)
    b.penalize(5.0)
    assert b.reserve() == pytest.approx(5.0)
    assert b.reserve() == pytest.approx(5.5)


async def test_throttle_waits_per_destination_not_globally() -> None:
    """Two destinations have separate buckets; the second send to one waits, the other does not."""
    clock = Clock()
    th = Throttle({}, clock=clock, sleep=clock.sleep)
    a, b = FakeChannel(dest="slack:A"), FakeChannel(dest="slack:B")
    assert await th.acquire(a) == 0.0
    assert await th.acquire(b) == 0.0
    assert await th.acquire(a) == pytest.approx(1.0)
    assert clock.sleeps == [pytest.approx(1.0)]
    assert await th.acquire(FakeChannel(dest="x", limit=None)) == 0.0


async def test_receiver_override_and_shared_bucket() -> None:
    """rate_limit on the receiver replaces the platform default; a shared (per-bot) bucket also applies."""
    clock = Clock()
    th = Throttle({"fast": spec("fast", rate=10.0, burst=2.0)}, clock=clock, sleep=clock.sleep)
    fast = FakeChannel("fast", "slack:F")
    waits = [await th.acquire(fast) for _ in range(4)]
    assert waits == [0.0, 0.0, pytest.approx(0.1), pytest.approx(0.1)]
    bot = RateLimit(2.0, 1.0)
    c1 = FakeChannel("t1", "telegram:1", RateLimit(100.0, 100.0), shared=[("bot:7", bot)])
    c2 = FakeChannel("t2", "telegram:2", RateLimit(100.0, 100.0), shared=[("bot:7", bot)])
    clock.t += 100
    assert await th.acquire(c1) == 0.0
    assert await th.acquire(c2) == pytest.approx(0.5)  # different chat, same bot bucket


def test_too_long_a_wait_is_deferred_not_held() -> None:
    """A wait beyond max_wait raises Deferred (the item goes back to the store), and books nothing."""
    clock = Clock()
    th = Throttle({}, max_wait=3.0, clock=clock, sleep=clock.sleep)
    ch = FakeChannel()
    th.penalize(ch, 10.0)
    with pytest.raises(Deferred) as err:
        th.reserve(ch)
    assert err.value.delay == pytest.approx(10.0) and err.value.key == "slack:C1"
    clock.t += 10
    assert th.reserve(ch) == 0.0


async def test_concurrent_acquires_book_distinct_slots_at_the_rate() -> None:
    """Ten tasks at once through a 20/s bucket (burst 1): each waits for a slot of its own, 50 ms after the last.

    A fake clock that stands still while they wait: every task reserves at the same instant, so a bucket that
    handed one slot to two tasks (or ignored earlier bookings) would show equal waits.
    """
    clock = Clock()
    waits: list[float] = []

    async def stand_still(seconds: float) -> None:
        waits.append(seconds)
        await asyncio.sleep(0)  # let the other tasks reserve meanwhile

    th = Throttle({}, clock=clock, sleep=stand_still)
    ch = FakeChannel(limit=RateLimit(20.0, 1.0))
    waited = await asyncio.gather(*(th.acquire(ch) for _ in range(10)))
    assert sorted(waited) == pytest.approx([i * 0.05 for i in range(10)])
    assert sorted(waits) == pytest.approx([i * 0.05 for i in range(1, 10)])  # the first went at once
    assert th.reserve(ch) == pytest.approx(0.5)  # the next free slot is after all ten


def item(i: int, n: Notification, dest: str = "slack") -> OutboxItem:
    return OutboxItem(i, "notify", dest, n.group_key, n.model_dump(mode="json"), 1, 0.0)


def test_coalesce_lists_every_alert_once_in_its_latest_state() -> None:
    """Later notifications win; alerts only in earlier ones are kept; chunks respect the capacity."""
    a1, b1 = alert("A", labels={"pod": "1"}), alert("B")
    a1_resolved = alert("A", labels={"pod": "1"}, status="resolved")
    c = [alert("C", labels={"pod": str(i)}) for i in range(5)]
    items = [
        item(1, notification([a1, b1], group_key="g1")),
        item(2, notification(c, group_key="g2")),
        item(3, notification([a1_resolved], group_key="g1")),
    ]
    digests = coalesce(items, "slack", capacity=3)
    assert [d.extra["digest"]["part"] for d in digests] == [1, 2, 3]
    assert all(d.extra["digest"]["parts"] == 3 and d.extra["digest"]["groups"] == 2 for d in digests)
    everything = [a for d in digests for a in d.alerts]
    assert sorted(a.fingerprint for a in everything) == sorted({x.fingerprint for x in [a1, b1, *c]})
    [a_final] = [a for a in everything if a.fingerprint == a1.fingerprint]
    assert a_final.status == "resolved"
    assert all(len(d.alerts) <= 3 for d in digests)
    assert all(d.rule == "storm-digest" and d.group_key == "digest:slack" for d in digests)
    assert digests[-1].status == "resolved"  # the resolved alert sorts last
    from alert_router.render.context import build_context
    from alert_router.render.slack_blocks import build_blocks

    ctx = build_context(digests[0])
    assert ctx["title"].endswith("(part 1/3)")
    blocks, _ = build_blocks(ctx, "body")
    assert not any(b["type"] == "actions" for b in blocks)  # no single group to act on


def test_digest_headline() -> None:
    """'N alerts firing in prod: top names ×count, and M more'."""
    from alert_router.render.context import build_context

    alerts = [alert("Lat", labels={"pod": str(i)}) for i in range(20)] + [alert("Down", labels={"pod": str(i)})
                                                                          for i in range(5)]
    alerts += [alert(f"Other{i}") for i in range(12)]
    [d] = coalesce([item(1, notification(alerts))], "slack", capacity=100)
    ctx = build_context(d)
    assert ctx["title"] == "37 alerts firing in prod: Lat ×20, Down ×5, Other0, and 11 more"
    assert ctx["digest"]["count"] == 37


def test_storm_config_defaults() -> None:
    assert StormConfig().threshold == 20
    with pytest.raises(ValueError, match="greater than or equal"):
        StormConfig(threshold=-1)


# -- the store queries ---------------------------------------------------------------------------------


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "s.db")
    await s.open()
    try:
        yield s
    finally:
        await s.close()


async def fill(store: SQLiteStore, items: list[NewOutboxItem]) -> None:
    await store.enqueue(b"{}", "g", time.time())
    [inbox] = await store.claim_inbox("w", 1, 30, time.time())
    res = await store.commit_inbox(inbox, "w", [], lambda changed: items, 3600, time.time())
    assert res.committed


def nitem(dest: str, group: str, n: int) -> NewOutboxItem:
    return NewOutboxItem("notify", dest, group, {"n": n})


async def test_backlog_and_claim_dest(store: SQLiteStore) -> None:
    """Backlog counts one destination's pending items; claim_dest skips groups with an earlier item in flight."""
    assert isinstance(store, DigestStore)
    await fill(store, [nitem("slack", "g1", 1), nitem("slack", "g1", 2), nitem("slack", "g2", 3),
                       nitem("slack", "g3", 4), nitem("file", "g1", 5)])
    assert await store.backlog("notify", "slack") == 4
    now = time.time()
    claimed = await store.claim_outbox("notify", "w", 10, 30, now)
    first_g1, g2, g3 = [i for i in claimed if i.dest == "slack"]
    # g1's first item, g2 and g3 are claimed (one per group); release g2 and g3 again
    assert {first_g1.group_key, g2.group_key, g3.group_key} == {"g1", "g2", "g3"}
    for it in (g2, g3):
        assert await store.retry_outbox(it, "w", now + 100, "later", now)
    # g1's second item waits for g1's first (in flight); g2 and g3 are taken although not due yet
    swept = await store.claim_dest("notify", "slack", "w", 10, 30, now, None)
    assert sorted(i.payload["n"] for i in swept) == [3, 4]
    assert await store.claim_dest("notify", "slack", "w", 10, 30, now, None) == []
    # with g1's first item as the seed, g1's later item may join the digest
    more = await store.claim_dest("notify", "slack", "w", 10, 30, now, first_g1.id)
    assert [i.payload["n"] for i in more] == [2]
    assert await store.backlog("notify", "slack") == 4


async def test_message_groups_are_those_with_a_living_message(store: SQLiteStore) -> None:
    assert isinstance(store, DigestStore)
    await fill(store, [nitem("slack", f"g{i}", i) for i in range(3)] + [nitem("file", "g0", 9)])
    for it in await store.claim_outbox("notify", "w", 10, 30, time.time()):
        ref = {"ts": it.group_key} if it.dest == "slack" and it.group_key != "g2" else None
        assert await store.finish_outbox(it, "w", ok=True, now=time.time(), message_ref=ref)
    assert await store.message_groups("slack", ["g0", "g1", "g2", "g9"]) == {"g0", "g1"}
    assert await store.message_groups("file", ["g0"]) == set()
    assert await store.message_groups("slack", []) == set()


async def test_finish_many_is_all_or_nothing(store: SQLiteStore) -> None:
    """All items finish together with their follow-ups, or nothing changes when one lease was lost."""
    await fill(store, [nitem("slack", f"g{i}", i) for i in range(4)])
    now = time.time()
    items = await store.claim_dest("notify", "slack", "w", 10, 30, now)
    assert len(items) == 4
    stolen = items[0]
    assert await store.retry_outbox(stolen, "w", now, "x", now)
    assert not await store.finish_outbox_many(items, "w", ok=True, now=now)
    assert await store.backlog("notify", "slack") == 4
    ok = await store.finish_outbox_many(items[1:], "w", ok=False, now=now, error="boom",
                                        follow_ups=[nitem("file", "g1", 9)])
    assert ok
    assert await store.backlog("notify", "slack") == 1
    assert await store.backlog("notify", "file") == 1


class RecordingChannel(FakeChannel):
    def __init__(self) -> None:
        super().__init__(limit=None)
        self.sent: list[Notification] = []

    async def send(self, notification: Notification, previous: Any) -> Any:
        self.sent.append(notification)
        return {"ts": str(len(self.sent))}


async def test_storm_round_coalesces_the_backlog_and_finishes_it(tmp_path: Path) -> None:
    """Past the threshold one item sweeps the rest: digests hold every alert, all items end done together;
    an item claimed while a round is running goes back to the queue (for the next round), not sent alone."""
    from alert_router.config import load
    from alert_router.metrics import Metrics
    from alert_router.pipeline.deliver import Deliverer
    from tests.channels.helpers import write_config

    rx = "  - name: slack\n    storm: {threshold: 5}\n    webhook: {url: 'http://x'}\n"
    cfg = load(write_config(tmp_path, rx), {})
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    try:
        ch = RecordingChannel()
        d = Deliverer(store, cfg, {"slack": ch}, Metrics(), "w")
        groups = [notification([alert(f"A{g}", labels={"pod": str(i)}) for i in range(3)], receiver="slack",
                               group_key=f"g{g}") for g in range(12)]
        await fill(store, [NewOutboxItem("notify", "slack", n.group_key, n.model_dump(mode="json")) for n in groups])
        [seed, second, *_] = await store.claim_outbox("notify", "w", 2, 30, time.time())
        d.storm._active.add("slack")  # as if another worker's round were running
        await d.deliver(second)  # waits for the next round: back in the queue, not sent alone
        assert ch.sent == [] and await store.backlog("notify", "slack") == 12
        d.storm._active.clear()
        await d.deliver(seed)
        assert d.last_digest is not None and d.last_digest.ok and d.last_digest.items == 12  # `second` joined
        shown = [a.fingerprint for n in ch.sent for a in n.alerts]
        assert sorted(shown) == sorted(a.fingerprint for n in groups for a in n.alerts)
        assert all(n.extra["digest"] for n in ch.sent)
        assert await store.backlog("notify", "slack") == 0
        assert d.metrics.registry.get_sample_value(
            "alert_router_notifications_total", {"receiver": "slack", "outcome": "digested"}) == 12
    finally:
        await store.close()


async def test_permanent_digest_failure_sends_every_item_to_the_fallback(tmp_path: Path) -> None:
    """A revoked token during a storm: all swept items fail together, each goes to the fallback receiver."""
    from alert_router.channels.base import ChannelError
    from alert_router.config import load
    from alert_router.errors import FailureReason
    from alert_router.metrics import Metrics
    from alert_router.pipeline.deliver import Deliverer
    from tests.channels.helpers import write_config

    class Revoked(RecordingChannel):
        async def send(self, notification: Notification, previous: Any) -> Any:
            raise ChannelError(FailureReason.AUTH, "token_revoked", retryable=False)

    rx = "  - name: slack\n    fallback: file\n    storm: {threshold: 3}\n    webhook: {url: 'http://x'}\n"
    cfg = load(write_config(tmp_path, rx), {})
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    try:
        d = Deliverer(store, cfg, {"slack": Revoked()}, Metrics(), "w")
        groups = [notification([alert(f"A{g}")], receiver="slack", group_key=f"g{g}") for g in range(5)]
        await fill(store, [NewOutboxItem("notify", "slack", n.group_key, n.model_dump(mode="json")) for n in groups])
        [seed] = await store.claim_outbox("notify", "w", 1, 30, time.time())
        await d.deliver(seed)
        assert await store.backlog("notify", "slack") == 0
        assert await store.backlog("notify", "file") == 5
        fallbacks = await store.claim_dest("notify", "file", "w", 10, 30, time.time())
        assert sorted(i.group_key for i in fallbacks) == [f"g{g}" for g in range(5)]
        assert all(i.payload["extra"]["fallback_from"] == "slack" for i in fallbacks)
    finally:
        await store.close()


class EditingChannel(RecordingChannel):
    edits_in_place = True

    def __init__(self) -> None:
        super().__init__()
        self.previous: list[Any] = []

    async def send(self, notification: Notification, previous: Any) -> Any:
        self.previous.append(previous)
        return await super().send(notification, previous)


async def test_after_a_digest_each_living_message_gets_one_update_and_is_never_digested(tmp_path: Path) -> None:
    """The digest told the story; each group's own message is then edited to its latest state, on its own."""
    from alert_router.config import load
    from alert_router.metrics import Metrics
    from alert_router.pipeline.deliver import Deliverer
    from alert_router.pipeline.throttle import is_refresh
    from tests.channels.helpers import write_config

    rx = "  - name: slack\n    storm: {threshold: 5}\n    webhook: {url: 'http://x'}\n"
    cfg = load(write_config(tmp_path, rx), {})
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    try:
        ch = EditingChannel()
        d = Deliverer(store, cfg, {"slack": ch}, Metrics(), "w")
        # Groups g0-g2 already have a message of their own (as Slack's ts); the others never had one.
        await fill(store, [NewOutboxItem("notify", "slack", f"g{g}", notification(group_key=f"g{g}").model_dump(
            mode="json")) for g in range(3)])
        for it in await store.claim_outbox("notify", "w", 10, 30, time.time()):
            assert await store.finish_outbox(it, "w", ok=True, now=time.time(), message_ref={"ts": f"m-{it.group_key}"})
        # The storm: every group fires, then resolves.
        storm = [
            notification([alert(f"A{g}", status=status)], receiver="slack", group_key=f"g{g}")
            for status in ("firing", "resolved")
            for g in range(12)
        ]
        await fill(store, [NewOutboxItem("notify", "slack", n.group_key, n.model_dump(mode="json")) for n in storm])
        [seed] = await store.claim_outbox("notify", "w", 1, 30, time.time())
        await d.deliver(seed)
        assert d.last_digest is not None and d.last_digest.ok and d.last_digest.items == 24
        assert all(n.extra.get("digest") for n in ch.sent)

        later = time.time() + 3600  # refreshes wait after the digest; claim them as if that time had come
        refreshes = await store.claim_dest("notify", "slack", "w", 100, 30, later)
        assert sorted(r.group_key for r in refreshes) == ["g0", "g1", "g2"]
        assert all(is_refresh(r) and r.payload["status"] == "resolved" for r in refreshes)

        # A new storm round sweeps them up but puts them back: they are never part of a digest.
        for r in refreshes:
            await store.retry_outbox(r, "w", time.time() + 600, "test", time.time())  # pending, not yet due
        more = [notification([alert(f"B{g}")], receiver="slack", group_key=f"h{g}") for g in range(6)]
        await fill(store, [NewOutboxItem("notify", "slack", n.group_key, n.model_dump(mode="json")) for n in more])
        [seed] = await store.claim_outbox("notify", "w", 1, 30, time.time())
        ch.sent.clear()
        await d.deliver(seed)
        digested = {a.labels["alertname"] for n in ch.sent for a in n.alerts}
        assert digested == {f"B{g}" for g in range(6)}
        refreshes = await store.claim_dest("notify", "slack", "w", 100, 30, later)
        assert sorted(r.group_key for r in refreshes) == ["g0", "g1", "g2"]

        # Delivered, a refresh edits the group's own message even while the backlog is high.
        ch.sent.clear()
        for r in refreshes:
            await d.deliver(r)
        assert sorted(p["ts"] for p in ch.previous[-3:]) == ["m-g0", "m-g1", "m-g2"]
        assert [n.status for n in ch.sent] == ["resolved"] * 3 and not any(n.extra.get("digest") for n in ch.sent)
        assert await store.backlog("notify", "slack") == 0
    finally:
        await store.close()


async def test_channels_that_do_not_edit_in_place_get_no_refresh_after_a_digest(tmp_path: Path) -> None:
    """A file or email receiver also keeps a reference (a line id, a thread), but has no message to correct."""
    from alert_router.config import load
    from alert_router.metrics import Metrics
    from alert_router.pipeline.deliver import Deliverer
    from tests.channels.helpers import write_config

    rx = "  - name: slack\n    storm: {threshold: 5}\n    webhook: {url: 'http://x'}\n"
    cfg = load(write_config(tmp_path, rx), {})
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    try:
        ch = RecordingChannel()
        d = Deliverer(store, cfg, {"slack": ch}, Metrics(), "w")
        def items(groups: range) -> list[NewOutboxItem]:
            return [NewOutboxItem("notify", "slack", f"g{g}", notification(group_key=f"g{g}").model_dump(mode="json"))
                    for g in groups]

        await fill(store, items(range(3)))  # g0-g2 got a reference, as a file receiver's line id
        for it in await store.claim_outbox("notify", "w", 10, 30, time.time()):
            assert await store.finish_outbox(it, "w", ok=True, now=time.time(), message_ref={"line_id": it.id})
        await fill(store, items(range(12)))  # then the storm, g0-g2 included
        [seed] = await store.claim_outbox("notify", "w", 1, 30, time.time())
        await d.deliver(seed)
        assert d.last_digest is not None and d.last_digest.ok and d.last_digest.items == 12
        assert await store.message_groups("slack", ["g0", "g1", "g2"]) == {"g0", "g1", "g2"}
        assert await store.backlog("notify", "slack") == 0
    finally:
        await store.close()


async def test_file_and_console_receivers_are_never_digested(tmp_path: Path) -> None:
    """A storm past the threshold still writes one line per notification to a file receiver (a record)."""
    from alert_router.app import build_channels
    from alert_router.config import load
    from alert_router.metrics import Metrics
    from alert_router.pipeline.deliver import Deliverer
    from tests.helpers import read_jsonl, write_config

    cfg = load(write_config(tmp_path, "delivery: {storm: {threshold: 3}}\n"), {})
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    try:
        d = Deliverer(store, cfg, build_channels(cfg), Metrics(), "w")
        groups = [notification([alert(f"A{g}")], receiver="file", group_key=f"g{g}") for g in range(12)]
        await fill(store, [NewOutboxItem("notify", "file", n.group_key, n.model_dump(mode="json")) for n in groups])
        for item in await store.claim_outbox("notify", "w", 100, 30, time.time()):
            await d.deliver(item)
        assert d.last_digest is None
        lines = read_jsonl(tmp_path / "data" / "out.jsonl")
        assert sorted(rec["group_key"] for rec in lines) == sorted(f"g{g}" for g in range(12))
        assert await store.backlog("notify", "file") == 0
    finally:
        await store.close()
