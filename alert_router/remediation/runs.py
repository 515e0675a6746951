"""Runbook runs as the store keeps them, and the admission rule the store applies atomically.

A run goes through these statuses::

    (trigger) ──guards refuse──▶ skipped
        │
        ├──require_approval──▶ pending_approval ──deny──▶ denied
        │                            │        └──timeout──▶ expired
        │                            └──approve──┐
        └────────────────────────────────────────▼
                                              running ──▶ succeeded | failed | dry_run
                                                 └──process died──▶ interrupted

``pending_approval`` and ``running`` runs hold the target's lock. Runs that reached ``running``
count towards the cooldown and ``max_runs`` of their runbook and target.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from alert_router.audit import AuditEntry
from alert_router.durations import format_duration

if TYPE_CHECKING:  # the store imports this module; import its types for annotations only
    from alert_router.store.base import NewOutboxItem


class RunStatus(enum.StrEnum):
    """The status of a run."""

    PENDING_APPROVAL = "pending_approval"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DENIED = "denied"
    EXPIRED = "expired"
    INTERRUPTED = "interrupted"
    SKIPPED = "skipped"
    DRY_RUN = "dry_run"


ACTIVE = frozenset({RunStatus.PENDING_APPROVAL.value, RunStatus.RUNNING.value})
"""Statuses that hold the target's lock."""

COUNTED = frozenset(
    {
        RunStatus.RUNNING.value,
        RunStatus.SUCCEEDED.value,
        RunStatus.FAILED.value,
        RunStatus.INTERRUPTED.value,
        RunStatus.DRY_RUN.value,
    }
)
"""Statuses of runs that started executing: they count for cooldowns and ``max_runs``."""

FINAL = frozenset(s.value for s in RunStatus) - ACTIVE


@dataclass(frozen=True, slots=True)
class NewRun:
    """A run to create (``status`` is ``running`` or ``pending_approval`` if admitted)."""

    runbook: str
    target: str
    fingerprint: str
    group_key: str
    status: str
    dry_run: bool
    requested_by: str
    trigger: str | None
    data: dict[str, Any]
    approval_expires_at: float | None = None


@dataclass(frozen=True, slots=True)
class Admission:
    """The guards the store checks atomically when it creates a run, and the lock it then takes.

    ``refusal`` is a decision already taken before the store was asked (a target outside the allowed
    namespaces, a label that is no Kubernetes name): the run is recorded as skipped with it.
    """

    cooldown: float
    max_runs: int
    window: float
    owner: str
    lease_until: float
    refusal: Refusal | None = None


@dataclass(frozen=True, slots=True)
class History:
    """What the store knows about a target when a run is requested."""

    lock_run_id: int | None = None
    lock_owner: str | None = None
    lock_lease_until: float | None = None
    lock_run_status: str | None = None
    last_run_id: int | None = None
    last_started_at: float | None = None
    runs_in_window: int = 0


@dataclass(frozen=True, slots=True)
class Refusal:
    """A guard that refused a run: which one, and a sentence saying why."""

    guard: str
    reason: str
    details: dict[str, Any] = field(default_factory=dict)


def admit(history: History, admission: Admission, now: float) -> Refusal | None:
    """Apply the lock, cooldown and ``max_runs`` guards (pure; the store calls it inside its transaction)."""
    if admission.refusal is not None:
        return admission.refusal
    if (
        history.lock_run_id is not None
        and history.lock_lease_until is not None
        and history.lock_lease_until >= now
        and history.lock_run_status in ACTIVE
    ):
        return Refusal(
            "lock",
            f"run #{history.lock_run_id} on the same target is still {history.lock_run_status}",
            {"run_id": history.lock_run_id},
        )
    if admission.cooldown > 0 and history.last_started_at is not None:
        age = now - history.last_started_at
        if age < admission.cooldown:
            return Refusal(
                "cooldown",
                f"run #{history.last_run_id} started {format_duration(age)} ago; "
                f"cooldown is {format_duration(admission.cooldown)}",
                {"last_run_id": history.last_run_id, "age": round(age, 3), "cooldown": admission.cooldown},
            )
    if admission.max_runs > 0 and history.runs_in_window >= admission.max_runs:
        return Refusal(
            "max_runs",
            f"{history.runs_in_window} run(s) in the last {format_duration(admission.window)}; "
            f"at most {admission.max_runs} allowed",
            {"runs": history.runs_in_window, "max_runs": admission.max_runs, "window": admission.window},
        )
    return None


@dataclass(frozen=True, slots=True)
class RunRecord:
    """A stored run."""

    id: int
    runbook: str
    target: str
    fingerprint: str
    group_key: str
    status: str
    dry_run: bool
    requested_by: str
    trigger: str | None
    created_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None
    approval_expires_at: float | None
    decided_by: str | None
    owner: str | None
    lease_until: float | None
    step: int
    summary: str
    data: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready form (as served by ``GET /api/v1/runs``)."""
        return {
            "id": self.id,
            "runbook": self.runbook,
            "target": self.target,
            "fingerprint": self.fingerprint,
            "group_key": self.group_key,
            "status": self.status,
            "dry_run": self.dry_run,
            "requested_by": self.requested_by,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "approval_expires_at": self.approval_expires_at,
            "decided_by": self.decided_by,
            "step": self.step,
            "summary": self.summary,
            "steps": self.data.get("steps", []),
            "alert": self.data.get("alert", {}),
        }


@dataclass(frozen=True, slots=True)
class RunChange:
    """A change to a run (``None`` fields stay as they are)."""

    status: str | None = None
    summary: str | None = None
    step: int | None = None
    data: dict[str, Any] | None = None
    decided_by: str | None = None
    owner: str | None = None
    lease_until: float | None = None
    started: bool = False
    finished: bool = False
    release_lock: bool = False
    take_lock: bool = False


@dataclass(frozen=True, slots=True)
class RunEffects:
    """What goes with a run change in the same transaction: audit records and follow-up outbox items."""

    audit: Sequence[AuditEntry] = ()
    follow_ups: Sequence[NewOutboxItem] = ()


@dataclass(frozen=True, slots=True)
class AdmissionRow:
    """The columns a new run is stored with, once :func:`admit` has decided on it."""

    status: str
    summary: str
    started_at: float | None
    finished_at: float | None
    owner: str | None
    lease_until: float | None
    data: dict[str, Any]


def admission_row(run: NewRun, admission: Admission, refusal: Refusal | None, now: float) -> AdmissionRow:
    """What to store for ``run``: admitted (running or awaiting approval) or skipped by the refusing guard."""
    data = dict(run.data)
    if refusal is None:
        status = run.status
        summary = "awaiting approval" if status == RunStatus.PENDING_APPROVAL else "running"
        started = now if status == RunStatus.RUNNING else None
        return AdmissionRow(status, summary, started, None, admission.owner, admission.lease_until, data)
    data["refusal"] = {"guard": refusal.guard, "reason": refusal.reason, **refusal.details}
    return AdmissionRow(RunStatus.SKIPPED.value, f"skipped by guard {refusal.guard}: {refusal.reason}",
                        None, now, None, None, data)
