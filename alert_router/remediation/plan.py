"""What the ingest stage enqueues for remediation: one ``runbook`` item per webhook body and runbook.

Called from the ingest planner inside the same transaction as the dedup update, so an alert that
changed state either gets its runbook triggers or the whole body is retried. An item holds one
**trigger** per changed alert that routes to the runbook (``triggers``), each with the alert, the rule
that named the runbook and the receivers that got the alert (the outcome of the run is posted back to
them); the group's common fields are stored once for all of them. Resolved alerts come first, so a
resolution and a new firing in one body are seen in that order (a ``wait_resolved`` step finishes; a
new run is not refused because the old one still looked active). A storm of one group's alerts is one
item, not one per alert.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from alert_router import priority
from alert_router.config import Config
from alert_router.models import Alert, WebhookPayload
from alert_router.pipeline.route import route_labels
from alert_router.store.base import NewOutboxItem, OutboxItem

KIND = "runbook"
"""The outbox kind of runbook triggers."""

_GROUP_FIELDS = ("group_key", "group_labels", "common_labels", "common_annotations", "external_url", "received_at")


def runbook_items(
    config: Config,
    payload: WebhookPayload,
    changed: frozenset[str],
    received_at: float,
    wire: Callable[[Alert], dict[str, Any]] | None = None,
) -> list[NewOutboxItem]:
    """The ``runbook`` outbox items for the alerts of ``payload`` whose fingerprints are in ``changed``.

    ``wire`` renders an alert for the payload (default :meth:`Alert.wire`); the ingest planner passes the one
    that remembers what it already rendered for the notifications.
    """
    if not config.settings.remediation.enabled or not config.runbooks:
        return []
    alerts = sorted(
        (a for a in payload.alerts if a.fingerprint in changed), key=lambda a: a.is_firing
    )  # resolved (False) first
    triggers: dict[str, list[dict[str, Any]]] = {}
    labels: dict[str, list[Mapping[str, str]]] = {}
    for alert in alerts:
        result = route_labels(alert.labels, config.rules, config.default)
        if not result.runbooks:
            continue
        receivers = [[r, rule] for r, rule in result.receivers]
        wired = wire(alert) if wire is not None else alert.wire()
        for name, rule in result.runbooks:
            triggers.setdefault(name, []).append(
                {"alert": wired, "status": alert.status, "rule": rule, "receivers": receivers}
            )
            labels.setdefault(name, []).append(alert.labels)
    shared = {
        "group_key": payload.group_key,
        "group_labels": payload.group_labels,
        "common_labels": payload.common_labels,
        "common_annotations": payload.common_annotations,
        "external_url": payload.external_url,
        "received_at": datetime.fromtimestamp(received_at, UTC).isoformat(),
    }
    return [
        NewOutboxItem(KIND, name, payload.group_key, {**shared, "triggers": found},
                      priority=priority.of_labels(labels[name]))
        for name, found in triggers.items()
    ]


def applicable_runbooks(config: Config, labels: Mapping[str, str]) -> list[str]:
    """The runbooks an alert with ``labels`` can run: named by its routing rules and matching it themselves.

    What the Run runbook button offers (chat) and whether a message shows that button at all (channels).
    """
    names = [name for name, _ in route_labels(labels, config.rules, config.default).runbooks]
    return [n for n in names if n in config.runbooks and config.runbooks[n].matches(dict(labels))]


def triggers(item: OutboxItem) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each trigger of a ``runbook`` item, in order: its key (for idempotence) and its payload.

    A payload holds ``alert``, ``status``, ``rule``, ``receivers`` and the group's common fields. Items
    stored before triggers were grouped hold one trigger in the payload itself, keyed by the item.
    """
    found = item.payload.get("triggers")
    if not isinstance(found, list):
        yield f"outbox:{item.id}", item.payload
        return
    shared = {k: item.payload.get(k) for k in _GROUP_FIELDS}
    for i, t in enumerate(found):
        yield f"outbox:{item.id}/{i}", {**shared, **t}
