"""The enrichment stage: Loki log lines and evidence links attached to a notification before it is sent.

For each notification the stage renders the rule's LogQL template for every alert, groups alerts that
produce the same query (one query per distinct selector, over the union of their windows), and asks
Loki through a short-lived single-flight cache keyed on (endpoint, query, window, limit), so a group
of 50 alerts from one workload, or a storm of thousands, costs one query per distinct selector and
window. A semaphore per Loki URL bounds concurrent queries. The whole stage is bounded by
``loki.timeout`` (2 s by default): on timeout, error or an empty answer the notification goes out
anyway, saying why. It never raises and never drops a notification.

With ``enrich.kubernetes`` on, the workloads the alerts name are read from the Kubernetes API at
the same time (:mod:`alert_router.enrich.kubernetes`), bounded by their own timeout.

Output, in ``notification.extra["enrichment"]``::

    {"logs": [{"query": str, "status": "ok" | "empty" | "unavailable", "reason": str | None,
               "lines": [{"ts": RFC3339, "pod": str, "line": str}], "fingerprints": [str]}],
     "links": {fingerprint: {"grafana": url, "alertmanager": url, "silence": url, "generator": url}},
     "kubernetes": [{"target": str, "status": str, "summary": str, ..., "fingerprints": [str]}]}

Lines are merged across streams in time order, newest last, redacted, then trimmed per line and in
total. A link that cannot be built is ``""``.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import aiohttp
import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram

from alert_router.configbase import secret
from alert_router.enrich.kubernetes import KubernetesEnricher, target_of
from alert_router.enrich.links import (
    alertmanager_urls,
    grafana_explore_url,
    safe_http_url,
)
from alert_router.enrich.logql import EmptyCompatibleSelector, LogQLError
from alert_router.enrich.loki import LokiClient, LokiError, LokiStream
from alert_router.enrich.settings import EnrichSettings, LokiSettings, RedactSettings, merge
from alert_router.metrics import Metrics
from alert_router.models import Alert, Notification
from alert_router.redact import Redactor

if TYPE_CHECKING:
    from alert_router.config import Config, Rule

__all__ = [
    "EnrichmentStage",
    "FetchResult",
    "QueryCache",
    "QueryPreview",
    "describe_queries",
    "preview_queries",
    "settings_for_rule",
]

log = structlog.get_logger("alert_router.enrich")

Status = Literal["ok", "empty", "unavailable"]
NS = 1_000_000_000
ERROR_CACHE_TTL = 5.0
ELLIPSIS = "…"
REDACT_MARGIN = 1024
"""Characters past ``max_line_chars`` that are still redacted before a line is cut."""


def settings_for_rule(config: Config, rule: Rule | None) -> EnrichSettings:
    """The effective ``enrich`` settings of ``rule``: its own block merged over the global default."""
    base = config.settings.enrich
    override = getattr(rule.model, "enrich", None) if rule is not None and rule.model is not None else None
    return merge(base, override)


def rfc3339_ns(ts_ns: int) -> str:
    """Format ns since the epoch as RFC 3339 in UTC with nanoseconds, e.g. ``2026-11-27T00:01:01.158241247Z``."""
    sec, frac = divmod(ts_ns, NS)
    return datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}Z"


def _ns(dt: datetime) -> int:
    return int(dt.timestamp()) * NS + dt.microsecond * 1000


@dataclass(frozen=True)
class FetchResult:
    """The outcome of one Loki query, as cached: status, reason and the streams that came back."""

    status: Status
    reason: str | None
    streams: tuple[LokiStream, ...] = ()
    outcome: str = "ok"


@dataclass
class _Group:
    """Alerts of one notification that share a rendered query."""

    query: str
    start_ns: int
    end_ns: int
    open_ended: bool = False
    fingerprints: list[str] = field(default_factory=list)


@dataclass(eq=False)
class _Slot:
    start_ns: int
    end_ns: int
    open_ended: bool
    value: FetchResult | asyncio.Task[FetchResult]
    expires: float = math.inf


class QueryCache:
    """A short-lived, single-flight cache of query results, keyed on (endpoint, query, limit) and window.

    A request is answered by a finished result (until its TTL) or joins a query in flight whose window
    covers it: same key, a start no later than the request's, and an end no earlier, where an
    open-ended window (a firing alert: "until now") is covered by any open-ended entry still within its
    TTL. Only then is a new query started. The newest ``limit`` lines of a covering window, cut to the
    request's window, are exactly the newest lines of the request's window, so answers stay correct.
    Tasks are never cancelled by a waiter giving up: a slow answer still fills the cache.
    """

    def __init__(self, *, max_entries: int = 4096, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries = max_entries
        self.clock = clock
        self._slots: OrderedDict[Hashable, list[_Slot]] = OrderedDict()
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def _find(self, key: Hashable, start_ns: int, end_ns: int, open_ended: bool) -> _Slot | None:
        slots = self._slots.get(key)
        if not slots:
            return None
        now = self.clock()
        alive = [s for s in slots if s.expires > now]
        self._size -= len(slots) - len(alive)
        self._slots[key] = alive
        best: _Slot | None = None
        for s in alive:
            covers = s.start_ns <= start_ns and (
                (open_ended and s.open_ended) or (not open_ended and s.end_ns >= end_ns)
            )
            if covers and (best is None or isinstance(best.value, asyncio.Task)):
                best = s
        return best

    def get_or_start(
        self,
        key: Hashable,
        window: tuple[int, int, bool],
        start: Callable[[], Coroutine[Any, Any, FetchResult]],
        ttl: Callable[[FetchResult], float],
    ) -> tuple[FetchResult | asyncio.Task[FetchResult], bool]:
        """Return a covering result or task for ``window`` = (start_ns, end_ns, open_ended), or start one.

        The boolean says whether an existing result or query was used (no new query sent).
        """
        start_ns, end_ns, open_ended = window
        found = self._find(key, start_ns, end_ns, open_ended)
        if found is not None:
            return found.value, True
        task = asyncio.create_task(start(), name="loki-query")
        slot = _Slot(start_ns, end_ns, open_ended, task)
        self._slots.setdefault(key, []).append(slot)
        self._slots.move_to_end(key)
        self._size += 1

        def finished(t: asyncio.Task[FetchResult]) -> None:
            seconds = 0.0
            if not t.cancelled() and t.exception() is None:
                slot.value = t.result()
                seconds = ttl(slot.value)
            if seconds > 0:
                slot.expires = self.clock() + seconds
            else:
                self._drop(key, slot)

        task.add_done_callback(finished)
        while self._size > self.max_entries and self._slots:
            old_key, old = next(iter(self._slots.items()))
            if old:
                self._drop(old_key, old[0])
            else:
                del self._slots[old_key]
        return task, False

    def _drop(self, key: Hashable, slot: _Slot) -> None:
        slots = self._slots.get(key)
        if slots is not None and slot in slots:
            slots.remove(slot)
            self._size -= 1
            if not slots:
                del self._slots[key]

    async def aclose(self) -> None:
        """Cancel the queries still in flight and forget everything."""
        tasks = [s.value for slots in self._slots.values() for s in slots if isinstance(s.value, asyncio.Task)]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._slots.clear()
        self._size = 0


@dataclass(frozen=True)
class QueryPreview:
    """What ``route-test`` shows for one rule: the query it would send, or why none would be sent."""

    rule: str
    enabled: bool
    query: str
    error: str | None
    settings: LokiSettings | None


def preview_queries(config: Config, rules: list[Rule], labels: dict[str, str]) -> list[QueryPreview]:
    """Render each rule's LogQL query for ``labels`` exactly as the stage would (without sending it)."""
    out: list[QueryPreview] = []
    for rule in rules:
        s = settings_for_rule(config, rule)
        if not s.loki_enabled or s.loki is None:
            out.append(QueryPreview(rule.name, False, "", None, s.loki))
            continue
        template = s.loki.template
        query = template.render(labels, s.loki.labels)
        try:
            template.build(labels, s.loki.labels)
        except LogQLError as exc:
            out.append(QueryPreview(rule.name, True, query, f"refused before sending: {exc}", s.loki))
            continue
        out.append(QueryPreview(rule.name, True, query, None, s.loki))
    return out


