"""Replica heartbeats: a replica's work is taken over within seconds of its death, never while it lives.

Every process writes a heartbeat to the store every ``failover.heartbeat`` (``replicas`` table). A process
whose heartbeat is older than ``failover.dead_after`` is dead: the first live replica to notice takes its
claims back in one transaction (:meth:`~alert_router.store.base.Store.reclaim`), so its pending webhook
bodies, deliveries, runbook triggers and escalation timers are claimed by the others at once instead of when
their lease runs out (``delivery.lease`` and ``ingest.lease``, 60 s by default: they stay as the backstop),
and its running runbook runs are recorded as interrupted.

A slow replica is not a dead one: the heartbeat is its own small task, so a delivery to a receiver that takes
a minute never looks like death, and its work is never done twice. Only a replica whose own heartbeats have
been succeeding for ``dead_after`` declares others dead: after a database outage every replica first has to
be seen again, so nobody's work is taken over because the database was away. A replica that stops
gracefully marks itself retired, so a rolling update hands over its claims at the next heartbeat.

Alongside, the worker keeps the operator's gauges current: replicas seen alive and whether the store answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import structlog
from pydantic import Field, model_validator

from alert_router.configbase import ConfigModel
from alert_router.durations import Duration
from alert_router.errors import StoreUnavailable
from alert_router.metrics import Metrics
from alert_router.store.base import Store

log = structlog.get_logger("alert_router.heartbeat")


class FailoverConfig(ConfigModel):
    """The ``failover:`` section: how often each process writes its heartbeat, and when silence means death.

    The work of a process that died is taken over ``dead_after`` to ``dead_after + heartbeat`` seconds after
    its last heartbeat. ``dead_after`` must allow for the event loop of a busy replica being late now and
    then (at least two heartbeats); ``0`` switches failover off (claims return only when their lease ends).
    """

    heartbeat: Duration = Field(default=1.0, gt=0)
    dead_after: Duration = Field(default=3.0, ge=0)

    @model_validator(mode="after")
    def _dead_after_spans_heartbeats(self) -> FailoverConfig:
        if self.dead_after and self.dead_after < 2 * self.heartbeat:
            raise ValueError("dead_after must be at least twice the heartbeat interval (or 0 to switch failover off)")
        return self


Reclaimed = Callable[[dict[str, int]], None]
"""Told what was taken back from a dead process, per queue, so the workers look for it at once."""


class Heartbeat:
    """The heartbeat task of one process; see the module docstring."""

    def __init__(
        self,
        store: Store,
        settings: FailoverConfig,
        metrics: Metrics,
        owner: str,
        on_reclaimed: Reclaimed | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.settings = settings
        self.metrics = metrics
        self.owner = owner
        self.on_reclaimed = on_reclaimed
        self.clock = clock
        self.started_at = clock()
        self.fresh_since: float | None = None
        """Since when this process's heartbeats have been succeeding without a gap (``None``: the last failed)."""

    @property
    def window(self) -> float:
        """How recent a heartbeat must be for its process to count as alive."""
        return self.settings.dead_after or 3 * self.settings.heartbeat

    async def beat(self) -> None:
        """One heartbeat; then, if this process has been alive long enough to judge, reclaim from the dead."""
        cfg = self.settings
        now = self.clock()
        try:
            async with asyncio.timeout(cfg.heartbeat):  # a late heartbeat is as good as a missed one
                alive = await self.store.heartbeat(self.owner, self.started_at, now, now - self.window)
        except (StoreUnavailable, TimeoutError):
            self.fresh_since = None
        else:
            if self.fresh_since is None:
                self.fresh_since = now
            self.metrics.replicas_alive.set(alive)
        try:
            await self.store.ping(within=min(2.0, cfg.heartbeat))
            self.metrics.store_up.set(1)
        except (StoreUnavailable, TimeoutError):
            self.metrics.store_up.set(0)
        if cfg.dead_after and self.fresh_since is not None and now - self.fresh_since >= cfg.dead_after:
            await self._reclaim(now)

    async def _reclaim(self, now: float) -> None:
        try:
            got = await self.store.reclaim(now - self.settings.dead_after, now)
        except StoreUnavailable as exc:
            log.warning("could not check for dead replicas: store unavailable", error=str(exc))
            return
        if not got:
            return
        for queue, n in got.items():
            self.metrics.reclaimed.labels(queue).inc(n)
        log.warning("took back the claims of a process that stopped", items=got,
                    silent_for=f">{self.settings.dead_after:g}s")
        if self.on_reclaimed is not None:
            self.on_reclaimed(got)

    async def run(self) -> None:
        """Beat every ``failover.heartbeat`` seconds until cancelled."""
        interval = self.settings.heartbeat
        while True:
            started = time.monotonic()
            try:
                await self.beat()
            except Exception:  # a bug must not stop the heartbeat: peers would take over our work
                log.exception("heartbeat failed unexpectedly")
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))

    async def retire(self) -> None:
        """Tell the others this process stopped (best effort, bounded): they take its claims at once."""
        with contextlib.suppress(StoreUnavailable, TimeoutError):
            async with asyncio.timeout(2):
                await self.store.retire(self.owner)
