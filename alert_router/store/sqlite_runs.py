"""The SQLite side of remediation: runbook runs, per-target locks and the hash-chained audit log.

A mixin of :class:`~alert_router.store.sqlite.SQLiteStore` (its tables are schema version 2 there).
Writes go through the store's group commit (``_write``: each write in its own savepoint of a shared
transaction on the single database thread), so the guard check, the run insert, the lock and the
audit records of one call commit together or not at all.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Collection, Sequence
from typing import Any, TypeVar

from alert_router.audit import GENESIS, AuditChain, AuditEntry, AuditRecord, seal
from alert_router.remediation.runs import (
    COUNTED,
    FINAL,
    Admission,
    History,
    NewRun,
    Refusal,
    RunChange,
    RunEffects,
    RunRecord,
    admission_row,
    admit,
)
from alert_router.store.rows import RUN_COLUMNS, audit_record, run_record

T = TypeVar("T")

_COUNTED = tuple(sorted(COUNTED))
_COUNTED_SQL = ",".join("?" for _ in _COUNTED)
_FINAL = tuple(sorted(FINAL))
_FINAL_SQL = ",".join("?" for _ in _FINAL)


def _get_run(conn: sqlite3.Connection, run_id: int) -> RunRecord | None:
    row = conn.execute(f"SELECT {RUN_COLUMNS} FROM runbook_runs WHERE id=?", (run_id,)).fetchone()  # noqa: S608
    return run_record(row) if row else None


def append_audit(conn: sqlite3.Connection, entries: Sequence[AuditEntry], now: float) -> list[AuditRecord]:
    """Append ``entries`` to the hash chain inside the caller's transaction."""
    if not entries:
        return []
    row = conn.execute("SELECT seq, hash FROM audit_meta WHERE key='head'").fetchone()
    seq, prev = (int(row[0]), str(row[1])) if row else (0, GENESIS)
    out = []
    for entry in entries:
        seq += 1
        rec = seal(entry, seq, now, prev)
        conn.execute(
            """INSERT INTO audit_log(seq, ts, event, runbook, run_id, target, actor, data, prev_hash, hash)
               VALUES (?,?,?,?,?,?,?,?,?,?)""",
            (rec.seq, rec.ts, rec.event, rec.runbook, rec.run_id, rec.target, rec.actor, rec.data, rec.prev_hash,
             rec.hash),
        )
        prev = rec.hash
        out.append(rec)
    conn.execute(
        """INSERT INTO audit_meta(key, seq, hash) VALUES ('head', ?, ?)
           ON CONFLICT(key) DO UPDATE SET seq=excluded.seq, hash=excluded.hash""",
        (seq, prev),
    )
    return out


def _apply_effects(conn: sqlite3.Connection, effects: RunEffects, now: float) -> None:
    from alert_router.store.sqlite import insert_outbox

    append_audit(conn, list(effects.audit), now)
    insert_outbox(conn, list(effects.follow_ups), now)


