"""The PostgreSQL side of chat commands: acks, short-id lookups and escalation timers.

A mixin of :class:`~alert_router.store.postgres.PostgresStore`, with the semantics of
:mod:`alert_router.store.sqlite_chat`, safe for several replicas:

* ``ack_alerts`` locks the alerts' ``alert_state`` rows in fingerprint order (the order ingest locks
  them in), so an ack and a re-fire of the same alert on two replicas serialize: the re-fire clears the
  ack or the ack sees the new episode, never a mix.
* Escalation timers are claimed with ``FOR UPDATE SKIP LOCKED`` and a lease, like outbox items, so one
  replica escalates a timer; ``update_escalations`` is a compare-and-set on owner and status, all or
  nothing (an ack on another replica that stopped the timer meanwhile wins).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import asyncpg  # type: ignore[import-untyped]  # no stubs or py.typed

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
from alert_router.store.pgcommon import (
    ALERT_COLUMNS,
    ALERT_SELECT,
    Rollback,
    affected,
    alert_record,
    insert_outbox,
    like_prefix,
)
from alert_router.store.postgres_runs import append_audit_records
from alert_router.store.rows import ESC_COLUMNS, escalation

T = TypeVar("T")

ESCALATION_MARK = "#escalation:"
"""Escalation messages are kept under the outbox group key ``<group key>#escalation:<rule>:<step>``."""

async def _sent_notices(conn: asyncpg.Connection, group_key: str) -> list[SentNotice]:
    rows = await conn.fetch(
        """SELECT o.id, o.dest, o.group_key, o.payload FROM outbox o
           WHERE o.kind = 'notify' AND o.status IN ('done', 'pending')
             AND (o.group_key = $1 OR o.group_key LIKE $2)
             AND o.id = (SELECT MAX(p.id) FROM outbox p WHERE p.kind = 'notify' AND p.dest = o.dest
                         AND p.group_key = o.group_key AND p.status IN ('done', 'pending'))
           ORDER BY o.id""",
        group_key,
        like_prefix(group_key + ESCALATION_MARK),
    )
    return [SentNotice(int(r[0]), r[1], r[2], json.loads(r[3])) for r in rows]


