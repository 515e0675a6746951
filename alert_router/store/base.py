"""The store interface: the one place state lives, shared by all workers (and, on PostgreSQL, all replicas).

Two queues and some tables:

* ``inbox`` — webhook bodies, committed before the webhook is answered; claimed by ingest workers.
* ``outbox`` — work produced from the inbox (``notify`` deliveries, ``runbook`` runs), claimed by
  workers with a lease so that a dead worker's items return to the others.
* ``alert_state`` — the last known state of every fingerprint (dedup), with a TTL.
* ``message_refs`` — which chat message belongs to which group and destination.

Every method is one transaction. A method raises :class:`~alert_router.errors.StoreUnavailable` when
the database cannot be reached.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from alert_router import priority as _priority
from alert_router.audit import AuditChain, AuditEntry, AuditRecord
from alert_router.chat.records import AckEffects, AckResult, Escalation, EscalationChange, NewEscalation, SentNotice
from alert_router.pipeline.dedup import Observation
from alert_router.remediation.runs import Admission, NewRun, Refusal, RunChange, RunEffects, RunRecord


@dataclass(frozen=True, slots=True)
class InboxItem:
    """A stored webhook body waiting to be processed."""

    id: int
    received_at: float
    body: bytes
    group_key: str
    attempts: int


@dataclass(frozen=True, slots=True)
class FailedInbox:
    """A webhook body set aside at ingest (``alert-router inbox failed``): when, which group, and why."""

    id: int
    received_at: float
    group_key: str
    attempts: int
    finished_at: float
    error: str
    size: int

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "id": self.id,
            "received_at": self.received_at,
            "group_key": self.group_key,
            "attempts": self.attempts,
            "failed_at": self.finished_at,
            "error": self.error,
            "size": self.size,
        }


@dataclass(frozen=True, slots=True)
class NewOutboxItem:
    """Work to enqueue: ``kind`` is ``notify`` or ``runbook``; ``dest`` the receiver or runbook name.

    ``priority`` (:mod:`alert_router.priority`): ``None`` takes that of the alerts in ``payload``.
    """

    kind: str
    dest: str
    group_key: str
    payload: dict[str, Any]
    not_before: float = 0.0
    priority: int | None = None


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """A claimed piece of work."""

    id: int
    kind: str
    dest: str
    group_key: str
    payload: dict[str, Any]
    attempts: int
    created_at: float
    priority: int = _priority.DEFAULT


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """The stored state of one alert."""

    fingerprint: str
    status: str
    starts_at: float
    ends_at: float | None
    group_key: str
    labels: dict[str, str]
    annotations: dict[str, str]
    generator_url: str
    last_seen: float
    acked_by: str | None = None
    acked_at: float | None = None
    changed_at: float | None = None
    """When alert-router last saw the alert change state (for a firing alert: since when it pages)."""


@dataclass(frozen=True, slots=True)
class ObservedAlert:
    """An observation together with the data recorded alongside it."""

    observation: Observation
    group_key: str
    labels: dict[str, str]
    annotations: dict[str, str]
    generator_url: str


Planner = Callable[[frozenset[str]], Sequence[NewOutboxItem]]
"""Given the fingerprints that changed, return the work to enqueue. Pure: no I/O (it may run on a store thread)."""


@dataclass
class CommitResult:
    """What committing one inbox item did."""

    committed: bool
    changed: frozenset[str] = frozenset()
    enqueued: int = 0


@dataclass
class QueueDepth:
    """Pending work counts."""

    inbox: int = 0
    outbox: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DeadmanState:
    """The dead-man's switch: when the heartbeat alert last arrived, and whether the page for its absence is out.

    ``status`` is ``ok`` or ``firing``; ``changed_at`` is when it last changed, ``fired_at`` when it last fired;
    ``changed`` tells whether the
    call that returned this state made the change (and enqueued the notifications of it).
    """

    name: str
    last_seen: float
    status: str
    changed_at: float
    fired_at: float | None = None
    """When the switch last fired (kept after it resolved)."""
    changed: bool = False


DeadmanPlanner = Callable[[DeadmanState], Sequence[NewOutboxItem]]
"""Given the switch's new state, return the notifications to enqueue with the change. Pure, like :data:`Planner`."""

RECLAIM_QUEUES = ("inbox", "notify", "runbook", "escalation", "run")
"""The queues :meth:`Store.reclaim` reports on (outbox items by their kind)."""


