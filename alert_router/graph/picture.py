"""From alerts and query results to a :class:`~alert_router.graph.render.PlotSpec` (pure functions).

Which alerts share a picture (:func:`targets`), the window and step to query (:func:`window`,
:func:`nice_step`), which series belong to the alerts (:func:`belongs`), which are drawn and which are
summarised (:func:`select`), and the title, legend and shading of the picture (:func:`build_spec`).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from alert_router.graph.prometheus import Series
from alert_router.graph.promql import GraphQuery, PromQLError, analyse, expression_from_generator_url
from alert_router.graph.render import PlotBand, PlotLine, PlotSpec
from alert_router.graph.settings import GraphSettings
from alert_router.models import Alert
from alert_router.render.context import SEVERITY_ORDER, key_labels

__all__ = ["Target", "belongs", "build_spec", "nice_step", "select", "targets", "window"]

_NICE_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)
IGNORED_LABELS = frozenset({"__name__"})


@dataclass
class Target:
    """Alerts of one notification drawn in one picture: those that share an expression (or the rule's query)."""

    query: GraphQuery | None
    alerts: list[Alert] = field(default_factory=list)
    error: str | None = None

    @property
    def fingerprints(self) -> list[str]:
        """The fingerprints of the alerts in the picture."""
        return [a.fingerprint for a in self.alerts]


def targets(alerts: Sequence[Alert], settings: GraphSettings) -> list[Target]:
    """Group ``alerts`` by what their picture draws, most severe first (alerts without an expression apart)."""
    unit = None if settings.unit == "auto" else settings.unit
    by_source: dict[str, Target] = {}
    ordered = sorted(alerts, key=lambda a: (SEVERITY_ORDER.get(a.severity.lower(), 9), a.starts_at))
    for alert in ordered:
        expr = settings.query or expression_from_generator_url(alert.generator_url)
        if not expr:
            reason = "the alert carries no expression (generatorURL without g0.expr) and the rule names no graph.query"
            t = by_source.setdefault("", Target(None, error=reason))
            t.alerts.append(alert)
            continue
        found = by_source.get(expr)
        if found is None:
            try:
                query = analyse(expr, unit=unit)
                if settings.query and settings.threshold is not None:
                    query = GraphQuery(query.series, query.op or ">", settings.threshold, None, query.unit,
                                       query.absent, query.source)
                found = by_source[expr] = Target(query)
            except PromQLError as exc:
                found = by_source[expr] = Target(None, error=f"{exc}: {' '.join(expr.split())[:120]}")
        found.alerts.append(alert)
    return list(by_source.values())


def nice_step(range_seconds: float, width: int) -> int:
    """A query step giving about one point per two pixels, rounded up to a usual value (10s, 30s, 1m...)."""
    raw = range_seconds / max(50, width // 2)
    return next((s for s in _NICE_STEPS if s >= raw), _NICE_STEPS[-1])


def _ts(value: datetime) -> float:
    return value.timestamp()


def window(alerts: Sequence[Alert], firing: bool, now: float, range_seconds: float) -> tuple[float, float]:
    """The time range of a picture: the last ``range`` until now while firing; around the end when resolved.

    A resolved picture shows the recovery: it ends a sixth of the range after the last ``endsAt`` (or now).
    """
    if firing:
        return now - range_seconds, now
    ends = [_ts(e) for a in alerts if (e := a.ends_at_or_none()) is not None]
    end = min(now, max(ends) + range_seconds / 6) if ends else now
    return end - range_seconds, end


def belongs(labels: Mapping[str, str], alerts: Iterable[Alert]) -> bool:
    """Whether a series belongs to one of ``alerts``: none of its labels says otherwise.

    Prometheus gives an alert the labels of its series plus the rule's own, so a series of the alert has no
    label whose value differs from the alert's (``__name__`` aside, which alerts drop).
    """
    for alert in alerts:
        if all(alert.labels.get(k, v) == v for k, v in labels.items() if k not in IGNORED_LABELS):
            return True
    return False


def _peak(series: Series, low_is_bad: bool) -> float:
    values = [v for v in series.values if math.isfinite(v)]
    if not values:
        return -math.inf
    return -min(values) if low_is_bad else max(values)


def select(series: Sequence[Series], n: int, op: str | None) -> tuple[list[Series], list[Series]]:
    """The ``n`` series closest to (or furthest past) the threshold side that fires, and the rest."""
    ranked = sorted(series, key=lambda s: _peak(s, op in ("<", "<=")), reverse=True)
    return ranked[:n], ranked[n:]


def _band(rest: Sequence[Series]) -> PlotBand | None:
    if not rest:
        return None
    points: dict[float, list[float]] = {}
    for s in rest:
        for t, v in zip(s.times, s.values, strict=True):
            if math.isfinite(v):
                points.setdefault(t, []).append(v)
    times = sorted(points)
    return PlotBand(len(rest), tuple(times), tuple(min(points[t]) for t in times), tuple(max(points[t]) for t in times))


def _legend(shown: Sequence[Series], title_labels: Mapping[str, str], name: str) -> list[str]:
    """Per series, the labels that tell it apart (or its key labels not already in the title)."""
    names = sorted({k for s in shown for k in s.labels if k not in IGNORED_LABELS})
    varying = [k for k in names if len({s.labels.get(k) for s in shown}) > 1]
    out = []
    for s in shown:
        if varying:
            pairs = [(k, s.labels[k]) for k in varying if k in s.labels]
        else:
            pairs = [(k, v) for k, v in key_labels(s.labels, 3) if title_labels.get(k) != v and k not in IGNORED_LABELS]
        text = " ".join(f"{k}={v}" for k, v in pairs[:4]) or s.labels.get("__name__", "") or name
        out.append(text if len(text) <= 60 else text[:59] + "…")
    return out


def _windows(alerts: Sequence[Alert], end: float) -> tuple[tuple[float, float], ...]:
    spans = sorted(
        (_ts(a.starts_at), _ts(ends) if (ends := a.ends_at_or_none()) is not None else end) for a in alerts
    )
    merged: list[list[float]] = []
    for first, last in spans:
        if merged and first <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], last)
        else:
            merged.append([first, last])
    return tuple((first, last) for first, last in merged)


