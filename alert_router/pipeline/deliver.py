"""The delivery stage: the only place that retries.

A claimed ``notify`` item is handed to its receiver's channel. Failures come back as
:class:`~alert_router.channels.base.ChannelError`. Retryable ones are retried here with exponential
backoff and jitter (honouring the platform's ``Retry-After``) for ``delivery.retry_for`` seconds, then
the item is put back in the store with a later ``not_before``, until ``delivery.give_up_after``.
Permanent failures (and retryable ones that outlived their budget) go to the receiver's ``fallback``
if it has one, are counted and logged as errors: never silent. "Sent" is recorded only after the
channel confirmed the send.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_delay

from alert_router.audit import AuditEntry
from alert_router.channels.base import Channel, ChannelError, MessageRef
from alert_router.config import Config
from alert_router.errors import FailureReason, StoreUnavailable
from alert_router.metrics import Metrics
from alert_router.models import Notification
from alert_router.pipeline.throttle import Deferred, Digest, StormControl, Throttle, WaitUntil
from alert_router.store.base import NewOutboxItem, OutboxItem, Store

log = structlog.get_logger("alert_router.deliver")


@dataclass
class DigestOutcome:
    """What the last storm round of a deliverer did (for tests and logs)."""

    items: int
    messages: int
    alerts: int
    ok: bool


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, ChannelError) and exc.retryable


def backoff_wait(initial: float = 0.5, maximum: float = 30.0) -> Any:
    """A tenacity wait: exponential with full jitter, but never shorter than the platform's ``retry_after``."""

    def wait(state: RetryCallState) -> float:
        exp = min(maximum, initial * (2 ** (state.attempt_number - 1)))
        delay = random.uniform(exp / 2, exp)
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, ChannelError) and exc.retry_after:
            delay = max(delay, exc.retry_after)
        return delay

    return wait