class Store(Protocol):
    """The persistence interface; see the module docstring."""

    async def open(self) -> None:
        """Connect and apply migrations."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...

    async def ping(self, within: float = 2.0) -> None:
        """Raise :class:`StoreUnavailable` unless the database answers within ``within`` seconds.

        Never slower than ``within``, whatever the database does (a stalled connection included), and never
        queued behind the store's own backlog of work.
        """
        ...

    async def enqueue(self, body: bytes, group_key: str, received_at: float, priority: int = _priority.DEFAULT) -> int:
        """Durably store one webhook body; return its id only once committed.

        ``priority`` (:mod:`alert_router.priority`) orders claims: lower first, then oldest first.
        """
        ...

    async def claim_inbox(self, owner: str, limit: int, lease: float, now: float) -> list[InboxItem]:
        """Claim pending bodies, most urgent priority first, then oldest; leased to ``owner`` until ``now + lease``.

        A body is skipped while an earlier body of its group is pending (claimed or not), and while
        another claim's lease on it has not expired.
        """
        ...

    async def commit_inbox(
        self, item: InboxItem, owner: str, observed: Sequence[ObservedAlert], plan: Planner, ttl: float, now: float
    ) -> CommitResult:
        """Atomically apply dedup for ``observed``, enqueue ``plan(changed)`` and mark the item done."""
        ...

    async def fail_inbox(self, item: InboxItem, owner: str, error: str, now: float) -> None:
        """Mark an item that can never be processed as failed (kept for inspection)."""
        ...

    async def failed_inbox(self, limit: int = 100) -> list[FailedInbox]:
        """The bodies set aside as failed, newest first (kept until ``retention.done`` prunes them)."""
        ...

    async def claim_outbox(self, kind: str, owner: str, limit: int, lease: float, now: float) -> list[OutboxItem]:
        """Claim due work of ``kind``: most urgent priority first, then earliest due; one item per (dest, group).

        Claimed items are leased to ``owner`` until ``now + lease``; an item whose lease expired can be
        claimed again (``attempts`` counts the claims). An item is skipped while an earlier item of its
        destination and group is pending.
        """
        ...

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
        """Record the outcome (and the message reference, and any follow-up work) of a claimed item.

        Returns ``False`` when the lease was lost (another worker owns the item now).
        """
        ...

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
        """Record one outcome for all ``items``, with follow-up work and audit records, in one transaction.

        Changes nothing and returns ``False`` when the lease of any of them was lost.
        """
        ...

    async def retry_outbox(self, item: OutboxItem, owner: str, not_before: float, error: str, now: float) -> bool:
        """Release a claimed item to be tried again at ``not_before``."""
        ...

    async def extend_lease(self, kind: str, ids: Sequence[int], owner: str, until: float) -> None:
        """Keep claimed items (``kind`` is ``inbox`` or ``outbox``) from expiring while work goes on."""
        ...

    async def message_ref(self, dest: str, group_key: str) -> dict[str, Any] | None:
        """The reference of the message last sent for this group to this destination."""
        ...

    async def alert(self, fingerprint: str) -> AlertRecord | None:
        """The stored state of one alert."""
        ...

    async def alerts(self, status: str | None = None) -> list[AlertRecord]:
        """Stored alerts, optionally only those with ``status``."""
        ...

    async def depth(self, now: float) -> QueueDepth:
        """Pending work counts."""
        ...

    async def prune(self, now: float, done_before: float) -> int:
        """Delete finished work older than ``done_before`` and expired dedup state; return rows deleted."""
        ...

    # -- remediation runs, target locks and the audit log (schema version 2) -----------------------

    async def begin_run(
        self,
        run: NewRun,
        admission: Admission,
        now: float,
        effects: Callable[[RunRecord, Refusal | None], RunEffects],
    ) -> tuple[RunRecord, bool]:
        """Create a run unless its guards refuse, atomically with the target lock and ``effects``.

        Reads the target's lock and run history, applies :func:`~alert_router.remediation.runs.admit`;
        admitted: stores ``run`` and takes the lock until ``admission.lease_until``; refused: stores the
        run as ``skipped`` with the reason. ``effects(record, refusal)`` (pure) gives the audit records and
        outbox items committed with it. A run whose ``trigger`` already exists is returned as it is, with
        ``False`` (nothing is written): a re-delivered trigger never starts a second run.
        """
        ...

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
        """Apply ``change`` if the run's status is in ``expect`` (and its owner is ``expect_owner``, if given).

        Returns the updated run, or ``None`` when the run is missing or another change won the race.
        ``change.take_lock`` re-takes the target lock for the run (owner, lease); ``release_lock`` drops it.
        """
        ...

    async def renew_run(self, run_id: int, owner: str, until: float) -> bool:
        """Extend the lease of a running run and its target lock; ``False`` if the run is no longer ours."""
        ...

    async def run(self, run_id: int) -> RunRecord | None:
        """One run."""
        ...

    async def runs(
        self,
        *,
        status: str | None = None,
        runbook: str | None = None,
        fingerprint: str | None = None,
        limit: int = 100,
    ) -> list[RunRecord]:
        """Runs, newest first, optionally filtered."""
        ...

    async def orphaned_runs(self, owner: str, now: float) -> list[RunRecord]:
        """``running`` runs whose process is gone.

        Embedded store: every one not owned by ``owner`` (one process owns the file); shared store: lease expired.
        """
        ...

    async def append_audit(self, entries: Sequence[AuditEntry], now: float) -> list[AuditRecord]:
        """Append records to the hash chain in one transaction."""
        ...

    async def audit_records(
        self,
        *,
        since: float | None = None,
        runbook: str | None = None,
        run_id: int | None = None,
        limit: int | None = None,
    ) -> list[AuditRecord]:
        """Audit records in sequence order (the last ``limit`` when given), optionally filtered."""
        ...

    async def audit_chain(self) -> AuditChain:
        """The whole chain with its anchor and head, for verification."""
        ...

    async def prune_audit(self, before: float) -> int:
        """Delete audit records older than ``before``, keeping the chain verifiable; return how many."""
        ...

    async def prune_runs(self, before: float) -> int:
        """Delete finished runs (neither running nor waiting for approval) last updated before ``before``."""
        ...

    # -- chat commands: short ids, acks and escalation timers (schema version 3) -------------------

    async def find_alerts(self, prefix: str, *, status: str | None = None, limit: int = 20) -> list[AlertRecord]:
        """Alerts whose fingerprint starts with ``prefix`` (a short id), most recently changed first."""
        ...

    async def acks(self, fingerprints: Sequence[str]) -> dict[str, str]:
        """``{fingerprint: acked_by}`` for the firing, acked alerts among ``fingerprints``."""
        ...

    async def sent_notices(self, group_key: str) -> list[SentNotice]:
        """The latest delivered or pending ``notify`` item per receiver and message of a group.

        Messages are the group's own (outbox group key = ``group_key``) and its escalation messages
        (``<group_key>#escalation:<rule>:<step>``).
        """
        ...

    async def ack_alerts(self, fingerprints: Sequence[str], user: str, now: float, effects: AckEffects) -> AckResult:
        """Atomically ack the firing, unacked alerts among ``fingerprints`` (``acked_by``/``acked_at``).

        In the same transaction: stop their active escalation timers (``stopped``, reason ``acked``), then
        commit the outbox items and audit records that ``effects(snapshot)`` (pure) returns.
        """
        ...

    async def start_escalations(self, timers: Sequence[NewEscalation], now: float) -> int:
        """Start the timers that do not exist yet (key: fingerprint, rule, starts_at); return how many."""
        ...

    async def claim_escalations(self, owner: str, limit: int, lease: float, now: float) -> list[Escalation]:
        """Claim active timers due at ``now``, earliest first, leased to ``owner`` until ``now + lease``."""
        ...

    async def update_escalations(
        self,
        changes: Sequence[EscalationChange],
        owner: str,
        now: float,
        *,
        follow_ups: Sequence[NewOutboxItem] = (),
        audit: Sequence[AuditEntry] = (),
    ) -> bool:
        """Apply changes to claimed timers with their outbox items and audit records, all or nothing.

        ``False`` (nothing written) when any timer is no longer leased to ``owner`` or no longer active.
        """
        ...

    async def escalations(
        self, *, status: str | None = None, fingerprint: str | None = None, limit: int = 1000
    ) -> list[Escalation]:
        """Stored timers, soonest due first, optionally filtered."""
        ...

    # -- replay protection of chat requests (schema version 4) ----------------------------------------

    async def remember_request(self, scope: str, key: str, now: float, keep_until: float) -> bool:
        """Record that the request ``key`` of ``scope`` was seen; ``True`` the first time, ``False`` after.

        A sighting is remembered until ``keep_until``; sightings older than ``now`` are forgotten (deleted) on
        the way, so the table holds only the requests still inside their replay window. Shared by every
        process on the store: the same signed Slack request or Telegram update is admitted once, whichever
        replica receives it and however often the service restarted in between.
        """
        ...

    # -- replica heartbeats, failover and the dead-man's switch (schema version 5) ------------------

    async def heartbeat(self, owner: str, started_at: float, now: float, alive_after: float) -> int:
        """Record that the process ``owner`` is alive at ``now``.

        Returns how many processes (``owner`` included) have a heartbeat at or after ``alive_after``.
        """
        ...

    async def reclaim(self, dead_before: float, now: float) -> dict[str, int]:
        """Take back the claims of processes whose last heartbeat is older than ``dead_before``.

        Their pending inbox and outbox items and active escalation timers are released at once (claimable
        again, as if their lease had run out), their running runbook runs and target locks get an expired lease
        (so :meth:`orphaned_runs` finds them), and they are forgotten. All in one transaction, so when several
        processes try at once, one does it. Returns how many items each queue of :data:`RECLAIM_QUEUES` got back
        (zeros left out). The embedded store also reports here, once, what it freed at open from a process that
        had crashed.
        """
        ...

    async def retire(self, owner: str) -> None:
        """Mark ``owner`` as stopped: the others take its remaining claims at their next :meth:`reclaim`."""
        ...

    async def oldest_pending(self, now: float) -> dict[str, float]:
        """The age in seconds of the oldest pending item per queue (``inbox`` and each outbox kind)."""
        ...

    async def deadman_beat(self, name: str, seen_at: float, now: float, plan: DeadmanPlanner) -> DeadmanState:
        """The heartbeat alert arrived at ``seen_at``: remember it; a firing switch resolves (``plan`` enqueued)."""
        ...

    async def deadman_check(self, name: str, now: float, dead_before: float, plan: DeadmanPlanner) -> DeadmanState:
        """Fire the switch if its heartbeat is older than ``dead_before`` (once: ``plan`` enqueued by one caller).

        A switch seen for the first time starts with its heartbeat at ``now``.
        """
        ...
