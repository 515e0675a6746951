"""Reading the pictures back: size, blankness, and where the threshold and the data sit in pixels.

A picture's PNG carries its plot area and axis limits (``alert-router`` text chunk, see
:mod:`alert_router.graph.render`). :func:`check_picture` decodes the PNG and asserts, from the pixels:

* it is a PNG of the configured size and not blank;
* the threshold line (the one row of threshold red across the plot) sits at the row the axis maps the
  threshold to, within 2 pixels;
* the series line (the first series colour) sits, early in the window and late in it, at the rows of the
  values the test data holds there, within 3 pixels;
* and, independent of the written geometry, the threshold row divides the two data rows in the ratio of
  the values: (before - threshold) : (threshold - after).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

import numpy as np
from PIL import Image

from alert_router.graph.render import COLORS, META_KEY, THRESHOLD_COLOR


def _rgb(hex_color: str) -> np.ndarray:
    return np.array([int(hex_color[i : i + 2], 16) for i in (1, 3, 5)], dtype=float)


@dataclass
class Geometry:
    """The plot area (pixels, top-left origin) and the value axis."""

    x0: float
    y0: float
    x1: float
    y1: float
    low: float
    high: float

    def row(self, value: float) -> float:
        """The pixel row the axis maps ``value`` to."""
        return self.y0 + (self.high - value) / (self.high - self.low) * (self.y1 - self.y0)


def decode(png: bytes) -> tuple[np.ndarray, Geometry, dict[str, object]]:
    """Pixels (rows x columns x RGB) and geometry of a picture."""
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    meta = json.loads(image.info[META_KEY])
    x0, y0, x1, y1 = meta["plot"]
    low, high = meta["ylim"]
    return np.asarray(image.convert("RGB"), dtype=float), Geometry(x0, y0, x1, y1, low, high), meta


def _near(pixels: np.ndarray, color: str, tolerance: float = 60.0) -> np.ndarray:
    return np.linalg.norm(pixels - _rgb(color), axis=-1) < tolerance


def threshold_row(pixels: np.ndarray, g: Geometry) -> float:
    """The row of the horizontal threshold line: rows where most of the plot's width is threshold red."""
    left, right = int(g.x0) + 2, int(g.x1) - 2
    hits = _near(pixels[:, left:right], THRESHOLD_COLOR).mean(axis=1)
    rows = np.flatnonzero(hits > 0.6)
    assert rows.size, "no threshold line in the picture"
    assert rows.max() - rows.min() <= 4, f"more than one threshold line: rows {rows.tolist()}"
    return float(rows.mean())


def series_row(pixels: np.ndarray, g: Geometry, fraction: float) -> float:
    """The row of the first series' line at ``fraction`` of the plot's width."""
    col = int(g.x0 + fraction * (g.x1 - g.x0))
    rows = np.flatnonzero(_near(pixels[:, col - 1 : col + 2], COLORS[0]).any(axis=1))
    rows = rows[(rows > g.y0) & (rows < g.y1)]
    assert rows.size, f"no series line at {fraction:.0%} of the width"
    return float(np.median(rows))


def check_picture(
    png: bytes, *, width: int, height: int, threshold: float, before: float, after: float
) -> dict[str, float]:
    """Assert what the module docstring says; return the measured rows (for messages)."""
    pixels, g, meta = decode(png)
    assert pixels.shape[:2] == (height, width), pixels.shape
    flat = pixels.reshape(-1, 3)
    assert (flat.min(axis=1) < 200).mean() > 0.02, "the picture is blank (almost all white)"
    assert len(np.unique(flat.astype(np.uint8), axis=0)) > 50, "the picture has almost no colours"
    assert meta["threshold"] == threshold
    t_row = threshold_row(pixels, g)
    assert abs(t_row - g.row(threshold)) <= 2, (t_row, g.row(threshold), meta)
    b_row = series_row(pixels, g, 0.3)  # 42 minutes before the end: before the switch 20 minutes before it
    a_row = series_row(pixels, g, 0.95)
    assert abs(b_row - g.row(before)) <= 3, (b_row, g.row(before), meta)
    assert abs(a_row - g.row(after)) <= 3, (a_row, g.row(after), meta)
    assert a_row < t_row < b_row, "the threshold must lie between the data before and after the switch"
    measured = (b_row - t_row) / (t_row - a_row)
    expected = (threshold - before) / (after - threshold)
    assert abs(measured / expected - 1) < 0.08, (measured, expected)
    return {"threshold_row": t_row, "before_row": b_row, "after_row": a_row}
