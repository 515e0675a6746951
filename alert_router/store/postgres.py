"""The PostgreSQL store: several replicas share one database, and each piece of work is done once.

Same semantics as the embedded SQLite store, one transaction per method, with what sharing needs:

* **Claims** (``claim_inbox``, ``claim_outbox``) are one ``UPDATE … FROM (SELECT … FOR UPDATE SKIP
  LOCKED)`` statement: two replicas never claim the same row, and a claim leases its rows until
  ``now + lease``, so the work of a replica that died returns to the others when the lease expires.
* **Dedup** (``commit_inbox``) locks the ``alert_state`` rows of the observed fingerprints, in sorted
  order (no deadlocks), with one ``INSERT … ON CONFLICT DO UPDATE`` that also creates missing rows:
  two replicas ingesting copies of one alert (HA Alertmanager pairs, retries) serialize on it, and only
  the first sees a change.
* **Runs and the audit chain** (:mod:`alert_router.store.postgres_runs`): guards are checked under a
  per-target advisory lock; appends to the hash chain lock its head row, so concurrent writers form one
  chain.
* **Migrations** (:mod:`alert_router.store.migrations`) are applied under a session advisory lock, so
  replicas starting together apply each version once.

Connection loss becomes :class:`~alert_router.errors.StoreUnavailable` (webhooks answer 503). A
transaction that failed before its commit was sent is retried once at once on a fresh connection (stale
pooled connections after a database restart), and, for methods that record the outcome of work already
done, for up to ``postgres.outcome_patience`` seconds: a PostgreSQL restart shorter than that does not
turn a sent notification into a duplicate. Those methods are idempotent, so they are retried even when
the connection broke during the commit itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal, TypeAlias, TypeVar

import asyncpg  # type: ignore[import-untyped]  # no stubs or py.typed
import structlog

from alert_router.audit import AuditEntry
from alert_router.errors import StoreRejected, StoreUnavailable
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
from alert_router.store.migrations import LATEST, MIGRATIONS
from alert_router.store.pgcommon import (
    ALERT_SELECT,
    CONFLICT_ERRORS,
    CONNECTION_ERRORS,
    MIGRATION_LOCK,
    affected,
    alert_record,
    insert_outbox,
    outbox_columns,
    outbox_insert,
    refuses_data,
)
from alert_router.store.pgsettings import PostgresConfig
from alert_router.store.postgres_chat import PostgresChatMixin
from alert_router.store.postgres_ops import PostgresOpsMixin
from alert_router.store.postgres_runs import PostgresRunsMixin, append_audit_records
from alert_router.store.queues import (
    FAILED_INBOX_SQL,
    SKIP_LOCKED,
    claim_dest_sql,
    claim_inbox_sql,
    claim_outbox_sql,
    claimed,
    failed_inbox,
)

log = structlog.get_logger("alert_router.store.postgres")

_CLAIM_INBOX = claim_inbox_sql(SKIP_LOCKED)
_CLAIM_OUTBOX = claim_outbox_sql(SKIP_LOCKED)
_CLAIM_DEST = claim_dest_sql(SKIP_LOCKED)

T = TypeVar("T")
Conn: TypeAlias = asyncpg.Connection
Tx: TypeAlias = Callable[[Conn], Awaitable[T]]
Mode: TypeAlias = Literal["tx", "single", "read"]

ABANDON: tuple[type[BaseException], ...] = (asyncio.CancelledError, *CONNECTION_ERRORS)
"""Failures after which a connection is dropped at once instead of being cleaned up with the server's help."""

