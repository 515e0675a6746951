"""The heartbeat worker: it takes over only from processes that went silent, and only once it is sure of itself."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from alert_router.errors import StoreUnavailable
from alert_router.heartbeat import FailoverConfig, Heartbeat
from alert_router.metrics import Metrics
from alert_router.store.sqlite import SQLiteStore
from tests.store.test_contract import T0

CFG = FailoverConfig(heartbeat=1.0, dead_after=3.0)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class FlakyStore(SQLiteStore):
    """A store whose heartbeat write can be made to fail, as during a database outage."""

    failing = False

    async def heartbeat(self, owner: str, started_at: float, now: float, alive_after: float) -> int:
        if self.failing:
            raise StoreUnavailable("database away")
        return await super().heartbeat(owner, started_at, now, alive_after)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[FlakyStore]:
    s = FlakyStore(tmp_path / "s.db")
    await s.open()
    try:
        yield s
    finally:
        await s.close()


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels or None)


async def test_a_silent_process_is_taken_over_after_dead_after(store: FlakyStore) -> None:
    clock = Clock()
    metrics = Metrics()
    taken: list[dict[str, int]] = []
    me = Heartbeat(store, CFG, metrics, "me", taken.append, clock)
    await store.heartbeat("other", T0, T0, T0)
    await store.enqueue(b"{}", "g", T0)
    await store.claim_inbox("other", 1, 60, T0)
    for t in range(4):  # "other" falls silent at T0; "me" beats every second
        clock.now = T0 + t
        await me.beat()
        assert taken == [], t
        assert value(metrics, "alert_router_replicas_alive") == 2
    clock.now = T0 + 4
    await me.beat()
    assert taken == [{"inbox": 1}]
    assert value(metrics, "alert_router_reclaimed_total", queue="inbox") == 1
    assert value(metrics, "alert_router_replicas_alive") == 1
    assert value(metrics, "alert_router_store_up") == 1


async def test_no_takeover_until_this_process_has_been_seen_for_dead_after(store: FlakyStore) -> None:
    """After a database outage everyone's heartbeat is old: the first one back must not take the others' work."""
    clock = Clock()
    taken: list[dict[str, int]] = []
    me = Heartbeat(store, CFG, Metrics(), "me", taken.append, clock)
    await store.heartbeat("other", T0, T0, T0)
    await me.beat()
    store.failing = True  # the database goes away for 10 s
    for t in range(1, 11):
        clock.now = T0 + t
        await me.beat()
    store.failing = False
    for t in range(11, 14):  # back: "me" beats again, "other" has not yet
        clock.now = T0 + t
        await me.beat()
        assert taken == [], t
    await store.heartbeat("other", T0, T0 + 13.5, T0)  # "other" is back too, in time
    clock.now = T0 + 14
    await me.beat()
    assert taken == []


async def test_failover_off_never_takes_over(store: FlakyStore) -> None:
    clock = Clock()
    taken: list[dict[str, int]] = []
    me = Heartbeat(store, FailoverConfig(dead_after=0), Metrics(), "me", taken.append, clock)
    await store.heartbeat("other", T0, T0, T0)
    for t in range(10):
        clock.now = T0 + t
        await me.beat()
    assert taken == []


async def test_a_retired_process_is_taken_over_at_the_next_beat(store: FlakyStore) -> None:
    clock = Clock()
    taken: list[dict[str, int]] = []
    me = Heartbeat(store, CFG, Metrics(), "me", taken.append, clock)
    leaving = Heartbeat(store, CFG, Metrics(), "leaving", None, clock)
    for t in range(4):
        clock.now = T0 + t
        await leaving.beat()
        await me.beat()
    await store.enqueue(b"{}", "g", clock.now)
    await store.claim_inbox("leaving", 1, 60, clock.now)
    await leaving.retire()
    clock.now += 1
    await me.beat()
    assert taken == [{"inbox": 1}]


def test_dead_after_must_span_two_heartbeats() -> None:
    with pytest.raises(ValidationError, match="at least twice the heartbeat"):
        FailoverConfig(heartbeat=2.0, dead_after=3.0)
    assert FailoverConfig(heartbeat=2.0, dead_after=0).dead_after == 0
