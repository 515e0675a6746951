"""The embedded SQLite store: one process, one file, WAL with full fsync on every commit.

All database work runs on one dedicated thread (``sqlite_thread.py``), so the event loop never blocks
and transactions never interleave. Webhook bodies arriving together are committed together, as one
multi-row ``INSERT`` ahead of the workers' writes; the workers' writes share group commits too. While
one commit is being written the next one collects, so throughput grows with load while every caller
still learns its outcome only after its own row is on disk.

A file lock keeps a second process from opening the same database: several replicas need PostgreSQL.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from alert_router.audit import AuditEntry
from alert_router.errors import StoreInUse, StoreUnavailable
from alert_router.pipeline.dedup import KnownState, is_change, next_state
from alert_router.priority import DEFAULT as DEFAULT_PRIORITY
from alert_router.store.base import (
    AlertRecord,
    CommitResult,
    FailedInbox,
    InboxItem,
    NewOutboxItem,
    ObservedAlert,
    OutboxItem,
    Planner,
    QueueDepth,
)
from alert_router.store.queues import (
    FAILED_INBOX_SQL,
    OUTBOX_INSERT_COLUMNS,
    claim_dest_sql,
    claim_inbox_sql,
    claim_outbox_sql,
    claimed,
    failed_inbox,
    outbox_row,
    payload_text,
    sqlite,
)
from alert_router.store.sqlite_chat import SQLiteChatMixin
from alert_router.store.sqlite_ops import SQLiteOpsMixin, free_all_claims
from alert_router.store.sqlite_runs import SQLiteRunsMixin, append_audit
from alert_router.store.sqlite_thread import Append, SQLiteThread, in_lists

T = TypeVar("T")

SCHEMA = [
    # version 1
    """
    CREATE TABLE inbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        received_at REAL NOT NULL,
        group_key TEXT NOT NULL,
        body BLOB NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending',
        owner TEXT, lease_until REAL,
        attempts INTEGER NOT NULL DEFAULT 0,
        finished_at REAL, error TEXT
    );
    CREATE INDEX inbox_pending ON inbox(status, id);
    CREATE INDEX inbox_group ON inbox(group_key, status, id);
    CREATE TABLE alert_state (
        fingerprint TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        starts_at REAL NOT NULL,
        ends_at REAL,
        group_key TEXT NOT NULL,
        labels TEXT NOT NULL,
        annotations TEXT NOT NULL,
        generator_url TEXT NOT NULL,
        first_seen REAL NOT NULL,
        last_seen REAL NOT NULL,
        changed_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        acked_by TEXT, acked_at REAL
    );
    CREATE INDEX alert_state_expires ON alert_state(expires_at);
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        dest TEXT NOT NULL,
        group_key TEXT NOT NULL,
        payload TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        not_before REAL NOT NULL DEFAULT 0,
        owner TEXT, lease_until REAL,
        created_at REAL NOT NULL,
        finished_at REAL, error TEXT
    );
    CREATE INDEX outbox_due ON outbox(kind, status, not_before, id);
    CREATE INDEX outbox_order ON outbox(dest, group_key, status, id);
    CREATE TABLE message_refs (
        dest TEXT NOT NULL,
        group_key TEXT NOT NULL,
        ref TEXT NOT NULL,
        updated_at REAL NOT NULL,
        PRIMARY KEY (dest, group_key)
    );
    """,
    # version 2: remediation runs, per-target locks (lease + owner) and the hash-chained audit log
    """
    CREATE TABLE runbook_runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        runbook TEXT NOT NULL,
        target TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        group_key TEXT NOT NULL,
        status TEXT NOT NULL,
        dry_run INTEGER NOT NULL,
        requested_by TEXT NOT NULL,
        trigger_key TEXT UNIQUE,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        started_at REAL,
        finished_at REAL,
        approval_expires_at REAL,
        decided_by TEXT,
        owner TEXT,
        lease_until REAL,
        step INTEGER NOT NULL DEFAULT 0,
        summary TEXT NOT NULL DEFAULT '',
        data TEXT NOT NULL
    );
    CREATE INDEX runbook_runs_history ON runbook_runs(runbook, target, started_at);
    CREATE INDEX runbook_runs_status ON runbook_runs(status, id);
    CREATE TABLE runbook_locks (
        target TEXT PRIMARY KEY,
        run_id INTEGER NOT NULL,
        owner TEXT NOT NULL,
        lease_until REAL NOT NULL,
        acquired_at REAL NOT NULL
    );
    CREATE TABLE audit_log (
        seq INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        event TEXT NOT NULL,
        runbook TEXT,
        run_id INTEGER,
        target TEXT,
        actor TEXT NOT NULL,
        data TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE INDEX audit_log_ts ON audit_log(ts);
    CREATE INDEX audit_log_run ON audit_log(run_id);
    CREATE TABLE audit_meta (
        key TEXT PRIMARY KEY,
        seq INTEGER NOT NULL,
        hash TEXT NOT NULL
    );
    """,
    # version 3: escalation timers of chat commands (alert_router.chat.records; methods in sqlite_chat.py)
    """
    CREATE TABLE escalations (
        fingerprint TEXT NOT NULL,
        rule TEXT NOT NULL,
        starts_at REAL NOT NULL,
        group_key TEXT NOT NULL,
        step INTEGER NOT NULL DEFAULT 0,
        repeat INTEGER NOT NULL,
        due_at REAL NOT NULL,
        status TEXT NOT NULL,
        reason TEXT, stopped_by TEXT,
        owner TEXT, lease_until REAL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        PRIMARY KEY (fingerprint, rule, starts_at)
    );
    CREATE INDEX escalations_due ON escalations(status, due_at);
    """,
    # version 4: chat requests already seen (Slack signatures, Telegram update ids), kept for their replay window
    """
    CREATE TABLE seen_requests (
        scope TEXT NOT NULL,
        key TEXT NOT NULL,
        seen_at REAL NOT NULL,
        keep_until REAL NOT NULL,
        PRIMARY KEY (scope, key)
    );
    CREATE INDEX seen_requests_expiry ON seen_requests(keep_until);
    """,
    # version 5: replica heartbeats (failover in seconds) and the dead-man's switch (methods in sqlite_ops.py)
    """
    CREATE TABLE replicas (
        owner TEXT PRIMARY KEY,
        started_at REAL NOT NULL,
        heartbeat_at REAL NOT NULL
    );
    CREATE TABLE deadman (
        name TEXT PRIMARY KEY,
        last_seen REAL NOT NULL,
        status TEXT NOT NULL,
        changed_at REAL NOT NULL,
        fired_at REAL
    );
    """,
    # version 6: priority lanes (alert_router.priority); claims walk these indexes in order (store/queues.py)
    """
    ALTER TABLE inbox ADD COLUMN priority INTEGER NOT NULL DEFAULT 2;
    ALTER TABLE outbox ADD COLUMN priority INTEGER NOT NULL DEFAULT 2;
    CREATE INDEX inbox_lane ON inbox(priority, id) WHERE status='pending';
    DROP INDEX outbox_due;
    CREATE INDEX outbox_lane ON outbox(kind, priority, id) WHERE status='pending';
    """,
]


_INBOX = Append("inbox(received_at, group_key, body, priority)", "(?,?,?,?)")


class SQLiteStore(SQLiteRunsMixin, SQLiteChatMixin, SQLiteOpsMixin):
    """The :class:`~alert_router.store.base.Store` on one SQLite file.

    ``read_only=True`` opens an existing database for reading while the service runs (the CLI's
    ``runs`` and ``audit`` commands): no process lock, no migrations, no writes.
    """

    def __init__(self, path: Path, *, synchronous: str = "FULL", read_only: bool = False) -> None:
        self.path = path
        self.synchronous = synchronous
        self.read_only = read_only
        self._thread: SQLiteThread | None = None
        self._lock_fd: int | None = None
        self._freed_at_open: dict[str, int] = {}  # claims of a crashed process, reported by the first reclaim()

    # -- plumbing ---------------------------------------------------------------------------------

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` alone on the store's thread (reads, and writes that manage their own transaction)."""
        if self._thread is None:
            raise StoreUnavailable("store is not open")
        return await self._thread.call(fn)

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` (plain ``SELECT`` statements) on the store's thread, inside the open write group if any."""
        if self._thread is None:
            raise StoreUnavailable("store is not open")
        return await self._thread.read(fn)

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in a write transaction shared with the other writes waiting at that moment.

        Group commit: while one batch commits, the next collects (up to ``sqlite_thread.SLICE`` writes per
        transaction); each write runs in its own savepoint, so one failing write does not undo the others,
        and each caller learns its own outcome only once the shared commit is durable.
        """
        if self._thread is None:
            raise StoreUnavailable("store is not open")
        return await self._thread.write(fn)

    def _connect(self) -> sqlite3.Connection:
        if self.read_only:
            uri = f"{self.path.resolve().as_uri()}?mode=ro"
            ro = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False, timeout=10)
            ro.execute("PRAGMA busy_timeout=10000")
            return ro
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=10000")
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
        current = row[0] or 0
        for version, ddl in enumerate(SCHEMA, start=1):
            if version <= current:
                continue
            conn.execute("BEGIN IMMEDIATE")
            for stmt in (s for s in ddl.split(";") if s.strip()):
                conn.execute(stmt)
            conn.execute("INSERT INTO schema_version(version) VALUES (?)", (version,))
            conn.execute("COMMIT")
        # A single process owns the file: whatever it had claimed before a crash is free again.
        self._freed_at_open = free_all_claims(conn)
        return conn

    async def open(self) -> None:
        """Open (creating the directory and schema), taking the single-process lock."""
        if self.read_only:
            if not self.path.exists():
                raise StoreUnavailable(f"{self.path} does not exist")
            await self._start("sqlite-store-ro")
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(str(self.path) + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreInUse(
                f"{self.path} is in use by another alert-router process; "
                "several replicas need a PostgreSQL store (store: postgresql://...)"
            ) from None
        self._lock_fd = fd
        await self._start("sqlite-store")

    async def _start(self, name: str) -> None:
        thread = SQLiteThread(self._connect, name)
        try:
            await thread.start()
        except StoreUnavailable as exc:
            await self.close()
            raise StoreUnavailable(f"cannot open {self.path}: {exc}") from exc
        self._thread = thread

    async def close(self) -> None:
        """Finish queued work, close the connection and release the lock."""
        thread, self._thread = self._thread, None
        if thread is not None:
            await thread.stop()
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    async def ping(self, within: float = 2.0) -> None:
        """Answer at once: the store's thread is up, its last commit worked and no commit is stuck for ``within`` s.

        Never queued behind the thread's backlog: a busy store that keeps committing is available.
        """
        if self._thread is None:
            raise StoreUnavailable("store is not open")
        self._thread.check(stall=within)

    # -- inbox ------------------------------------------------------------------------------------

    async def enqueue(self, body: bytes, group_key: str, received_at: float, priority: int = DEFAULT_PRIORITY) -> int:
        """Store a webhook body; returns once its commit is on disk (shared with concurrent writes)."""
        if self._thread is None:
            raise StoreUnavailable("store is not open")
        return await self._thread.append(_INBOX, (received_at, group_key, body, priority))

    async def claim_inbox(self, owner: str, limit: int, lease: float, now: float) -> list[InboxItem]:
        """Claim pending bodies, most urgent first; a group's later bodies wait for its earlier ones."""

        def claim(conn: sqlite3.Connection) -> list[InboxItem]:
            rows = conn.execute(_CLAIM_INBOX, (now, limit, owner, now + lease)).fetchall()
            return sorted((InboxItem(r[0], r[1], bytes(r[2]), r[3], r[4]) for r in rows), key=lambda i: i.id)

        return await self._write(claim)

    async def commit_inbox(
        self, item: InboxItem, owner: str, observed: Sequence[ObservedAlert], plan: Planner, ttl: float, now: float
    ) -> CommitResult:
        """Apply dedup, enqueue the planned work and finish the item, atomically."""

        def commit(conn: sqlite3.Connection) -> CommitResult:
            row = conn.execute("SELECT status, owner FROM inbox WHERE id=?", (item.id,)).fetchone()
            if row is None or row[0] != "pending" or row[1] != owner:
                return CommitResult(False)
            # Few statements, whatever the number of alerts: each SQLite call costs a GIL hand-over
            # (see sqlite_thread.py). Duplicate fingerprints in one body are applied in order.
            known = _known_states(conn, {o.observation.fingerprint for o in observed})
            changed: set[str] = set()
            rows: list[tuple[Any, ...]] = []
            for o in observed:
                obs = o.observation
                before = known.get(obs.fingerprint)
                ch = is_change(obs, before)
                state = next_state(obs, before, ch)
                known[obs.fingerprint] = state
                if ch:
                    changed.add(obs.fingerprint)
                rows.append(
                    (
                        obs.fingerprint,
                        state.status,
                        state.starts_at,
                        state.ends_at,
                        o.group_key,
                        payload_text(o.labels),  # pydantic-core: a few times faster than json.dumps
                        payload_text(o.annotations),
                        o.generator_url,
                        now,
                        now,
                        now,
                        now + ttl,
                    )
                )
            _upsert_states(conn, rows)
            _mark_changed(conn, changed, now)
            items = list(plan(frozenset(changed)))
            insert_outbox(conn, items, now)
            conn.execute(
                "UPDATE inbox SET status='done', finished_at=?, owner=NULL, lease_until=NULL WHERE id=?", (now, item.id)
            )
            return CommitResult(True, frozenset(changed), len(items))

        return await self._write(commit)

    async def fail_inbox(self, item: InboxItem, owner: str, error: str, now: float) -> None:
        """Mark an item as failed."""

        def fail(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE inbox SET status='failed', finished_at=?, error=?, owner=NULL WHERE id=? AND owner=?",
                (now, error, item.id, owner),
            )

        await self._write(fail)

    async def failed_inbox(self, limit: int = 100) -> list[FailedInbox]:
        """The bodies set aside as failed, newest first."""

        def get(conn: sqlite3.Connection) -> list[FailedInbox]:
            return failed_inbox(conn.execute(_FAILED_INBOX, (limit,)).fetchall())

        return await self._run(get)

    # -- outbox -----------------------------------------------------------------------------------

    async def claim_outbox(self, kind: str, owner: str, limit: int, lease: float, now: float) -> list[OutboxItem]:
        """Claim due work, most urgent first, never two items of one (dest, group) at once."""

        def claim(conn: sqlite3.Connection) -> list[OutboxItem]:
            return claimed(conn.execute(_CLAIM_OUTBOX, (kind, now, limit, owner, now + lease)).fetchall())

        return await self._write(claim)

    async def finish_outbox(
        self,
        item: OutboxItem,
        owner: str,
        *,
        ok: bool,
        now: float,
        error: str | None = None,
        message_ref: dict[str, Any] | None = None,
        follow_ups: Sequence[NewOutboxItem] = (),
    ) -> bool:
        """Record the outcome of a claimed item."""

        def finish(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                """UPDATE outbox SET status=?, finished_at=?, error=?, owner=NULL, lease_until=NULL
                   WHERE id=? AND owner=? AND status='pending'""",
                ("done" if ok else "failed", now, error, item.id, owner),
            )
            if cur.rowcount != 1:
                return False
            if message_ref is not None:
                conn.execute(
                    """INSERT INTO message_refs(dest, group_key, ref, updated_at) VALUES (?,?,?,?)
                       ON CONFLICT(dest, group_key) DO UPDATE SET ref=excluded.ref, updated_at=excluded.updated_at""",
                    (item.dest, item.group_key, json.dumps(message_ref), now),
                )
            insert_outbox(conn, list(follow_ups), now)
            return True

        return await self._write(finish)

    async def retry_outbox(self, item: OutboxItem, owner: str, not_before: float, error: str, now: float) -> bool:
        """Release the item until ``not_before``."""

        def retry(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                """UPDATE outbox SET owner=NULL, lease_until=NULL, not_before=?, error=?
                   WHERE id=? AND owner=? AND status='pending'""",
                (not_before, error, item.id, owner),
            )
            return cur.rowcount == 1

        return await self._write(retry)

    async def extend_lease(self, kind: str, ids: Sequence[int], owner: str, until: float) -> None:
        """Push the lease of claimed items forward."""
        table = {"inbox": "inbox", "outbox": "outbox"}[kind]

        def extend(conn: sqlite3.Connection) -> None:
            conn.executemany(
                f"UPDATE {table} SET lease_until=? WHERE id=? AND owner=?",  # noqa: S608 - fixed names
                [(until, i, owner) for i in ids],
            )

        await self._write(extend)

    # -- storm control (alert_router.pipeline.throttle) -------------------------------------------

    async def backlog(self, kind: str, dest: str) -> int:
        """Pending items of ``kind`` for ``dest`` (claimed ones included)."""

        def get(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "SELECT COUNT(*) FROM outbox WHERE kind=? AND dest=? AND status='pending'", (kind, dest)
            ).fetchone()
            return int(row[0])

        return await self._run(get)

    async def claim_dest(
        self, kind: str, dest: str, owner: str, limit: int, lease: float, now: float, seed_id: int | None = None
    ) -> list[OutboxItem]:
        """Claim unclaimed pending items for ``dest``, oldest first, due or not, skipping groups in flight."""
        seed = -1 if seed_id is None else seed_id

        def claim(conn: sqlite3.Connection) -> list[OutboxItem]:
            return claimed(conn.execute(_CLAIM_DEST, (kind, dest, now, limit, owner, now + lease, seed)).fetchall())

        return await self._write(claim)

    async def finish_outbox_many(
        self,
        items: Sequence[OutboxItem],
        owner: str,
        *,
        ok: bool,
        now: float,
        error: str | None = None,
        follow_ups: Sequence[NewOutboxItem] = (),
        audit: Sequence[AuditEntry] = (),
    ) -> bool:
        """Record one outcome, follow-ups and audit records for all ``items``; nothing if any lease was lost."""
        ids = sorted({i.id for i in items})
        chunks = list(in_lists(ids))

        def finish(conn: sqlite3.Connection) -> bool:
            held = 0
            for chunk, marks in chunks:
                held += conn.execute(
                    f"SELECT COUNT(*) FROM outbox WHERE id IN ({marks}) AND owner=? AND status='pending'",  # noqa: S608
                    (*chunk, owner),
                ).fetchone()[0]
            if held != len(ids):
                return False
            for chunk, marks in chunks:
                conn.execute(
                    f"""UPDATE outbox SET status=?, finished_at=?, error=?, owner=NULL, lease_until=NULL
                        WHERE id IN ({marks})""",  # noqa: S608 - placeholders only
                    ("done" if ok else "failed", now, error, *chunk),
                )
            insert_outbox(conn, list(follow_ups), now)
            append_audit(conn, audit, now)
            return True

        return await self._write(finish)

    async def message_groups(self, dest: str, group_keys: Sequence[str]) -> set[str]:
        """Those of ``group_keys`` that have a message reference at ``dest``."""

        def get(conn: sqlite3.Connection) -> set[str]:
            found: set[str] = set()
            for part, marks in in_lists(group_keys):
                found.update(
                    r[0]
                    for r in conn.execute(
                        f"SELECT group_key FROM message_refs WHERE dest=? AND group_key IN ({marks})",  # noqa: S608
                        (dest, *part),
                    )
                )
            return found

        return await self._read(get)

    async def message_ref(self, dest: str, group_key: str) -> dict[str, Any] | None:
        """Look up the last message reference."""

        def get(conn: sqlite3.Connection) -> dict[str, Any] | None:
            row = conn.execute(
                "SELECT ref FROM message_refs WHERE dest=? AND group_key=?", (dest, group_key)
            ).fetchone()
            return json.loads(row[0]) if row else None

        return await self._read(get)

    # -- alerts -----------------------------------------------------------------------------------

    async def alert(self, fingerprint: str) -> AlertRecord | None:
        """One alert's stored state."""

        def get(conn: sqlite3.Connection) -> AlertRecord | None:
            row = conn.execute(f"{_ALERT_SELECT} WHERE fingerprint=?", (fingerprint,)).fetchone()
            return _alert(row) if row else None

        return await self._read(get)

    async def alerts(self, status: str | None = None) -> list[AlertRecord]:
        """Stored alerts, newest change first."""

        def get(conn: sqlite3.Connection) -> list[AlertRecord]:
            if status is None:
                rows = conn.execute(f"{_ALERT_SELECT} ORDER BY changed_at DESC").fetchall()
            else:
                rows = conn.execute(f"{_ALERT_SELECT} WHERE status=? ORDER BY changed_at DESC", (status,)).fetchall()
            return [_alert(r) for r in rows]

        return await self._run(get)

    async def depth(self, now: float) -> QueueDepth:
        """Pending counts per queue."""

        def get(conn: sqlite3.Connection) -> QueueDepth:
            inbox = conn.execute("SELECT COUNT(*) FROM inbox WHERE status='pending'").fetchone()[0]
            out = dict(
                conn.execute("SELECT kind, COUNT(*) FROM outbox WHERE status='pending' GROUP BY kind").fetchall()
            )
            return QueueDepth(int(inbox), {str(k): int(v) for k, v in out.items()})

        return await self._run(get)

    async def prune(self, now: float, done_before: float) -> int:
        """Delete old finished work and expired dedup state."""

        def prune(conn: sqlite3.Connection) -> int:
            n = conn.execute("DELETE FROM inbox WHERE status!='pending' AND finished_at < ?", (done_before,)).rowcount
            n += conn.execute("DELETE FROM outbox WHERE status!='pending' AND finished_at < ?", (done_before,)).rowcount
            n += conn.execute("DELETE FROM alert_state WHERE expires_at < ?", (now,)).rowcount
            n += conn.execute("DELETE FROM message_refs WHERE updated_at < ?", (done_before,)).rowcount
            n += conn.execute(
                "DELETE FROM escalations WHERE status!='active' AND updated_at < ?", (done_before,)
            ).rowcount
            n += conn.execute("DELETE FROM seen_requests WHERE keep_until < ?", (now,)).rowcount
            return int(n)

        return await self._write(prune)


_ALERT_SELECT = """SELECT fingerprint, status, starts_at, ends_at, group_key, labels, annotations, generator_url,
                          last_seen, acked_by, acked_at, changed_at FROM alert_state"""


def _alert(r: Sequence[Any]) -> AlertRecord:
    return AlertRecord(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), json.loads(r[6]), r[7], r[8], r[9], r[10], r[11])


_STATE_CHUNK = 64  # rows per upsert: 12 parameters each


def _known_states(conn: sqlite3.Connection, fingerprints: set[str]) -> dict[str, KnownState]:
    """The recorded state of each of ``fingerprints`` that has one."""
    out: dict[str, KnownState] = {}
    for part, marks in in_lists(sorted(fingerprints)):
        for fp, status, starts_at, ends_at in conn.execute(
            f"SELECT fingerprint, status, starts_at, ends_at FROM alert_state WHERE fingerprint IN ({marks})",  # noqa: S608
            part,
        ):
            out[fp] = KnownState(status, starts_at, ends_at)
    return out


def _upsert_states(conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
    """Record alert states, a multi-row upsert per chunk; ``changed_at`` and acks are left to _mark_changed."""
    for i in range(0, len(rows), _STATE_CHUNK):
        part = rows[i : i + _STATE_CHUNK]
        values = ",".join(["(?,?,?,?,?,?,?,?,?,?,?,?)"] * len(part))
        conn.execute(
            f"""INSERT INTO alert_state(fingerprint, status, starts_at, ends_at, group_key, labels, annotations,
                   generator_url, first_seen, last_seen, changed_at, expires_at)
               VALUES {values}
               ON CONFLICT(fingerprint) DO UPDATE SET status=excluded.status, starts_at=excluded.starts_at,
                   ends_at=excluded.ends_at, group_key=excluded.group_key, labels=excluded.labels,
                   annotations=excluded.annotations, generator_url=excluded.generator_url,
                   last_seen=excluded.last_seen, expires_at=excluded.expires_at""",  # noqa: S608
            [v for row in part for v in row],
        )


def _mark_changed(conn: sqlite3.Connection, changed: set[str], now: float) -> None:
    """Stamp ``changed_at`` on alerts whose state changed; a change to firing clears the ack."""
    for part, marks in in_lists(sorted(changed)):
        conn.execute(
            f"""UPDATE alert_state SET changed_at=?,
                   acked_by=CASE WHEN status='firing' THEN NULL ELSE acked_by END,
                   acked_at=CASE WHEN status='firing' THEN NULL ELSE acked_at END
               WHERE fingerprint IN ({marks})""",  # noqa: S608
            [now, *part],
        )


_CLAIM_INBOX = sqlite(claim_inbox_sql())
_FAILED_INBOX = sqlite(FAILED_INBOX_SQL)
_CLAIM_OUTBOX = sqlite(claim_outbox_sql())
_CLAIM_DEST = sqlite(claim_dest_sql())
_INSERT_OUTBOX = f"INSERT INTO outbox({OUTBOX_INSERT_COLUMNS}) VALUES (?,?,?,?,?,?,?)"  # noqa: S608 - constants


def insert_outbox(conn: sqlite3.Connection, items: Sequence[NewOutboxItem], now: float) -> None:
    """Insert outbox items, their ids in list order."""
    if items:
        conn.executemany(_INSERT_OUTBOX, [outbox_row(i, now) for i in items])