class Deliverer:
    """Claims ``notify`` items and delivers them through their channels."""

    def __init__(
        self, store: Store, config: Config, channels: Mapping[str, Channel], metrics: Metrics, owner: str
    ) -> None:
        self.store = store
        self.config = config
        self.channels = channels
        self.metrics = metrics
        self.owner = owner
        self.wake = asyncio.Event()
        self._inflight: set[asyncio.Task[None]] = set()
        # The enrichment stage (alert_router.enrich), set by app.py: bounded by its timeout, never raises.
        self.enrich: Callable[[Notification], Awaitable[None]] | None = None
        # Token buckets per destination and storm digests (alert_router.pipeline.throttle).
        self.throttle = Throttle(config.receivers, max_wait=config.settings.delivery.lease / 3)
        self.storm = StormControl(config, store, self.throttle, owner)
        self.last_digest: DigestOutcome | None = None

    async def attempt(
        self, channel: Channel, notification: Notification, previous: MessageRef | None
    ) -> MessageRef | None:
        """One send with the per-attempt timeout; a timeout becomes a retryable :class:`ChannelError`.

        The destination's rate-limit token is taken first (waiting is not a failure; see ``throttle.py``), one
        more per picture the channel will post besides the message (``extra_messages``).
        """
        extra = getattr(channel, "extra_messages", None)
        await self.throttle.acquire(channel, 1 + (extra(notification, previous) if callable(extra) else 0))
        try:
            async with asyncio.timeout(self.config.settings.delivery.attempt_timeout):
                return await channel.send(notification, previous)
        except TimeoutError:
            raise ChannelError(FailureReason.TIMEOUT, "delivery attempt timed out", retryable=True) from None
        except ChannelError as exc:
            if exc.retry_after:
                self.throttle.penalize(channel, exc.retry_after)
            raise

    async def send_with_retries(
        self, channel: Channel, notification: Notification, previous: MessageRef | None
    ) -> MessageRef | None:
        """Send, retrying retryable failures within ``delivery.retry_for``.

        Most sends succeed at once, so the first attempt is made without the retry machinery (setting it up
        costs more than writing a notification to a file); its failure, if retryable, is replayed as the
        first attempt of the retry loop, whose budget counts from the first attempt.
        """
        cfg = self.config.settings.delivery
        started = time.monotonic()
        try:
            return await self.attempt(channel, notification, previous)
        except ChannelError as exc:
            if not exc.retryable:
                raise
            replay = [exc]

        def count_failure(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, ChannelError):
                self.metrics.delivery_failures.labels(channel.receiver, exc.reason.value).inc()
                log.warning(
                    "delivery attempt failed; will retry",
                    receiver=channel.receiver,
                    reason=exc.reason.value,
                    error=str(exc),
                    attempt=state.attempt_number,
                    retry_after=exc.retry_after,
                )

        async for attempt in AsyncRetrying(
            retry=retry_if_exception(_retryable),
            stop=stop_after_delay(max(0.0, cfg.retry_for - (time.monotonic() - started))),
            wait=backoff_wait(),
            before_sleep=count_failure,
            reraise=True,
        ):
            with attempt:
                if replay:
                    raise replay.pop()
                return await self.attempt(channel, notification, previous)
        raise AssertionError("unreachable")  # pragma: no cover

    async def deliver(self, item: OutboxItem) -> None:
        """Deliver one claimed item and record the outcome."""
        now = time.time
        notification = Notification.model_validate(item.payload)
        notification.extra["delivery_id"] = item.id
        notification.extra["delivery_attempts"] = item.attempts  # > 1: an earlier claim may have sent it already
        channel = self.channels.get(item.dest)
        if channel is None:
            log.error("receiver no longer configured; notification dropped", receiver=item.dest, outbox_id=item.id)
            self.metrics.notifications.labels(item.dest, "failed").inc()
            await self.store.finish_outbox(item, self.owner, ok=False, now=now(), error="receiver not configured")
            return
        spec = self.config.receivers.get(item.dest)
        if spec is not None and not spec.enabled:
            log.debug("receiver disabled; notification skipped", receiver=item.dest, outbox_id=item.id)
            self.metrics.notifications.labels(item.dest, "skipped").inc()
            await self.store.finish_outbox(item, self.owner, ok=True, now=now(), error="skipped: receiver disabled")
            return
        async with self.storm.decide(item, channel) as decision:
            if isinstance(decision, WaitUntil):
                await self.store.retry_outbox(item, self.owner, decision.not_before, decision.reason, now())
                return
            if isinstance(decision, Digest):
                await self._digest(channel, decision)
                return
        previous = await self.store.message_ref(item.dest, item.group_key)
        if self.enrich is not None:
            await self.enrich(notification)
        try:
            ref = await self.send_with_retries(channel, notification, previous)
        except Deferred as exc:
            log.debug("rate limit: delivery deferred", receiver=item.dest, outbox_id=item.id, delay=exc.delay)
            await self.store.retry_outbox(item, self.owner, now() + exc.delay, str(exc), now())
            return
        except ChannelError as exc:
            self.metrics.delivery_failures.labels(channel.receiver, exc.reason.value).inc()
            age = now() - item.created_at
            cfg = self.config.settings.delivery
            if exc.retryable and age < self.config.settings.delivery.give_up_after:
                delay = min(300.0, cfg.postpone * (2 ** min(item.attempts - 1, 6))) * random.uniform(0.8, 1.2)
                delay = max(delay, exc.retry_after or 0.0)
                log.warning(
                    "delivery postponed",
                    receiver=item.dest,
                    outbox_id=item.id,
                    reason=exc.reason.value,
                    error=str(exc),
                    retry_in=round(delay, 1),
                    attempts=item.attempts,
                )
                await self.store.retry_outbox(item, self.owner, now() + delay, str(exc), now())
                return
            await self._fail(item, notification, exc)
            return
        if notification.extra.get("template_errors"):  # a receiver template failed; its default was used
            self.metrics.delivery_failures.labels(item.dest, FailureReason.TEMPLATE.value).inc()
        ok = await self.store.finish_outbox(item, self.owner, ok=True, now=now(), message_ref=ref)
        if ok:
            self.metrics.notifications.labels(item.dest, "sent").inc()
            self.metrics.last_delivery.labels(item.dest).set(now())
            self.metrics.processing_seconds.observe(max(0.0, now() - notification.received_at.timestamp()))
        else:
            log.warning("lease lost after delivery; another worker may repeat it", outbox_id=item.id)

    def _fallback(self, item: OutboxItem, exc: ChannelError) -> list[NewOutboxItem]:
        """The item for the receiver's ``fallback`` after a permanent failure (none for a fallback's own item)."""
        spec = self.config.receivers.get(item.dest)
        if spec is None or not spec.fallback or item.payload.get("extra", {}).get("fallback_from"):
            return []
        extra = {**item.payload.get("extra", {}), "fallback_from": item.dest,
                 "fallback_reason": f"{exc.reason.value}: {exc}"}
        payload = {**item.payload, "receiver": spec.fallback, "extra": extra}
        return [NewOutboxItem("notify", spec.fallback, item.group_key, payload, priority=item.priority)]

    async def _fail(self, item: OutboxItem, notification: Notification, exc: ChannelError) -> None:
        spec = self.config.receivers.get(item.dest)
        follow_ups = self._fallback(item, exc)
        log.error(
            "delivery failed permanently",
            receiver=item.dest,
            outbox_id=item.id,
            reason=exc.reason.value,
            error=str(exc),
            fallback=spec.fallback if spec else None,
            group_key=notification.group_key,
        )
        self.metrics.notifications.labels(item.dest, "failed").inc()
        await self.store.finish_outbox(
            item, self.owner, ok=False, now=time.time(), error=f"{exc.reason.value}: {exc}", follow_ups=follow_ups
        )
        entry = AuditEntry(
            "delivery_failed",
            {"reason": exc.reason.value, "error": str(exc), "group_key": item.group_key, "outbox_id": item.id,
             "alerts": [a.fingerprint for a in notification.alerts], "fallback": spec.fallback if spec else None},
            target=f"receiver/{item.dest}",
        )
        try:
            await self.store.append_audit([entry], time.time())
        except StoreUnavailable as err:
            log.error("could not audit a failed delivery", outbox_id=item.id, error=str(err))
        if follow_ups:
            self.wake.set()

    async def _digest(self, channel: Channel, digest: Digest) -> None:
        """Send a storm round's digest messages; finish all its items together, or put them all back."""
        items, dest = digest.items, digest.items[0].dest
        cfg = self.config.settings.delivery
        total = sum(len(d.alerts) for d in digest.messages)
        log.warning("alert storm: coalescing pending notifications into digests", receiver=dest,
                    backlog=digest.backlog, notifications=len(items), alerts=total, messages=len(digest.messages))
        ids = [i.id for i in items]
        renewed = time.time()
        outcome = DigestOutcome(len(items), len(digest.messages), total, False)
        try:
            for message in digest.messages:
                if time.time() - renewed > cfg.lease / 3:  # a message may wait for its token: keep the items
                    renewed = time.time()
                    await self.store.extend_lease("outbox", ids, self.owner, renewed + cfg.lease)
                await self.send_with_retries(channel, message, None)
                if message.extra.get("template_errors"):
                    self.metrics.delivery_failures.labels(dest, FailureReason.TEMPLATE.value).inc()
        except Deferred as exc:
            await self._release(items, exc.delay, str(exc))
            self.last_digest = outcome
            return
        except ChannelError as exc:
            self.metrics.delivery_failures.labels(dest, exc.reason.value).inc()
            oldest = min(i.created_at for i in items)
            if exc.retryable and time.time() - oldest < cfg.give_up_after:
                delay = max(exc.retry_after or 0.0, 5.0 * random.uniform(0.8, 1.2))
                log.warning("digest postponed", receiver=dest, notifications=len(items), error=str(exc),
                            retry_in=delay)
                await self._release(items, delay, f"{exc.reason.value}: {exc}")
                self.last_digest = outcome
                return
            follow_ups = [f for i in items for f in self._fallback(i, exc)]
            spec = self.config.receivers.get(dest)
            log.error("digest delivery failed permanently", receiver=dest, notifications=len(items),
                      reason=exc.reason.value, error=str(exc), fallback=spec.fallback if spec else None)
            self.metrics.notifications.labels(dest, "failed").inc(len(items))
            await self.store.finish_outbox_many(items, self.owner, ok=False, now=time.time(),
                                                error=f"{exc.reason.value}: {exc}", follow_ups=follow_ups)
            if follow_ups:
                self.wake.set()
            self.last_digest = outcome
            return
        refreshes = await self.storm.refreshes(items, channel)
        ok = await self.store.finish_outbox_many(items, self.owner, ok=True, now=time.time(), follow_ups=refreshes)
        if ok:
            self.metrics.notifications.labels(dest, "digested").inc(len(items))
            if refreshes:
                self.wake.set()
        else:
            log.warning("lease lost after a digest; another worker may repeat it", receiver=dest)
        self.last_digest = DigestOutcome(len(items), len(digest.messages), total, ok)

    async def _release(self, items: list[OutboxItem], delay: float, error: str) -> None:
        now = time.time()
        for i in items:
            await self.store.retry_outbox(i, self.owner, now + delay, error, now)

    async def _guarded(self, item: OutboxItem, sem: asyncio.Semaphore) -> None:
        self.metrics.deliveries_in_flight.inc()
        try:
            await self.deliver(item)
        except StoreUnavailable as exc:
            log.warning(
                "store unavailable during delivery; the item will be retried", outbox_id=item.id, error=str(exc)
            )
        except Exception:
            log.exception("unexpected error during delivery; the item will be retried", outbox_id=item.id)
        finally:
            self.metrics.deliveries_in_flight.dec()
            sem.release()
            self.wake.set()

    async def run(self) -> None:
        """Loop until cancelled, keeping up to ``delivery.workers`` deliveries in flight."""
        cfg = self.config.settings.delivery
        poll = self.config.settings.ingest.poll_interval
        sem = asyncio.Semaphore(cfg.workers)
        try:
            while True:
                free = cfg.workers - len(self._inflight)
                items = []
                if free > 0:
                    try:
                        items = await self.store.claim_outbox("notify", self.owner, free, cfg.lease, time.time())
                    except StoreUnavailable as exc:
                        log.warning("store unavailable; delivery pauses", error=str(exc))
                for item in items:
                    await sem.acquire()
                    task = asyncio.create_task(self._guarded(item, sem))
                    self._inflight.add(task)
                    task.add_done_callback(self._inflight.discard)
                if items:
                    continue
                self.wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(poll):  # not wait_for: on 3.11 it can swallow a cancellation
                        await self.wake.wait()
        finally:
            for t in list(self._inflight):
                t.cancel()
            if self._inflight:
                await asyncio.gather(*self._inflight, return_exceptions=True)
