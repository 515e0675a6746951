"""Durations written the Prometheus way (``30s``, ``5m``, ``1h30m``, ``7d``) as seconds."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration(value: Any) -> float:
    """Return ``value`` in seconds; accepts numbers (seconds) and strings like ``1h30m``.

    Raises ``ValueError`` with a readable message for anything else.
    """
    if isinstance(value, bool):
        raise ValueError("a duration must be a number of seconds or a string like '30s', '5m', '1h'")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if not isinstance(value, str) or not value.strip():
        raise ValueError("a duration must be a number of seconds or a string like '30s', '5m', '1h'")
    text = value.strip()
    pos = 0
    total = 0.0
    for m in _PART.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text) or pos == 0:
        raise ValueError(f"invalid duration {value!r}: use forms like '30s', '5m', '1h30m', '7d'")
    return total


def format_duration(seconds: float) -> str:
    """Render seconds compactly for people: ``3h12m``, ``45s``."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    if seconds and len(parts) < 2:
        parts.append(f"{seconds}s")
    return "".join(parts[:2])


def check_timeout(value: float, most: float = 60.0) -> float:
    """A timeout must be more than 0 and at most ``most`` seconds; raise ``ValueError`` otherwise."""
    if not 0 < value <= most:
        raise ValueError(f"timeout must be more than 0s and at most {format_duration(most)}")
    return value


_SECONDS = re.compile(r"\s*\d+(?:\.\d+)?\s*")


def _config_duration(value: Any) -> float:
    """:func:`parse_duration`, plus a number of seconds written as a string: ``${LEASE:-60}`` expands to ``"60"``."""
    if isinstance(value, str) and _SECONDS.fullmatch(value):
        return float(value)
    return parse_duration(value)


Duration = Annotated[float, BeforeValidator(_config_duration)]
"""A pydantic field type: seconds, written as ``30s``/``5m``/``1h`` or a number (also from ``${VAR}``)."""
