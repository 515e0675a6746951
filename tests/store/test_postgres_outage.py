"""The PostgreSQL store when the database goes away and comes back (a private server the test restarts)."""

import asyncio
import time

import pytest

from alert_router.errors import StoreUnavailable
from alert_router.pipeline.dedup import Observation
from alert_router.store.base import NewOutboxItem, ObservedAlert
from alert_router.store.pgsettings import PostgresConfig
from alert_router.store.postgres import PostgresStore
from tests.procs.postgres import PostgresServer

T0 = 1_800_000_000.0


def seen(fp: str) -> ObservedAlert:
    return ObservedAlert(Observation(fp, "firing", T0, None), "g", {"alertname": "A"}, {}, "")


@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_unavailable_while_down_and_outcomes_survive_a_restart(
    throwaway_postgres: PostgresServer, mode: str
) -> None:
    dsn = await throwaway_postgres.acreate_database()
    store = PostgresStore(dsn, PostgresConfig(pool_max=4, connect_timeout=2, outcome_patience=20))
    await store.open()
    try:
        await store.enqueue(b"{}", "g", T0)
        (item,) = await store.claim_inbox("w", 1, 60, time.time())
        await store.commit_inbox(item, "w", [seen("a")], lambda c: [NewOutboxItem("notify", "d", "g", {})], 60, T0)
        (work,) = await store.claim_outbox("notify", "w", 1, 60, time.time())

        await throwaway_postgres.astop(mode)
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            await store.ping()
        with pytest.raises(StoreUnavailable):
            await store.enqueue(b"{}", "g", T0)  # a webhook gets its 503 at once, not after the patience
        assert time.monotonic() - started < 5

        # The notification was sent while the database was down: recording it waits for the database.
        finishing = asyncio.create_task(store.finish_outbox(work, "w", ok=True, now=time.time(), message_ref={"m": 1}))
        await asyncio.sleep(1.0)
        assert not finishing.done()
        await throwaway_postgres.astart()
        assert await asyncio.wait_for(finishing, 20)

        # Right after the restart every call works: stale pooled connections are replaced, not reported.
        ids = await asyncio.gather(*(store.enqueue(b"{}", f"g{i}", T0) for i in range(12)))
        assert len(set(ids)) == 12
        await store.ping()
        assert await store.message_ref("d", "g") == {"m": 1}
        assert (await store.depth(time.time())).outbox == {}
    finally:
        await store.close()


async def test_open_fails_cleanly_while_the_server_is_down(throwaway_postgres: PostgresServer) -> None:
    dsn = await throwaway_postgres.acreate_database()
    await throwaway_postgres.astop()
    store = PostgresStore(dsn, PostgresConfig(connect_timeout=1))
    with pytest.raises(StoreUnavailable):
        await store.open()
    await throwaway_postgres.astart()
    await store.open()
    try:
        await store.ping()
    finally:
        await store.close()
