"""Readable values: seconds as ms/s/min/h, ratios as percent, bytes in binary units, rates per second.

:func:`scale` picks one factor and suffix for a whole axis from its largest value, so every tick of an
axis reads in the same unit ("250 ms, 500 ms, 750 ms"); :func:`format_value` formats one value on its own
(captions, the threshold's label).
"""

from __future__ import annotations

import math

__all__ = ["format_number", "format_value", "scale"]

_SECONDS = ((1e-3, 1e-6, "µs"), (2.0, 1e-3, "ms"), (120.0, 1.0, "s"), (7200.0, 60.0, "min"), (172800.0, 3600.0, "h"))
_BYTES = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
_SI = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))


def scale(unit: str, largest: float) -> tuple[float, str]:
    """The divisor and suffix for values of ``unit`` whose largest magnitude is ``largest``.

    A value ``v`` then reads ``f"{v / divisor:g}{suffix}"``.
    """
    m = abs(largest) if math.isfinite(largest) else 0.0
    if unit == "seconds":
        for limit, divisor, suffix in _SECONDS:
            if m < limit:
                return divisor, f" {suffix}"
        return 86400.0, " d"
    if unit == "ratio":
        return 0.01, "%"
    if unit == "percent":
        return 1.0, "%"
    if unit in ("bytes", "bytes_per_second"):
        per = "/s" if unit == "bytes_per_second" else ""
        i = 0
        while m >= 1024 and i < len(_BYTES) - 1:
            m /= 1024
            i += 1
        return float(1024**i), f" {_BYTES[i]}{per}"
    per = "/s" if unit == "per_second" else ""
    for limit, prefix in _SI:
        if m >= limit:
            return limit, f"{prefix}{per}" if prefix else per
    return 1.0, per


def format_number(value: float, digits: int = 3) -> str:
    """``value`` with ``digits`` significant digits, without a trailing ``.0`` or exponent for usual sizes."""
    if not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    text = f"{value:.{digits}g}"
    if "e" in text:
        text = f"{value:.{max(0, digits - 1 - math.floor(math.log10(abs(value))))}f}"
    return text


def format_value(value: float, unit: str) -> str:
    """One value for people: ``0.5`` seconds → ``500 ms``, ``0.3`` ratio → ``30%``, ``2048`` bytes → ``2 KiB``."""
    divisor, suffix = scale(unit, value)
    return f"{format_number(value / divisor)}{suffix}"
