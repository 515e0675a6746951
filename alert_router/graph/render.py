"""Drawing one picture: plain data in (:class:`PlotSpec`), PNG bytes out.

matplotlib's object-oriented API only (``Figure`` on an Agg canvas, never ``pyplot``, whose global state is
not thread-safe), so :func:`render_png` may run in a worker thread or a worker process; its input and
output pickle. It is never called on the event loop (see :mod:`alert_router.graph.pool`).

The picture: one line per series (the top ``max_series``; the others as one grey band from their lowest to
their highest value), the threshold as a red line with its value, the firing window shaded, the value axis
in the unit of the expression (ms, %, KiB, /s), the time axis in UTC, the title and the query on top.

The PNG carries a ``alert-router`` text chunk describing the plot area (pixels, top-left origin) and the
axis limits, so a reader (the tests, a bot) can map a value to a pixel row.
"""

from __future__ import annotations

import io
import json
import math
import time
from dataclasses import dataclass, field
from typing import Any

from alert_router.graph.units import format_number, format_value, scale

__all__ = ["COLORS", "META_KEY", "THRESHOLD_COLOR", "PlotBand", "PlotLine", "PlotSpec", "Rendered", "render_png"]

COLORS = ("#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#17becf", "#e377c2", "#7f7f7f", "#bcbd22")
"""Series colours (no red: red is the threshold)."""
THRESHOLD_COLOR = "#d62728"
FIRING_COLOR = "#ff7f0e"
BAND_COLOR = "#9e9e9e"
META_KEY = "alert-router"
DPI = 100
MARGINS = {"left": 72, "right": 16, "top": 54, "bottom": 36}
"""Plot-area margins in pixels (fixed, so the plot area is where the metadata says without a layout pass)."""
_STEPS = (60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)


@dataclass(frozen=True)
class PlotLine:
    """One drawn series: its legend label and samples (Unix seconds; NaN is a gap)."""

    label: str
    times: tuple[float, ...]
    values: tuple[float, ...]


@dataclass(frozen=True)
class PlotBand:
    """The series beyond the top ones, summarised: how many, and their lowest and highest value per step."""

    count: int
    times: tuple[float, ...]
    lows: tuple[float, ...]
    highs: tuple[float, ...]


@dataclass(frozen=True)
class PlotSpec:
    """Everything one picture shows, as plain data."""

    title: str
    subtitle: str
    width: int
    height: int
    unit: str
    start: float
    end: float
    lines: tuple[PlotLine, ...] = ()
    band: PlotBand | None = None
    threshold: float | None = None
    op: str | None = None
    threshold_lines: tuple[PlotLine, ...] = ()
    windows: tuple[tuple[float, float], ...] = ()
    note: str = ""
    footer: str = ""


@dataclass(frozen=True)
class Rendered:
    """A rendered picture: the PNG bytes and the plot geometry written into it."""

    png: bytes
    meta: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def _finite(values: tuple[float, ...]) -> list[float]:
    return [v for v in values if math.isfinite(v)]


def _limits(spec: PlotSpec) -> tuple[float, float]:
    values: list[float] = []
    for line in (*spec.lines, *spec.threshold_lines):
        values += _finite(line.values)
    if spec.band is not None:
        values += _finite(spec.band.lows) + _finite(spec.band.highs)
    if spec.threshold is not None and math.isfinite(spec.threshold):
        values.append(spec.threshold)
    if not values:
        return 0.0, 1.0
    lo, hi = min(values), max(values)
    span = hi - lo
    pad = span * 0.12 if span > 0 else (abs(hi) * 0.2 or 1.0)
    low = lo - pad
    if lo >= 0 > low:
        low = 0.0
    return low, hi + pad


def _time_ticks(start: float, end: float, target: int = 6) -> list[float]:
    span = max(1.0, end - start)
    step = next((s for s in _STEPS if span / s <= target), _STEPS[-1])
    first = math.ceil(start / step) * step
    return [t for t in range(int(first), int(end) + 1, step)]


