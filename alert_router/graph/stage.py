"""The graph stage: a picture of each alert's metric, with its threshold, attached before the notification is sent.

For each notification (not storm digests, not the refresh of a message after a digest) the stage groups the
alerts by the expression their picture draws (:mod:`alert_router.graph.picture`), queries Prometheus's
``query_range`` for the series (and a moving threshold) over ``graph.range``, draws the picture in a worker
(:mod:`alert_router.graph.pool`) and saves it (:mod:`alert_router.graph.files`).

Bounded like the Loki stage:

* **one query per expression and window for a whole storm**: a single-flight cache keyed on (endpoint,
  query, range, step) serves every group that fires within ``graph.cache_ttl``; failures are remembered for
  5 s, so an unreachable Prometheus costs one attempt per 5 s, not one per group;
* **one drawing per group state change**: pictures are cached by group and alert states for
  ``graph.render_ttl``, so the Slack, Telegram and email copies of one change, and retries, share one;
* **at most ``graph.renders_per_minute`` drawings**: beyond it a notification goes without its picture; and
  none is queued behind more drawings than can finish within the timeout (it would only make the
  notification wait the whole timeout and then go without it anyway);
* **at most ``graph.timeout``** added to a notification: after that it goes without the picture and says
  why (the query and the drawing finish in the background and fill the caches).

It never raises and never drops a notification. Output, in ``notification.extra["graphs"]``::

    [{"status": "ok", "id": str, "key": str, "path": str, "url": str, "width": int, "height": int,
      "title": str, "alt": str, "query": str, "describe": str, "fingerprints": [str]},
     {"status": "unavailable", "reason": str, "query": str, "fingerprints": [str]}]

and, for pictures with a public link, ``extra["images"]`` (``[{src, href, alt}]``, what PagerDuty shows).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import aiohttp
import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram

from alert_router.graph.files import GraphFiles
from alert_router.graph.picture import Target, build_spec, nice_step, targets, window
from alert_router.graph.pool import RenderPool
from alert_router.graph.prometheus import PrometheusClient, Series
from alert_router.graph.render import PlotSpec
from alert_router.graph.settings import GraphSettings, settings_for_rule
from alert_router.httpsource import SourceError
from alert_router.metrics import Metrics
from alert_router.models import Notification

if TYPE_CHECKING:
    from alert_router.config import Config

__all__ = ["GraphStage", "SingleFlight"]

log = structlog.get_logger("alert_router.graph")

T = TypeVar("T")
ERROR_TTL = 5.0
REFRESH_MARKER = "refresh_after_digest"  # alert_router.pipeline.throttle.REFRESH: an edit after a storm digest


@dataclass
class _Slot(Generic[T]):
    value: T | asyncio.Task[T]
    expires: float = float("inf")


class SingleFlight(Generic[T]):
    """A cache of results by key where concurrent askers share one computation (a task), kept ``ttl`` seconds.

    The task is never cancelled by an asker giving up: a slow answer still fills the cache.
    """

    def __init__(self, *, max_entries: int = 2048, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries = max_entries
        self.clock = clock
        self._slots: OrderedDict[Hashable, _Slot[T]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._slots)

    def get_or_start(
        self, key: Hashable, start: Callable[[], Awaitable[T]], ttl: Callable[[T], float]
    ) -> tuple[T | asyncio.Task[T], bool]:
        """A cached value or running task for ``key`` (and ``True``), or a new task (and ``False``)."""
        slot = self._slots.get(key)
        if slot is not None and slot.expires > self.clock():
            self._slots.move_to_end(key)
            return slot.value, True

        async def run() -> T:
            return await start()

        task: asyncio.Task[T] = asyncio.create_task(run(), name="graph-flight")
        new = _Slot[T](task)
        self._slots[key] = new
        self._slots.move_to_end(key)

        def finished(t: asyncio.Task[T]) -> None:
            if self._slots.get(key) is not new:
                return
            if t.cancelled() or t.exception() is not None:
                del self._slots[key]
                return
            new.value = t.result()
            seconds = ttl(new.value)
            if seconds > 0:
                new.expires = self.clock() + seconds
            else:
                del self._slots[key]

        task.add_done_callback(finished)
        while len(self._slots) > self.max_entries:
            self._slots.popitem(last=False)
        return task, False

    async def aclose(self) -> None:
        """Cancel the tasks still running and forget everything."""
        tasks = [s.value for s in self._slots.values() if isinstance(s.value, asyncio.Task)]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._slots.clear()


@dataclass(frozen=True)
class QueryResult:
    """The outcome of one range query, as cached."""

    series: tuple[Series, ...] = ()
    start: float = 0.0
    end: float = 0.0
    error: str | None = None


@dataclass(frozen=True)
class Picture:
    """A drawn and saved picture, as cached per group state."""

    graph_id: str = ""
    path: str = ""
    error: str | None = None
    kind: str = ""  # why there is none: prometheus, capped, busy, render (a metric label)


class _Metrics:
    def __init__(self, metrics: Metrics | None) -> None:
        registry = metrics.registry if metrics is not None else CollectorRegistry(auto_describe=True)
        kw: dict[str, Any] = {"registry": registry}
        self.queries = Counter(
            "alert_router_graph_queries_total", "Prometheus range queries sent, by outcome.", ["outcome"], **kw
        )
        self.cache = Counter(
            "alert_router_graph_cache_total",
            "Queries and drawings served from the cache or one in progress (hit) or started anew (miss).",
            ["kind", "result"],
            **kw,
        )
        self.renders = Counter(
            "alert_router_graph_renders_total", "Pictures drawn, by outcome (ok, error, capped).", ["outcome"], **kw
        )
        self.render_seconds = Histogram(
            "alert_router_graph_render_seconds",
            "Time to draw one picture in a worker.",
            buckets=(0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 1, 2, 5),
            **kw,
        )
        self.missing = Counter(
            "alert_router_graph_unavailable_total", "Pictures a notification went without, by reason.", ["reason"], **kw
        )
        self.seconds = Histogram(
            "alert_router_graph_seconds",
            "Time the graph stage added to a notification.",
            buckets=(0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10),
            **kw,
        )


class _RenderCap:
    """At most ``per_minute`` drawings started in any 60 seconds."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._starts: deque[float] = deque()

    def take(self, per_minute: int) -> bool:
        now = self.clock()
        while self._starts and now - self._starts[0] >= 60.0:
            self._starts.popleft()
        if len(self._starts) >= per_minute:
            return False
        self._starts.append(now)
        return True


