"""The SQLite store's thread: webhook appends go ahead of queued work, commit together, and fail alone."""

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from alert_router.errors import StoreUnavailable
from alert_router.store.sqlite_thread import SLICE, Append, SQLiteThread
from tests.helpers import wait_for

ROWS = Append("t(v)", "(?)", chunk=8)


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT NOT NULL)")
    conn.execute("CREATE TABLE IF NOT EXISTS w (v INTEGER NOT NULL)")
    return conn


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[SQLiteThread]:
    thread = SQLiteThread(lambda: connect(tmp_path / "t.db"))
    await thread.start()
    try:
        yield thread
    finally:
        await thread.stop()


async def hold(db: SQLiteThread) -> tuple[asyncio.Future[object], threading.Event]:
    """Occupy the thread with a write until the returned event is set."""
    entered, gate = threading.Event(), threading.Event()

    def block(conn: sqlite3.Connection) -> bool:
        entered.set()
        return gate.wait(10)

    blocker = asyncio.ensure_future(db.write(block))
    await asyncio.get_running_loop().run_in_executor(None, entered.wait, 10)
    return blocker, gate


async def test_appends_go_ahead_of_work_queued_before_them(db: SQLiteThread) -> None:
    blocker, gate = await hold(db)
    done: list[str] = []
    writes = [
        asyncio.ensure_future(db.write(lambda c, i=i: c.execute("INSERT INTO w VALUES (?)", (i,)).rowcount))
        for i in range(3 * SLICE)
    ]
    for f in writes:
        f.add_done_callback(lambda _: done.append("write"))
    append = asyncio.ensure_future(db.append(ROWS, ("body",)))
    append.add_done_callback(lambda _: done.append("append"))
    await asyncio.sleep(0)  # every task has queued its work behind the blocker
    gate.set()
    assert await blocker is True
    await asyncio.gather(*writes, append)
    assert done[0] == "append"
    assert done.count("write") == 3 * SLICE
    assert await db.call(lambda c: c.execute("SELECT count(*) FROM w").fetchone()[0]) == 3 * SLICE


async def test_appended_ids_name_their_rows_across_statements(db: SQLiteThread) -> None:
    blocker, gate = await hold(db)
    values = [f"v{i}" for i in range(3 * ROWS.chunk + 1)]  # more than one multi-row statement
    pending = [asyncio.ensure_future(db.append(ROWS, (v,))) for v in values]
    await asyncio.sleep(0)
    gate.set()
    await blocker
    ids = await asyncio.gather(*pending)
    stored = dict(await db.call(lambda c: c.execute("SELECT id, v FROM t").fetchall()))
    assert [stored[i] for i in ids] == values


async def test_a_failing_append_fails_its_rows_and_nothing_else(db: SQLiteThread) -> None:
    blocker, gate = await hold(db)
    write = asyncio.ensure_future(db.write(lambda c: c.execute("INSERT INTO w VALUES (1)").rowcount))
    good = asyncio.ensure_future(db.append(ROWS, ("fine",)))
    bad = asyncio.ensure_future(db.append(ROWS, (None,)))  # NOT NULL: the whole insert fails
    await asyncio.sleep(0)
    gate.set()
    await blocker
    assert await write == 1
    for f in (good, bad):
        with pytest.raises(StoreUnavailable, match="NOT NULL"):
            await f
    assert await db.call(lambda c: c.execute("SELECT count(*) FROM t").fetchone()[0]) == 0
    assert await db.append(ROWS, ("later",)) > 0  # the thread goes on


