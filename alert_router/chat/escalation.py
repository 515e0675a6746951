"""Escalation: a firing alert that nobody acks in time goes on to more receivers.

A rule declares ``escalate: {after: 10m, receivers: [oncall-lead], repeat: 3}``. For each firing, unacked
alert routed through such a rule, the :class:`Escalator` keeps one timer in the store (per alert episode
and rule, see :mod:`alert_router.chat.records`), due ``after`` past the moment alert-router saw the alert
start firing. When it comes due and the alert is still firing and unacked, the alerts of that group and
rule that are due together are sent, as one notification, to the policy's receivers (a new message each
time: the outbox key is ``<group key>#escalation:<rule>:<step>``, so the channels never overwrite the
original page), and the timer is due again ``after`` later, until it was sent ``repeat`` times.

An ack stops the timer in the ack's own transaction (and re-renders every message of the group, escalations
included, to show who acked); a resolved (or forgotten) alert stops it when it comes due. When a group of an
escalating rule resolves, the ingest stage plans one :data:`CLOSE_KIND` item with the resolved group in the
same transaction, and :meth:`Escalator.close_resolved` turns it into an update of every escalation message
of that group and rule that still says firing: a lead's Slack or Telegram message is edited to RESOLVED,
and an incident an escalation opened on PagerDuty or Opsgenie is resolved, exactly as the original page is.

Timers live in the store, so they survive restarts and, with a shared store, are claimed with a lease by
exactly one replica. Time comes from a :class:`~alert_router.chat.clock.Clock`, so tests
drive it with a :class:`~alert_router.chat.clock.ManualClock`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

import structlog

from alert_router.audit import AuditEntry
from alert_router.chat.clock import Clock, ManualClock, SystemClock
from alert_router.chat.commands import alert_wire, common_labels, iso
from alert_router.chat.metrics import ChatMetrics
from alert_router.chat.records import ACTIVE, DONE, STOPPED, Escalation, EscalationChange, NewEscalation
from alert_router.chat.settings import EscalatePolicy
from alert_router.config import Config
from alert_router.errors import StoreUnavailable
from alert_router.pipeline.route import route_labels
from alert_router.store.base import AlertRecord, NewOutboxItem, OutboxItem, Store
from alert_router.store.sqlite_chat import ESCALATION_MARK

__all__ = [
    "CLOSE_KIND",
    "Clock",
    "Escalator",
    "ManualClock",
    "SystemClock",
    "closing_items",
    "escalation_key",
    "policies",
]

log = structlog.get_logger("alert_router.escalation")


def policies(config: Config) -> dict[str, EscalatePolicy]:
    """The ``escalate:`` policy of every rule that has one, by rule name."""
    out: dict[str, EscalatePolicy] = {}
    for rule in config.rules:
        policy = rule.model.escalate if rule.model is not None else None
        if policy is not None:
            out[rule.name] = policy
    return out


def escalation_key(group_key: str, rule: str, step: int | str) -> str:
    """The outbox group key of one escalation message (a new message per step)."""
    return f"{group_key}{ESCALATION_MARK}{rule}:{step}"


CLOSE_KIND = "escalation_close"
"""The outbox kind of "this group of an escalating rule resolved: close its escalation messages"."""


def closing_items(config: Config, planned: Sequence[NewOutboxItem]) -> list[NewOutboxItem]:
    """One :data:`CLOSE_KIND` item per escalating rule among the resolved group notifications in ``planned``.

    ``dest`` is the rule, the payload the resolved group as its routed receivers get it. Planned in the
    ingest transaction, so a resolve that was accepted always reaches the escalation messages too.
    """
    resolved = [i for i in planned if i.kind == "notify" and i.payload.get("status") == "resolved"]
    if not resolved:
        return []
    escalating = policies(config)
    out: dict[str, NewOutboxItem] = {}
    for item in resolved:
        rule = str(item.payload.get("rule", ""))
        if rule in escalating and rule not in out:
            out[rule] = NewOutboxItem(CLOSE_KIND, rule, item.group_key, item.payload, priority=item.priority)
    return list(out.values())


class Escalator:
    """Starts timers for unacked firing alerts and fires the ones that come due."""

    def __init__(
        self,
        store: Store,
        config: Config,
        *,
        owner: str,
        clock: Clock | None = None,
        metrics: ChatMetrics | None = None,
        wake_delivery: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.owner = owner
        self.clock: Clock = clock or SystemClock()
        self.metrics = metrics or ChatMetrics()
        self.wake_delivery = wake_delivery
        self.settings = config.settings.chat.escalation
        self.policies = policies(config)
        self._seen: set[tuple[str, float]] = set()

    @property
    def active(self) -> bool:
        """Whether any rule escalates."""
        return bool(self.policies)

    async def sync(self) -> int:
        """Start a timer for every firing, unacked alert of an escalating rule that has none; return how many."""
        if not self.policies:
            return 0
        now = self.clock.now()
        new: list[NewEscalation] = []
        seen: list[tuple[str, float]] = []
        for alert in await self.store.alerts("firing"):
            key = (alert.fingerprint, alert.starts_at)
            if alert.acked_by or key in self._seen:
                continue
            seen.append(key)
            since = alert.changed_at if alert.changed_at is not None else alert.last_seen
            for rule in route_labels(alert.labels, self.config.rules, self.config.default).rules:
                policy = self.policies.get(rule.name)
                if policy is not None:
                    new.append(NewEscalation(alert.fingerprint, rule.name, alert.starts_at, alert.group_key,
                                             since + policy.after, policy.repeat))
        started = await self.store.start_escalations(new, now)
        if len(self._seen) > 100_000:
            self._seen.clear()
        self._seen.update(seen)
        if started:
            log.debug("escalation timers started", count=started)
        return started

    async def fire_due(self, limit: int = 200) -> int:
        """Handle the timers that are due; return how many escalation notifications were enqueued."""
        now = self.clock.now()
        timers = await self.store.claim_escalations(self.owner, limit, self.settings.lease, now)
        batches: dict[tuple[str, str], list[Escalation]] = defaultdict(list)
        for t in timers:
            batches[(t.rule, t.group_key)].append(t)
        enqueued = 0
        for (rule, group_key), batch in batches.items():
            enqueued += await self._fire(rule, group_key, batch, now)
        if enqueued and self.wake_delivery is not None:
            self.wake_delivery()
        return enqueued

    async def _fire(self, rule: str, group_key: str, batch: list[Escalation], now: float) -> int:
        policy = self.policies.get(rule)
        changes: list[EscalationChange] = []
        live: list[tuple[Escalation, AlertRecord]] = []
        for t in batch:
            rec = await self.store.alert(t.fingerprint)
            reason = None
            if policy is None:
                reason = "the rule no longer escalates"
            elif rec is None:
                reason = "the alert is no longer known"
            elif rec.status != "firing" or rec.starts_at != t.starts_at:
                reason = "resolved"
            elif rec.acked_by:
                reason = "acked"
            if reason is not None or rec is None:
                changes.append(EscalationChange(t.fingerprint, t.rule, t.starts_at, t.step, t.due_at, STOPPED,
                                                reason))
                self.metrics.escalations.labels("resolved" if reason == "resolved" else "stopped").inc()
                continue
            live.append((t, rec))
        items: list[NewOutboxItem] = []
        audit: list[AuditEntry] = []
        if live and policy is not None:
            step = max(t.step for t, _ in live) + 1
            for t, _ in live:
                done = t.step + 1 >= t.repeat
                changes.append(EscalationChange(t.fingerprint, t.rule, t.starts_at, t.step + 1,
                                                now + policy.after, DONE if done else ACTIVE))
            records = [rec for _, rec in live]
            items = await self._notifications(rule, group_key, records, policy, step, now)
            audit = [AuditEntry("escalated", {
                "rule": rule,
                "group_key": group_key,
                "fingerprints": [r.fingerprint for r in records],
                "step": step,
                "repeat": policy.repeat,
                "receivers": list(policy.receivers),
                "unacked_for": round(now - min((r.changed_at or r.last_seen) for r in records), 3),
            })]
        ok = await self.store.update_escalations(changes, self.owner, now, follow_ups=items, audit=audit)
        if not ok:
            log.info("escalation skipped: a timer changed meanwhile (acked or claimed elsewhere)", rule=rule,
                     group_key=group_key)
            return 0
        if items:
            self.metrics.escalations.labels("fired").inc(len(live))
            log.warning("alert escalated", rule=rule, group_key=group_key, receivers=list(policy.receivers)
                        if policy else [], alerts=len(live))
        return len(items)

    async def _notifications(
        self, rule: str, group_key: str, records: list[AlertRecord], policy: EscalatePolicy, step: int, now: float
    ) -> list[NewOutboxItem]:
        group_labels: dict[str, str] = {}
        external_url = ""
        for notice in reversed(await self.store.sent_notices(group_key)):
            if notice.message_key == group_key:
                group_labels = dict(notice.payload.get("group_labels") or {})
                external_url = str(notice.payload.get("external_url") or "")
                break
        since = min((r.changed_at or r.last_seen) for r in records)
        annotations = [dict(r.annotations) for r in records]
        common_annotations = {k: v for k, v in annotations[0].items() if all(a.get(k) == v for a in annotations)}
        items = []
        for receiver in policy.receivers:
            if not self.config.delivers_to(receiver):
                continue
            payload = {
                "receiver": receiver,
                "rule": rule,
                "group_key": group_key,
                "status": "firing",
                "alerts": [alert_wire(r) for r in records],
                "changed": [r.fingerprint for r in records],
                "group_labels": group_labels,
                "common_labels": common_labels(records),
                "common_annotations": common_annotations,
                "external_url": external_url,
                "truncated_alerts": 0,
                "received_at": iso(now),
                "extra": {"escalation": {
                    "rule": rule, "step": step, "repeat": policy.repeat, "after": policy.after,
                    "unacked_for": round(now - since, 3),
                }},
            }
            items.append(NewOutboxItem("notify", receiver, escalation_key(group_key, rule, step), payload))
        return items

    async def close_resolved(self, limit: int = 100) -> int:
        """Update the escalation messages of groups that resolved; return the notifications enqueued."""
        now = self.clock.now()
        enqueued = 0
        for item in await self.store.claim_outbox(CLOSE_KIND, self.owner, limit, self.settings.lease, now):
            follow_ups = await self._closing(item)
            if await self.store.finish_outbox(item, self.owner, ok=True, now=now, follow_ups=follow_ups):
                enqueued += len(follow_ups)
                if follow_ups:
                    log.info("escalation messages resolved", rule=item.dest, group_key=item.group_key,
                             messages=len(follow_ups))
        if enqueued and self.wake_delivery is not None:
            self.wake_delivery()
        return enqueued

    async def _closing(self, item: OutboxItem) -> list[NewOutboxItem]:
        """The resolved group, once for each escalation message of its rule whose latest state is firing."""
        prefix = escalation_key(item.group_key, item.dest, "")
        out = []
        for notice in await self.store.sent_notices(item.group_key):
            if not notice.message_key.startswith(prefix) or notice.payload.get("status") != "firing":
                continue
            extra = dict(item.payload.get("extra") or {})
            escalation = (notice.payload.get("extra") or {}).get("escalation")
            if escalation:
                extra["escalation"] = escalation
            payload = {**item.payload, "receiver": notice.dest, "extra": extra}
            out.append(NewOutboxItem("notify", notice.dest, notice.message_key, payload, priority=item.priority))
        return out

    async def tick(self) -> int:
        """One round: close what resolved, start missing timers, fire the due ones; return notifications enqueued."""
        closed = await self.close_resolved()
        await self.sync()
        return closed + await self.fire_due()

    async def run(self) -> None:
        """Loop until cancelled, one :meth:`tick` every ``chat.escalation.poll_interval``."""
        while True:
            try:
                await self.tick()
            except StoreUnavailable as exc:
                log.warning("escalation round skipped: store unavailable", error=str(exc))
            except Exception:
                log.exception("escalation round failed")
            await self.clock.sleep(self.settings.poll_interval)