def describe_queries(config: Config, rules: list[Rule], labels: dict[str, str]) -> list[str]:
    """Human-readable lines for ``route-test``: each rule's LogQL query (or why none) and Kubernetes workload."""
    from alert_router.durations import format_duration

    lines: list[str] = []
    for p in preview_queries(config, rules, labels):
        head = f"logs (rule {p.rule}):"
        if not p.enabled or p.settings is None:
            lines.append(f"{head} Loki enrichment off (enrich.loki.url is empty, or loki: null)")
        elif p.error:
            lines.append(f"{head} {p.query}")
            lines.append(f"  {p.error}")
        else:
            s = p.settings
            lines.append(f"{head} {p.query}")
            lines.append(
                f"  GET {s.url}/loki/api/v1/query_range direction=backward limit={s.limit} "
                f"from startsAt-{format_duration(s.lookback)} to endsAt or now"
                + (f" tenant={s.tenant}" if s.tenant else "")
            )
    for rule in rules:
        k = settings_for_rule(config, rule).kubernetes
        if k.enabled:
            target = target_of(labels, k)
            lines.append(f"kubernetes evidence (rule {rule.name}): "
                         + (f"{target.key}, within {format_duration(k.timeout)}" if target is not None
                            else "no workload named by these labels"))
    return lines


