"""Fitting Telegram HTML into 4096 characters without ever breaking a tag or an entity.

Telegram counts a message's length after parsing the HTML (tags count nothing, ``&amp;`` counts one),
in UTF-16 code units. :func:`split_html` cuts a message into parts that each fit, preferring line
breaks, closing the tags open at a cut and reopening them in the next part; :func:`trim_html` keeps
only the first part and marks the cut.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TELEGRAM_LIMIT = 4096
TRIM_MARK = "\n… (trimmed)"

_TOKEN = re.compile(
    r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)([^>]*)>|&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]*);"
)


@dataclass(frozen=True, slots=True)
class _Unit:
    """One indivisible piece: a tag (weight 0) or one visible character (raw text may be an entity)."""

    raw: str
    weight: int
    open_tag: str | None = None
    close_tag: str | None = None
    newline: bool = False


def _utf16(s: str) -> int:
    return len(s.encode("utf-16-le")) // 2


def _units(text: str) -> list[_Unit]:
    units: list[_Unit] = []
    pos = 0
    for m in _TOKEN.finditer(text):
        for ch in text[pos : m.start()]:
            units.append(_Unit(ch, _utf16(ch), newline=ch == "\n"))
        raw = m.group(0)
        if raw.startswith("&"):
            units.append(_Unit(raw, 1))
        elif m.group(1):
            units.append(_Unit(raw, 0, close_tag=m.group(2).lower()))
        else:
            units.append(_Unit(raw, 0, open_tag=m.group(2).lower()))
        pos = m.end()
    for ch in text[pos:]:
        units.append(_Unit(ch, _utf16(ch), newline=ch == "\n"))
    return units


def visible_length(text: str) -> int:
    """The length Telegram counts: visible characters after entity parsing, in UTF-16 code units."""
    return sum(u.weight for u in _units(text))


def _closers(stack: list[tuple[str, str]]) -> str:
    return "".join(f"</{name}>" for name, _ in reversed(stack))


def _openers(stack: list[tuple[str, str]]) -> str:
    return "".join(raw for _, raw in stack)


def _is_blank(part: str) -> bool:
    return not re.sub(r"<[^>]*>", "", part).strip()


def split_html(text: str, limit: int = TELEGRAM_LIMIT) -> list[str]:
    """Split Telegram HTML into parts of at most ``limit`` visible characters each.

    Cuts at the last line break of a part when there is one in its second half, else mid-line; tags
    open at a cut are closed at the end of the part and reopened at the start of the next. Empty parts
    are dropped. The input is assumed to be well-formed (as the templates produce it).
    """
    if limit < 16:
        raise ValueError("limit too small")
    units = _units(text)
    parts: list[str] = []
    stack: list[tuple[str, str]] = []
    i = 0
    n = len(units)
    while i < n:
        prefix = _openers(stack)
        out: list[str] = []
        weight = 0
        # (index in units after the newline, len(out) after it, stack at that point)
        last_break: tuple[int, int, list[tuple[str, str]]] | None = None
        j = i
        while j < n:
            u = units[j]
            if u.weight and weight + u.weight > limit:
                break
            out.append(u.raw)
            weight += u.weight
            if u.open_tag:
                stack.append((u.open_tag, u.raw))
            elif u.close_tag:
                for k in range(len(stack) - 1, -1, -1):
                    if stack[k][0] == u.close_tag:
                        del stack[k]
                        break
            elif u.newline and weight > limit // 2:
                last_break = (j + 1, len(out), list(stack))
            j += 1
        if j < n and last_break is not None:
            j, keep, stack = last_break[0], last_break[1], last_break[2]
            out = out[:keep]
        if j == i:  # a single character wider than the limit cannot happen; guard against looping
            j += 1
        part = prefix + "".join(out) + _closers(stack)
        if not _is_blank(part):
            parts.append(part)
        i = j
    return parts


def trim_html(text: str, limit: int = TELEGRAM_LIMIT, mark: str = TRIM_MARK) -> str:
    """Keep the first ``limit`` visible characters of ``text`` (tags balanced), ending with ``mark``."""
    if visible_length(text) <= limit:
        return text
    room = limit - visible_length(mark)
    first = split_html(text, room)[0] if room >= 16 else ""
    return first + mark
