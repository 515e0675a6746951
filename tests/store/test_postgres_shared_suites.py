"""The store tests other modules keep next to their code, run against PostgreSQL as well.

Those modules pin their ``store`` fixture to SQLite; here the same test functions get a PostgreSQL store
(a new database each). Left out, because they test SQLite itself: reopening a file, read-only opening
next to the writer, and the embedded meaning of an orphaned run (PostgreSQL's is pinned below).
"""

from collections.abc import AsyncIterator, Callable

import pytest

from alert_router.store.postgres import PostgresStore
from tests.pipeline import test_throttle as throttle
from tests.remediation import test_store_runs as runs


@pytest.fixture
async def store(fresh_pg_database: Callable[[], str]) -> AsyncIterator[PostgresStore]:
    s = PostgresStore(fresh_pg_database())
    await s.open()
    try:
        yield s
    finally:
        await s.close()


test_runs_lock_cooldown_and_max_runs = runs.test_lock_cooldown_and_max_runs_are_checked_atomically
test_runs_a_trigger_creates_at_most_one_run = runs.test_a_trigger_creates_at_most_one_run
test_runs_an_expired_lock_is_taken_over = runs.test_an_expired_lock_is_taken_over
test_runs_update_run_is_compare_and_set = runs.test_update_run_is_compare_and_set
test_runs_pending_runs_hold_the_lock_until_decided = runs.test_pending_runs_hold_the_lock_until_decided
test_digest_backlog_and_claim_dest = throttle.test_backlog_and_claim_dest
test_digest_finish_many_is_all_or_nothing = throttle.test_finish_many_is_all_or_nothing
test_digest_message_groups = throttle.test_message_groups_are_those_with_a_living_message


async def test_orphaned_runs_are_those_whose_lease_expired(store: PostgresStore) -> None:
    """Shared store: a running run is orphaned when its lease ran out, whoever owned it (even this process)."""
    t0 = runs.T0
    mine, _ = await store.begin_run(runs.new_run("a/b/c"), runs.admission(owner="me", lease_until=t0 + 60), t0,
                                    runs.effects)
    gone, _ = await store.begin_run(runs.new_run("a/b/d"), runs.admission(owner="gone", lease_until=t0 + 5), t0,
                                    runs.effects)
    pending, _ = await store.begin_run(runs.new_run("a/b/e", status="pending_approval"),
                                       runs.admission(owner="gone", lease_until=t0 + 5), t0, runs.effects)
    assert [r.id for r in await store.orphaned_runs("me", t0 + 1)] == []
    assert [r.id for r in await store.orphaned_runs("me", t0 + 10)] == [gone.id]  # pending runs are not "running"
    assert await store.renew_run(mine.id, "me", t0 + 200)
    assert [r.id for r in await store.orphaned_runs("other", t0 + 100)] == [gone.id]
    assert pending.status == "pending_approval"
