"""The SQLite side of chat commands: acks, short-id lookups and escalation timers.

A mixin of :class:`~alert_router.store.sqlite.SQLiteStore` (the ``escalations`` table is schema version 3
there). Every method is one write transaction (the store's group commit), so an ack, the escalation
timers it stops, the re-rendered messages it enqueues and its audit record commit together or not at all.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from alert_router.audit import AuditEntry
from alert_router.chat.records import (
    ACTIVE,
    STOPPED,
    AckEffects,
    AckResult,
    AckSnapshot,
    Escalation,
    EscalationChange,
    NewEscalation,
    SentNotice,
)
from alert_router.store.base import AlertRecord, NewOutboxItem
from alert_router.store.rows import ESC_COLUMNS, escalation
from alert_router.store.sqlite_thread import in_lists

T = TypeVar("T")

ESCALATION_MARK = "#escalation:"
"""Escalation messages are kept under the outbox group key ``<group key>#escalation:<rule>:<step>``."""

class _LeaseLost(Exception):
    """A claimed timer changed under us: undo the whole batch."""


def _sent_notices(conn: sqlite3.Connection, group_key: str) -> list[SentNotice]:
    prefix = group_key + ESCALATION_MARK
    rows = conn.execute(
        """SELECT o.id, o.dest, o.group_key, o.payload FROM outbox o
           WHERE o.kind='notify' AND o.status IN ('done', 'pending')
             AND (o.group_key=? OR substr(o.group_key, 1, ?)=?)
             AND o.id = (SELECT MAX(p.id) FROM outbox p WHERE p.kind='notify' AND p.dest=o.dest
                         AND p.group_key=o.group_key AND p.status IN ('done', 'pending'))
           ORDER BY o.id""",
        (group_key, len(prefix), prefix),
    ).fetchall()
    return [SentNotice(int(r[0]), r[1], r[2], json.loads(r[3])) for r in rows]


