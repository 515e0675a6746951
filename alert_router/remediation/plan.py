"""What the ingest stage enqueues for remediation: one ``runbook`` item per changed alert and runbook.

Called from the ingest planner inside the same transaction as the dedup update, so an alert that
changed state either gets its runbook items or the whole body is retried. Resolved alerts come
first, so a resolution and a new firing in one body are seen in that order (a ``wait_resolved``
step finishes; a new run is not refused because the old one still looked active). Each item
carries the alert, the receivers that got it (the outcome of the run is posted back to them) and
the group's common fields (to build those notifications).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from alert_router.config import Config
from alert_router.models import WebhookPayload
from alert_router.pipeline.route import route_labels
from alert_router.store.base import NewOutboxItem

KIND = "runbook"
"""The outbox kind of runbook triggers."""


def runbook_items(
    config: Config, payload: WebhookPayload, changed: frozenset[str], received_at: float
) -> list[NewOutboxItem]:
    """The ``runbook`` outbox items for the alerts of ``payload`` whose fingerprints are in ``changed``."""
    if not config.settings.remediation.enabled or not config.runbooks:
        return []
    items: list[NewOutboxItem] = []
    alerts = sorted(
        (a for a in payload.alerts if a.fingerprint in changed), key=lambda a: a.is_firing
    )  # resolved (False) first
    for alert in alerts:
        result = route_labels(alert.labels, config.rules, config.default)
        if not result.runbooks:
            continue
        receivers = [[r, rule] for r, rule in result.receivers]
        for name, rule in result.runbooks:
            body: dict[str, Any] = {
                "alert": alert.wire(),
                "status": alert.status,
                "rule": rule,
                "receivers": receivers,
                "group_key": payload.group_key,
                "group_labels": payload.group_labels,
                "common_labels": payload.common_labels,
                "common_annotations": payload.common_annotations,
                "external_url": payload.external_url,
                "received_at": datetime.fromtimestamp(received_at, UTC).isoformat(),
            }
            items.append(NewOutboxItem(KIND, name, payload.group_key, body))
    return items
