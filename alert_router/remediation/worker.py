"""The remediation worker: claims ``runbook`` outbox items and keeps the engine's housekeeping going.

On start it reports runs that a crash left behind (``interrupted``); then, until cancelled, it claims
triggers (woken by the ingest stage, or every ``ingest.poll_interval``), expires approvals that
nobody decided, re-checks for orphaned runs every lease period (several replicas), and prunes the
audit log by ``retention.audit``. On stop, the runs of this process are recorded as interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import structlog

from alert_router.appkeys import Runtime
from alert_router.config import Config
from alert_router.errors import StoreUnavailable
from alert_router.remediation.engine import RemediationEngine
from alert_router.remediation.plan import KIND
from alert_router.store.base import OutboxItem, Store

log = structlog.get_logger("alert_router.remediation.worker")


def runs_horizon(config: Config, now: float) -> float:
    """Finished runs last updated before this are deleted.

    They are kept as long as the audit records that describe them (``retention.audit``), and never while
    a runbook's cooldown or ``max_runs`` window could still count them.
    """
    longest = max(
        (max(rb.guards.cooldown, rb.guards.max_runs.window) for rb in config.runbooks.values()), default=0.0
    )
    return now - max(config.settings.retention.audit, longest)


class RunbookWorker:
    """Drives a :class:`RemediationEngine` from the outbox."""

    def __init__(self, engine: RemediationEngine, store: Store, config: Config, owner: str) -> None:
        self.engine = engine
        self.store = store
        self.config = config
        self.owner = owner
        self.wake = asyncio.Event()
        self._recover_now = False

    def recover_soon(self) -> None:
        """Look for orphaned runs at the next turn (a dead replica's runs were just released), not a lease later."""
        self._recover_now = True
        self.wake.set()

    async def handle(self, item: OutboxItem) -> None:
        """Hand one item to the engine; on a store outage or a bug, put it back for later."""
        try:
            await self.engine.handle_item(item)
        except StoreUnavailable as exc:
            log.warning("store unavailable while handling a runbook trigger", outbox_id=item.id, error=str(exc))
            with contextlib.suppress(StoreUnavailable):
                await self.store.retry_outbox(item, self.owner, time.time() + 5, str(exc), time.time())
        except Exception as exc:
            log.exception("unexpected error while handling a runbook trigger", outbox_id=item.id)
            with contextlib.suppress(StoreUnavailable):
                if item.attempts >= 5:
                    await self.store.finish_outbox(item, self.owner, ok=False, now=time.time(), error=repr(exc))
                else:
                    await self.store.retry_outbox(item, self.owner, time.time() + 5 * item.attempts, repr(exc),
                                                  time.time())

    async def housekeeping(self, now: float, last: dict[str, float]) -> None:
        """Expire approvals, recover orphaned runs and prune the audit log, each at its own pace."""
        settings = self.config.settings
        if now - last.get("expire", 0) >= settings.remediation.poll_interval:
            last["expire"] = now
            await self.engine.expire_approvals()
        if self._recover_now or now - last.get("recover", 0) >= settings.remediation.lease:
            self._recover_now = False
            last["recover"] = now
            await self.engine.recover()
        if now - last.get("prune", 0) >= settings.retention.prune_interval:
            last["prune"] = now
            n = await self.store.prune_audit(now - settings.retention.audit)
            if n:
                log.info("pruned old audit records", records=n)
            n = await self.store.prune_runs(runs_horizon(self.config, now))
            if n:
                log.info("pruned old finished runs", runs=n)

    async def run(self) -> None:
        """Loop until cancelled."""
        poll = min(self.config.settings.ingest.poll_interval, self.config.settings.remediation.poll_interval)
        last: dict[str, float] = {}
        try:
            while True:
                try:
                    if "recover" not in last:
                        await self.engine.recover()
                        last["recover"] = time.time()
                    items = await self.store.claim_outbox(KIND, self.owner, 16, self.config.settings.ingest.lease,
                                                          time.time())
                    for item in items:
                        await self.handle(item)
                    await self.housekeeping(time.time(), last)
                except StoreUnavailable as exc:
                    log.warning("store unavailable; remediation pauses", error=str(exc))
                    items = []
                    await asyncio.sleep(poll)
                if items:
                    continue
                self.wake.clear()
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that races the event
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(poll):
                        await self.wake.wait()
        finally:
            await self.engine.aclose()


def build_worker(rt: Runtime, wake_delivery: asyncio.Event | None = None) -> RunbookWorker:
    """The engine and its worker for a running app; the engine is published as ``rt.services["remediation"]``."""
    engine = RemediationEngine(
        rt.store, rt.config, owner=rt.owner, registry=rt.metrics.registry, wake_delivery=wake_delivery
    )
    rt.services["remediation"] = engine
    return RunbookWorker(engine, rt.store, rt.config, rt.owner)
