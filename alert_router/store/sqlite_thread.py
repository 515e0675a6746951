"""The thread that owns the SQLite connection: every call runs there, writes commit in groups.

The event loop only queues work and waits for its future. The thread drains the queue by itself:
appended rows (webhook bodies, which someone is waiting for) go first, in a commit of their own;
then a slice of the other calls, in order (up to ``SLICE`` of them or ``SLICE_SECONDS``): reads one by
one, and writes sharing one transaction (group commit: one savepoint each, so a failing write undoes
only itself, and one fsync'd commit for all); plain reads (:meth:`SQLiteThread.read`) join the open
group instead of ending it, so a pipeline that reads between its writes still shares one fsync. Each
round's outcomes go back in one ``call_soon_threadsafe``, and the queue is looked at again.

What a commit costs here (measured with ``bench/ingest.py`` and py-spy, see the note on issue 2):
each call into SQLite releases the GIL, and winning it back from a busy event loop takes longer than
the statement itself. So the number of SQLite calls per commit is what to keep down: rows appended to
one table go in as one multi-row ``INSERT`` (:class:`Append`), and a group holding nothing else is
that single statement, committing by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from alert_router.errors import StoreUnavailable

T = TypeVar("T")

SLICE = 16
"""At most this many reads and writes run between two looks at the queue, so a webhook body waits for at
most one such slice (a group commit of up to this many writes) before its own commit begins."""

SLICE_SECONDS = 0.004
"""A slice also ends once it has run this long (after at least one call): under a heavy backlog (a storm
being processed) a webhook body waits for a few milliseconds of work, not for sixteen large commits."""

Outcome = tuple["asyncio.Future[Any]", bool, Any]


IN_LIST = 500  # values per ``IN (...)`` list, far below SQLite's limit of 32,766 parameters


def in_lists(values: Sequence[T]) -> Iterator[tuple[list[T], str]]:
    """Split ``values`` for ``... IN (...)`` queries: each part with its ``?,?,...`` placeholders."""
    items = list(values)
    for i in range(0, len(items), IN_LIST):
        part = items[i : i + IN_LIST]
        yield part, ",".join("?" * len(part))


@dataclass(frozen=True, slots=True)
class Append:
    """A table that takes rows appended in bulk: ``INSERT INTO <into> VALUES <row>, <row>, ...``.

    All the rows queued for one ``Append`` in a group go in as few multi-row statements as the chunk size
    allows, and each caller gets its row's id. One statement inserts its rows one after another, each taking
    the next id (the thread is the only writer), so a chunk's ids run up to its ``lastrowid``.
    """

    into: str  # e.g. "inbox(received_at, group_key, body)"
    row: str  # e.g. "(?,?,?)"
    chunk: int = 64  # rows per statement; SQLite allows 32,766 parameters in one

    def insert(self, conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> list[int]:
        """Insert ``rows``; return their ids in order."""
        ids: list[int] = []
        for i in range(0, len(rows), self.chunk):
            part = rows[i : i + self.chunk]
            sql = f"INSERT INTO {self.into} VALUES " + ",".join([self.row] * len(part))  # noqa: S608 - constants
            last = conn.execute(sql, [v for row in part for v in row]).lastrowid
            if last is None:
                raise sqlite3.DatabaseError(f"INSERT INTO {self.into} reported no row id")
            ids.extend(range(last - len(part) + 1, last + 1))
        return ids


@dataclass(slots=True)
class _Job:
    fn: Callable[[sqlite3.Connection], Any] | None
    fut: asyncio.Future[Any]
    write: bool
    append: Append | None = None
    row: tuple[Any, ...] = ()
    shared: bool = False  # a read that may run inside an open write group (plain SELECTs)


def _unavailable(exc: BaseException) -> StoreUnavailable:
    if isinstance(exc, StoreUnavailable):
        return exc
    if isinstance(exc, sqlite3.Error):
        return StoreUnavailable(f"sqlite: {exc}")
    return StoreUnavailable(str(exc) or type(exc).__name__)


def _settle(outcomes: list[Outcome]) -> None:
    for fut, ok, value in outcomes:
        if fut.done():  # the caller was cancelled; the work itself is done or undone regardless
            continue
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)


class SQLiteThread:
    """Runs functions on one connection in one dedicated thread; see the module docstring."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], name: str = "sqlite-store") -> None:
        self._connect = connect
        self._name = name
        self._cv = threading.Condition()
        self._jobs: list[_Job] = []
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conn: sqlite3.Connection | None = None
        self._round_started: float | None = None  # monotonic start of the round in progress; None while idle
        self._commit_error: str | None = None  # why the last shared commit failed; None once one succeeds

    @property
    def running(self) -> bool:
        """Whether the thread is up with an open connection and not stopping."""
        return self._thread is not None and self._conn is not None and not self._stopping

    def check(self, stall: float) -> None:
        """Raise :class:`StoreUnavailable` unless the thread is up, its last commit worked and it is not stuck.

        Answers at once, without queueing behind the backlog: a busy thread that keeps finishing rounds is
        healthy however long its queue; one round running longer than ``stall`` seconds (a disk that stopped
        answering an fsync, a lock held elsewhere) is not.
        """
        if not self.running:
            raise StoreUnavailable("store is not open")
        if self._commit_error is not None:
            raise StoreUnavailable(f"sqlite: the last commit failed: {self._commit_error}")
        started = self._round_started
        if started is not None and time.monotonic() - started > stall:
            raise StoreUnavailable(f"sqlite: one commit has been running for {time.monotonic() - started:.1f}s")

    async def start(self) -> None:
        """Start the thread and open the connection there; raise what opening raised."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        opened: asyncio.Future[None] = loop.create_future()
        self._stopping = False
        self._thread = threading.Thread(target=self._main, args=(opened,), name=self._name, daemon=True)
        self._thread.start()
        try:
            await opened
        except BaseException:
            await self._join()
            raise

    async def stop(self) -> None:
        """Finish the queued work, close the connection and end the thread."""
        if self._thread is None:
            return
        with self._cv:
            self._stopping = True
            self._cv.notify()
        await self._join()

    async def _join(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            await asyncio.get_running_loop().run_in_executor(None, thread.join)

    def _submit(
        self,
        fn: Callable[[sqlite3.Connection], Any] | None,
        write: bool,
        append: Append | None = None,
        row: tuple[Any, ...] = (),
        shared: bool = False,
    ) -> asyncio.Future[Any]:
        if self._loop is None or not self.running:
            raise StoreUnavailable("store is not open")
        fut: asyncio.Future[Any] = self._loop.create_future()
        with self._cv:
            self._jobs.append(_Job(fn, fut, write, append, row, shared))
            self._cv.notify()
        return fut

    async def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` alone; an SQLite error rolls back what it began and becomes StoreUnavailable."""
        result: T = await self._submit(fn, write=False)
        return result

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn``, plain ``SELECT`` statements only, wherever the queue is: inside the open write group if any.

        Unlike :meth:`call`, a read queued behind writes does not end their group (a group commit fewer: the
        delivery stage's reads between its writes used to cut the groups to a few writes each, one fsync per
        handful). Inside a group it sees the writes queued before it, and its answer is handed over only once
        that group committed; if the commit fails, so does the read.
        """
        result: T = await self._submit(fn, write=False, shared=True)
        return result

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` inside the next group transaction; return once that commit is durable."""
        result: T = await self._submit(fn, write=True)
        return result

    async def append(self, table: Append, row: tuple[Any, ...]) -> int:
        """Append ``row`` to ``table`` in the next group; return its id once the commit is durable.

        Every SQLite call hands the GIL to the event loop's thread and must win it back, which costs about
        as much as the call itself while the loop is busy; so rows appended together go in one multi-row
        ``INSERT``, and a group holding nothing else is that single statement, committing by itself, with no
        ``BEGIN``/``COMMIT`` around it. If the insert fails, every row in it fails and the rest of the group
        still commits.
        """
        return int(await self._submit(None, write=True, append=table, row=row))

    # -- the thread -------------------------------------------------------------------------------

    def _main(self, opened: asyncio.Future[None]) -> None:
        loop = self._loop
        assert loop is not None
        try:
            self._conn = self._connect()
        except BaseException as exc:  # handed to the waiting coroutine
            self._stopping = True
            loop.call_soon_threadsafe(_settle, [(opened, False, _unavailable(exc))])
            return
        loop.call_soon_threadsafe(_settle, [(opened, True, None)])
        conn = self._conn
        backlog: deque[_Job] = deque()  # taken from the queue, not yet run
        try:
            while True:
                with self._cv:
                    if not self._jobs and not backlog:
                        self._round_started = None
                    while not self._jobs and not backlog and not self._stopping:
                        self._cv.wait()
                    if not self._jobs and not backlog:
                        break
                    jobs, self._jobs = self._jobs, []
                self._round_started = time.monotonic()
                appends = [j for j in jobs if j.append is not None]
                backlog.extend(j for j in jobs if j.append is None)
                if appends:
                    # Appends are webhook bodies someone is waiting for: they go first, in their own commit.
                    loop.call_soon_threadsafe(_settle, self._appends(conn, appends))
                if backlog:  # then one slice of the rest, so that a steady stream of appends starves nothing
                    loop.call_soon_threadsafe(_settle, self._slice(conn, backlog))
        finally:
            self._conn = None
            conn.close()

    @staticmethod
    def _call(conn: sqlite3.Connection, job: _Job) -> Outcome:
        assert job.fn is not None
        try:
            return (job.fut, True, job.fn(conn))
        except Exception as exc:  # every failure goes back to its caller
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.rollback()
            return (job.fut, False, _unavailable(exc) if isinstance(exc, sqlite3.Error) else exc)

    def _slice(self, conn: sqlite3.Connection, backlog: deque[_Job]) -> list[Outcome]:
        """Run queued calls in order, at least one, until ``SLICE`` ran or ``SLICE_SECONDS`` passed.

        Writes share one transaction (a savepoint each: a failing write undoes only itself) committed at
        the end; their callers learn the outcome only then. Reads (:meth:`call`) run on their own, outside any
        write group (some open a transaction of their own): a read that comes after writes ends the slice, so
        it runs first in the next one and sees what the writes queued before it committed. Shared reads
        (:meth:`read`) run inside the group like a write that changes nothing.
        """
        deadline = time.perf_counter() + SLICE_SECONDS
        reads: list[Outcome] = []
        writes: list[Outcome] = []
        taken: list[_Job] = []
        try:
            while backlog and len(taken) < SLICE and (not taken or time.perf_counter() < deadline):
                job = backlog.popleft()
                taken.append(job)
                assert job.fn is not None
                if not job.write and not (job.shared and conn.in_transaction):
                    if conn.in_transaction:  # reads run outside a write group (some open their own): next slice
                        backlog.appendleft(taken.pop())
                        break
                    reads.append(SQLiteThread._call(conn, job))
                    continue
                if not conn.in_transaction:
                    conn.execute("BEGIN IMMEDIATE")
                conn.execute("SAVEPOINT w")
                try:
                    value = job.fn(conn)
                except Exception as exc:  # this write is undone, the others go on
                    conn.execute("ROLLBACK TO w")
                    conn.execute("RELEASE w")
                    writes.append((job.fut, False, _unavailable(exc) if isinstance(exc, sqlite3.Error) else exc))
                else:
                    conn.execute("RELEASE w")
                    writes.append((job.fut, True, value))
            if conn.in_transaction:
                conn.execute("COMMIT")
        except Exception as exc:  # the shared transaction failed: nobody's write is stored
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.rollback()
            err = _unavailable(exc)
            self._commit_error = str(err)
            settled = {id(fut) for fut, _, _ in reads}
            return reads + [(j.fut, False, err) for j in taken if j.write or id(j.fut) not in settled]
        if writes:
            self._commit_error = None
        return reads + writes

    def _appends(self, conn: sqlite3.Connection, jobs: list[_Job]) -> list[Outcome]:
        """Commit the queued appends together, all or nothing: one statement by itself when it can."""
        tables: dict[Append, list[_Job]] = {}
        for job in jobs:
            assert job.append is not None
            tables.setdefault(job.append, []).append(job)
        ordered = [j for items in tables.values() for j in items]
        alone = len(tables) == 1 and len(jobs) <= next(iter(tables)).chunk  # autocommit: its own transaction
        try:
            if not alone:
                conn.execute("BEGIN IMMEDIATE")
            ids = [i for table, items in tables.items() for i in table.insert(conn, [j.row for j in items])]
            if not alone:
                conn.execute("COMMIT")
        except Exception as exc:  # every row of the round fails; the thread goes on
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.rollback()
            err = _unavailable(exc) if isinstance(exc, sqlite3.Error) else exc
            if isinstance(exc, sqlite3.Error):
                self._commit_error = str(err)
            return [(j.fut, False, err) for j in ordered]
        self._commit_error = None
        return [(j.fut, True, i) for j, i in zip(ordered, ids, strict=True)]