async def migrate(conn: Conn, *, wait: float = 120.0) -> list[int]:
    """Apply the missing migrations on ``conn`` under the migration advisory lock; return the versions applied.

    Waits (up to ``wait`` seconds) while another process holds the lock, then applies whatever that
    process left to do, each version in its own transaction, recorded in ``schema_version``.
    """
    deadline = time.monotonic() + wait
    while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", MIGRATION_LOCK):
        if time.monotonic() > deadline:
            raise StoreUnavailable(f"timed out after {wait:.0f}s waiting for another process's schema migration")
        await asyncio.sleep(0.05 + random.random() * 0.1)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_version (
                   version INTEGER PRIMARY KEY,
                   name TEXT NOT NULL,
                   applied_at DOUBLE PRECISION NOT NULL)"""
        )
        done = {int(r[0]) for r in await conn.fetch("SELECT version FROM schema_version")}
        applied: list[int] = []
        for m in MIGRATIONS:
            if m.version in done:
                continue
            async with conn.transaction():
                await conn.execute(m.sql)
                await conn.execute(
                    "INSERT INTO schema_version (version, name, applied_at) VALUES ($1, $2, $3)",
                    m.version,
                    m.name,
                    time.time(),
                )
            applied.append(m.version)
            log.info("schema migration applied", version=m.version, name=m.name)
        newer = [v for v in done if v > LATEST]
        if newer:
            log.warning("the database schema is newer than this alert-router", database=max(newer), known=LATEST)
        return applied
    finally:
        with contextlib.suppress(*CONNECTION_ERRORS):
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)


async def schema_version(conn: Conn) -> int:
    """The highest schema version applied (0 on an empty database)."""
    exists = await conn.fetchval("SELECT to_regclass('schema_version') IS NOT NULL")
    if not exists:
        return 0
    return int(await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version"))


async def _no_reset(conn: Conn) -> None:
    """Pool connection reset: asyncpg still rolls back an open transaction; nothing else is needed."""


class PostgresStore(PostgresRunsMixin, PostgresChatMixin, PostgresOpsMixin):
    """The :class:`~alert_router.store.base.Store` on PostgreSQL, shared by any number of replicas."""

    def __init__(self, dsn: str, config: PostgresConfig | None = None) -> None:
        self.dsn = dsn
        self.config = config or PostgresConfig()
        self._pool: asyncpg.Pool | None = None

    # -- plumbing ---------------------------------------------------------------------------------

    async def _tx(
        self,
        fn: Tx[T],
        *,
        mode: Mode = "tx",
        patience: float = 0.0,
        idempotent: bool = False,
        isolation: str = "read_committed",
    ) -> T:
        """Run ``fn`` on a pooled connection: in a transaction (``tx``), or as one statement (``single``, ``read``).

        Failures that certainly did not commit are retried once at once on a fresh connection (when a pooled
        connection broke), then with backoff while ``patience`` lasts; failures during the commit (or of a
        single autocommit statement) only when ``idempotent``. Conflicts
        (serialization failures, deadlocks) are retried a few times. Anything else that goes wrong in the
        database is a :class:`StoreUnavailable`.
        """
        pool = self._pool
        if pool is None:
            raise StoreUnavailable("store is not open")
        deadline = time.monotonic() + patience
        delay = 0.05
        retried_fresh = False
        conflicts = 0
        while True:
            acquired = committing = False
            try:
                async with pool.acquire(timeout=self.config.connect_timeout + 1) as conn:
                    acquired = True
                    try:
                        if mode == "read":
                            return await fn(conn)
                        if mode == "single":
                            committing = True  # an autocommit statement may have committed when it fails
                            return await fn(conn)
                        tr = conn.transaction(isolation=isolation)
                        await tr.start()
                        try:
                            result = await fn(conn)
                        except BaseException as exc:
                            if not isinstance(exc, ABANDON):
                                await tr.rollback()
                            raise
                        committing = True
                        await tr.commit()
                        return result
                    except ABANDON:
                        # Cancelled, timed out or broken: the server may not be answering at all (a stall). Closing
                        # the socket ends the session (the server rolls back what it had); asking it to cancel or
                        # roll back would wait for an answer that may never come, and hold up the caller's own
                        # timeout (asyncpg's release waits for the cancel request; a ROLLBACK waits for the server).
                        conn.terminate()
                        raise
            except CONFLICT_ERRORS as exc:
                conflicts += 1
                if conflicts > 8:
                    raise StoreUnavailable(f"postgresql: transaction kept conflicting: {exc}") from exc
                await asyncio.sleep(random.uniform(0, 0.01 * conflicts))
            except CONNECTION_ERRORS as exc:
                if acquired:
                    with contextlib.suppress(Exception):
                        await pool.expire_connections()
                if committing and not idempotent:
                    raise StoreUnavailable(f"postgresql: connection lost during commit: {exc!r}") from exc
                if acquired and not retried_fresh:  # a pooled connection the server had dropped: once more
                    retried_fresh = True
                    continue
                if time.monotonic() + delay > deadline:
                    raise StoreUnavailable(f"postgresql: {exc!r}") from exc
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
            except asyncpg.PostgresError as exc:
                log.error("postgresql error", error=str(exc), sqlstate=exc.sqlstate)
                if refuses_data(exc.sqlstate):
                    raise StoreRejected(f"postgresql refuses the data: {exc}") from exc
                raise StoreUnavailable(f"postgresql: {exc}") from exc

    async def open(self) -> None:
        """Create the connection pool and apply missing migrations (unless ``postgres.migrate`` is off)."""
        if self._pool is not None:
            return
        cfg = self.config
        try:
            pool = await asyncpg.create_pool(
                self.dsn,
                min_size=min(cfg.pool_min, cfg.pool_max),
                max_size=cfg.pool_max,
                timeout=cfg.connect_timeout,
                command_timeout=cfg.command_timeout,
                max_inactive_connection_lifetime=60.0,
                reset=_no_reset,  # nothing to reset: no session state is ever set (saves a round trip per call)
                # Plan every statement for its actual parameters: generic plans of the cached statements (made
                # while tables were small, blind to array sizes) turned index lookups into scans as tables grew.
                server_settings={"application_name": "alert-router", "plan_cache_mode": "force_custom_plan"},
            )
        except (*CONNECTION_ERRORS, asyncpg.PostgresError) as exc:
            raise StoreUnavailable(f"cannot connect to PostgreSQL: {exc!r}") from exc
        self._pool = pool
        try:
            async with pool.acquire(timeout=cfg.connect_timeout + 1) as conn:
                if cfg.migrate:
                    await migrate(conn, wait=cfg.migrate_timeout)
                else:
                    version = await schema_version(conn)
                    if version < LATEST:
                        raise StoreUnavailable(
                            f"the database schema is at version {version}, this alert-router needs {LATEST}: "
                            "run `alert-router migrate` (or set postgres.migrate: true)"
                        )
        except (*CONNECTION_ERRORS, asyncpg.PostgresError) as exc:
            await self.close()
            raise StoreUnavailable(f"cannot prepare the PostgreSQL schema: {exc!r}") from exc
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Close the pool (terminating connections that do not close within 5 s)."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            async with asyncio.timeout(5):
                await pool.close()
        except CONNECTION_ERRORS:  # TimeoutError included
            pool.terminate()

    async def ping(self, within: float = 2.0) -> None:
        """Run a trivial query; :class:`StoreUnavailable` unless the database answers within ``within`` seconds.

        A database that keeps the connection open but does not answer (a stall) counts as unavailable after
        ``within``, whatever ``postgres.command_timeout`` says.
        """

        async def q(conn: Conn) -> None:
            await conn.fetchval("SELECT 1", timeout=within)

        try:
            async with asyncio.timeout(within):
                await self._tx(q, mode="read")
        except TimeoutError:
            raise StoreUnavailable(f"postgresql: no answer within {within:g}s") from None

    # -- inbox ------------------------------------------------------------------------------------

    async def enqueue(self, body: bytes, group_key: str, received_at: float, priority: int = DEFAULT_PRIORITY) -> int:
        """Store a webhook body; returns once it is committed."""

        async def q(conn: Conn) -> int:
            return int(
                await conn.fetchval(
                    "INSERT INTO inbox (received_at, group_key, body, priority) VALUES ($1, $2, $3, $4) RETURNING id",
                    received_at,
                    group_key,
                    body,
                    priority,
                )
            )

        try:
            return await self._tx(q, mode="single")
        except StoreRejected as exc:
            raise StoreRejected(f"groupKey cannot be stored: {exc}", "groupKey") from exc

    async def claim_inbox(self, owner: str, limit: int, lease: float, now: float) -> list[InboxItem]:
        """Claim pending bodies, most urgent first; a group's later bodies wait for its earlier ones."""

        async def q(conn: Conn) -> list[InboxItem]:
            rows = await conn.fetch(_CLAIM_INBOX, now, limit, owner, now + lease)
            return sorted((InboxItem(r[0], r[1], bytes(r[2]), r[3], r[4]) for r in rows), key=lambda i: i.id)

        return await self._tx(q, mode="single")

    async def commit_inbox(
        self, item: InboxItem, owner: str, observed: Sequence[ObservedAlert], plan: Planner, ttl: float, now: float
    ) -> CommitResult:
        """Apply dedup (rows locked in fingerprint order), enqueue the planned work and finish the item.

        Four round trips: begin; lock the inbox row and the alert rows (creating placeholders, status
        ``''``, for new fingerprints) in one statement; write the new states, the outbox items and the
        inbox row in another; commit.
        """

        async def q(conn: Conn) -> CommitResult:
            fps = sorted({o.observation.fingerprint for o in observed})
            rows = await conn.fetch(
                """WITH ib AS (SELECT id FROM inbox WHERE id = $3 AND status = 'pending' AND owner = $4 FOR UPDATE),
                        up AS (
                            INSERT INTO alert_state AS s (fingerprint, status, starts_at, group_key, labels,
                                annotations, generator_url, first_seen, last_seen, changed_at, expires_at)
                            SELECT f, '', 0, '', '{}', '{}', '', $2, $2, $2, $2 FROM unnest($1::text[]) AS f
                            WHERE EXISTS (SELECT 1 FROM ib) ORDER BY f
                            ON CONFLICT (fingerprint) DO UPDATE SET fingerprint = s.fingerprint
                            RETURNING fingerprint, status, starts_at, ends_at)
                   SELECT (SELECT COUNT(*) FROM ib) AS ours, up.* FROM (SELECT 1) one LEFT JOIN up ON true""",
                fps,
                now,
                item.id,
                owner,
            )
            if not rows[0][0]:
                return CommitResult(False)
            known: dict[str, KnownState | None] = {
                r[1]: (KnownState(r[2], r[3], r[4]) if r[2] else None) for r in rows if r[1] is not None
            }
            changed: set[str] = set()
            final: dict[str, tuple[KnownState, ObservedAlert]] = {}
            reset_ack: set[str] = set()
            for o in observed:
                obs = o.observation
                before = known.get(obs.fingerprint)
                ch = is_change(obs, before)
                state = next_state(obs, before, ch)
                known[obs.fingerprint] = state
                final[obs.fingerprint] = (state, o)
                if ch:
                    changed.add(obs.fingerprint)
                    if state.status == "firing":
                        reset_ack.add(obs.fingerprint)
            cols: list[list[Any]] = [[] for _ in range(10)]
            for fp, (state, o) in final.items():
                values = (
                    fp,
                    state.status,
                    state.starts_at,
                    state.ends_at,
                    o.group_key,
                    json.dumps(o.labels),
                    json.dumps(o.annotations),
                    o.generator_url,
                    fp in changed,
                    fp in reset_ack,
                )
                for col, value in zip(cols, values, strict=True):
                    col.append(value)
            items = list(plan(frozenset(changed)))
            await conn.execute(
                f"""WITH st AS (
                       UPDATE alert_state AS s SET status = v.status, starts_at = v.starts_at, ends_at = v.ends_at,
                           group_key = v.group_key, labels = v.labels, annotations = v.annotations,
                           generator_url = v.generator_url, last_seen = $1, expires_at = $2,
                           changed_at = CASE WHEN v.changed THEN $1 ELSE s.changed_at END,
                           acked_by = CASE WHEN v.reset_ack THEN NULL ELSE s.acked_by END,
                           acked_at = CASE WHEN v.reset_ack THEN NULL ELSE s.acked_at END
                       FROM unnest($4::text[], $5::text[], $6::float8[], $7::float8[], $8::text[], $9::text[],
                                   $10::text[], $11::text[], $12::bool[], $13::bool[])
                            AS v(fingerprint, status, starts_at, ends_at, group_key, labels, annotations,
                                 generator_url, changed, reset_ack)
                       WHERE s.fingerprint = v.fingerprint),
                   ob AS ({outbox_insert(14)})
                   UPDATE inbox SET status = 'done', finished_at = $1, owner = NULL, lease_until = NULL
                   WHERE id = $3""",  # noqa: S608 - placeholders only
                now,
                now + ttl,
                item.id,
                *cols,
                *outbox_columns(items, now),
            )
            return CommitResult(True, frozenset(changed), len(items))

        return await self._tx(q, patience=self.config.outcome_patience, idempotent=True)

    async def fail_inbox(self, item: InboxItem, owner: str, error: str, now: float) -> None:
        """Mark an item that can never be processed as failed."""

        async def q(conn: Conn) -> None:
            await conn.execute(
                """UPDATE inbox SET status = 'failed', finished_at = $1, error = $2, owner = NULL, lease_until = NULL
                   WHERE id = $3 AND owner = $4 AND status = 'pending'""",
                now,
                error,
                item.id,
                owner,
            )

        await self._tx(q, mode="single", patience=self.config.outcome_patience, idempotent=True)

    async def failed_inbox(self, limit: int = 100) -> list[FailedInbox]:
        """The bodies set aside as failed, newest first."""

        async def q(conn: Conn) -> list[FailedInbox]:
            return failed_inbox(await conn.fetch(FAILED_INBOX_SQL, limit))

        return await self._tx(q, mode="read")

    # -- outbox -----------------------------------------------------------------------------------

    async def claim_outbox(self, kind: str, owner: str, limit: int, lease: float, now: float) -> list[OutboxItem]:
        """Claim due work, most urgent first, never two items of one (dest, group) at once."""

        async def q(conn: Conn) -> list[OutboxItem]:
            return claimed(await conn.fetch(_CLAIM_OUTBOX, kind, now, limit, owner, now + lease))

        return await self._tx(q, mode="single")

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
        """Record the outcome, message reference and follow-ups in one statement; ``False`` if the lease was lost."""
        status = "done" if ok else "failed"
        ref = json.dumps(message_ref) if message_ref is not None else None

        async def q(conn: Conn) -> bool:
            n = await conn.fetchval(
                f"""WITH done AS (
                       UPDATE outbox SET status = $1, finished_at = $2, error = $3, owner = NULL, lease_until = NULL
                       WHERE id = $4 AND owner = $5 AND status = 'pending' RETURNING id),
                   ref AS (
                       INSERT INTO message_refs (dest, group_key, ref, updated_at)
                       SELECT $6, $7, $8, $2 FROM done WHERE $8::text IS NOT NULL
                       ON CONFLICT (dest, group_key)
                       DO UPDATE SET ref = excluded.ref, updated_at = excluded.updated_at),
                   fu AS ({outbox_insert(9, ", done")})
                   SELECT COUNT(*) FROM done""",  # noqa: S608 - placeholders only
                status,
                now,
                error,
                item.id,
                owner,
                item.dest,
                item.group_key,
                ref,
                *outbox_columns(follow_ups, now),
            )
            if n == 1:
                return True
            # Our own earlier attempt may have committed before the connection broke.
            row = await conn.fetchrow("SELECT status, finished_at FROM outbox WHERE id = $1", item.id)
            return row is not None and row[0] == status and row[1] == now

        return await self._tx(q, mode="single", patience=self.config.outcome_patience, idempotent=True)

    async def retry_outbox(self, item: OutboxItem, owner: str, not_before: float, error: str, now: float) -> bool:
        """Release the item until ``not_before``."""

        async def q(conn: Conn) -> bool:
            return (
                affected(
                    await conn.execute(
                        """UPDATE outbox SET owner = NULL, lease_until = NULL, not_before = $1, error = $2
                           WHERE id = $3 AND owner = $4 AND status = 'pending'""",
                        not_before,
                        error,
                        item.id,
                        owner,
                    )
                )
                == 1
            )

        return await self._tx(q, mode="single", patience=self.config.outcome_patience, idempotent=True)

    async def extend_lease(self, kind: str, ids: Sequence[int], owner: str, until: float) -> None:
        """Push the lease of claimed items forward."""
        table = {"inbox": "inbox", "outbox": "outbox"}[kind]

        async def q(conn: Conn) -> None:
            await conn.execute(
                f"UPDATE {table} SET lease_until = $1 WHERE id = ANY($2::bigint[]) AND owner = $3",  # noqa: S608
                until,
                list(ids),
                owner,
            )

        await self._tx(q, mode="single", patience=self.config.outcome_patience, idempotent=True)

    # -- storm control (alert_router.pipeline.throttle.DigestStore) -------------------------------

    async def backlog(self, kind: str, dest: str) -> int:
        """Pending items of ``kind`` for ``dest`` (claimed ones included)."""

        async def q(conn: Conn) -> int:
            return int(
                await conn.fetchval(
                    "SELECT COUNT(*) FROM outbox WHERE kind = $1 AND dest = $2 AND status = 'pending'", kind, dest
                )
            )

        return await self._tx(q, mode="read")

    async def message_groups(self, dest: str, group_keys: Sequence[str]) -> set[str]:
        """Those of ``group_keys`` that have a message reference at ``dest``."""

        async def q(conn: Conn) -> set[str]:
            rows = await conn.fetch(
                "SELECT group_key FROM message_refs WHERE dest = $1 AND group_key = ANY($2::text[])",
                dest,
                list(group_keys),
            )
            return {r[0] for r in rows}

        return await self._tx(q, mode="read")

    async def claim_dest(
        self, kind: str, dest: str, owner: str, limit: int, lease: float, now: float, seed_id: int | None = None
    ) -> list[OutboxItem]:
        """Claim unclaimed pending items for ``dest``, oldest first, due or not, skipping groups in flight."""
        seed = -1 if seed_id is None else seed_id

        async def q(conn: Conn) -> list[OutboxItem]:
            return claimed(await conn.fetch(_CLAIM_DEST, kind, dest, now, limit, owner, now + lease, seed))

        return await self._tx(q, mode="single")

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
        status = "done" if ok else "failed"

        async def q(conn: Conn) -> bool:
            held = await conn.fetch(
                """SELECT id FROM outbox WHERE id = ANY($1::bigint[]) AND owner = $2 AND status = 'pending'
                   ORDER BY id FOR UPDATE""",
                ids,
                owner,
            )
            if len(held) != len(ids):
                if held:
                    return False
                # Our own earlier attempt may have committed before the connection broke.
                mine = await conn.fetchval(
                    "SELECT COUNT(*) FROM outbox WHERE id = ANY($1::bigint[]) AND status = $2 AND finished_at = $3",
                    ids,
                    status,
                    now,
                )
                return bool(ids) and mine == len(ids)
            await conn.execute(
                """UPDATE outbox SET status = $1, finished_at = $2, error = $3, owner = NULL, lease_until = NULL
                   WHERE id = ANY($4::bigint[])""",
                status,
                now,
                error,
                ids,
            )
            await insert_outbox(conn, list(follow_ups), now)
            await append_audit_records(conn, audit, now)  # last: the head lock is always taken last
            return True

        return await self._tx(q, patience=self.config.outcome_patience, idempotent=True)

    async def message_ref(self, dest: str, group_key: str) -> dict[str, Any] | None:
        """The reference of the message last sent for this group to this destination."""

        async def q(conn: Conn) -> dict[str, Any] | None:
            ref = await conn.fetchval(
                "SELECT ref FROM message_refs WHERE dest = $1 AND group_key = $2", dest, group_key
            )
            return json.loads(ref) if ref is not None else None

        return await self._tx(q, mode="read", patience=self.config.outcome_patience)

    # -- alerts -----------------------------------------------------------------------------------

    async def alert(self, fingerprint: str) -> AlertRecord | None:
        """One alert's stored state."""

        async def q(conn: Conn) -> AlertRecord | None:
            row = await conn.fetchrow(f"{ALERT_SELECT} WHERE fingerprint = $1", fingerprint)
            return alert_record(row) if row else None

        return await self._tx(q, mode="read")

    async def alerts(self, status: str | None = None) -> list[AlertRecord]:
        """Stored alerts, newest change first."""

        async def q(conn: Conn) -> list[AlertRecord]:
            if status is None:
                rows = await conn.fetch(f"{ALERT_SELECT} ORDER BY changed_at DESC")
            else:
                rows = await conn.fetch(f"{ALERT_SELECT} WHERE status = $1 ORDER BY changed_at DESC", status)
            return [alert_record(r) for r in rows]

        return await self._tx(q, mode="read")

    async def depth(self, now: float) -> QueueDepth:
        """Pending counts per queue."""

        async def q(conn: Conn) -> QueueDepth:
            rows = await conn.fetch(
                """SELECT NULL AS kind, COUNT(*) FROM inbox WHERE status = 'pending'
                   UNION ALL
                   SELECT kind, COUNT(*) FROM outbox WHERE status = 'pending' GROUP BY kind"""
            )
            inbox = next(int(r[1]) for r in rows if r[0] is None)
            return QueueDepth(inbox, {str(r[0]): int(r[1]) for r in rows if r[0] is not None})

        return await self._tx(q, mode="read")

    async def prune(self, now: float, done_before: float) -> int:
        """Delete finished work older than ``done_before`` and expired dedup state (skipping rows in use)."""

        async def q(conn: Conn) -> int:
            n = 0
            for sql, arg in (
                (
                    """DELETE FROM inbox WHERE id IN (SELECT id FROM inbox WHERE status <> 'pending'
                       AND finished_at < $1 FOR UPDATE SKIP LOCKED)""",
                    done_before,
                ),
                (
                    """DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE status <> 'pending'
                       AND finished_at < $1 FOR UPDATE SKIP LOCKED)""",
                    done_before,
                ),
                (
                    """DELETE FROM alert_state WHERE fingerprint IN (SELECT fingerprint FROM alert_state
                       WHERE expires_at < $1 FOR UPDATE SKIP LOCKED)""",
                    now,
                ),
                (
                    """DELETE FROM message_refs WHERE (dest, group_key) IN (SELECT dest, group_key FROM message_refs
                       WHERE updated_at < $1 FOR UPDATE SKIP LOCKED)""",
                    done_before,
                ),
                (
                    """DELETE FROM escalations WHERE (fingerprint, rule, starts_at) IN (
                           SELECT fingerprint, rule, starts_at FROM escalations
                           WHERE status <> 'active' AND updated_at < $1 FOR UPDATE SKIP LOCKED)""",
                    done_before,
                ),
                (
                    """DELETE FROM seen_requests WHERE (scope, key) IN (SELECT scope, key FROM seen_requests
                       WHERE keep_until < $1 FOR UPDATE SKIP LOCKED)""",
                    now,
                ),
            ):
                n += affected(await conn.execute(sql, arg))
            return n

        return await self._tx(q)


