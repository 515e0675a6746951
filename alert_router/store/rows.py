"""Row shapes and row-to-record converters shared by the SQLite and PostgreSQL stores.

Both backends select the same columns in the same order, so one converter serves both.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from alert_router.audit import AuditRecord
from alert_router.chat.records import Escalation
from alert_router.remediation.runs import RunRecord
from alert_router.store.base import DeadmanState

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


@dataclass(frozen=True, slots=True)
class ClaimTable:
    """A table whose rows are claimed with ``owner`` and ``lease_until``, as :meth:`Store.reclaim` releases them.

    ``held`` is the SQL condition of a row that may be claimed, ``queue`` the SQL expression naming its queue
    (``None``: not counted), ``release`` the assignments that give a claim back; ``{now}`` in it stands for the
    dialect's placeholder of the current time.
    """

    table: str
    held: str
    queue: str | None
    release: str


RELEASE = "owner = NULL, lease_until = NULL"

CLAIM_TABLES = (
    ClaimTable("inbox", "status = 'pending'", "'inbox'", RELEASE),
    ClaimTable("outbox", "status = 'pending'", "kind", RELEASE),
    ClaimTable("escalations", "status = 'active'", "'escalation'", RELEASE),
    # A run is not handed to another process: an expired lease makes it an orphan, recorded as interrupted.
    ClaimTable("runbook_runs", "status = 'running'", "'run'", "lease_until = {now}"),
    ClaimTable("runbook_locks", "TRUE", None, "lease_until = {now}"),
)
"""Every claimed table, for :meth:`~alert_router.store.base.Store.reclaim`."""

FREED_AT_OPEN = CLAIM_TABLES[:3]
"""What a single-process store frees when it opens: the queues (runs have their own recovery)."""

DEADMAN_COLUMNS = "name, last_seen, status, changed_at, fired_at"
"""The ``deadman`` columns :func:`deadman_state` reads, in order."""


def deadman_state(r: Sequence[Any], changed: bool = False) -> DeadmanState:
    """Build the dead-man's switch state from a row of :data:`DEADMAN_COLUMNS`."""
    return DeadmanState(r[0], float(r[1]), r[2], float(r[3]), None if r[4] is None else float(r[4]), changed)


def counted(queues: Sequence[Any]) -> dict[str, int]:
    """``{queue: count}`` of the queue names returned by a release (``None`` left out)."""
    out: dict[str, int] = {}
    for q in queues:
        if q is not None:
            out[str(q)] = out.get(str(q), 0) + 1
    return out
