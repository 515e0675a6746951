"""The ingest stage: stored webhook bodies become deduplicated, routed work in the outbox.

For each body: parse, observe every alert (dedup), and for the alerts whose state changed, plan one
``notify`` item per receiver holding the whole group's alerts that route there. All of it commits in
one transaction with the body marked done, so a crash leaves either nothing or everything.

A body that fails is dealt with alone and never holds back the others of its batch. One the store refuses
for good (:class:`~alert_router.errors.StoreRejected`) or that cannot be parsed is set aside at once; one that
fails otherwise is left to be claimed again (when its lease lapses) and set aside after
``ingest.max_attempts`` claims. Set aside means ``status = 'failed'`` with the error, counted in
``alert_router_inbox_failed_total`` and listed by ``alert-router inbox failed``. After a
:class:`~alert_router.errors.StoreUnavailable` the store is pinged: when it does not answer, the store itself
is down, and ingest pauses (nothing is set aside for an outage).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import structlog

from alert_router import priority
from alert_router.chat.escalation import closing_items
from alert_router.config import Config
from alert_router.deadman import DeadmanSwitch
from alert_router.errors import PayloadError, StoreRejected, StoreUnavailable
from alert_router.metrics import Metrics
from alert_router.models import Alert, WebhookPayload, parse_payload
from alert_router.pipeline.dedup import Observation
from alert_router.pipeline.route import route_group
from alert_router.remediation.plan import runbook_items
from alert_router.store.base import InboxItem, NewOutboxItem, ObservedAlert, Planner, Store

log = structlog.get_logger("alert_router.ingest")

WINDOW = 8
"""Bodies of a claimed batch in flight at once (parsed, planned and queued for commit)."""


def observe(payload: WebhookPayload) -> list[ObservedAlert]:
    """Reduce a webhook's alerts to what the dedup state records."""
    return [
        ObservedAlert(Observation.of(a), payload.group_key, a.labels, a.annotations, a.generator_url)
        for a in payload.alerts
    ]


def planner(config: Config, payload: WebhookPayload, received_at: float, metrics: Metrics | None = None) -> Planner:
    """Return the pure function that turns the changed fingerprints into outbox items.

    Receivers that are switched off (``enabled: false``) get nothing: no item, no work.
    """

    def plan(changed: frozenset[str]) -> Sequence[NewOutboxItem]:
        if not changed:
            return []
        routes = route_group(payload.alerts, config.rules, config.default)
        routed = {a.fingerprint for gr in routes for a in gr.alerts}
        if metrics is not None:
            metrics.alerts_unrouted.inc(len(changed - routed))
        wires: dict[int, dict[str, Any]] = {}  # each alert rendered once, whatever the receivers

        def wire(a: Alert) -> dict[str, Any]:
            w = wires.get(id(a))
            if w is None:
                w = wires[id(a)] = a.wire()
            return w

        items: list[NewOutboxItem] = []
        received = datetime.fromtimestamp(received_at, UTC).isoformat()
        for gr in routes:
            if not config.delivers_to(gr.receiver):
                continue
            group_changed = [a.fingerprint for a in gr.alerts if a.fingerprint in changed]
            if not group_changed:
                continue
            status = "firing" if any(a.is_firing for a in gr.alerts) else "resolved"
            payload_json = {
                "receiver": gr.receiver,
                "rule": gr.rule,
                "group_key": payload.group_key,
                "status": status,
                "alerts": [wire(a) for a in gr.alerts],
                "changed": group_changed,
                "group_labels": payload.group_labels,
                "common_labels": payload.common_labels,
                "common_annotations": payload.common_annotations,
                "external_url": payload.external_url,
                "truncated_alerts": payload.truncated_alerts,
                "received_at": received,
            }
            prio = priority.of_labels(a.labels for a in gr.alerts)
            items.append(NewOutboxItem("notify", gr.receiver, payload.group_key, payload_json, priority=prio))
        items.extend(closing_items(config, items))
        items.extend(runbook_items(config, payload, changed, received_at, wire))
        return items

    return plan