class _StageMetrics:
    def __init__(self, metrics: Metrics | None) -> None:
        registry = metrics.registry if metrics is not None else CollectorRegistry(auto_describe=True)
        kw: dict[str, Any] = {"registry": registry}
        self.queries = Counter(
            "alert_router_enrich_loki_queries_total", "Loki queries sent, by outcome.", ["outcome"], **kw
        )
        self.cache = Counter(
            "alert_router_enrich_cache_total",
            "Log look-ups answered from the cache or a query in flight (hit) or by a new query (miss).",
            ["result"],
            **kw,
        )
        self.refused = Counter(
            "alert_router_enrich_refused_total", "Log look-ups not sent, by reason.", ["reason"], **kw
        )
        self.seconds = Histogram(
            "alert_router_enrich_seconds",
            "Time the enrichment stage added to a notification.",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 2.5, 5),
            **kw,
        )


class EnrichmentStage:
    """Enriches notifications; build one per application, call it per delivery, close it on shutdown.

    ``stage(notification)`` fills ``notification.extra["enrichment"]``. ``clock`` returns epoch seconds
    (tests pin "now"); ``session`` lets a caller share an ``aiohttp.ClientSession``.
    """

    def __init__(
        self,
        config: Config,
        metrics: Metrics | None = None,
        *,
        session: aiohttp.ClientSession | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.clock = clock
        self.cache = QueryCache()
        self.queries_sent = 0
        self._by_rule: dict[str, EnrichSettings] = {r.name: settings_for_rule(config, r) for r in config.rules}
        self._global = config.settings.enrich
        self._session = session
        self._own_session = session is None
        self._clients: dict[Hashable, LokiClient] = {}
        self._semaphores: dict[str, asyncio.Semaphore] = {}
        self._redactors: dict[Hashable, Redactor] = {}
        self._metrics = _StageMetrics(metrics)
        self._kube: KubernetesEnricher | None = None

    # -- configuration ---------------------------------------------------------------------
    def settings_for(self, rule_name: str) -> EnrichSettings:
        """The effective settings for notifications routed by ``rule_name`` (global for the default route)."""
        return self._by_rule.get(rule_name, self._global)

    def prepare(self) -> None:
        """Start building the Kubernetes client in the background when any rule enriches from Kubernetes.

        Importing the official client takes a second or two once per process: better at startup than on the
        first page. Call from a running event loop.
        """
        if any(s.kubernetes.enabled for s in [self._global, *self._by_rule.values()]) and self._kube is None:
            self._kube = KubernetesEnricher(self.config.settings.kubernetes)
            self._kube.prepare()

    @property
    def active(self) -> bool:
        """Whether any rule would enrich at all (Loki, links or Kubernetes)."""
        return any(s.loki_enabled or s.links.enabled or s.kubernetes.enabled
                   for s in [self._global, *self._by_rule.values()])

    def _redactor(self, cfg: RedactSettings) -> Redactor:
        key = (cfg.defaults, tuple(cfg.patterns))
        r = self._redactors.get(key)
        if r is None:
            r = self._redactors[key] = Redactor(cfg.patterns, defaults=cfg.defaults)
        return r

    def _endpoint(self, loki: LokiSettings) -> tuple[Hashable, LokiClient]:
        basic = (loki.basic_auth.username, secret(loki.basic_auth.password)) if loki.basic_auth else None
        key = (
            loki.url,
            loki.tenant,
            secret(loki.bearer_token),
            basic,
            (loki.tls.verify, loki.tls.ca_file, loki.tls.cert_file, loki.tls.key_file),
            loki.timeout,
        )
        client = self._clients.get(key)
        if client is None:
            if self._session is None:
                self._session = aiohttp.ClientSession()
            client = LokiClient(
                loki.url,
                tenant=loki.tenant,
                bearer_token=secret(loki.bearer_token),
                basic_auth=basic,
                verify_tls=loki.tls.verify,
                ca_file=loki.tls.ca_file or None,
                cert_file=loki.tls.cert_file or None,
                key_file=loki.tls.key_file or None,
                timeout=loki.timeout,
                session=self._session,
            )
            self._clients[key] = client
        return key, client

    # -- the stage -------------------------------------------------------------------------
    async def __call__(self, notification: Notification) -> None:
        """Enrich ``notification`` in place (see :meth:`enrich`)."""
        await self.enrich(notification)

    async def enrich(self, notification: Notification) -> None:
        """Fill ``notification.extra["enrichment"]``; never raises, never waits past ``loki.timeout``."""
        started = time.perf_counter()
        try:
            settings = self.settings_for(notification.rule)
            result = await self.build(notification, settings)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(
                "enrichment failed unexpectedly; the notification goes out without it",
                rule=notification.rule,
                group_key=notification.group_key,
            )
            return
        finally:
            self._metrics.seconds.observe(time.perf_counter() - started)
        if result is not None:
            notification.extra["enrichment"] = result

    async def build(self, notification: Notification, settings: EnrichSettings) -> dict[str, Any] | None:
        """Compute the enrichment of ``notification`` under ``settings`` (``None`` when all is off)."""
        if not settings.loki_enabled and not settings.links.enabled and not settings.kubernetes.enabled:
            return None
        kube: asyncio.Task[list[dict[str, Any]]] | None = None
        if settings.kubernetes.enabled:
            if self._kube is None:
                self._kube = KubernetesEnricher(self.config.settings.kubernetes)
            kube = asyncio.create_task(self._kube.enrich(notification.alerts, settings.kubernetes,
                                                         self._redactor(settings.redact)))
        windows: dict[str, _Group] = {}
        logs: list[dict[str, Any]] = []
        try:
            if settings.loki is not None and settings.loki.enabled:
                logs, windows = await self._logs(notification, settings.loki, settings.redact)
        finally:
            evidence = await kube if kube is not None else None
        links = self._links(notification, settings, windows) if settings.links.enabled else {}
        out: dict[str, Any] = {"logs": logs, "links": links}
        if evidence is not None:
            out["kubernetes"] = evidence
        return out

    def _plan(
        self, notification: Notification, loki: LokiSettings, now_ns: int
    ) -> tuple[list[_Group], list[dict[str, Any]]]:
        template = loki.template
        groups: dict[str, _Group] = {}
        refused: dict[tuple[str, str], dict[str, Any]] = {}

        def refuse(query: str, reason: str, fp: str, kind: str) -> None:
            entry = refused.setdefault(
                (query, reason),
                {"query": query, "status": "unavailable", "reason": reason, "lines": [], "fingerprints": []},
            )
            entry["fingerprints"].append(fp)
            self._metrics.refused.labels(kind).inc()

        lookback_ns = int(loki.lookback * NS)
        for alert in notification.alerts:
            query = template.render(alert.labels, loki.labels)
            try:
                template.build(alert.labels, loki.labels)
            except EmptyCompatibleSelector as exc:
                log.warning(
                    "Loki query refused before sending: every matcher of its selector matches the empty string",
                    query=query,
                    missing_labels=template.missing(alert.labels, loki.labels),
                    rule=notification.rule,
                    alertname=alert.name,
                    fingerprint=alert.fingerprint,
                )
                refuse(query, f"query refused before sending: {exc}", alert.fingerprint, "empty_selector")
                continue
            except LogQLError as exc:
                log.warning("Loki query refused before sending: malformed", query=query, error=str(exc))
                refuse(query, f"query refused before sending: {exc}", alert.fingerprint, "malformed")
                continue
            start, end = self._window(alert, lookback_ns, now_ns)
            group = groups.get(query)
            if group is None:
                group = groups[query] = _Group(query, start, end)
            group.start_ns = min(group.start_ns, start)
            group.end_ns = max(group.end_ns, end)
            group.open_ended = group.open_ended or end >= now_ns
            group.fingerprints.append(alert.fingerprint)
        chosen = list(groups.values())
        if len(chosen) > loki.max_queries:
            for g in chosen[loki.max_queries :]:
                for fp in g.fingerprints:
                    refuse(
                        g.query,
                        f"not queried: more than {loki.max_queries} distinct log queries in one notification",
                        fp,
                        "too_many_queries",
                    )
            chosen = chosen[: loki.max_queries]
        step = max(1, int(loki.window_step * NS))
        for g in chosen:
            g.start_ns = g.start_ns // step * step
            g.end_ns = -(-g.end_ns // step) * step
            if g.end_ns <= g.start_ns:
                g.end_ns = g.start_ns + step
        return chosen, list(refused.values())

    @staticmethod
    def _window(alert: Alert, lookback_ns: int, now_ns: int) -> tuple[int, int]:
        start = _ns(alert.starts_at) - lookback_ns
        ends = alert.ends_at_or_none()
        end = now_ns if ends is None or alert.is_firing else min(now_ns, _ns(ends))
        return start, max(end, start + 1)

    async def _logs(
        self, notification: Notification, loki: LokiSettings, redact: RedactSettings
    ) -> tuple[list[dict[str, Any]], dict[str, _Group]]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + loki.timeout
        now_ns = int(self.clock() * NS)
        groups, refused = self._plan(notification, loki, now_ns)
        endpoint, client = self._endpoint(loki)
        semaphore = self._semaphores.setdefault(loki.url, asyncio.Semaphore(loki.max_concurrency))
        ok_ttl = loki.cache_ttl

        def ttl(r: FetchResult) -> float:
            return ok_ttl if r.status != "unavailable" else min(ok_ttl, ERROR_CACHE_TTL)

        pending: dict[int, FetchResult | asyncio.Task[FetchResult]] = {}
        for i, g in enumerate(groups):
            key = (endpoint, g.query, loki.limit)

            def start(g: _Group = g) -> Coroutine[Any, Any, FetchResult]:
                return self._fetch(client, semaphore, loki, g)

            got, hit = self.cache.get_or_start(key, (g.start_ns, g.end_ns, g.open_ended), start, ttl)
            self._metrics.cache.labels("hit" if hit else "miss").inc()
            pending[i] = got
        tasks = {v for v in pending.values() if isinstance(v, asyncio.Task)}
        if tasks:
            await asyncio.wait(tasks, timeout=max(0.0, deadline - loop.time()))
        results: list[FetchResult] = []
        for i in range(len(groups)):
            got = pending[i]
            if isinstance(got, asyncio.Task):
                if got.done() and not got.cancelled() and got.exception() is None:
                    got = got.result()
                else:
                    got = FetchResult(
                        "unavailable", f"timeout: Loki did not answer within {loki.timeout:g}s", (), "timeout"
                    )
            results.append(got)
        redactor = self._redactor(redact)
        with_lines = sum(1 for r in results if r.status == "ok") or 1
        budget = max(loki.max_line_chars, loki.max_total_chars // with_lines)
        entries: list[dict[str, Any]] = []
        for g, r in zip(groups, results, strict=True):
            lines = self._lines(r, g, loki, redactor, budget) if r.status == "ok" else []
            status, reason = (r.status, r.reason) if lines or r.status != "ok" else ("empty", "no matching log lines")
            entries.append(
                {
                    "query": g.query,
                    "status": status,
                    "reason": reason,
                    "lines": lines,
                    "fingerprints": list(g.fingerprints),
                }
            )
        entries.extend(refused)
        windows = {fp: g for g in groups for fp in g.fingerprints}
        return entries, windows

    async def _fetch(
        self, client: LokiClient, semaphore: asyncio.Semaphore, loki: LokiSettings, g: _Group
    ) -> FetchResult:
        acquired = False
        try:
            async with asyncio.timeout(loki.timeout):
                async with semaphore:
                    acquired = True
                    self.queries_sent += 1
                    streams = await client.query_range(
                        g.query, start_ns=g.start_ns, end_ns=g.end_ns, limit=loki.limit, direction="backward"
                    )
        except TimeoutError:
            why = (
                f"timeout: Loki did not answer within {loki.timeout:g}s"
                if acquired
                else f"timeout: Loki busy ({loki.max_concurrency} queries already in flight)"
            )
            self._metrics.queries.labels("timeout").inc()
            log.warning("Loki query timed out", query=g.query, timeout=loki.timeout, queued=not acquired)
            return FetchResult("unavailable", why, (), "timeout")
        except LokiError as exc:
            self._metrics.queries.labels(exc.reason.value).inc()
            log.warning("Loki query failed", query=g.query, reason=exc.reason.value, error=str(exc))
            return FetchResult("unavailable", f"{exc.reason.value}: {exc}", (), exc.reason.value)
        except Exception as exc:
            self._metrics.queries.labels("unknown").inc()
            log.exception("Loki query failed unexpectedly", query=g.query)
            return FetchResult("unavailable", f"unknown: {type(exc).__name__}", (), "unknown")
        if not any(s.entries for s in streams):
            self._metrics.queries.labels("empty").inc()
            return FetchResult("empty", "no matching log lines", (), "empty")
        self._metrics.queries.labels("ok").inc()
        return FetchResult("ok", None, tuple(streams), "ok")

    @staticmethod
    def _lines(
        result: FetchResult, g: _Group, loki: LokiSettings, redactor: Redactor, budget: int
    ) -> list[dict[str, str]]:
        merged: list[tuple[int, int, str, str]] = []
        seq = 0
        for stream in result.streams:
            pod = next((stream.labels[k] for k in loki.pod_labels if stream.labels.get(k)), "")
            for e in stream.entries:
                # a cached answer may cover a wider window: keep this group's
                if e.ts_ns >= g.start_ns and (g.open_ended or e.ts_ns < g.end_ns):
                    merged.append((e.ts_ns, seq, pod, e.line))
                    seq += 1
        merged.sort(key=lambda t: (t[0], t[1]))
        merged = merged[-loki.limit :]
        out: list[dict[str, str]] = []
        used = 0
        for ts, _, pod, line in reversed(merged):  # newest first while spending the budget
            # Only what can be shown is redacted (with a margin, so a secret reaching into the cut is still
            # recognised whole): a 256 KiB line costs what a short one does.
            window = loki.max_line_chars + REDACT_MARGIN
            text = redactor(line[:window])
            if len(text) > loki.max_line_chars or len(line) > window:
                text = text[: loki.max_line_chars - 1] + ELLIPSIS
            if out and used + len(text) > budget:
                break
            if len(text) > budget:
                text = text[: max(1, budget - 1)] + ELLIPSIS
            used += len(text)
            out.append({"ts": rfc3339_ns(ts), "pod": pod, "line": text})
        out.reverse()  # newest last
        return out

    def _links(
        self, notification: Notification, settings: EnrichSettings, windows: dict[str, _Group]
    ) -> dict[str, dict[str, str]]:
        top = self.config.settings.links
        am = (
            safe_http_url(settings.links.alertmanager_url)
            or safe_http_url(notification.external_url)
            or safe_http_url(top.alertmanager_url)
        )
        grafana = settings.links.grafana_url or top.grafana_url
        links: dict[str, dict[str, str]] = {}
        for alert in notification.alerts:
            g = windows.get(alert.fingerprint)
            am_alert, am_silence = alertmanager_urls(am, alert.labels)
            links[alert.fingerprint] = {
                "grafana": (
                    grafana_explore_url(
                        grafana,
                        settings.links.grafana_datasource_uid,
                        g.query,
                        g.start_ns,
                        g.end_ns,
                        org_id=settings.links.grafana_org_id,
                    )
                    if g is not None
                    else ""
                ),
                "alertmanager": am_alert,
                "silence": am_silence,
                "generator": safe_http_url(alert.generator_url),
            }
        return links

    async def aclose(self) -> None:
        """Cancel queries in flight and close the HTTP session (if the stage created it)."""
        await self.cache.aclose()
        if self._kube is not None:
            await self._kube.aclose()
            self._kube = None
        if self._own_session and self._session is not None:
            await self._session.close()
        self._session = None
        self._clients.clear()
