"""The drawing: exact size, the threshold and the data where the axis says, no pyplot, plain data in and out."""

from __future__ import annotations

import pickle
import subprocess
import sys

from alert_router.graph.render import PlotBand, PlotLine, PlotSpec, render_png
from tests.graph.pixels import check_picture, decode, threshold_row

NOW = 1_764_000_000.0


def latency_spec(**kw: object) -> PlotSpec:
    times = tuple(NOW - 3600 + i * 10 for i in range(361))
    values = tuple(0.2425 if t < NOW - 1200 else 0.975 for t in times)
    base: dict[str, object] = dict(
        title="HighModelLatency · namespace=prod", subtitle="histogram_quantile(0.95, ...)  ·  fires > 500 ms",
        width=800, height=400, unit="seconds", start=NOW - 3600, end=NOW,
        lines=(PlotLine("job=model-api", times, values),), threshold=0.5, op=">", windows=((NOW - 900, NOW),),
    )
    base.update(kw)
    return PlotSpec(**base)  # type: ignore[arg-type]


def test_threshold_and_data_rows_match_the_axis() -> None:
    """A 800x400 PNG whose threshold line and series sit at the rows their values map to."""
    rendered = render_png(latency_spec())
    check_picture(rendered.png, width=800, height=400, threshold=0.5, before=0.2425, after=0.975)


def test_other_sizes_and_a_threshold_below() -> None:
    """Configured sizes are exact; a `<` threshold is drawn the same way."""
    spec = latency_spec(width=640, height=300, op="<", threshold=0.6)
    pixels, g, _ = decode(render_png(spec).png)
    assert pixels.shape[:2] == (300, 640)
    assert abs(threshold_row(pixels, g) - g.row(0.6)) <= 2


def test_band_moving_threshold_and_no_data_render() -> None:
    """The summarised band, a moving threshold and an empty picture all draw (and pickle, for process workers)."""
    times = tuple(NOW - 600 + i * 60 for i in range(11))
    spec = latency_spec(
        band=PlotBand(7, times, tuple(0.1 for _ in times), tuple(0.3 for _ in times)),
        threshold=None, threshold_lines=(PlotLine("threshold (>)", times, tuple(0.4 for _ in times)),),
    )
    assert pickle.loads(pickle.dumps(spec)) == spec
    assert render_png(spec).png.startswith(b"\x89PNG")
    empty = render_png(latency_spec(lines=(), threshold=None, note="no data in this window"))
    pixels, _, meta = decode(empty.png)
    assert meta["threshold"] is None and pixels.shape[:2] == (400, 800)


def test_rendering_never_touches_pyplot() -> None:
    """pyplot's global state is not thread-safe: the renderer must not import it (checked in a fresh process)."""
    code = (
        "import sys\nfrom tests.graph.test_render import latency_spec\n"
        "from alert_router.graph.render import render_png\n"
        "render_png(latency_spec())\nassert 'matplotlib.pyplot' not in sys.modules, 'pyplot was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