def _common(alerts: Sequence[Alert]) -> dict[str, str]:
    common = dict(alerts[0].labels) if alerts else {}
    for a in alerts[1:]:
        common = {k: v for k, v in common.items() if a.labels.get(k) == v}
    return common


def _one_line(text: str, limit: int) -> str:
    text = re.sub(r"\s+\)", ")", re.sub(r"\(\s+", "(", " ".join(text.split())))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def title_of(alerts: Sequence[Alert]) -> tuple[str, dict[str, str]]:
    """``HighModelLatency · namespace=prod deployment=model-api`` and the labels it names."""
    common = _common(alerts)
    names = sorted({a.name for a in alerts})
    name = names[0] if len(names) == 1 else f"{len(names)} alerts"
    pairs = key_labels(common, 3)
    shown = {k: v for k, v in pairs}
    return _one_line(f"{name} · " + " ".join(f"{k}={v}" for k, v in pairs) if pairs else name, 90), shown


def build_spec(
    target: Target,
    settings: GraphSettings,
    series: Sequence[Series],
    thresholds: Sequence[Series],
    start: float,
    end: float,
    *,
    resolved: bool,
) -> PlotSpec:
    """The picture of ``target`` from the query results ``series`` (and ``thresholds`` for a moving threshold)."""
    query = target.query
    assert query is not None
    title, title_labels = title_of(target.alerts)
    mine = [s for s in series if belongs(s.labels, target.alerts)]
    shown, rest = select(mine, settings.max_series, query.op)
    labels = _legend(shown, title_labels, target.alerts[0].name)
    lines = tuple(PlotLine(label, s.times, s.values) for s, label in zip(shown, labels, strict=True))
    moving = [s for s in thresholds if belongs(s.labels, target.alerts)] or list(thresholds)[:1]
    threshold_lines = tuple(PlotLine(f"threshold ({query.op})", s.times, s.values) for s in moving[:3])
    comparison = query.describe()
    chars = max(40, (settings.width - 90) // 6)  # about 6 pixels per character at 7.5 pt
    fires = f"  ·  fires {comparison}" if comparison else ""
    subtitle = _one_line(query.series, max(20, chars - len(fires))) + fires
    note = ""
    if not mine:
        note = (f"no series of this query matches the alert ({len(series)} other series)" if series
                else "no data in this window")
        if query.absent:
            note += ": the alert fires when there is none"
    elif query.absent:
        note = "the alert fires when this series is absent"
    drawn = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(end))
    footer = f"{'resolved' if resolved else 'firing'} · {drawn} · alert-router"
    return PlotSpec(
        title=title,
        subtitle=subtitle,
        width=settings.width,
        height=settings.height,
        unit=query.unit,
        start=start,
        end=end,
        lines=lines,
        band=_band(rest),
        threshold=query.threshold,
        op=query.op,
        threshold_lines=threshold_lines,
        windows=_windows(target.alerts, end),
        note=note,
        footer=footer,
    )
