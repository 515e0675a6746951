"""Priority lanes: a page for a critical alert never waits behind a backlog of warnings.

Every stored webhook body and every outbox item carries a **priority**, the rank of the most severe
alert it holds (the ``severity`` label): ``critical`` (and ``page``) 0, ``error`` and ``high`` 1,
``warning``, a missing or an unknown severity 2, ``info`` 3, ``none`` 4. Claims take the lowest
number first and, within one priority, the oldest work first (the earliest due, for outbox items).
Order within one Alertmanager group and one destination never changes: a group's later body or
notification still waits for its earlier ones, whatever their priorities.

This module is a leaf (no imports from the package): the webhook, the stages and the store all use it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

RANKS: dict[str, int] = {"critical": 0, "page": 0, "error": 1, "high": 1, "warning": 2, "info": 3, "none": 4}
"""The rank of each known ``severity`` value (lower is more urgent)."""

DEFAULT = 2
"""The rank of an alert without a ``severity`` label or with one not listed in :data:`RANKS`."""


def rank(severity: str | None) -> int:
    """The priority of one alert with this ``severity`` label value."""
    if not severity:
        return DEFAULT
    return RANKS.get(severity.lower(), DEFAULT)


def of_labels(label_sets: Iterable[Mapping[str, str]]) -> int:
    """The priority of work about alerts with these label sets: that of the most severe one."""
    return min((rank(labels.get("severity")) for labels in label_sets), default=DEFAULT)


def of_payload(payload: Mapping[str, Any]) -> int:
    """The priority of an outbox payload: its ``alerts`` (a notification) or its ``alert`` (a runbook trigger)."""
    alerts = payload.get("alerts")
    if not isinstance(alerts, list):
        one = payload.get("alert")
        alerts = [one] if isinstance(one, Mapping) else []
    return of_labels(a.get("labels") or {} for a in alerts if isinstance(a, Mapping))
