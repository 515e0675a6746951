"""Row shapes and row-to-record converters shared by the SQLite and PostgreSQL stores.

Both backends select the same columns in the same order, so one converter serves both.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from alert_router.audit import AuditRecord
from alert_router.chat.records import Escalation
from alert_router.remediation.runs import RunRecord

RUN_COLUMNS = """id, runbook, target, fingerprint, group_key, status, dry_run, requested_by, trigger_key, created_at,
    updated_at, started_at, finished_at, approval_expires_at, decided_by, owner, lease_until, step, summary, data"""
"""The ``runbook_runs`` columns :func:`run_record` reads, in order."""

ESC_COLUMNS = """fingerprint, rule, starts_at, group_key, step, repeat, due_at, status, reason, stopped_by,
    created_at, updated_at"""
"""The ``escalations`` columns :func:`escalation` reads, in order."""


def run_record(r: Sequence[Any]) -> RunRecord:
    """Build a run record from a row of :data:`RUN_COLUMNS`."""
    return RunRecord(
        id=int(r[0]),
        runbook=r[1],
        target=r[2],
        fingerprint=r[3],
        group_key=r[4],
        status=r[5],
        dry_run=bool(r[6]),
        requested_by=r[7],
        trigger=r[8],
        created_at=r[9],
        updated_at=r[10],
        started_at=r[11],
        finished_at=r[12],
        approval_expires_at=r[13],
        decided_by=r[14],
        owner=r[15],
        lease_until=r[16],
        step=int(r[17]),
        summary=r[18],
        data=json.loads(r[19]),
    )


def audit_record(r: Sequence[Any]) -> AuditRecord:
    """Build an audit record from a row ``seq, ts, event, runbook, run_id, target, actor, data, prev_hash, hash``."""
    return AuditRecord(int(r[0]), float(r[1]), r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9])


def escalation(r: Sequence[Any]) -> Escalation:
    """Build an escalation timer from a row of :data:`ESC_COLUMNS`."""
    return Escalation(r[0], r[1], float(r[2]), r[3], int(r[4]), int(r[5]), float(r[6]), r[7], r[8], r[9],
                      float(r[10]), float(r[11]))