def state_key(notification: Notification, target: Target) -> str:
    """What makes a picture new: the group, its alerts' states and the expression (16 hex digits)."""
    states = sorted((a.fingerprint, a.status) for a in target.alerts)
    raw = repr((notification.group_key, notification.status, states, target.query and target.query.source))
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


class GraphStage:
    """Draws pictures for notifications; build one per application, call it per delivery, close it on shutdown.

    ``stage(notification)`` fills ``notification.extra["graphs"]``. ``clock`` returns epoch seconds (tests pin
    "now"); ``session`` lets a caller share an ``aiohttp.ClientSession``; ``pool`` and ``files`` replace the
    drawing workers and the picture directory.
    """

    def __init__(
        self,
        config: Config,
        metrics: Metrics | None = None,
        *,
        session: aiohttp.ClientSession | None = None,
        clock: Callable[[], float] = time.time,
        pool: RenderPool | None = None,
        files: GraphFiles | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        g = config.settings.graph
        self._global = g
        self._by_rule = {r.name: settings_for_rule(config, r) for r in config.rules}
        self.pool = pool or RenderPool(g.renderer, g.workers)
        self.files = files or GraphFiles(config.data_dir / "graphs", public_url=g.public_url, retention=g.retention)
        self.queries: SingleFlight[QueryResult] = SingleFlight()
        self.pictures: SingleFlight[Picture] = SingleFlight()
        self.queries_sent = 0
        self.renders_started = 0
        self._cap = _RenderCap(time.monotonic)
        self._session = session
        self._own_session = session is None
        self._clients: dict[Hashable, PrometheusClient] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._phases: dict[str, str] = {}  # state key -> "draw" while a picture is being drawn
        self._drawing = 0  # pictures queued or being drawn
        self._render_seconds = 0.2  # moving average of one drawing, to tell a queue too deep to wait for
        self._metrics = _Metrics(metrics)

    # -- configuration ---------------------------------------------------------------------------
    def settings_for(self, rule_name: str) -> GraphSettings:
        """The effective settings for notifications routed by ``rule_name`` (global for the default route)."""
        return self._by_rule.get(rule_name, self._global)

    @property
    def active(self) -> bool:
        """Whether any rule would draw pictures."""
        return any(s.enabled for s in [self._global, *self._by_rule.values()])

    def _client(self, settings: GraphSettings) -> tuple[Hashable, PrometheusClient]:
        key = settings.prometheus.endpoint_key()
        client = self._clients.get(key)
        if client is None:
            if self._session is None:
                self._session = aiohttp.ClientSession()
            client = self._clients[key] = PrometheusClient(settings.prometheus, session=self._session)
        return key, client

    async def start(self) -> None:
        """Warm the drawing workers up in the background (imports, font cache) when pictures are on."""
        if self.active:
            task = asyncio.create_task(self._warm(), name="graph-warm-up")
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _warm(self) -> None:
        try:
            await self.pool.warm_up()
        except Exception:
            log.exception("the drawing workers could not start; pictures will be missing")

    # -- the stage -------------------------------------------------------------------------------
    async def __call__(self, notification: Notification) -> None:
        """Attach pictures to ``notification`` (see :meth:`attach`)."""
        await self.attach(notification)

    async def attach(self, notification: Notification) -> None:
        """Fill ``notification.extra["graphs"]``; never raises, never waits past ``graph.timeout``."""
        settings = self.settings_for(notification.rule)
        extra = notification.extra
        if not settings.enabled or extra.get("digest") or extra.get(REFRESH_MARKER):
            return
        started = time.perf_counter()
        try:
            entries = await self.build(notification, settings)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("graph stage failed unexpectedly; the notification goes out without a picture",
                          rule=notification.rule, group_key=notification.group_key)
            return
        finally:
            self._metrics.seconds.observe(time.perf_counter() - started)
        if entries:
            extra["graphs"] = entries
            images = [
                {"src": e["url"], "href": e.get("href", ""), "alt": e["alt"]}
                for e in entries
                if e["status"] == "ok" and e.get("url")
            ]
            if images:
                extra["images"] = images

    async def build(self, notification: Notification, settings: GraphSettings) -> list[dict[str, Any]]:
        """The ``extra["graphs"]`` entries of ``notification`` under ``settings``, within ``settings.timeout``."""
        firing = notification.status == "firing"
        alerts = notification.firing if firing else notification.resolved
        chosen = targets(alerts, settings)[: settings.max_images]
        if not chosen:
            return []
        jobs = [(t, asyncio.create_task(self._entry(notification, settings, t, firing))) for t in chosen]
        done, pending = await asyncio.wait([j for _, j in jobs], timeout=settings.timeout)
        entries = []
        for target, job in jobs:
            if job in done and not job.cancelled() and job.exception() is None:
                entries.append(job.result())
                continue
            if job in pending:  # finishes in the background and fills the caches for the next asker
                self._background.add(job)
                job.add_done_callback(self._background.discard)
                phase = self._phases.get(state_key(notification, target), "query")
                reason = (
                    f"timeout: Prometheus did not answer within {settings.timeout:g}s"
                    if phase == "query"
                    else f"timeout: drawing took longer than {settings.timeout:g}s"
                )
                self._metrics.missing.labels("timeout").inc()
            else:
                reason = "unexpected error (see the log)"
                log.error("graph failed unexpectedly", exc_info=job.exception(), rule=notification.rule)
            entries.append(_unavailable(target, reason))
        return entries

    async def _entry(
        self, notification: Notification, settings: GraphSettings, target: Target, firing: bool
    ) -> dict[str, Any]:
        query = target.query
        if query is None:
            self._metrics.missing.labels("no_expression").inc()
            return _unavailable(target, target.error or "no expression")
        key = state_key(notification, target)
        start, end = window(target.alerts, firing, self.clock(), settings.range)
        step = nice_step(settings.range, settings.width)

        async def draw() -> Picture:
            try:
                series, thresholds = await asyncio.gather(
                    self._query(settings, query.series, start, end, step, firing),
                    self._query(settings, query.threshold_query, start, end, step, firing),
                )
                if series.error:
                    return Picture(error=series.error, kind="prometheus")
                self._phases[key] = "draw"
                backlog = self._drawing * self._render_seconds / max(1, settings.workers)
                if backlog > settings.timeout:  # it would not be ready in time: say so now, do not queue it
                    self._metrics.renders.labels("busy").inc()
                    return Picture(error=f"not drawn: {self._drawing} pictures ahead (about {backlog:.0f}s)",
                                   kind="busy")
                if not self._cap.take(settings.renders_per_minute):
                    self._metrics.renders.labels("capped").inc()
                    return Picture(error=f"not drawn: more than {settings.renders_per_minute} pictures a minute",
                                   kind="capped")
                spec = build_spec(target, settings, series.series, thresholds.series, series.start, series.end,
                                  resolved=not firing)
                return await self._draw(spec)
            finally:
                self._phases.pop(key, None)

        got, hit = self.pictures.get_or_start(
            (key, settings.width, settings.height, settings.range, settings.max_series),
            draw,
            lambda p: settings.render_ttl if p.graph_id else 0.0,
        )
        self._metrics.cache.labels("render", "hit" if hit else "miss").inc()
        picture = await asyncio.shield(got) if isinstance(got, asyncio.Task) else got
        if picture.error or not picture.graph_id:
            self._metrics.missing.labels(picture.kind or "render").inc()
            return _unavailable(target, picture.error or "no picture")
        describe = query.describe()
        title = f"{target.alerts[0].name}: {' '.join(query.series.split())}"
        return {
            "status": "ok",
            "id": picture.graph_id,
            "key": key,
            "path": picture.path,
            "url": self.files.url(picture.graph_id),
            "href": target.alerts[0].generator_url,
            "width": settings.width,
            "height": settings.height,
            "title": title if len(title) <= 200 else title[:199] + "…",
            "alt": f"Graph of {target.alerts[0].name}" + (f", fires {describe}" if describe else ""),
            "query": query.series,
            "describe": describe,
            "fingerprints": target.fingerprints,
        }

    async def _query(
        self, settings: GraphSettings, query: str | None, start: float, end: float, step: int, open_ended: bool
    ) -> QueryResult:
        if query is None:
            return QueryResult()
        endpoint, client = self._client(settings)
        if open_ended:  # "until now": any answer younger than cache_ttl serves (its window ends a bit earlier)
            key: Hashable = (endpoint, query, settings.range, step, "now")
            start = (end // step + 1) * step - settings.range
            end = start + settings.range
        else:
            key = (endpoint, query, settings.range, step, end // step)
            start, end = (end // step) * step - settings.range, (end // step) * step

        async def run() -> QueryResult:
            self.queries_sent += 1
            try:
                series = await client.query_range(query, start=start, end=end, step=step)
            except SourceError as exc:
                self._metrics.queries.labels(exc.reason.value).inc()
                log.warning("Prometheus query failed", query=query, reason=exc.reason.value, error=str(exc))
                return QueryResult(start=start, end=end, error=str(exc))
            self._metrics.queries.labels("ok").inc()
            return QueryResult(tuple(series), start, end)

        ok_ttl = settings.cache_ttl if open_ended else settings.render_ttl
        got, hit = self.queries.get_or_start(key, run, lambda r: ERROR_TTL if r.error else ok_ttl)
        self._metrics.cache.labels("query", "hit" if hit else "miss").inc()
        return await asyncio.shield(got) if isinstance(got, asyncio.Task) else got

    async def _draw(self, spec: PlotSpec) -> Picture:
        self.renders_started += 1
        self._drawing += 1
        try:
            rendered = await self.pool.render(spec)
            graph_id, path = await asyncio.to_thread(self.files.save, rendered.png)
            self._render_seconds = 0.8 * self._render_seconds + 0.2 * rendered.seconds
        except Exception as exc:
            self._metrics.renders.labels("error").inc()
            log.exception("drawing a picture failed")
            return Picture(error=f"drawing failed: {type(exc).__name__}", kind="render")
        finally:
            self._drawing -= 1
        self._metrics.renders.labels("ok").inc()
        self._metrics.render_seconds.observe(rendered.seconds)
        return Picture(graph_id, str(path))

    async def aclose(self) -> None:
        """Stop background work, the drawing workers and the HTTP session (if the stage created it)."""
        for t in list(self._background):
            t.cancel()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        await self.queries.aclose()
        await self.pictures.aclose()
        await self.pool.aclose()
        if self._own_session and self._session is not None:
            await self._session.close()
        self._session = None
        self._clients.clear()


def _unavailable(target: Target, reason: str) -> dict[str, Any]:
    return {
        "status": "unavailable",
        "reason": reason,
        "query": target.query.series if target.query is not None else "",
        "fingerprints": target.fingerprints,
    }

