"""The dead-man's switch: page when Alertmanager's always-firing heartbeat alert stops arriving.

kube-prometheus-stack fires ``Watchdog`` (``vector(1)``) all the time, and so do the shipped rules in
``rules/prometheus/alert-router.yml``; Alertmanager re-sends it every ``repeat_interval`` of its route
(``deploy/alertmanager.yml``). While it keeps arriving, Prometheus evaluates rules, Alertmanager routes and
delivers, and the webhook reaches alert-router. When it stops, one of them is broken, and no alert sent
through that pipeline can say so: alert-router pages itself, through ``deadman.receivers``.

* Recognised by ``deadman.match`` (Alertmanager matchers, default ``alertname="Watchdog"``): such alerts are
  never deduplicated, routed or notified. A webhook that carries only heartbeats is recorded (the switch's
  ``last_seen``) and answered without queueing anything.
* Every ``check`` each replica asks the store to fire the switch if the last heartbeat is older than
  ``deadman.after``; the store changes the state and enqueues the pages in one transaction, so three replicas
  page once, and a restart does not page again. A replica that just started waits ``after`` first (Alertmanager
  needs a ``repeat_interval`` to reach it after an outage of alert-router itself).
* The next heartbeat resolves it, once: the resolution goes to the same receivers, under the same group, so
  chat messages are updated in place.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import structlog
from pydantic import Field, field_validator

from alert_router.configbase import ConfigModel
from alert_router.durations import Duration
from alert_router.errors import StoreUnavailable
from alert_router.matchers import Matcher, format_matchers, parse_matcher_list, validate_matcher_list
from alert_router.metrics import Metrics
from alert_router.models import Alert, Notification, WebhookPayload
from alert_router.store.base import DeadmanState, NewOutboxItem, Store

log = structlog.get_logger("alert_router.deadman")

SWITCH = "alertmanager"
"""The switch's name in the store (one switch: Alertmanager's heartbeat)."""

GROUP_KEY = "alert-router/deadman"
"""The group key of the pages (and of their resolution, so it updates the same message)."""

PAGE_ALERTNAME = "AlertmanagerHeartbeatMissing"
"""The ``alertname`` of the page."""


class DeadmanConfig(ConfigModel):
    """The ``deadman:`` section; see the module docstring.

    ``receivers`` empty: the heartbeat is still recognised (and never notified), but nobody is paged.
    ``match: []`` stops recognising it (it is then routed like any alert).
    """

    match: list[str] | str = Field(default_factory=lambda: ['alertname="Watchdog"'])
    receivers: list[str] = Field(default_factory=list)
    after: Duration = Field(default=300.0, gt=0)
    labels: dict[str, str] = Field(default_factory=dict)

    @field_validator("match")
    @classmethod
    def _matchers(cls, value: list[str] | str) -> list[str] | str:
        return validate_matcher_list(value)

    @property
    def matchers(self) -> list[Matcher]:
        """The compiled ``match``."""
        return parse_matcher_list(self.match)


def _ts(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


def _ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


class DeadmanSwitch:
    """Recognises heartbeats, records them, and fires and resolves the page; see the module docstring."""

    def __init__(
        self,
        settings: DeadmanConfig,
        store: Store,
        metrics: Metrics,
        *,
        external_url: str = "",
        wake_delivery: asyncio.Event | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.store = store
        self.metrics = metrics
        self.external_url = external_url
        self.wake_delivery = wake_delivery
        self.clock = clock
        self._matchers = settings.matchers
        self.started = time.monotonic()

    @property
    def paging(self) -> bool:
        """Whether anyone is paged (receivers configured)."""
        return bool(self.settings.receivers)

    @property
    def check_interval(self) -> float:
        """How often each replica checks: a tenth of ``after``, at most 15 s."""
        return max(0.1, min(self.settings.after / 10, 15.0))

    def recognises(self, alert: Alert) -> bool:
        """Whether ``alert`` is the heartbeat (any status)."""
        return bool(self._matchers) and all(m.matches(alert.labels) for m in self._matchers)

    def without_heartbeats(self, payload: WebhookPayload) -> WebhookPayload:
        """``payload`` minus its heartbeat alerts (the same object when it has none)."""
        if not self._matchers or not any(self.recognises(a) for a in payload.alerts):
            return payload
        return payload.model_copy(update={"alerts": [a for a in payload.alerts if not self.recognises(a)]})

    def heartbeats(self, payload: WebhookPayload) -> int:
        """How many firing heartbeat alerts ``payload`` carries (a resolved one means it stopped: not a beat)."""
        if not self._matchers:
            return 0
        return sum(1 for a in payload.alerts if a.is_firing and self.recognises(a))

    async def beat(self, received_at: float) -> DeadmanState:
        """Record a heartbeat received at ``received_at``; a firing switch resolves (its pages are enqueued)."""
        self.metrics.deadman_heartbeats.inc()
        state = await self.store.deadman_beat(SWITCH, received_at, self.clock(), self.plan)
        self._observe(state)
        if state.changed:
            log.warning("Alertmanager's heartbeat is back: the dead-man's switch resolves",
                        last_seen=_ts(state.last_seen).isoformat())
            if self.wake_delivery is not None:
                self.wake_delivery.set()
        return state

    async def check(self) -> DeadmanState | None:
        """Fire the switch if the heartbeat is overdue (``None`` inside the grace period after start)."""
        now = self.clock()
        if time.monotonic() - self.started < self.settings.after:
            await self.store.deadman_check(SWITCH, now, float("-inf"), self.plan)  # only creates a new switch
            return None
        state = await self.store.deadman_check(SWITCH, now, now - self.settings.after, self.plan)
        self._observe(state)
        if state.changed:
            log.error(
                "no heartbeat from Alertmanager: the alerting pipeline may be broken; paging",
                last_seen=_ts(state.last_seen).isoformat(),
                silent_for=_ago(now - state.last_seen),
                receivers=self.settings.receivers,
            )
            if self.wake_delivery is not None:
                self.wake_delivery.set()
        return state

    def _observe(self, state: DeadmanState) -> None:
        self.metrics.deadman_firing.set(1 if state.status == "firing" else 0)
        self.metrics.deadman_last_heartbeat.set(state.last_seen)

    def page(self, state: DeadmanState) -> Notification:
        """The notification for ``state``: the page while firing, its resolution once the heartbeat is back."""
        firing = state.status == "firing"
        fired_at = state.fired_at if state.fired_at is not None else state.changed_at
        matchers = format_matchers(self._matchers)
        labels = {"alertname": PAGE_ALERTNAME, "severity": "critical", "source": "alert-router",
                  **self.settings.labels}
        if firing:
            description = (
                f"alert-router has received no heartbeat alert ({matchers}) from Alertmanager since "
                f"{_ts(state.last_seen).isoformat()} ({_ago(state.changed_at - state.last_seen)} before this page, "
                f"deadman.after is {_ago(self.settings.after)}). While it is missing, alerts may reach nobody: "
                "check that Prometheus evaluates its rules, that Alertmanager runs and routes the heartbeat to "
                "alert-router, and that alert-router's webhook answers."
            )
        else:
            description = (f"The heartbeat from Alertmanager arrived again at {_ts(state.last_seen).isoformat()}; "
                           "the alerting pipeline delivers again.")
        alert = Alert.model_validate({
            "status": "firing" if firing else "resolved",
            "labels": labels,
            "annotations": {"summary": "Alertmanager's heartbeat stopped: the alerting pipeline may be broken",
                            "description": description},
            "startsAt": _ts(fired_at),
            "endsAt": "0001-01-01T00:00:00Z" if firing else _ts(state.changed_at),
            "generatorURL": "",
            "fingerprint": hashlib.sha256(GROUP_KEY.encode()).hexdigest()[:16],
        })
        return Notification(
            receiver="",
            rule="deadman",
            group_key=GROUP_KEY,
            status="firing" if firing else "resolved",
            alerts=[alert],
            changed=[alert.fingerprint],
            group_labels={"alertname": PAGE_ALERTNAME},
            common_labels=labels,
            common_annotations=dict(alert.annotations),
            external_url=self.external_url,
            received_at=_ts(state.changed_at),
        )

    def plan(self, state: DeadmanState) -> Sequence[NewOutboxItem]:
        """The notify items of a change (pure: it may run on the store's thread)."""
        base: dict[str, Any] = self.page(state).model_dump(mode="json")
        return [NewOutboxItem("notify", r, GROUP_KEY, {**base, "receiver": r}) for r in self.settings.receivers]

    async def run(self) -> None:
        """Check every :attr:`check_interval` until cancelled (only while someone is paged)."""
        if not self.paging:
            return
        while True:
            try:
                await self.check()
            except StoreUnavailable as exc:
                log.warning("dead-man's switch not checked: store unavailable", error=str(exc))
            await asyncio.sleep(self.check_interval)