class PostgresChatMixin:
    """Acks and escalation timers on PostgreSQL (see the :class:`~alert_router.store.base.Store` protocol)."""

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

    async def find_alerts(self, prefix: str, *, status: str | None = None, limit: int = 20) -> list[AlertRecord]:
        """Alerts whose fingerprint starts with ``prefix`` (a short id), most recently changed first."""
        text = prefix.strip().lower()
        if not text:
            return []

        async def q(conn: asyncpg.Connection) -> list[AlertRecord]:
            sql = f"{ALERT_SELECT} WHERE fingerprint LIKE $1"
            args: list[Any] = [like_prefix(text)]
            if status is not None:
                args.append(status)
                sql += f" AND status = ${len(args)}"
            args.append(limit)
            rows = await conn.fetch(f"{sql} ORDER BY changed_at DESC LIMIT ${len(args)}", *args)
            return [alert_record(r) for r in rows]

        return await self._tx(q, mode="read")

    async def acks(self, fingerprints: Sequence[str]) -> dict[str, str]:
        """``{fingerprint: acked_by}`` for the firing, acked alerts among ``fingerprints``."""
        wanted = list(dict.fromkeys(fingerprints))
        if not wanted:
            return {}

        async def q(conn: asyncpg.Connection) -> dict[str, str]:
            rows = await conn.fetch(
                """SELECT fingerprint, acked_by FROM alert_state WHERE fingerprint = ANY($1::text[])
                   AND status = 'firing' AND acked_by IS NOT NULL""",
                wanted,
            )
            return {str(r[0]): str(r[1]) for r in rows}

        return await self._tx(q, mode="read")

    async def sent_notices(self, group_key: str) -> list[SentNotice]:
        """The latest notify item per receiver and message of ``group_key`` (escalation messages included)."""

        async def q(conn: asyncpg.Connection) -> list[SentNotice]:
            return await _sent_notices(conn, group_key)

        return await self._tx(q, mode="read")

    async def ack_alerts(
        self, fingerprints: Sequence[str], user: str, now: float, effects: AckEffects, *, undo: bool = False
    ) -> AckResult:
        """Ack the firing, unacked alerts among ``fingerprints``; stop their escalations; commit ``effects``.

        ``undo``: take the ack back from the firing, acked ones and resume the timers their ack stopped.
        """
        wanted = list(dict.fromkeys(fingerprints))

        async def q(conn: asyncpg.Connection) -> AckResult:
            rows = await conn.fetch(
                f"{ALERT_SELECT} WHERE fingerprint = ANY($1::text[]) ORDER BY fingerprint FOR UPDATE", wanted
            )
            current = {r[0]: alert_record(r) for r in rows}
            acked: list[AlertRecord] = []
            already: list[AlertRecord] = []
            not_firing: list[AlertRecord] = []
            missing: list[str] = []
            to_ack: list[str] = []
            for fp in wanted:
                rec = current.get(fp)
                if rec is None:
                    missing.append(fp)
                elif rec.status != "firing":
                    not_firing.append(rec)
                elif bool(rec.acked_by) != undo:
                    already.append(rec)
                else:
                    to_ack.append(fp)
            stopped = 0
            if to_ack:
                updated = await conn.fetch(
                    f"""UPDATE alert_state SET acked_by = $2, acked_at = $3 WHERE fingerprint = ANY($1::text[])
                        RETURNING {ALERT_COLUMNS}""",  # noqa: S608 - fixed column names
                    to_ack,
                    None if undo else user,
                    None if undo else now,
                )
                by_fp = {r[0]: alert_record(r) for r in updated}
                acked = [by_fp[fp] for fp in to_ack]
            if to_ack and undo:  # the timers this episode's ack stopped run again, due no earlier than now
                stopped = affected(
                    await conn.execute(
                        """UPDATE escalations e SET status = $1, reason = NULL, stopped_by = NULL,
                               due_at = GREATEST(e.due_at, $2), updated_at = $2
                           FROM unnest($3::text[], $4::float8[]) AS t(f, s)
                           WHERE e.fingerprint = t.f AND e.starts_at = t.s AND e.status = $5 AND e.reason = 'acked'""",
                        ACTIVE,
                        now,
                        [r.fingerprint for r in acked],
                        [r.starts_at for r in acked],
                        STOPPED,
                    )
                )
            elif to_ack:
                stopped = affected(
                    await conn.execute(
                        """UPDATE escalations SET status = $1, reason = 'acked', stopped_by = $2, owner = NULL,
                               lease_until = NULL, updated_at = $3
                           WHERE fingerprint = ANY($4::text[]) AND status = $5""",
                        STOPPED,
                        user,
                        now,
                        to_ack,
                        ACTIVE,
                    )
                )
            group_acks: dict[str, dict[str, str]] = {}
            notices: list[SentNotice] = []
            for group_key in dict.fromkeys(r.group_key for r in acked):
                ack_rows = await conn.fetch(
                    """SELECT fingerprint, acked_by FROM alert_state
                       WHERE group_key = $1 AND status = 'firing' AND acked_by IS NOT NULL""",
                    group_key,
                )
                group_acks[group_key] = {str(r[0]): str(r[1]) for r in ack_rows}
                notices.extend(await _sent_notices(conn, group_key))
            snapshot = AckSnapshot(user, now, acked, already, not_firing, missing, group_acks, notices)
            items, audit = effects(snapshot)
            await insert_outbox(conn, list(items), now)
            await append_audit_records(conn, list(audit), now)
            return AckResult(snapshot, len(items), stopped)

        return await self._tx(q)

    async def start_escalations(self, timers: Sequence[NewEscalation], now: float) -> int:
        """Start timers that do not exist yet (one per fingerprint, rule and episode); return how many started."""
        if not timers:
            return 0

        async def q(conn: asyncpg.Connection) -> int:
            return affected(
                await conn.execute(
                    """INSERT INTO escalations (fingerprint, rule, starts_at, group_key, step, repeat, due_at, status,
                           created_at, updated_at)
                       SELECT f, r, s, g, 0, rp, d, $1, $2, $2
                       FROM unnest($3::text[], $4::text[], $5::float8[], $6::text[], $7::int[], $8::float8[])
                            WITH ORDINALITY AS t(f, r, s, g, rp, d, n)
                       ORDER BY n
                       ON CONFLICT (fingerprint, rule, starts_at) DO NOTHING""",
                    ACTIVE,
                    now,
                    [t.fingerprint for t in timers],
                    [t.rule for t in timers],
                    [t.starts_at for t in timers],
                    [t.group_key for t in timers],
                    [t.repeat for t in timers],
                    [t.due_at for t in timers],
                )
            )

        return await self._tx(q, mode="single")

    async def claim_escalations(self, owner: str, limit: int, lease: float, now: float) -> list[Escalation]:
        """Claim active timers that are due, earliest first, with a lease (never one claimed by another replica)."""

        async def q(conn: asyncpg.Connection) -> list[Escalation]:
            rows = await conn.fetch(
                f"""UPDATE escalations e SET owner = $1, lease_until = $2
                    FROM (SELECT fingerprint, rule, starts_at FROM escalations
                          WHERE status = $3 AND due_at <= $4 AND (lease_until IS NULL OR lease_until < $4)
                          ORDER BY due_at LIMIT $5 FOR UPDATE SKIP LOCKED) c
                    WHERE e.fingerprint = c.fingerprint AND e.rule = c.rule AND e.starts_at = c.starts_at
                    RETURNING {", ".join("e." + c.strip() for c in ESC_COLUMNS.split(","))}""",  # noqa: S608
                owner,
                now + lease,
                ACTIVE,
                now,
                limit,
            )
            return sorted((escalation(r) for r in rows), key=lambda e: e.due_at)

        return await self._tx(q, mode="single")

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
        ordered = sorted(changes, key=lambda c: (c.fingerprint, c.rule, c.starts_at))

        async def q(conn: asyncpg.Connection) -> bool:
            for c in ordered:
                n = affected(
                    await conn.execute(
                        """UPDATE escalations SET step = $1, due_at = $2, status = $3, reason = $4, owner = NULL,
                               lease_until = NULL, updated_at = $5
                           WHERE fingerprint = $6 AND rule = $7 AND starts_at = $8 AND owner = $9 AND status = $10""",
                        c.step,
                        c.due_at,
                        c.status,
                        c.reason,
                        now,
                        c.fingerprint,
                        c.rule,
                        c.starts_at,
                        owner,
                        ACTIVE,
                    )
                )
                if n != 1:
                    raise Rollback(False)
            await insert_outbox(conn, list(follow_ups), now)
            await append_audit_records(conn, list(audit), now)
            return True

        try:
            return await self._tx(q)
        except Rollback as rb:
            return bool(rb.value)

    async def escalations(
        self, *, status: str | None = None, fingerprint: str | None = None, limit: int = 1000
    ) -> list[Escalation]:
        """Stored timers, soonest due first, optionally filtered."""

        async def q(conn: asyncpg.Connection) -> list[Escalation]:
            where: list[str] = []
            args: list[Any] = []
            for column, value in (("status", status), ("fingerprint", fingerprint)):
                if value is not None:
                    args.append(value)
                    where.append(f"{column} = ${len(args)}")
            clause = f"WHERE {' AND '.join(where)}" if where else ""
            args.append(limit)
            rows = await conn.fetch(
                f"SELECT {ESC_COLUMNS} FROM escalations {clause} ORDER BY due_at LIMIT ${len(args)}",  # noqa: S608
                *args,
            )
            return [escalation(r) for r in rows]

        return await self._tx(q, mode="read")

    async def remember_request(self, scope: str, key: str, now: float, keep_until: float) -> bool:
        """Record a sighting of ``key``; ``True`` unless it is remembered already (expired ones are deleted).

        Two replicas inserting the same key serialize on the primary key: one inserts, the other finds the
        row. An expired row counts as absent (it is taken over), so pruning can skip rows in use.
        """

        async def q(conn: asyncpg.Connection) -> bool:
            await conn.execute(
                """DELETE FROM seen_requests WHERE (scope, key) IN (
                       SELECT scope, key FROM seen_requests WHERE keep_until < $1 FOR UPDATE SKIP LOCKED)""",
                now,
            )
            row = await conn.fetchval(
                """INSERT INTO seen_requests AS s (scope, key, seen_at, keep_until) VALUES ($1, $2, $3, $4)
                   ON CONFLICT (scope, key) DO UPDATE SET seen_at = excluded.seen_at, keep_until = excluded.keep_until
                   WHERE s.keep_until < $3
                   RETURNING 1""",
                scope,
                key,
                now,
                keep_until,
            )
            return row is not None

        return await self._tx(q)