def render_png(spec: PlotSpec) -> Rendered:
    """Draw ``spec`` and return the PNG (exactly ``spec.width`` by ``spec.height`` pixels)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FixedLocator, FuncFormatter

    started = time.perf_counter()
    w, h = spec.width, spec.height
    fig = Figure(figsize=(w / DPI, h / DPI), dpi=DPI, facecolor="white")
    FigureCanvasAgg(fig)
    m = MARGINS
    box = (m["left"] / w, m["bottom"] / h, 1 - (m["left"] + m["right"]) / w, 1 - (m["top"] + m["bottom"]) / h)
    ax = fig.add_axes(box)
    low, high = _limits(spec)
    divisor, suffix = scale(spec.unit, max(abs(low), abs(high)))

    for start, end in spec.windows:
        s, e = max(start, spec.start), min(end, spec.end)
        if e > s:
            ax.axvspan(s, e, color=FIRING_COLOR, alpha=0.13, linewidth=0, zorder=0)
    if spec.band is not None and spec.band.count:
        ax.fill_between(spec.band.times, spec.band.lows, spec.band.highs, color=BAND_COLOR, alpha=0.3, linewidth=0,
                        zorder=1, label=f"{spec.band.count} more series (lowest to highest)")
    for i, line in enumerate(spec.lines):
        ax.plot(line.times, line.values, color=COLORS[i % len(COLORS)], linewidth=1.8, zorder=3, label=line.label)
    for line in spec.threshold_lines:
        ax.plot(line.times, line.values, color=THRESHOLD_COLOR, linewidth=1.4, linestyle=(0, (5, 3)), zorder=2,
                label=line.label)
    if spec.threshold is not None and math.isfinite(spec.threshold):
        label = f"threshold {spec.op or ''} {format_value(spec.threshold, spec.unit)}".replace("  ", " ")
        ax.axhline(spec.threshold, color=THRESHOLD_COLOR, linewidth=1.6, zorder=2, label=label)
        if spec.op in (">", ">="):
            ax.axhspan(spec.threshold, high, color=THRESHOLD_COLOR, alpha=0.05, linewidth=0, zorder=0)
        elif spec.op in ("<", "<="):
            ax.axhspan(low, spec.threshold, color=THRESHOLD_COLOR, alpha=0.05, linewidth=0, zorder=0)

    ax.set_xlim(spec.start, spec.end)
    ax.set_ylim(low, high)
    ax.xaxis.set_major_locator(FixedLocator(_time_ticks(spec.start, spec.end)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: time.strftime("%H:%M", time.gmtime(x))))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _pos: f"{format_number(y / divisor)}{suffix}"))
    ax.tick_params(labelsize=8, colors="#333333")
    ax.grid(True, color="#e6e6e6", linewidth=0.8, zorder=0)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    if not spec.lines and not (spec.band and spec.band.count):
        ax.text(0.5, 0.5, spec.note or "no data", transform=ax.transAxes, ha="center", va="center", fontsize=11,
                color="#555555")
    elif spec.note:
        ax.text(0.01, 0.02, spec.note, transform=ax.transAxes, fontsize=7, color="#555555", va="bottom")
    handles, _ = ax.get_legend_handles_labels()
    if handles:
        ax.legend(loc="upper left", fontsize=7, framealpha=0.85, borderpad=0.4, handlelength=1.6)
    fig.text(m["left"] / w, 1 - 8 / h, spec.title, fontsize=11, fontweight="bold", va="top", ha="left",
             color="#111111")
    if spec.subtitle:
        fig.text(m["left"] / w, 1 - 28 / h, spec.subtitle, fontsize=7.5, va="top", ha="left", color="#555555")
    if spec.footer:
        fig.text(1 - m["right"] / w, 4 / h, spec.footer, fontsize=6.5, va="bottom", ha="right", color="#888888")

    pos = ax.get_position()  # fixed by the margins: no layout pass, so no draw is needed to know it
    meta = {
        "plot": [round(float(v), 2) for v in (pos.x0 * w, h - pos.y1 * h, pos.x1 * w, h - pos.y0 * h)],
        "xlim": [spec.start, spec.end],
        "ylim": [low, high],
        "threshold": spec.threshold,
        "threshold_color": THRESHOLD_COLOR,
        "colors": list(COLORS[: len(spec.lines)]),
        "unit": spec.unit,
    }
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": "alert-router", META_KEY: json.dumps(meta)})
    return Rendered(buf.getvalue(), meta, time.perf_counter() - started)
