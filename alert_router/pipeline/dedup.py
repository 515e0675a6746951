"""Deduplication: decide whether an observed alert is a state change worth a notification.

Identity is the fingerprint. A change is: an alert seen for the first time, a firing alert that
resolves, or a resolved alert that fires again (a *new* ``startsAt``). Repeats (``repeat_interval``),
Alertmanager retries and HA duplicates carry a state we already know and are not changes. Copies
that arrive late and out of order (a stale resolution of an earlier firing episode, or a stale firing
copy after the resolution) are recognised by their timestamps and ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

from alert_router.models import Alert

CLOCK_SLACK = 1.0
"""Seconds of tolerance on timestamps: Alertmanager drops sub-second precision when alerts are re-posted."""


@dataclass(frozen=True, slots=True)
class Observation:
    """What one webhook said about one alert, reduced to what dedup needs."""

    fingerprint: str
    status: str
    starts_at: float
    ends_at: float | None

    @classmethod
    def of(cls, alert: Alert) -> Observation:
        """Reduce an alert."""
        ends = alert.ends_at_or_none()
        return cls(alert.fingerprint, alert.status, alert.starts_at.timestamp(), ends.timestamp() if ends else None)


@dataclass(frozen=True, slots=True)
class KnownState:
    """The last state recorded for a fingerprint."""

    status: str
    starts_at: float
    ends_at: float | None


def is_change(obs: Observation, known: KnownState | None) -> bool:
    """Return whether ``obs`` changes the alert's known state (and so deserves a notification)."""
    if known is None:
        return True
    if obs.status == "firing":
        # Same episode (same startsAt, within slack) is a repeat, whatever we knew; a later startsAt is a new episode.
        return obs.starts_at > known.starts_at + CLOCK_SLACK
    # Resolved.
    if known.status == "resolved":
        return False
    # Known firing: this resolves it, unless it is a stale resolution of an earlier episode.
    ends = obs.ends_at if obs.ends_at is not None else obs.starts_at
    return not (obs.starts_at < known.starts_at - CLOCK_SLACK and ends < known.starts_at + CLOCK_SLACK)


def next_state(obs: Observation, known: KnownState | None, changed: bool) -> KnownState:
    """The state to record after ``obs``: the observation when it changed something, else what we knew."""
    if changed or known is None:
        return KnownState(obs.status, obs.starts_at, obs.ends_at)
    return known
