"""The PostgreSQL schema, one :class:`Migration` per version (never edit a released one: add a new one).

Times are seconds since the epoch (``DOUBLE PRECISION``), as the store protocol passes them; JSON is
stored as text, exactly as written. Queues have partial indexes on their pending rows, so claims stay
fast however much finished work waits for pruning.
"""

from __future__ import annotations

from dataclasses import dataclass

from alert_router.audit import GENESIS


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema version: its number, a short name and the SQL that creates it (several statements)."""

    version: int
    name: str
    sql: str


MIGRATIONS: list[Migration] = [
    Migration(
        1,
        "inbox, outbox, alert state and message references",
        """
        CREATE TABLE inbox (
            id BIGSERIAL PRIMARY KEY,
            received_at DOUBLE PRECISION NOT NULL,
            group_key TEXT NOT NULL,
            body BYTEA NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending',
            owner TEXT,
            lease_until DOUBLE PRECISION,
            attempts INTEGER NOT NULL DEFAULT 0,
            finished_at DOUBLE PRECISION,
            error TEXT
        );
        CREATE INDEX inbox_pending ON inbox (id) WHERE status = 'pending';
        CREATE INDEX inbox_pending_group ON inbox (group_key, id) WHERE status = 'pending';
        CREATE INDEX inbox_finished ON inbox (finished_at) WHERE status <> 'pending';

        CREATE TABLE alert_state (
            fingerprint TEXT PRIMARY KEY,
            status TEXT NOT NULL,
            starts_at DOUBLE PRECISION NOT NULL,
            ends_at DOUBLE PRECISION,
            group_key TEXT NOT NULL,
            labels TEXT NOT NULL,
            annotations TEXT NOT NULL,
            generator_url TEXT NOT NULL,
            first_seen DOUBLE PRECISION NOT NULL,
            last_seen DOUBLE PRECISION NOT NULL,
            changed_at DOUBLE PRECISION NOT NULL,
            expires_at DOUBLE PRECISION NOT NULL,
            acked_by TEXT,
            acked_at DOUBLE PRECISION
        );
        CREATE INDEX alert_state_expires ON alert_state (expires_at);
        CREATE INDEX alert_state_changed ON alert_state (changed_at);

        CREATE TABLE outbox (
            id BIGSERIAL PRIMARY KEY,
            kind TEXT NOT NULL,
            dest TEXT NOT NULL,
            group_key TEXT NOT NULL,
            payload TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending',
            attempts INTEGER NOT NULL DEFAULT 0,
            not_before DOUBLE PRECISION NOT NULL DEFAULT 0,
            owner TEXT,
            lease_until DOUBLE PRECISION,
            created_at DOUBLE PRECISION NOT NULL,
            finished_at DOUBLE PRECISION,
            error TEXT
        );
        CREATE INDEX outbox_pending ON outbox (kind, id) WHERE status = 'pending';
        CREATE INDEX outbox_pending_group ON outbox (dest, group_key, id) WHERE status = 'pending';
        CREATE INDEX outbox_finished ON outbox (finished_at) WHERE status <> 'pending';

        CREATE TABLE message_refs (
            dest TEXT NOT NULL,
            group_key TEXT NOT NULL,
            ref TEXT NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (dest, group_key)
        );
        CREATE INDEX message_refs_updated ON message_refs (updated_at);
        """,
    ),
    Migration(
        2,
        "remediation runs, per-target locks and the hash-chained audit log",
        f"""
        CREATE TABLE runbook_runs (
            id BIGSERIAL PRIMARY KEY,
            runbook TEXT NOT NULL,
            target TEXT NOT NULL,
            fingerprint TEXT NOT NULL,
            group_key TEXT NOT NULL,
            status TEXT NOT NULL,
            dry_run BOOLEAN NOT NULL,
            requested_by TEXT NOT NULL,
            trigger_key TEXT UNIQUE,
            created_at DOUBLE PRECISION NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL,
            started_at DOUBLE PRECISION,
            finished_at DOUBLE PRECISION,
            approval_expires_at DOUBLE PRECISION,
            decided_by TEXT,
            owner TEXT,
            lease_until DOUBLE PRECISION,
            step INTEGER NOT NULL DEFAULT 0,
            summary TEXT NOT NULL DEFAULT '',
            data TEXT NOT NULL
        );
        CREATE INDEX runbook_runs_history ON runbook_runs (runbook, target, started_at);
        CREATE INDEX runbook_runs_status ON runbook_runs (status, id);
        CREATE INDEX runbook_runs_fingerprint ON runbook_runs (fingerprint, id);

        CREATE TABLE runbook_locks (
            target TEXT PRIMARY KEY,
            run_id BIGINT NOT NULL,
            owner TEXT NOT NULL,
            lease_until DOUBLE PRECISION NOT NULL,
            acquired_at DOUBLE PRECISION NOT NULL
        );

        CREATE TABLE audit_log (
            seq BIGINT PRIMARY KEY,
            ts DOUBLE PRECISION NOT NULL,
            event TEXT NOT NULL,
            runbook TEXT,
            run_id BIGINT,
            target TEXT,
            actor TEXT NOT NULL,
            data TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        );
        CREATE INDEX audit_log_ts ON audit_log (ts);
        CREATE INDEX audit_log_run ON audit_log (run_id);

        -- 'head' (the last record) always exists: appends lock it, so concurrent writers form one chain.
        CREATE TABLE audit_meta (
            key TEXT PRIMARY KEY,
            seq BIGINT NOT NULL,
            hash TEXT NOT NULL
        );
        INSERT INTO audit_meta (key, seq, hash) VALUES ('head', 0, '{GENESIS}');
        """,  # noqa: S608 - a constant
    ),
    Migration(
        3,
        "escalation timers of chat commands; prefix lookups for short ids and a group's messages",
        """
        CREATE TABLE escalations (
            fingerprint TEXT NOT NULL,
            rule TEXT NOT NULL,
            starts_at DOUBLE PRECISION NOT NULL,
            group_key TEXT NOT NULL,
            step INTEGER NOT NULL DEFAULT 0,
            repeat INTEGER NOT NULL,
            due_at DOUBLE PRECISION NOT NULL,
            status TEXT NOT NULL,
            reason TEXT,
            stopped_by TEXT,
            owner TEXT,
            lease_until DOUBLE PRECISION,
            created_at DOUBLE PRECISION NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (fingerprint, rule, starts_at)
        );
        CREATE INDEX escalations_due ON escalations (due_at) WHERE status = 'active';
        CREATE INDEX escalations_finished ON escalations (updated_at) WHERE status <> 'active';
        CREATE INDEX escalations_fingerprint ON escalations (fingerprint) WHERE status = 'active';

        CREATE INDEX alert_state_prefix ON alert_state (fingerprint text_pattern_ops);
        CREATE INDEX outbox_notify_group ON outbox (group_key text_pattern_ops, dest, id) WHERE kind = 'notify';
        """,
    ),
    Migration(
        4,
        "chat requests already seen (Slack signatures, Telegram update ids), kept for their replay window",
        """
        CREATE TABLE seen_requests (
            scope TEXT NOT NULL,
            key TEXT NOT NULL,
            seen_at DOUBLE PRECISION NOT NULL,
            keep_until DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (scope, key)
        );
        CREATE INDEX seen_requests_expiry ON seen_requests (keep_until);
        """,
    ),
    Migration(
        5,
        "replica heartbeats (failover in seconds) and the dead-man's switch",
        """
        CREATE TABLE replicas (
            owner TEXT PRIMARY KEY,
            started_at DOUBLE PRECISION NOT NULL,
            heartbeat_at DOUBLE PRECISION NOT NULL
        );
        CREATE TABLE deadman (
            name TEXT PRIMARY KEY,
            last_seen DOUBLE PRECISION NOT NULL,
            status TEXT NOT NULL,
            changed_at DOUBLE PRECISION NOT NULL,
            fired_at DOUBLE PRECISION
        );
        """,
    ),
]