class SQLiteChatMixin:
    """Acks and escalation timers on SQLite (see the :class:`~alert_router.store.base.Store` protocol)."""

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:  # pragma: no cover - provided by the store
        raise NotImplementedError

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:  # pragma: no cover - provided by the store
        raise NotImplementedError

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:  # pragma: no cover - provided by the store
        raise NotImplementedError

    async def find_alerts(self, prefix: str, *, status: str | None = None, limit: int = 20) -> list[AlertRecord]:
        """Alerts whose fingerprint starts with ``prefix`` (a short id), most recently changed first."""
        from alert_router.store.sqlite import _ALERT_SELECT, _alert

        text = prefix.strip().lower()
        if not text:
            return []

        def get(conn: sqlite3.Connection) -> list[AlertRecord]:
            sql = f"{_ALERT_SELECT} WHERE substr(fingerprint, 1, ?)=?"
            args: list[Any] = [len(text), text]
            if status is not None:
                sql += " AND status=?"
                args.append(status)
            rows = conn.execute(f"{sql} ORDER BY changed_at DESC LIMIT ?", (*args, limit)).fetchall()
            return [_alert(r) for r in rows]

        return await self._run(get)

    async def acks(self, fingerprints: Sequence[str]) -> dict[str, str]:
        """``{fingerprint: acked_by}`` for the firing, acked alerts among ``fingerprints``."""
        wanted = list(dict.fromkeys(fingerprints))
        if not wanted:
            return {}

        def get(conn: sqlite3.Connection) -> dict[str, str]:
            out: dict[str, str] = {}
            for chunk, marks in in_lists(wanted):
                rows = conn.execute(
                    f"""SELECT fingerprint, acked_by FROM alert_state WHERE fingerprint IN ({marks})
                        AND status='firing' AND acked_by IS NOT NULL""",  # noqa: S608 - placeholders only
                    chunk,
                ).fetchall()
                out.update({str(r[0]): str(r[1]) for r in rows})
            return out

        return await self._read(get)

    async def sent_notices(self, group_key: str) -> list[SentNotice]:
        """The latest notify item per receiver and message of ``group_key`` (escalation messages included)."""
        return await self._run(lambda conn: _sent_notices(conn, group_key))

    async def ack_alerts(
        self, fingerprints: Sequence[str], user: str, now: float, effects: AckEffects, *, undo: bool = False
    ) -> AckResult:
        """Ack the firing, unacked alerts among ``fingerprints``; stop their escalations; commit ``effects``.

        ``undo``: take the ack back from the firing, acked ones and resume the timers their ack stopped.
        """
        from alert_router.store.sqlite import _ALERT_SELECT, _alert, insert_outbox
        from alert_router.store.sqlite_runs import append_audit

        def ack(conn: sqlite3.Connection) -> AckResult:
            acked: list[AlertRecord] = []
            already: list[AlertRecord] = []
            not_firing: list[AlertRecord] = []
            missing: list[str] = []
            for fp in dict.fromkeys(fingerprints):
                row = conn.execute(f"{_ALERT_SELECT} WHERE fingerprint=?", (fp,)).fetchone()
                if row is None:
                    missing.append(fp)
                    continue
                rec = _alert(row)
                if rec.status != "firing":
                    not_firing.append(rec)
                elif bool(rec.acked_by) != undo:
                    already.append(rec)
                else:
                    conn.execute("UPDATE alert_state SET acked_by=?, acked_at=? WHERE fingerprint=?",
                                 (None, None, fp) if undo else (user, now, fp))
                    acked.append(_alert(conn.execute(f"{_ALERT_SELECT} WHERE fingerprint=?", (fp,)).fetchone()))
            stopped = 0
            for rec in acked:
                if undo:  # the timers this episode's ack stopped run again, due no earlier than now
                    stopped += conn.execute(
                        """UPDATE escalations SET status=?, reason=NULL, stopped_by=NULL, due_at=MAX(due_at, ?),
                               updated_at=? WHERE fingerprint=? AND starts_at=? AND status=? AND reason='acked'""",
                        (ACTIVE, now, now, rec.fingerprint, rec.starts_at, STOPPED),
                    ).rowcount
                    continue
                stopped += conn.execute(
                    """UPDATE escalations SET status=?, reason='acked', stopped_by=?, owner=NULL, lease_until=NULL,
                           updated_at=? WHERE fingerprint=? AND status=?""",
                    (STOPPED, user, now, rec.fingerprint, ACTIVE),
                ).rowcount
            group_acks: dict[str, dict[str, str]] = {}
            notices: list[SentNotice] = []
            for group_key in dict.fromkeys(r.group_key for r in acked):
                rows = conn.execute(
                    """SELECT fingerprint, acked_by FROM alert_state
                       WHERE group_key=? AND status='firing' AND acked_by IS NOT NULL""",
                    (group_key,),
                ).fetchall()
                group_acks[group_key] = {str(r[0]): str(r[1]) for r in rows}
                notices.extend(_sent_notices(conn, group_key))
            snapshot = AckSnapshot(user, now, acked, already, not_firing, missing, group_acks, notices)
            items, audit = effects(snapshot)
            insert_outbox(conn, list(items), now)
            append_audit(conn, list(audit), now)
            return AckResult(snapshot, len(items), stopped)

        return await self._write(ack)

    async def start_escalations(self, timers: Sequence[NewEscalation], now: float) -> int:
        """Start timers that do not exist yet (one per fingerprint, rule and episode); return how many started."""
        if not timers:
            return 0

        def start(conn: sqlite3.Connection) -> int:
            n = 0
            for t in timers:
                n += conn.execute(
                    """INSERT OR IGNORE INTO escalations(fingerprint, rule, starts_at, group_key, step, repeat, due_at,
                           status, created_at, updated_at) VALUES (?,?,?,?,0,?,?,?,?,?)""",
                    (t.fingerprint, t.rule, t.starts_at, t.group_key, t.repeat, t.due_at, ACTIVE, now, now),
                ).rowcount
            return n

        return await self._write(start)

    async def claim_escalations(self, owner: str, limit: int, lease: float, now: float) -> list[Escalation]:
        """Claim active timers that are due, earliest first, with a lease."""

        def claim(conn: sqlite3.Connection) -> list[Escalation]:
            rows = conn.execute(
                f"""SELECT {ESC_COLUMNS} FROM escalations
                    WHERE status=? AND due_at <= ? AND (lease_until IS NULL OR lease_until < ?)
                    ORDER BY due_at LIMIT ?""",  # noqa: S608 - fixed column list
                (ACTIVE, now, now, limit),
            ).fetchall()
            conn.executemany(
                "UPDATE escalations SET owner=?, lease_until=? WHERE fingerprint=? AND rule=? AND starts_at=?",
                [(owner, now + lease, r[0], r[1], r[2]) for r in rows],
            )
            return [escalation(r) for r in rows]

        return await self._write(claim)

    async def update_escalations(
        self,
        changes: Sequence[EscalationChange],
        owner: str,
        now: float,
        *,
        follow_ups: Sequence[NewOutboxItem] = (),
        audit: Sequence[AuditEntry] = (),
    ) -> bool:
        """Apply ``changes`` to timers this owner claimed, with their notifications and audit records.

        All or nothing: if any timer is no longer ours or no longer active (an ack stopped it meanwhile),
        nothing is written and ``False`` is returned.
        """
        from alert_router.store.sqlite import insert_outbox
        from alert_router.store.sqlite_runs import append_audit

        def update(conn: sqlite3.Connection) -> bool:
            for c in changes:
                cur = conn.execute(
                    """UPDATE escalations SET step=?, due_at=?, status=?, reason=?, owner=NULL, lease_until=NULL,
                           updated_at=? WHERE fingerprint=? AND rule=? AND starts_at=? AND owner=? AND status=?""",
                    (c.step, c.due_at, c.status, c.reason, now, c.fingerprint, c.rule, c.starts_at, owner, ACTIVE),
                )
                if cur.rowcount != 1:
                    raise _LeaseLost
            insert_outbox(conn, list(follow_ups), now)
            append_audit(conn, list(audit), now)
            return True

        try:
            return await self._write(update)
        except _LeaseLost:
            return False

    async def escalations(
        self, *, status: str | None = None, fingerprint: str | None = None, limit: int = 1000
    ) -> list[Escalation]:
        """Stored timers, soonest due first, optionally filtered."""

        def get(conn: sqlite3.Connection) -> list[Escalation]:
            where, args = [], []
            if status is not None:
                where.append("status=?")
                args.append(status)
            if fingerprint is not None:
                where.append("fingerprint=?")
                args.append(fingerprint)
            clause = f"WHERE {' AND '.join(where)}" if where else ""
            rows = conn.execute(
                f"SELECT {ESC_COLUMNS} FROM escalations {clause} ORDER BY due_at LIMIT ?",  # noqa: S608
                (*args, limit),
            ).fetchall()
            return [escalation(r) for r in rows]

        return await self._run(get)

    async def remember_request(self, scope: str, key: str, now: float, keep_until: float) -> bool:
        """Record a sighting of ``key``; ``True`` unless it is remembered already (expired ones are deleted)."""

        def remember(conn: sqlite3.Connection) -> bool:
            conn.execute("DELETE FROM seen_requests WHERE keep_until < ?", (now,))
            cur = conn.execute(
                """INSERT INTO seen_requests(scope, key, seen_at, keep_until) VALUES (?,?,?,?)
                   ON CONFLICT(scope, key) DO NOTHING""",
                (scope, key, now, keep_until),
            )
            return cur.rowcount == 1

        return await self._write(remember)