class Ingestor:
    """Claims stored bodies and commits their outcome; wakes the delivery stage when work appears."""

    def __init__(
        self, store: Store, config: Config, metrics: Metrics, owner: str, wake_delivery: asyncio.Event | None = None
    ) -> None:
        self.store = store
        self.config = config
        self.metrics = metrics
        self.owner = owner
        self.wake = asyncio.Event()
        self.wake_delivery = wake_delivery
        self.wake_runbooks: asyncio.Event | None = None
        # Alertmanager's heartbeat (Watchdog) is the dead-man's switch's, never notified (alert_router.deadman).
        self.deadman: DeadmanSwitch | None = None

    async def process(self, item: InboxItem) -> bool:
        """Process one claimed body; return whether it committed."""
        now = time.time()
        try:
            payload = parse_payload(item.body)
        except PayloadError as exc:
            await self.set_aside(item, f"cannot be parsed: {exc}")
            return False
        if self.deadman is not None:
            payload = self.deadman.without_heartbeats(payload)
        observed = observe(payload)
        result = await self.store.commit_inbox(
            item,
            self.owner,
            observed,
            planner(self.config, payload, item.received_at, self.metrics),
            self.config.settings.dedup.ttl,
            now,
        )
        if result.committed:
            self.metrics.alerts_received.inc(len(observed))
            self.metrics.alerts_deduplicated.inc(len(observed) - len(result.changed))
            for a in payload.alerts:
                if a.fingerprint in result.changed:
                    self.metrics.alerts_changed.labels(a.status).inc()
            if result.enqueued and self.wake_delivery is not None:
                self.wake_delivery.set()
            if result.enqueued and self.wake_runbooks is not None:
                self.wake_runbooks.set()
            log.debug(
                "ingested",
                inbox_id=item.id,
                group_key=payload.group_key,
                alerts=len(observed),
                changed=len(result.changed),
                enqueued=result.enqueued,
            )
        return result.committed

    async def set_aside(self, item: InboxItem, error: str) -> None:
        """Mark a body failed for good: counted, logged, and listed by ``alert-router inbox failed``."""
        error = error.replace("\x00", "\ufffd")[:2000]
        log.error(
            "webhook body set aside as failed; its alerts are not notified",
            inbox_id=item.id,
            group_key=item.group_key[:200],
            attempts=item.attempts,
            error=error,
        )
        await self.store.fail_inbox(item, self.owner, error, time.time())
        self.metrics.inbox_failed.inc()

    async def _one(self, item: InboxItem, finished: set[int]) -> None:
        """Process one claimed body; a failure of its own sets it aside or leaves it for another attempt.

        Raises only when the store itself is down (then ingest pauses, nothing is set aside).
        """
        cfg = self.config.settings.ingest
        try:
            await self.process(item)
        except StoreRejected as exc:
            await self.set_aside(item, f"the store refuses it: {exc}")
        except StoreUnavailable as exc:
            await self.store.ping()  # raises if the store itself is down: then ingest pauses, nothing is set aside
            if item.attempts >= cfg.max_attempts:
                await self.set_aside(item, f"failed on each of {item.attempts} attempts, last: {exc}")
            else:
                log.warning("webhook body not ingested; it will be tried again", inbox_id=item.id, error=str(exc))
        except Exception as exc:  # a bug tripped by one body must not stop the others
            log.exception("webhook body not ingested: unexpected error", inbox_id=item.id)
            if item.attempts >= cfg.max_attempts:
                await self.set_aside(item, f"failed on each of {item.attempts} attempts, last: {exc!r}")
        finally:
            finished.add(item.id)

    async def run_once(self, limit: int = 64) -> int:
        """Claim and process one batch, up to ``WINDOW`` bodies at a time; return how many were claimed.

        A claim never holds two bodies of one group, and commits are queued in claim order, so bodies in
        the window do not depend on each other; each commits (or fails) on its own. With several commits
        queued, the SQLite store writes them in one group commit (one fsync) and PostgreSQL runs them on
        several connections; one body at a time made every body wait for an fsync of its own, capping ingest
        at the disk's fsync rate (about 350 bodies/s here). A small window, not the whole batch: parsing and
        planning 64 bodies at once held the interpreter from the webhooks (``bench/shipped.py``: accept ratio
        0.14 against 0.29). The lease of the bodies not yet finished is renewed while the batch goes on (a
        batch of large groups can outlast it). Each body's failure is its own (module docstring); only the
        store itself being down stops the batch, once the bodies in flight have finished.
        """
        cfg = self.config.settings.ingest
        items = await self.store.claim_inbox(self.owner, limit, cfg.lease, time.time())
        renewed = time.monotonic()
        finished: set[int] = set()
        pending: set[asyncio.Task[None]] = set()
        failures: list[BaseException] = []
        try:
            for item in items:
                if len(pending) >= WINDOW:
                    done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                    failures += [e for t in done if (e := t.exception()) is not None]
                    if failures:  # the store is down: the rest of the batch is claimed again later
                        break
                if time.monotonic() - renewed > cfg.lease / 3:
                    waiting = [it.id for it in items if it.id not in finished]
                    await self.store.extend_lease("inbox", waiting, self.owner, time.time() + cfg.lease)
                    renewed = time.monotonic()
                pending.add(asyncio.create_task(self._one(item, finished)))
            outcomes = await asyncio.gather(*pending, return_exceptions=True)
        except asyncio.CancelledError:
            for t in pending:
                t.cancel()
            raise
        failures += [o for o in outcomes if isinstance(o, BaseException)]
        if failures:
            raise failures[0]
        return len(items)

    async def run(self) -> None:
        """Loop until cancelled: process while there is work, then wait for a wake-up or the poll interval."""
        poll = self.config.settings.ingest.poll_interval
        while True:
            try:
                n = await self.run_once()
            except StoreUnavailable as exc:
                log.warning("store unavailable; ingest pauses", error=str(exc))
                n = 0
                await asyncio.sleep(poll)
            if n:
                continue
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(poll):  # not wait_for: on 3.11 it can swallow a cancellation
                    await self.wake.wait()
