"""The PostgreSQL side of remediation: runbook runs, per-target locks and the hash-chained audit log.

A mixin of :class:`~alert_router.store.postgres.PostgresStore`, with the semantics of
:mod:`alert_router.store.sqlite_runs`, made safe for several replicas:

* ``begin_run`` takes a transaction-scoped advisory lock on the target (and on the trigger), so two
  replicas deciding about the same target serialize: the guards (lock, cooldown, ``max_runs``) are read
  and the run and lock written by one of them at a time, and a trigger delivered to both starts one run.
* ``update_run`` locks the run's row (compare-and-set on its status and owner) and, when it takes or
  drops the target lock, the target's advisory lock too.
* Every audit append locks the chain's head row (``audit_meta``, key ``head``): appends from any number
  of writers are serialized into one chain in commit order, each record linked to the one before it.
  The head row is always taken last in a transaction, so these locks cannot deadlock.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any, TypeVar

import asyncpg  # type: ignore[import-untyped]  # no stubs or py.typed

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
from alert_router.store.pgcommon import affected, insert_outbox, lock_key
from alert_router.store.rows import RUN_COLUMNS, audit_record, run_record

T = TypeVar("T")

_AUDIT_COLUMNS = "seq, ts, event, runbook, run_id, target, actor, data, prev_hash, hash"
_COUNTED = sorted(COUNTED)
_FINAL = sorted(FINAL)


async def _get_run(conn: asyncpg.Connection, run_id: int) -> RunRecord | None:
    row = await conn.fetchrow(f"SELECT {RUN_COLUMNS} FROM runbook_runs WHERE id = $1", run_id)  # noqa: S608
    return run_record(row) if row else None


async def append_audit_records(
    conn: asyncpg.Connection, entries: Sequence[AuditEntry], now: float
) -> list[AuditRecord]:
    """Append ``entries`` to the chain inside the caller's transaction, holding the head row's lock."""
    if not entries:
        return []
    head = await conn.fetchrow("SELECT seq, hash FROM audit_meta WHERE key = 'head' FOR UPDATE")
    seq, prev = (int(head[0]), str(head[1])) if head else (0, GENESIS)
    out: list[AuditRecord] = []
    for entry in entries:
        seq += 1
        rec = seal(entry, seq, now, prev)
        prev = rec.hash
        out.append(rec)
    await conn.executemany(
        f"INSERT INTO audit_log ({_AUDIT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",  # noqa: S608
        [
            (r.seq, r.ts, r.event, r.runbook, r.run_id, r.target, r.actor, r.data, r.prev_hash, r.hash)
            for r in out
        ],
    )
    await conn.execute(
        """INSERT INTO audit_meta (key, seq, hash) VALUES ('head', $1, $2)
           ON CONFLICT (key) DO UPDATE SET seq = excluded.seq, hash = excluded.hash""",
        seq,
        prev,
    )
    return out


async def _apply_effects(conn: asyncpg.Connection, effects: RunEffects, now: float) -> None:
    await insert_outbox(conn, list(effects.follow_ups), now)
    await append_audit_records(conn, list(effects.audit), now)  # last: the head lock is always taken last


async def _lock_target(conn: asyncpg.Connection, *keys: tuple[str, str | None]) -> None:
    for key in sorted({lock_key(ns, value) for ns, value in keys if value is not None}):
        await conn.execute("SELECT pg_advisory_xact_lock($1)", key)


async def _take_lock(conn: asyncpg.Connection, target: str, run_id: int, owner: str, lease: float, now: float) -> None:
    await conn.execute(
        """INSERT INTO runbook_locks (target, run_id, owner, lease_until, acquired_at) VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (target) DO UPDATE SET run_id = excluded.run_id, owner = excluded.owner,
               lease_until = excluded.lease_until, acquired_at = excluded.acquired_at""",
        target,
        run_id,
        owner,
        lease,
        now,
    )


class PostgresRunsMixin:
    """Runs, locks and audit records on PostgreSQL (see the :class:`~alert_router.store.base.Store` protocol)."""

    async def _tx(  # pragma: no cover - provided by the store
        self,
        fn: Callable[[asyncpg.Connection], Awaitable[T]],
        *,
        mode: Any = "tx",
        patience: float = 0.0,
        idempotent: bool = False,
        isolation: str = "read_committed",
    ) -> T:
        raise NotImplementedError

    async def begin_run(
        self,
        run: NewRun,
        admission: Admission,
        now: float,
        effects: Callable[[RunRecord, Refusal | None], RunEffects],
    ) -> tuple[RunRecord, bool]:
        """Check the guards, store the run (or its refusal) and take the lock, atomically, under the target's lock."""

        async def q(conn: asyncpg.Connection) -> tuple[RunRecord, bool]:
            await _lock_target(conn, ("target", run.target), ("trigger", run.trigger))
            if run.trigger is not None:
                existing_id = await conn.fetchval("SELECT id FROM runbook_runs WHERE trigger_key = $1", run.trigger)
                if existing_id is not None:
                    existing = await _get_run(conn, int(existing_id))
                    assert existing is not None
                    return existing, False
            lock = await conn.fetchrow(
                """SELECT l.run_id, l.owner, l.lease_until, r.status FROM runbook_locks l
                   LEFT JOIN runbook_runs r ON r.id = l.run_id WHERE l.target = $1""",
                run.target,
            )
            last = await conn.fetchrow(
                """SELECT id, started_at FROM runbook_runs
                   WHERE runbook = $1 AND target = $2 AND started_at IS NOT NULL AND status = ANY($3::text[])
                   ORDER BY started_at DESC LIMIT 1""",
                run.runbook,
                run.target,
                _COUNTED,
            )
            count = 0
            if admission.max_runs > 0:
                count = await conn.fetchval(
                    """SELECT COUNT(*) FROM runbook_runs
                       WHERE runbook = $1 AND target = $2 AND started_at >= $3 AND status = ANY($4::text[])""",
                    run.runbook,
                    run.target,
                    now - admission.window,
                    _COUNTED,
                )
            history = History(
                lock_run_id=int(lock[0]) if lock else None,
                lock_owner=lock[1] if lock else None,
                lock_lease_until=lock[2] if lock else None,
                lock_run_status=lock[3] if lock else None,
                last_run_id=int(last[0]) if last else None,
                last_started_at=last[1] if last else None,
                runs_in_window=int(count),
            )
            refusal = admit(history, admission, now)
            decided = admission_row(run, admission, refusal, now)
            status, summary, data = decided.status, decided.summary, decided.data
            started_at, finished_at = decided.started_at, decided.finished_at
            owner, lease = decided.owner, decided.lease_until
            row = await conn.fetchrow(
                f"""INSERT INTO runbook_runs (runbook, target, fingerprint, group_key, status, dry_run, requested_by,
                        trigger_key, created_at, updated_at, started_at, finished_at, approval_expires_at, owner,
                        lease_until, step, summary, data)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, $11, $12, $13, $14, 0, $15, $16)
                    RETURNING {RUN_COLUMNS}""",  # noqa: S608 - fixed column names
                run.runbook,
                run.target,
                run.fingerprint,
                run.group_key,
                status,
                run.dry_run,
                run.requested_by,
                run.trigger,
                now,
                started_at,
                finished_at,
                run.approval_expires_at if refusal is None else None,
                owner,
                lease,
                summary,
                json.dumps(data),
            )
            record = run_record(row)
            if refusal is None:
                await _take_lock(conn, run.target, record.id, admission.owner, admission.lease_until, now)
            await _apply_effects(conn, effects(record, refusal), now)
            return record, True

        return await self._tx(q)

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
        """Compare-and-set a run's status and fields (its row locked), with the lock, audit records and follow-ups."""

        async def q(conn: asyncpg.Connection) -> RunRecord | None:
            row = await conn.fetchrow("SELECT status, owner, target FROM runbook_runs WHERE id = $1 FOR UPDATE", run_id)
            if row is None or row[0] not in expect or (expect_owner is not None and row[1] != expect_owner):
                return None
            sets = ["updated_at = $1"]
            args: list[Any] = [now]

            def put(column: str, value: Any) -> None:
                args.append(value)
                sets.append(f"{column} = ${len(args)}")

            for column, value in (
                ("status", change.status),
                ("summary", change.summary),
                ("step", change.step),
                ("decided_by", change.decided_by),
                ("owner", change.owner),
                ("lease_until", change.lease_until),
            ):
                if value is not None:
                    put(column, value)
            if change.data is not None:
                put("data", json.dumps(change.data))
            if change.started:
                put("started_at", now)
            if change.finished:
                put("finished_at", now)
            args.append(run_id)
            await conn.execute(
                f"UPDATE runbook_runs SET {', '.join(sets)} WHERE id = ${len(args)}",  # noqa: S608 - fixed names
                *args,
            )
            target = row[2]
            if change.take_lock or change.release_lock:
                await _lock_target(conn, ("target", target))
            if change.take_lock:
                await _take_lock(conn, target, run_id, change.owner or row[1] or "", change.lease_until or now, now)
            if change.release_lock:
                await conn.execute("DELETE FROM runbook_locks WHERE target = $1 AND run_id = $2", target, run_id)
            await _apply_effects(conn, effects or RunEffects(), now)
            return await _get_run(conn, run_id)

        return await self._tx(q)

    async def renew_run(self, run_id: int, owner: str, until: float) -> bool:
        """Push the run's lease and its lock forward."""

        async def q(conn: asyncpg.Connection) -> bool:
            n = affected(
                await conn.execute(
                    "UPDATE runbook_runs SET lease_until = $1 WHERE id = $2 AND owner = $3 AND status = 'running'",
                    until,
                    run_id,
                    owner,
                )
            )
            if n == 1:
                await conn.execute(
                    "UPDATE runbook_locks SET lease_until = $1 WHERE run_id = $2 AND owner = $3", until, run_id, owner
                )
            return n == 1

        return await self._tx(q, idempotent=True)

    async def run(self, run_id: int) -> RunRecord | None:
        """One run."""

        async def q(conn: asyncpg.Connection) -> RunRecord | None:
            return await _get_run(conn, run_id)

        return await self._tx(q, mode="read")

    async def runs(
        self,
        *,
        status: str | None = None,
        runbook: str | None = None,
        fingerprint: str | None = None,
        limit: int = 100,
    ) -> list[RunRecord]:
        """Runs, newest first."""

        async def q(conn: asyncpg.Connection) -> list[RunRecord]:
            where: list[str] = []
            args: list[Any] = []
            for column, value in (("status", status), ("runbook", runbook), ("fingerprint", fingerprint)):
                if value is not None:
                    args.append(value)
                    where.append(f"{column} = ${len(args)}")
            sql = f"SELECT {RUN_COLUMNS} FROM runbook_runs"  # noqa: S608 - fixed column names
            if where:
                sql += " WHERE " + " AND ".join(where)
            args.append(limit)
            rows = await conn.fetch(f"{sql} ORDER BY id DESC LIMIT ${len(args)}", *args)
            return [run_record(r) for r in rows]

        return await self._tx(q, mode="read")

    async def orphaned_runs(self, owner: str, now: float) -> list[RunRecord]:
        """``running`` runs whose lease expired: the replica that ran them is gone (or stalled past its lease)."""

        async def q(conn: asyncpg.Connection) -> list[RunRecord]:
            rows = await conn.fetch(
                f"""SELECT {RUN_COLUMNS} FROM runbook_runs
                    WHERE status = 'running' AND (lease_until IS NULL OR lease_until < $1) ORDER BY id""",  # noqa: S608
                now,
            )
            return [run_record(r) for r in rows]

        return await self._tx(q, mode="read")

    async def append_audit(self, entries: Sequence[AuditEntry], now: float) -> list[AuditRecord]:
        """Append records to the chain (serialized with every other writer on the head row)."""

        async def q(conn: asyncpg.Connection) -> list[AuditRecord]:
            return await append_audit_records(conn, entries, now)

        return await self._tx(q)

    async def audit_records(
        self,
        *,
        since: float | None = None,
        runbook: str | None = None,
        run_id: int | None = None,
        limit: int | None = None,
    ) -> list[AuditRecord]:
        """Records in sequence order, filtered; with ``limit``, the most recent ones."""

        async def q(conn: asyncpg.Connection) -> list[AuditRecord]:
            where: list[str] = []
            args: list[Any] = []
            for cond, value in (("ts >=", since), ("runbook =", runbook), ("run_id =", run_id)):
                if value is not None:
                    args.append(value)
                    where.append(f"{cond} ${len(args)}")
            sql = f"SELECT {_AUDIT_COLUMNS} FROM audit_log"  # noqa: S608 - fixed column names
            if where:
                sql += " WHERE " + " AND ".join(where)
            if limit is not None:
                args.append(limit)
                rows = list(await conn.fetch(f"{sql} ORDER BY seq DESC LIMIT ${len(args)}", *args))
                rows.reverse()
            else:
                rows = list(await conn.fetch(f"{sql} ORDER BY seq", *args))
            return [audit_record(r) for r in rows]

        return await self._tx(q, mode="read")

    async def audit_chain(self) -> AuditChain:
        """All records with the anchor and head, read from one snapshot."""

        async def q(conn: asyncpg.Connection) -> AuditChain:
            rows = await conn.fetch(f"SELECT {_AUDIT_COLUMNS} FROM audit_log ORDER BY seq")  # noqa: S608
            meta = {r[0]: (int(r[1]), str(r[2])) for r in await conn.fetch("SELECT key, seq, hash FROM audit_meta")}
            anchor = meta.get("anchor", (0, GENESIS))
            head = meta.get("head", (0, GENESIS))
            return AuditChain([audit_record(r) for r in rows], anchor[0], anchor[1], head[0], head[1])

        return await self._tx(q, isolation="repeatable_read")

    async def prune_runs(self, before: float) -> int:
        """Delete finished runs (neither running nor waiting for approval) last updated before ``before``."""

        async def q(conn: asyncpg.Connection) -> int:
            return affected(
                await conn.execute(
                    "DELETE FROM runbook_runs WHERE status = ANY($1::text[]) AND updated_at < $2", _FINAL, before
                )
            )

        return await self._tx(q)

    async def prune_audit(self, before: float) -> int:
        """Delete records older than ``before``; the last deleted one becomes the anchor (under the head lock)."""

        async def q(conn: asyncpg.Connection) -> int:
            await conn.execute("SELECT 1 FROM audit_meta WHERE key = 'head' FOR UPDATE")
            last = await conn.fetchrow(
                "SELECT seq, hash FROM audit_log WHERE ts < $1 ORDER BY seq DESC LIMIT 1", before
            )
            if last is None:
                return 0
            n = affected(await conn.execute("DELETE FROM audit_log WHERE seq <= $1", last[0]))
            await conn.execute(
                """INSERT INTO audit_meta (key, seq, hash) VALUES ('anchor', $1, $2)
                   ON CONFLICT (key) DO UPDATE SET seq = excluded.seq, hash = excluded.hash
                   WHERE audit_meta.seq < excluded.seq""",
                last[0],
                last[1],
            )
            return n

        return await self._tx(q)
