"""What the store keeps for chat commands: acks and escalation timers (schema version 3 in SQLite).

Plain data only, so that :mod:`alert_router.store.base` can import it without importing the chat package.

An escalation timer belongs to one alert's firing episode (``fingerprint``, ``starts_at``) and one rule with
an ``escalate:`` policy. Its ``status`` is ``active`` until it has sent ``repeat`` escalations (``done``) or
an ack or the alert's resolution stopped it (``stopped``, with the ``reason``)::

    active ──due, still firing and unacked──▶ active (step+1, due again after `after`) … ──▶ done
       └──ack / resolved / alert gone──▶ stopped
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from alert_router.audit import AuditEntry

if TYPE_CHECKING:  # the store imports this module; import its types for annotations only
    from alert_router.store.base import AlertRecord, NewOutboxItem

ACTIVE = "active"
DONE = "done"
STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class SentNotice:
    """The latest ``notify`` item (delivered or pending) of one receiver and message for a group.

    ``message_key`` is the outbox ``group_key`` under which the channel keeps its message reference: the
    Alertmanager group key itself, or ``<group key>#escalation:<rule>:<step>`` for escalation messages.
    """

    id: int
    dest: str
    message_key: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class AckSnapshot:
    """What an ack found, inside its transaction (given to the caller's pure ``effects`` function)."""

    user: str
    now: float
    acked: Sequence[AlertRecord]
    """Alerts acked by this call (as they are after it)."""
    already: Sequence[AlertRecord]
    """Firing alerts somebody had acked before."""
    not_firing: Sequence[AlertRecord]
    """Alerts that are resolved: nothing to ack."""
    missing: Sequence[str]
    """Fingerprints the store does not know."""
    group_acks: dict[str, dict[str, str]] = field(default_factory=dict)
    """For each group of a newly acked alert: ``{fingerprint: acked_by}`` of its firing, acked alerts."""
    notices: Sequence[SentNotice] = ()
    """The messages of those groups (to be re-rendered showing the ack)."""


AckEffects = Callable[[AckSnapshot], tuple[Sequence["NewOutboxItem"], Sequence[AuditEntry]]]
"""Given the snapshot, the outbox items and audit records to commit with the ack. Pure: no I/O."""


@dataclass(frozen=True, slots=True)
class AckResult:
    """The outcome of an ack: the snapshot, how many items were enqueued and timers stopped."""

    snapshot: AckSnapshot
    enqueued: int
    stopped_escalations: int


@dataclass(frozen=True, slots=True)
class NewEscalation:
    """A timer to start (ignored when the same fingerprint, rule and episode already has one)."""

    fingerprint: str
    rule: str
    starts_at: float
    group_key: str
    due_at: float
    repeat: int


@dataclass(frozen=True, slots=True)
class Escalation:
    """A stored escalation timer; ``step`` is how many escalations were sent."""

    fingerprint: str
    rule: str
    starts_at: float
    group_key: str
    step: int
    repeat: int
    due_at: float
    status: str
    reason: str | None
    stopped_by: str | None
    created_at: float
    updated_at: float

    @property
    def key(self) -> tuple[str, str, float]:
        """``(fingerprint, rule, starts_at)``: one timer per alert episode and rule."""
        return (self.fingerprint, self.rule, self.starts_at)


@dataclass(frozen=True, slots=True)
class EscalationChange:
    """The new state of a claimed timer after it came due."""

    fingerprint: str
    rule: str
    starts_at: float
    step: int
    due_at: float
    status: str
    reason: str | None = None
