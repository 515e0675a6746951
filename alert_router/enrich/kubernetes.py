"""Kubernetes evidence in notifications, without any runbook: ``enrich: {kubernetes: {...}}``.

For each notification the alerts' labels name the workloads (``namespace`` plus the first of
``deployment``, ``statefulset``, ``pod`` that is set, by default); for each of them (at most
``max_targets``) the same evidence a runbook gathers before acting (:mod:`alert_router.remediation.evidence`)
is read from the API server, bounded by ``timeout``, redacted with the notification's ``redact``
settings. A short-lived single-flight cache (``cache_ttl``) keyed on the workload makes a storm
about one Deployment cost one round of reads. Off by default (it needs a cluster and RBAC).

Output, in ``notification.extra["enrichment"]["kubernetes"]``: one evidence dict per workload (its
``summary`` is the line people read, e.g. ``3/3 pods CrashLoopBackOff, OOMKilled, rolled out 12
minutes ago (image model:v42)``), with the ``fingerprints`` of the alerts that named it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator

from alert_router.configbase import ConfigModel
from alert_router.durations import Duration
from alert_router.remediation.actions.base import Target
from alert_router.remediation.evidence import SESSION_GRACE, EvidenceSettings, gather
from alert_router.remediation.kube import KubeClient, KubeError, KubeSession
from alert_router.remediation.settings import KubernetesConfig, RetryConfig
from alert_router.remediation.templating import name_problem, namespace_problem

if TYPE_CHECKING:
    from alert_router.models import Alert
    from alert_router.redact import Redactor

__all__ = ["KubernetesEnrichSettings", "KubernetesEnricher", "TargetLabel", "target_of", "targets_of"]


class TargetLabel(ConfigModel):
    """An alert label that names a workload of ``kind``."""

    kind: Literal["Deployment", "StatefulSet", "Pod"]
    label: str = Field(min_length=1)


def _default_targets() -> list[TargetLabel]:
    return [TargetLabel(kind="Deployment", label="deployment"), TargetLabel(kind="StatefulSet", label="statefulset"),
            TargetLabel(kind="Pod", label="pod")]


class KubernetesEnrichSettings(EvidenceSettings):
    """The ``enrich.kubernetes`` block: evidence settings, plus which labels name the workload."""

    enabled: bool = False
    timeout: Duration = 3.0
    namespace_label: str = "namespace"
    targets: list[TargetLabel] = Field(default_factory=_default_targets)
    namespaces: list[str] = Field(default_factory=list)
    max_targets: int = Field(default=3, ge=1, le=20)
    cache_ttl: Duration = 15.0

    @field_validator("namespaces")
    @classmethod
    def _namespaces(cls, value: list[str]) -> list[str]:
        for ns in value:
            why = namespace_problem(ns)
            if why:
                raise ValueError(why)
        return value


def targets_of(alerts: Sequence[Alert], settings: KubernetesEnrichSettings) -> list[tuple[Target, list[str]]]:
    """The workloads the alerts name, in order, each with the fingerprints of the alerts naming it.

    Label values are untrusted: a value that is not a valid Kubernetes name, or a namespace outside
    ``namespaces`` (when given), names nothing.
    """
    found: dict[str, tuple[Target, list[str]]] = {}
    for alert in alerts:
        target = target_of(alert.labels, settings)
        if target is not None:
            found.setdefault(target.key, (target, []))[1].append(alert.fingerprint)
    return list(found.values())[: settings.max_targets]


def target_of(labels: Mapping[str, str], settings: KubernetesEnrichSettings) -> Target | None:
    """The workload one alert's labels name (see :func:`targets_of`), or ``None``."""
    ns = labels.get(settings.namespace_label, "")
    if namespace_problem(ns) or (settings.namespaces and ns not in settings.namespaces):
        return None
    for t in settings.targets:
        name = labels.get(t.label, "")
        if name and not name_problem(name):
            return Target(t.kind, ns, name)
    return None


PREPARE_TIMEOUT = 10.0
"""Seconds the first notification may wait for the client to be built (once per process)."""


def _unavailable(target: Target, fingerprints: list[str], why: str) -> dict[str, Any]:
    return {"target": target.key, "status": "unavailable", "reason": why, "summary": f"evidence unavailable: {why}",
            "errors": [{"part": "all", "error": why}], "fingerprints": fingerprints}


class KubernetesEnricher:
    """Gathers (and caches, briefly) the evidence for notifications; one per enrichment stage."""

    def __init__(self, kubernetes: KubernetesConfig, *, clock: Callable[[], float] = time.monotonic,
                 client: KubeClient | None = None) -> None:
        # One attempt per read: a notification cannot wait for retries, and the cache soon asks again.
        self.client = client or KubeClient(kubernetes, RetryConfig(attempts=1))
        self.clock = clock
        self._cache: dict[Hashable, tuple[float, asyncio.Task[dict[str, Any]]]] = {}
        self._preparing: asyncio.Task[Any] | None = None

    def prepare(self) -> None:
        """Build the client in the background (the first notification then does not wait for it)."""
        if self._preparing is None:
            self._preparing = asyncio.create_task(self.client.api(), name="kube-client")
            self._preparing.add_done_callback(lambda t: t.cancelled() or t.exception())  # failures: at first use

    async def enrich(self, alerts: Sequence[Alert], settings: KubernetesEnrichSettings,
                     redactor: Redactor) -> list[dict[str, Any]]:
        """Evidence for the workloads ``alerts`` name; never raises, never waits past ``settings.timeout``."""
        wanted = targets_of(alerts, settings)
        if not wanted:
            return []
        try:  # build the client (importing it takes seconds once) outside the evidence's own time bound
            async with asyncio.timeout(PREPARE_TIMEOUT):
                await self.client.api()
        except (KubeError, TimeoutError) as exc:
            why = str(exc) or f"the Kubernetes client was not ready within {PREPARE_TIMEOUT:g}s"
            return [_unavailable(target, fingerprints, why) for target, fingerprints in wanted]
        now = self.clock()
        for key in [k for k, (expires, _) in self._cache.items() if expires <= now]:
            del self._cache[key]
        tasks = [self._task(target, settings, redactor, now) for target, _ in wanted]
        await asyncio.wait(tasks, timeout=settings.timeout + 0.5)
        out = []
        for (target, fingerprints), task in zip(wanted, tasks, strict=True):
            if task.done() and not task.cancelled() and task.exception() is None:
                out.append({**task.result(), "fingerprints": fingerprints})
            else:
                out.append(_unavailable(target, fingerprints, f"timeout: not answered within {settings.timeout:g}s"))
        return out

    def _task(self, target: Target, settings: KubernetesEnrichSettings, redactor: Redactor,
              now: float) -> asyncio.Task[dict[str, Any]]:
        key = (target.key, settings.model_dump_json(), id(redactor))
        hit = self._cache.get(key)
        if hit is not None:
            return hit[1]
        session = KubeSession(self.client, dry_run=False,
                              deadline=time.monotonic() + settings.timeout + SESSION_GRACE)
        task = asyncio.create_task(gather(session, target, settings, redactor), name="kube-evidence")
        self._cache[key] = (now + settings.cache_ttl, task)
        return task

    async def aclose(self) -> None:
        """Cancel gatherings in flight and close the client."""
        tasks = [t for _, t in self._cache.values() if not t.done()]
        if self._preparing is not None and not self._preparing.done():
            tasks.append(self._preparing)
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._cache.clear()
        await asyncio.to_thread(self.client.close)
