"""Rate limits per destination and storm control: the stage between routing and the channels.

**Token buckets.** Every send attempt first takes a token from the bucket of its destination
(:meth:`Channel.destination`), and from any bucket the channel shares with others (a Telegram bot's
30 messages per second across chats). Rates come from the platform (:meth:`Channel.rate_limit`) unless
the receiver sets ``rate_limit: {rate, burst}``. Waiting for a token is not a failure; a wait longer
than a third of the delivery lease puts the item back in the store for later instead of holding it.
A 429's ``Retry-After`` also pushes the destination's bucket back, so that no other delivery to it
goes out before the platform said so.

**Storm control.** When a destination's backlog (pending ``notify`` items) reaches
``delivery.storm.threshold`` (or the receiver's ``storm: {threshold}``), the item being delivered
waits for the destination's next token, then sweeps up the others pending for it (one round at a time
per destination; items claimed meanwhile go back for the next round), and they go out as digest messages
("37 alerts firing in prod: …, and 12 more") listing every alert once, in its latest state; the
channel's ``digest_capacity`` bounds the alerts per message. The swept items are marked done together,
only after every digest message was confirmed; a failure puts them all back (or, if permanent, sends
each to the receiver's fallback). Nothing is dropped and pending work stays in the store across restarts.
Receivers that keep a record of every notification (``file``, ``console``) are never digested.

This module decides; :mod:`alert_router.pipeline.deliver` acts. :meth:`StormControl.decide` returns
send now, wait until, or digest these, and the deliverer carries it out.
With them, on channels that edit a group's message in place (``edits_in_place``: Slack, Telegram),
each swept group that has such a message gets one update of it to its latest state (``REFRESH_DELAY``
later), which is never digested itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import structlog
from pydantic import Field

from alert_router.channels.base import Channel, RateLimit
from alert_router.configbase import ConfigModel
from alert_router.models import Alert, Notification
from alert_router.render.context import SEVERITY_ORDER
from alert_router.store.base import NewOutboxItem, OutboxItem

if TYPE_CHECKING:
    from alert_router.config import Config, ReceiverSpec

log = structlog.get_logger("alert_router.throttle")

DEFAULT_DIGEST_CAPACITY = 200
DIGEST_RULE = "storm-digest"
REFRESH = "refresh_after_digest"  # in ``extra``: an update of a group's own message after a storm digest
REFRESH_DELAY = 30.0  # seconds a refresh waits after its digest


def is_refresh(item: OutboxItem) -> bool:
    """Whether ``item`` updates a group's own message after a storm digest."""
    return bool(item.payload.get("extra", {}).get(REFRESH))


@runtime_checkable
class DigestStore(Protocol):
    """What storm control needs from a store beyond :class:`~alert_router.store.base.Store`.

    Optional: a store without these methods simply never coalesces (both stores have them).
    """

    async def backlog(self, kind: str, dest: str) -> int:
        """Pending items of ``kind`` for ``dest``, claimed or not."""
        ...

    async def message_groups(self, dest: str, group_keys: Sequence[str]) -> set[str]:
        """Those of ``group_keys`` that have a living message at ``dest`` (a message reference)."""
        ...

    async def claim_dest(
        self, kind: str, dest: str, owner: str, limit: int, lease: float, now: float, seed_id: int | None = None
    ) -> list[OutboxItem]:
        """Claim up to ``limit`` unclaimed pending items for ``dest``, oldest first, due or not.

        A group is skipped while an earlier item of it is claimed (other than ``seed_id``), so a digest
        never overtakes a delivery in flight.
        """
        ...

    async def retry_outbox(self, item: OutboxItem, owner: str, not_before: float, error: str, now: float) -> bool:
        """Release a claimed item to be tried again at ``not_before``."""
        ...


class StormConfig(ConfigModel):
    """``delivery.storm``: coalesce a destination's backlog into digests past ``threshold`` pending items."""

    threshold: int = Field(default=20, ge=0, description="pending items for one destination; 0 turns it off")
    max_items: int = Field(default=1000, ge=2, le=100_000, description="items swept into one digest round")