class SQLiteRunsMixin:
    """Runs, locks and audit records on SQLite (see the :class:`~alert_router.store.base.Store` protocol)."""

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:  # pragma: no cover - provided by the store
        raise NotImplementedError

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:  # pragma: no cover - provided by the store
        raise NotImplementedError

    async def begin_run(
        self,
        run: NewRun,
        admission: Admission,
        now: float,
        effects: Callable[[RunRecord, Refusal | None], RunEffects],
    ) -> tuple[RunRecord, bool]:
        """Check the guards, store the run (or its refusal) and take the lock, atomically."""

        def begin(conn: sqlite3.Connection) -> tuple[RunRecord, bool]:
            if run.trigger is not None:
                row = conn.execute("SELECT id FROM runbook_runs WHERE trigger_key=?", (run.trigger,)).fetchone()
                if row is not None:
                    existing = _get_run(conn, int(row[0]))
                    assert existing is not None
                    return existing, False
            lock = conn.execute(
                """SELECT l.run_id, l.owner, l.lease_until, r.status FROM runbook_locks l
                   LEFT JOIN runbook_runs r ON r.id = l.run_id WHERE l.target=?""",
                (run.target,),
            ).fetchone()
            last = conn.execute(
                f"""SELECT id, started_at FROM runbook_runs
                    WHERE runbook=? AND target=? AND started_at IS NOT NULL AND status IN ({_COUNTED_SQL})
                    ORDER BY started_at DESC LIMIT 1""",  # noqa: S608 - placeholders only
                (run.runbook, run.target, *_COUNTED),
            ).fetchone()
            count = 0
            if admission.max_runs > 0:
                count = conn.execute(
                    f"""SELECT COUNT(*) FROM runbook_runs
                        WHERE runbook=? AND target=? AND started_at >= ? AND status IN ({_COUNTED_SQL})""",  # noqa: S608
                    (run.runbook, run.target, now - admission.window, *_COUNTED),
                ).fetchone()[0]
            history = History(
                lock_run_id=lock[0] if lock else None,
                lock_owner=lock[1] if lock else None,
                lock_lease_until=lock[2] if lock else None,
                lock_run_status=lock[3] if lock else None,
                last_run_id=last[0] if last else None,
                last_started_at=last[1] if last else None,
                runs_in_window=int(count),
            )
            refusal = admit(history, admission, now)
            decided = admission_row(run, admission, refusal, now)
            status, summary, data = decided.status, decided.summary, decided.data
            started_at, finished_at = decided.started_at, decided.finished_at
            owner, lease = decided.owner, decided.lease_until
            cur = conn.execute(
                """INSERT INTO runbook_runs(runbook, target, fingerprint, group_key, status, dry_run, requested_by,
                       trigger_key, created_at, updated_at, started_at, finished_at, approval_expires_at, owner,
                       lease_until, step, summary, data)
                   VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,0,?,?)""",
                (
                    run.runbook,
                    run.target,
                    run.fingerprint,
                    run.group_key,
                    status,
                    int(run.dry_run),
                    run.requested_by,
                    run.trigger,
                    now,
                    now,
                    started_at,
                    finished_at,
                    run.approval_expires_at if refusal is None else None,
                    owner,
                    lease,
                    summary,
                    json.dumps(data),
                ),
            )
            run_id = int(cur.lastrowid or 0)
            if refusal is None:
                conn.execute(
                    """INSERT INTO runbook_locks(target, run_id, owner, lease_until, acquired_at) VALUES (?,?,?,?,?)
                       ON CONFLICT(target) DO UPDATE SET run_id=excluded.run_id, owner=excluded.owner,
                           lease_until=excluded.lease_until, acquired_at=excluded.acquired_at""",
                    (run.target, run_id, admission.owner, admission.lease_until, now),
                )
            record = _get_run(conn, run_id)
            assert record is not None
            _apply_effects(conn, effects(record, refusal), now)
            return record, True

        return await self._write(begin)

    async def update_run(
        self,
        run_id: int,
        *,
        expect: Collection[str],
        change: RunChange,
        now: float,
        effects: RunEffects | None = None,
        expect_owner: str | None = None,
    ) -> RunRecord | None:
        """Compare-and-set a run's status and fields, with the lock, audit records and follow-ups."""

        def update(conn: sqlite3.Connection) -> RunRecord | None:
            row = conn.execute("SELECT status, owner, target FROM runbook_runs WHERE id=?", (run_id,)).fetchone()
            if row is None or row[0] not in expect or (expect_owner is not None and row[1] != expect_owner):
                return None
            sets = ["updated_at=?"]
            args: list[Any] = [now]
            for column, value in (
                ("status", change.status),
                ("summary", change.summary),
                ("step", change.step),
                ("decided_by", change.decided_by),
                ("owner", change.owner),
                ("lease_until", change.lease_until),
            ):
                if value is not None:
                    sets.append(f"{column}=?")
                    args.append(value)
            if change.data is not None:
                sets.append("data=?")
                args.append(json.dumps(change.data))
            if change.started:
                sets.append("started_at=?")
                args.append(now)
            if change.finished:
                sets.append("finished_at=?")
                args.append(now)
            conn.execute(f"UPDATE runbook_runs SET {', '.join(sets)} WHERE id=?", (*args, run_id))  # noqa: S608
            target = row[2]
            if change.take_lock:
                conn.execute(
                    """INSERT INTO runbook_locks(target, run_id, owner, lease_until, acquired_at) VALUES (?,?,?,?,?)
                       ON CONFLICT(target) DO UPDATE SET run_id=excluded.run_id, owner=excluded.owner,
                           lease_until=excluded.lease_until, acquired_at=excluded.acquired_at""",
                    (target, run_id, change.owner or row[1] or "", change.lease_until or now, now),
                )
            if change.release_lock:
                conn.execute("DELETE FROM runbook_locks WHERE target=? AND run_id=?", (target, run_id))
            if effects is not None:
                _apply_effects(conn, effects, now)
            return _get_run(conn, run_id)

        return await self._write(update)

    async def renew_run(self, run_id: int, owner: str, until: float) -> bool:
        """Push the run's lease and its lock forward."""

        def renew(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE runbook_runs SET lease_until=? WHERE id=? AND owner=? AND status='running'",
                (until, run_id, owner),
            )
            ok = cur.rowcount == 1
            if ok:
                conn.execute(
                    "UPDATE runbook_locks SET lease_until=? WHERE run_id=? AND owner=?", (until, run_id, owner)
                )
            return ok

        return await self._write(renew)

    async def run(self, run_id: int) -> RunRecord | None:
        """One run."""
        return await self._run(lambda conn: _get_run(conn, run_id))

    async def runs(
        self,
        *,
        status: str | None = None,
        runbook: str | None = None,
        fingerprint: str | None = None,
        limit: int = 100,
    ) -> list[RunRecord]:
        """Runs, newest first."""

        def get(conn: sqlite3.Connection) -> list[RunRecord]:
            where, args = [], []
            for column, value in (("status", status), ("runbook", runbook), ("fingerprint", fingerprint)):
                if value is not None:
                    where.append(f"{column}=?")
                    args.append(value)
            sql = f"SELECT {RUN_COLUMNS} FROM runbook_runs"  # noqa: S608 - fixed column names
            if where:
                sql += " WHERE " + " AND ".join(where)
            rows = conn.execute(sql + " ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()
            return [run_record(r) for r in rows]

        return await self._run(get)

    async def orphaned_runs(self, owner: str, now: float) -> list[RunRecord]:
        """One process owns an SQLite file: every ``running`` run not owned by ``owner`` lost its process."""

        def get(conn: sqlite3.Connection) -> list[RunRecord]:
            rows = conn.execute(
                f"""SELECT {RUN_COLUMNS} FROM runbook_runs
                    WHERE status='running' AND (owner IS NULL OR owner != ?) ORDER BY id""",  # noqa: S608
                (owner,),
            ).fetchall()
            return [run_record(r) for r in rows]

        return await self._run(get)

    async def append_audit(self, entries: Sequence[AuditEntry], now: float) -> list[AuditRecord]:
        """Append records to the chain."""

        def append(conn: sqlite3.Connection) -> list[AuditRecord]:
            return append_audit(conn, entries, now)

        return await self._write(append)

    async def audit_records(
        self,
        *,
        since: float | None = None,
        runbook: str | None = None,
        run_id: int | None = None,
        limit: int | None = None,
    ) -> list[AuditRecord]:
        """Records in sequence order, filtered; with ``limit``, the most recent ones."""

        def get(conn: sqlite3.Connection) -> list[AuditRecord]:
            where: list[str] = []
            args: list[Any] = []
            if since is not None:
                where.append("ts >= ?")
                args.append(since)
            if runbook is not None:
                where.append("runbook = ?")
                args.append(runbook)
            if run_id is not None:
                where.append("run_id = ?")
                args.append(run_id)
            sql = "SELECT seq, ts, event, runbook, run_id, target, actor, data, prev_hash, hash FROM audit_log"
            if where:
                sql += " WHERE " + " AND ".join(where)
            if limit is not None:
                rows = conn.execute(sql + " ORDER BY seq DESC LIMIT ?", (*args, limit)).fetchall()
                rows.reverse()
            else:
                rows = conn.execute(sql + " ORDER BY seq", args).fetchall()
            return [audit_record(r) for r in rows]

        return await self._run(get)

    async def audit_chain(self) -> AuditChain:
        """All records with the anchor and head."""

        def get(conn: sqlite3.Connection) -> AuditChain:
            conn.execute("BEGIN")
            rows = conn.execute(
                "SELECT seq, ts, event, runbook, run_id, target, actor, data, prev_hash, hash "
                "FROM audit_log ORDER BY seq"
            ).fetchall()
            meta = {k: (int(s), str(h)) for k, s, h in conn.execute("SELECT key, seq, hash FROM audit_meta")}
            conn.execute("COMMIT")
            anchor = meta.get("anchor", (0, GENESIS))
            head = meta.get("head", (0, GENESIS))
            return AuditChain([audit_record(r) for r in rows], anchor[0], anchor[1], head[0], head[1])

        return await self._run(get)

    async def prune_runs(self, before: float) -> int:
        """Delete finished runs (neither running nor waiting for approval) last updated before ``before``."""

        def prune(conn: sqlite3.Connection) -> int:
            return int(
                conn.execute(
                    f"DELETE FROM runbook_runs WHERE status IN ({_FINAL_SQL}) AND updated_at < ?",  # noqa: S608
                    (*_FINAL, before),
                ).rowcount
            )

        return await self._write(prune)

    async def prune_audit(self, before: float) -> int:
        """Delete records older than ``before``; the last deleted one becomes the anchor."""

        def prune(conn: sqlite3.Connection) -> int:
            last = conn.execute(
                "SELECT seq, hash FROM audit_log WHERE ts < ? ORDER BY seq DESC LIMIT 1", (before,)
            ).fetchone()
            if last is None:
                return 0
            n = conn.execute("DELETE FROM audit_log WHERE seq <= ?", (last[0],)).rowcount
            conn.execute(
                """INSERT INTO audit_meta(key, seq, hash) VALUES ('anchor', ?, ?)
                   ON CONFLICT(key) DO UPDATE SET seq=excluded.seq, hash=excluded.hash""",
                (last[0], last[1]),
            )
            return int(n)

        return await self._write(prune)
