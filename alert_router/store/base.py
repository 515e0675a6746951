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

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from alert_router.pipeline.dedup import Observation


@dataclass(frozen=True, slots=True)
class InboxItem:
    """A stored webhook body waiting to be processed."""

    id: int
    received_at: float
    body: bytes
    group_key: str
    attempts: int


@dataclass(frozen=True, slots=True)
class NewOutboxItem:
    """Work to enqueue: ``kind`` is ``notify`` or ``runbook``; ``dest`` the receiver or runbook name."""

    kind: str
    dest: str
    group_key: str
    payload: dict[str, Any]
    not_before: float = 0.0


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


class Store(Protocol):
    """The persistence interface; see the module docstring."""

    async def open(self) -> None:
        """Connect and apply migrations."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...

    async def ping(self) -> None:
        """Raise :class:`StoreUnavailable` unless the database answers."""
        ...

    async def enqueue(self, body: bytes, group_key: str, received_at: float) -> int:
        """Durably store one webhook body; return its id only once committed."""
        ...

    async def claim_inbox(self, owner: str, limit: int, lease: float, now: float) -> list[InboxItem]:
        """Claim pending bodies in order, skipping groups with older unfinished bodies."""
        ...

    async def commit_inbox(
        self, item: InboxItem, owner: str, observed: Sequence[ObservedAlert], plan: Planner, ttl: float, now: float
    ) -> CommitResult:
        """Atomically apply dedup for ``observed``, enqueue ``plan(changed)`` and mark the item done."""
        ...

    async def fail_inbox(self, item: InboxItem, owner: str, error: str, now: float) -> None:
        """Mark an item that can never be processed as failed (kept for inspection)."""
        ...

    async def claim_outbox(self, kind: str, owner: str, limit: int, lease: float, now: float) -> list[OutboxItem]:
        """Claim due work of ``kind``, oldest first, one item per (dest, group) at a time."""
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