async def test_a_failing_write_in_a_group_undoes_only_itself(db: SQLiteThread) -> None:
    blocker, gate = await hold(db)

    def boom(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO w VALUES (2)")
        raise ValueError("bad plan")

    ok = asyncio.ensure_future(db.write(lambda c: c.execute("INSERT INTO w VALUES (1)").rowcount))
    failing = asyncio.ensure_future(db.write(boom))
    await asyncio.sleep(0)
    gate.set()
    await blocker
    assert await ok == 1
    with pytest.raises(ValueError, match="bad plan"):
        await failing
    assert await db.call(lambda c: c.execute("SELECT v FROM w").fetchall()) == [(1,)]


async def test_work_queued_at_stop_is_finished_and_later_work_refused(db: SQLiteThread) -> None:
    pending = [asyncio.ensure_future(db.append(ROWS, (f"v{i}",))) for i in range(5)]
    await asyncio.sleep(0)
    await db.stop()
    assert len(set(await asyncio.gather(*pending))) == 5
    with pytest.raises(StoreUnavailable, match="not open"):
        await db.append(ROWS, ("late",))


class Arrivals(Append):
    """An append that, while it commits, has the next webhook arrive: the queue never runs dry of appends."""

    def __init__(self, db: SQLiteThread, arrivals: int) -> None:
        super().__init__("t(v)", "(?)")
        object.__setattr__(self, "_db", db)
        object.__setattr__(self, "_left", [arrivals])

    def insert(self, conn: sqlite3.Connection, rows: list[tuple[object, ...]]) -> list[int]:
        left = self._left  # type: ignore[attr-defined]
        if left[0] > 0:
            left[0] -= 1
            self._db._submit(None, write=True, append=self, row=("next",))  # type: ignore[attr-defined]
        return super().insert(conn, rows)


async def test_a_steady_stream_of_appends_starves_no_other_work(db: SQLiteThread) -> None:
    arrivals = 200
    blocker, gate = await hold(db)
    first = asyncio.ensure_future(db.append(Arrivals(db, arrivals), ("first",)))
    read = asyncio.ensure_future(db.call(lambda c: c.execute("SELECT count(*) FROM t").fetchone()[0]))
    await asyncio.sleep(0)
    gate.set()
    await blocker
    assert await first > 0
    assert await read < arrivals  # it ran while webhooks kept arriving, not once they stopped

    async def all_in() -> bool:
        return bool(await db.call(lambda c: c.execute("SELECT count(*) FROM t").fetchone()[0]) == arrivals + 1)

    await wait_for(all_in)  # the last arrivals are in before the fixture stops the thread


async def test_a_slice_ends_after_its_time_budget(db: SQLiteThread, monkeypatch: pytest.MonkeyPatch) -> None:
    """Long writes queued: an append arriving behind them waits for one budget's worth, not a whole slice."""
    from alert_router.store import sqlite_thread

    monkeypatch.setattr(sqlite_thread, "SLICE_SECONDS", 0.0)  # a slice ends after its first call
    blocker, gate = await hold(db)
    second_started, append_queued = threading.Event(), threading.Event()
    order: list[str] = []

    def write(conn: sqlite3.Connection, i: int) -> None:
        if i == 1:  # hold the second write until the append is queued behind the rest
            second_started.set()
            append_queued.wait(10)
        conn.execute("INSERT INTO w VALUES (?)", (i,))

    writes = [asyncio.ensure_future(db.write(lambda c, i=i: write(c, i))) for i in range(SLICE)]
    for i, f in enumerate(writes):
        f.add_done_callback(lambda _, i=i: order.append(f"write{i}"))
    await asyncio.sleep(0)
    gate.set()
    await blocker
    await asyncio.get_running_loop().run_in_executor(None, second_started.wait, 10)
    append = asyncio.ensure_future(db.append(ROWS, ("body",)))
    append.add_done_callback(lambda _: order.append("append"))
    await asyncio.sleep(0)  # queued
    append_queued.set()
    await asyncio.gather(*writes, append)
    assert order.index("append") < order.index(f"write{SLICE - 1}"), order  # it overtook the writes still queued


async def test_a_read_queued_after_writes_runs_outside_their_transaction(db: SQLiteThread) -> None:
    """Some reads open a transaction of their own (a consistent snapshot): never inside a write group."""
    blocker, gate = await hold(db)

    def snapshot(conn: sqlite3.Connection) -> int:
        conn.execute("BEGIN")
        try:
            return int(conn.execute("SELECT count(*) FROM w").fetchone()[0])
        finally:
            conn.execute("COMMIT")

    writes = [asyncio.ensure_future(db.write(lambda c, i=i: c.execute("INSERT INTO w VALUES (?)", (i,)).rowcount))
              for i in range(3)]
    read = asyncio.ensure_future(db.call(snapshot))
    later = asyncio.ensure_future(db.write(lambda c: c.execute("INSERT INTO w VALUES (9)").rowcount))
    await asyncio.sleep(0)
    gate.set()
    await blocker
    assert await asyncio.gather(*writes) == [1, 1, 1]
    assert await read == 3  # it sees the writes queued before it, committed
    assert await later == 1


async def test_a_shared_read_runs_inside_the_write_group_it_is_queued_in(db: SQLiteThread) -> None:
    """A plain read between writes does not split their group: one transaction, one commit, for all of them."""
    blocker, gate = await hold(db)
    seen: list[bool] = []

    def count(conn: sqlite3.Connection) -> int:
        seen.append(conn.in_transaction)
        return int(conn.execute("SELECT count(*) FROM w").fetchone()[0])

    first = asyncio.ensure_future(db.write(lambda c: c.execute("INSERT INTO w VALUES (1)").rowcount))
    read = asyncio.ensure_future(db.read(count))
    second = asyncio.ensure_future(db.write(lambda c: (seen.append(c.in_transaction), c.total_changes)[1]))
    await asyncio.sleep(0)
    gate.set()
    await blocker
    changes_before = await first
    assert await read == 1  # it sees the write queued before it
    assert seen == [True, True]  # the read and the write after it ran in the open group
    assert await second >= changes_before  # the same connection, no commit in between to reset anything


async def test_a_shared_read_fails_when_its_group_does_not_commit(db: SQLiteThread) -> None:
    """Its answer reflected writes that never became durable: it is not handed over."""
    blocker, gate = await hold(db)

    real_slice = db._slice

    def failing_slice(conn: sqlite3.Connection, backlog: object) -> list[object]:
        original = conn.execute

        class Conn:
            def __getattr__(self, name: str) -> object:
                return getattr(conn, name)

            def execute(self, sql: str, *args: object) -> object:
                if sql == "COMMIT":
                    raise sqlite3.OperationalError("disk I/O error")
                return original(sql, *args)

        return real_slice(Conn(), backlog)  # type: ignore[arg-type]

    write = asyncio.ensure_future(db.write(lambda c: c.execute("INSERT INTO w VALUES (1)").rowcount))
    read = asyncio.ensure_future(db.read(lambda c: int(c.execute("SELECT count(*) FROM w").fetchone()[0])))
    db._slice = failing_slice  # type: ignore[method-assign]
    await asyncio.sleep(0)
    gate.set()
    assert await blocker is True  # its own slice committed before the swap took effect
    with pytest.raises(StoreUnavailable):
        await write
    with pytest.raises(StoreUnavailable, match="disk I/O error"):
        await read
    db._slice = real_slice  # type: ignore[method-assign]
    assert await db.call(lambda c: c.execute("SELECT count(*) FROM w").fetchone()[0]) == 0