class Deferred(Exception):
    """Raised instead of waiting when the next token is more than the allowed wait away."""

    def __init__(self, delay: float, key: str) -> None:
        self.delay = delay
        self.key = key
        super().__init__(f"rate limit of {key}: next slot in {delay:.1f}s")


class TokenBucket:
    """A token bucket as a virtual schedule (GCRA): reservations are handed out in order, never early.

    ``rate`` tokens per second, ``burst`` at most at once. :meth:`reserve` books the next slot and
    returns how long to wait for it.
    """

    def __init__(self, rate: float, burst: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self._tat = 0.0  # theoretical arrival time of the next conforming request

    @property
    def interval(self) -> float:
        """Seconds per token."""
        return 1.0 / self.rate

    def configure(self, rate: float, burst: float) -> None:
        """Change the rate and burst, keeping the schedule."""
        self.rate, self.burst = rate, burst

    def delay(self, now: float | None = None) -> float:
        """Seconds until a token is available, without taking it."""
        now = self.clock() if now is None else now
        tolerance = (self.burst - 1.0) * self.interval
        return max(0.0, self._tat - tolerance - now)

    def reserve_at(self, at: float, tokens: int = 1) -> None:
        """Book ``tokens`` slots from time ``at`` (which must not be earlier than ``now + delay()``)."""
        self._tat = max(self._tat, at) + self.interval * tokens

    def reserve(self, now: float | None = None) -> float:
        """Book the next slot; return the seconds to wait for it."""
        now = self.clock() if now is None else now
        wait = self.delay(now)
        self.reserve_at(now + wait)
        return wait

    def penalize(self, seconds: float, now: float | None = None) -> None:
        """Let nothing through for ``seconds`` (a platform's ``Retry-After``)."""
        now = self.clock() if now is None else now
        tolerance = (self.burst - 1.0) * self.interval
        self._tat = max(self._tat, now + seconds + tolerance)


class Throttle:
    """The token buckets of all destinations of one process."""

    def __init__(
        self,
        receivers: Mapping[str, ReceiverSpec] | None = None,
        *,
        max_wait: float = 20.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self.receivers = receivers or {}
        self.max_wait = max_wait
        self.clock = clock
        self.sleep = sleep
        self.buckets: dict[str, TokenBucket] = {}

    def limits(self, channel: Channel) -> list[tuple[str, RateLimit]]:
        """The buckets a send through ``channel`` draws from: its destination's, then shared ones."""
        spec = self.receivers.get(channel.receiver)
        own: RateLimit | None
        own = RateLimit(spec.rate, spec.burst or 1.0) if spec is not None and spec.rate else channel.rate_limit()
        out = [(channel.destination(), own)] if own is not None else []
        shared = getattr(channel, "shared_rate_limits", None)
        if callable(shared):
            out.extend(shared())
        return out

    def _bucket(self, key: str, limit: RateLimit) -> TokenBucket:
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = TokenBucket(limit.rate, limit.burst, self.clock)
        elif (bucket.rate, bucket.burst) != (limit.rate, limit.burst):
            bucket.configure(limit.rate, limit.burst)
        return bucket

    def delay(self, channel: Channel) -> float:
        """Seconds until ``channel`` could send, without booking anything."""
        now = self.clock()
        return max((self._bucket(key, limit).delay(now) for key, limit in self.limits(channel)), default=0.0)

    def reserve(self, channel: Channel, tokens: int = 1) -> float:
        """Book the next ``tokens`` slots in every bucket of ``channel``; return the wait, or raise :class:`Deferred`.

        A send that posts a picture besides its message (Slack, Telegram) takes one token per picture more.
        """
        buckets = [(key, self._bucket(key, limit)) for key, limit in self.limits(channel)]
        if not buckets:
            return 0.0
        now = self.clock()
        waits = [(b.delay(now), key) for key, b in buckets]
        wait, key = max(waits)
        if wait > self.max_wait:
            raise Deferred(wait, key)
        for _, b in buckets:
            b.reserve_at(now + wait, tokens)
        return wait

    async def acquire(self, channel: Channel, tokens: int = 1) -> float:
        """Wait for ``tokens`` tokens for ``channel``; return the seconds waited (:class:`Deferred` if too long)."""
        wait = self.reserve(channel, tokens)
        if wait > 0:
            await self.sleep(wait)
        return wait

    def penalize(self, channel: Channel, seconds: float) -> None:
        """Hold ``channel``'s destination back for ``seconds``."""
        if seconds <= 0:
            return
        for key, limit in self.limits(channel)[:1]:
            self._bucket(key, limit).penalize(seconds, self.clock())


# -- storm control ------------------------------------------------------------------------------------


def _sort_key(a: Alert) -> tuple[bool, int, str, datetime]:
    return (not a.is_firing, SEVERITY_ORDER.get(a.severity.lower(), 9), a.name, a.starts_at)


def _common(alerts: Sequence[Alert]) -> dict[str, str]:
    if not alerts:
        return {}
    common = dict(alerts[0].labels)
    for a in alerts[1:]:
        common = {k: v for k, v in common.items() if a.labels.get(k) == v}
    return common


def coalesce(items: Sequence[OutboxItem], dest: str, capacity: int) -> list[Notification]:
    """Turn several pending notifications for ``dest`` into digest notifications of at most ``capacity`` alerts.

    Every alert of every item appears exactly once, in its latest known state (later items win).
    """
    alerts: dict[str, Alert] = {}
    groups: set[str] = set()
    changed: list[str] = []
    external_url = ""
    received: list[datetime] = []
    for item in sorted(items, key=lambda i: i.id):
        n = Notification.model_validate(item.payload)
        groups.add(n.group_key)
        external_url = external_url or n.external_url
        received.append(n.received_at)
        for a in n.alerts:
            alerts.pop(a.fingerprint, None)
            alerts[a.fingerprint] = a
        changed.extend(f for f in n.changed if f not in changed)
    ordered = sorted(alerts.values(), key=_sort_key)
    capacity = max(1, capacity)
    chunks = [ordered[i : i + capacity] for i in range(0, len(ordered), capacity)] or [[]]
    when = max(received) if received else datetime.now(UTC)
    out = []
    for part, chunk in enumerate(chunks, start=1):
        fps = {a.fingerprint for a in chunk}
        out.append(
            Notification(
                receiver=dest,
                rule=DIGEST_RULE,
                group_key=f"digest:{dest}",
                status="firing" if any(a.is_firing for a in chunk) else "resolved",
                alerts=chunk,
                changed=[f for f in changed if f in fps],
                common_labels=_common(chunk),
                external_url=external_url,
                received_at=when,
                extra={
                    "digest": {
                        "groups": len(groups),
                        "notifications": len(items),
                        "part": part,
                        "parts": len(chunks),
                        "alerts": len(ordered),
                    }
                },
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class SendNow:
    """Deliver the item on its own, now."""


@dataclass(frozen=True, slots=True)
class WaitUntil:
    """Put the item back in the store until ``not_before`` (waiting is not a failure)."""

    not_before: float
    reason: str


@dataclass(frozen=True, slots=True)
class Digest:
    """Deliver ``items`` (the item and the backlog swept with it, all leased) as ``messages``, all or nothing."""

    items: list[OutboxItem]
    messages: list[Notification]
    backlog: int


Decision = SendNow | WaitUntil | Digest
"""What storm control decided for one claimed item; the deliverer acts on it."""


class StormControl:
    """Decides whether a destination is in a storm, and what its claimed items become then.

    It reads and claims in the store, never sends: :meth:`decide` returns a :data:`Decision` and the
    delivery stage carries it out (and, after a confirmed digest, enqueues :meth:`refreshes`).
    Channels that keep a record of every notification rather than talk to people (``digests = False``:
    ``file``, ``console``) are never digested.
    """

    def __init__(self, config: Config, store: object, throttle: Throttle, owner: str) -> None:
        self.config = config
        storm = getattr(config.settings.delivery, "storm", None)
        self.settings = storm if isinstance(storm, StormConfig) else StormConfig()
        self.store = store if isinstance(store, DigestStore) else None
        self.throttle = throttle
        self.owner = owner
        self._active: set[str] = set()  # destinations with a digest round in progress in this process

    def threshold(self, dest: str) -> int:
        """The backlog at which ``dest`` switches to digests (0: never)."""
        spec = self.config.receivers.get(dest)
        own = getattr(spec, "storm_threshold", None) if spec is not None else None
        return int(own) if own is not None else self.settings.threshold

    @contextlib.asynccontextmanager
    async def decide(self, item: OutboxItem, channel: Channel) -> AsyncIterator[Decision]:
        """Decide what ``item`` becomes; a :class:`Digest` round holds its destination until the block ends.

        No storm (or a refresh after a digest, which edits one group's own message): :class:`SendNow`.
        A storm while another round of this process sweeps the destination: :class:`WaitUntil` the next
        one. Otherwise, once the destination could take a message (so that the digest holds everything
        that arrived meanwhile), the unclaimed backlog is swept up with ``item``: :class:`Digest`.
        """
        store = self.store
        threshold = self.threshold(item.dest)
        if store is None or threshold <= 0 or is_refresh(item) or not getattr(channel, "digests", True):
            yield SendNow()
            return
        backlog = await store.backlog("notify", item.dest)
        if backlog < threshold:
            yield SendNow()
            return
        if item.dest in self._active:
            yield WaitUntil(time.time() + 1.0, "storm: waiting for the next digest")
            return
        self._active.add(item.dest)
        try:
            wait = self.throttle.delay(channel)
            if wait > 0:
                await asyncio.sleep(min(wait, self.throttle.max_wait))
            lease = self.config.settings.delivery.lease
            swept = await store.claim_dest(
                "notify", item.dest, self.owner, self.settings.max_items - 1, lease, time.time(), item.id
            )
            now = time.time()
            for r in (i for i in swept if is_refresh(i)):  # back, after the storm: they go out on their own
                await store.retry_outbox(r, self.owner, now + REFRESH_DELAY, "storm: refresh waits", now)
            others = [i for i in swept if not is_refresh(i)]
            if not others:
                yield SendNow()
                return
            items = [item, *others]
            capacity = int(getattr(channel, "digest_capacity", DEFAULT_DIGEST_CAPACITY))
            yield Digest(items, coalesce(items, item.dest, capacity), backlog)
        finally:
            self._active.discard(item.dest)

    async def refreshes(self, items: Sequence[OutboxItem], channel: Channel) -> list[NewOutboxItem]:
        """After a confirmed digest: one update per swept group that has a living message, to its latest state.

        The digest told the channel what happened, but each group's own message (a Slack message or a
        Telegram message that is edited in place) would otherwise keep showing the state before the storm,
        say FIRING for an alert that resolved inside the digest, until the group changes again. These
        items wait ``REFRESH_DELAY`` (a storm often brings the next change within it) and then go out
        one by one as edits, taking tokens from the destination's bucket like any message; they are never
        swept into a digest, so a digest round cannot feed on its own refreshes. Channels that do not edit
        in place get none.
        """
        if self.store is None or not items or not getattr(channel, "edits_in_place", False):
            return []
        due = time.time() + REFRESH_DELAY
        latest: dict[str, OutboxItem] = {}
        for i in sorted(items, key=lambda i: i.id):
            latest[i.group_key] = i
        dest = items[0].dest
        living = await self.store.message_groups(dest, sorted(latest))
        out = []
        for group_key in sorted(living):
            i = latest[group_key]
            extra = {**i.payload.get("extra", {}), REFRESH: True}
            payload = {**i.payload, "extra": extra}
            out.append(NewOutboxItem("notify", dest, group_key, payload, not_before=due, priority=i.priority))
        return out
