r"""Alertmanager's matcher syntax, one parser for rules, runbooks and silences.

A matcher is ``name OP value`` with ``OP`` one of ``=``, ``!=``, ``=~``, ``!~``. Values may be
double-quoted (with ``\\"``, ``\\\\`` and ``\\n`` escapes) or bare. Several matchers can be written
together as ``{a="1", b=~"x|y"}``. Regular expressions are RE2, anchored at both ends, exactly as in
Alertmanager (:mod:`alert_router.regex`): ``namespace=~"prod"`` does not match ``prod-eu``, matching takes
time linear in the label value whoever wrote the pattern, and backreferences or look-around are refused.
"""

from __future__ import annotations

import asyncio
import enum
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic_core import PydanticCustomError

from alert_router.errors import MatcherError
from alert_router.regex import AnchoredRegex, RegexError, compile_anchored

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
T = TypeVar("T")
YIELD_EVERY = 0.005
"""Seconds of matching after which :func:`select_matching` lets the event loop run other work."""


class MatchOp(enum.StrEnum):
    """The four matcher operators."""

    EQ = "="
    NE = "!="
    RE = "=~"
    NRE = "!~"


@dataclass(frozen=True, slots=True)
class Matcher:
    """One label matcher; ``matches`` treats a missing label as the empty string, like Alertmanager."""

    name: str
    op: MatchOp
    value: str
    _regex: AnchoredRegex | None = field(default=None, compare=False, repr=False)

    @classmethod
    def create(cls, name: str, op: MatchOp | str, value: str) -> Matcher:
        """Build a matcher, compiling (and validating) its regular expression if it has one."""
        op = MatchOp(op)
        if not _NAME.fullmatch(name):
            raise MatcherError(f"invalid label name {name!r}")
        regex = None
        if op in (MatchOp.RE, MatchOp.NRE):
            try:
                regex = compile_anchored(value)
            except RegexError as exc:
                raise MatcherError(f"invalid regular expression {value!r} for {name}: {exc}") from None
        return cls(name, op, value, regex)

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Return whether the label set satisfies this matcher."""
        actual = labels.get(self.name, "")
        if self.op is MatchOp.EQ:
            return actual == self.value
        if self.op is MatchOp.NE:
            return actual != self.value
        assert self._regex is not None
        found = self._regex.matches(actual)
        return found if self.op is MatchOp.RE else not found

    def matches_empty(self) -> bool:
        """Return whether this matcher matches the empty string (Alertmanager rejects silences of only such)."""
        return self.matches({})

    def to_silence(self) -> dict[str, Any]:
        """Render as an Alertmanager API v2 silence matcher."""
        return {
            "name": self.name,
            "value": self.value,
            "isRegex": self.op in (MatchOp.RE, MatchOp.NRE),
            "isEqual": self.op in (MatchOp.EQ, MatchOp.RE),
        }

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'{self.name}{self.op.value}"{escaped}"'


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def error(self, message: str) -> MatcherError:
        return MatcherError(f"{message} at position {self.pos + 1} in {self.text!r}")

    def skip_ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def name(self) -> str:
        self.skip_ws()
        m = _NAME.match(self.text, self.pos)
        if not m:
            raise self.error("expected a label name")
        self.pos = m.end()
        return m.group(0)

    def op(self) -> MatchOp:
        self.skip_ws()
        for op in (MatchOp.RE, MatchOp.NRE, MatchOp.NE, MatchOp.EQ):
            if self.text.startswith(op.value, self.pos):
                self.pos += len(op.value)
                return op
        raise self.error("expected one of =, !=, =~, !~")

    def value(self, in_braces: bool) -> str:
        self.skip_ws()
        if self.peek() == '"':
            return self.quoted()
        start = self.pos
        stops = ",}" if in_braces else ","
        while self.pos < len(self.text) and self.text[self.pos] not in stops:
            if self.text[self.pos] in "\"'":
                raise self.error("unexpected quote inside an unquoted value")
            self.pos += 1
        return self.text[start : self.pos].strip()

    def quoted(self) -> str:
        assert self.peek() == '"'
        self.pos += 1
        out: list[str] = []
        while True:
            if self.pos >= len(self.text):
                raise self.error("unterminated quoted value")
            ch = self.text[self.pos]
            if ch == '"':
                self.pos += 1
                return "".join(out)
            if ch == "\\":
                if self.pos + 1 >= len(self.text):
                    raise self.error("dangling backslash")
                nxt = self.text[self.pos + 1]
                out.append({"n": "\n", "t": "\t", '"': '"', "\\": "\\"}.get(nxt, "\\" + nxt))
                self.pos += 2
                continue
            out.append(ch)
            self.pos += 1


def parse_matchers(text: str) -> list[Matcher]:
    """Parse ``a="1"`` or ``{a="1", b!~"x"}`` (one or several matchers) into matchers."""
    s = _Scanner(text)
    s.skip_ws()
    braces = s.peek() == "{"
    if braces:
        s.pos += 1
    result: list[Matcher] = []
    while True:
        s.skip_ws()
        if braces and s.peek() == "}" and not result:
            s.pos += 1
            break
        name = s.name()
        op = s.op()
        value = s.value(braces)
        result.append(Matcher.create(name, op, value))
        s.skip_ws()
        ch = s.peek()
        if ch == ",":
            s.pos += 1
            s.skip_ws()
            if braces and s.peek() == "}":
                s.pos += 1
                break
            if not braces and not s.peek():
                break
            continue
        if braces:
            if ch != "}":
                raise s.error("expected ',' or '}'")
            s.pos += 1
            break
        if ch:
            raise s.error("unexpected text after matcher")
        break
    s.skip_ws()
    if s.pos != len(s.text):
        raise s.error("unexpected text after the closing brace")
    if not result and not braces:
        raise MatcherError("empty matcher")
    return result


def parse_matcher_list(items: str | Iterable[str]) -> list[Matcher]:
    """Parse a YAML ``match:`` value: one string or a list of strings, each holding one or more matchers."""
    if isinstance(items, str):
        return parse_matchers(items)
    result: list[Matcher] = []
    for item in items:
        if not isinstance(item, str):
            raise MatcherError(f"a matcher must be a string such as 'severity=\"critical\"', got {item!r}")
        result.extend(parse_matchers(item))
    return result


MATCHER_ERROR = "matcher"
"""The pydantic error type :func:`validate_matcher_list` raises; its ``ctx`` holds the bad item's ``index``."""


def validate_matcher_list(items: str | list[str]) -> str | list[str]:
    """A pydantic field validator's body for a ``match:`` value: parse it, or fail naming the bad item.

    The error (type :data:`MATCHER_ERROR`) carries the list index of the bad matcher in ``ctx["index"]``, so a
    configuration problem can point at that matcher's own line (:func:`error_location`), not the ``match:`` key.
    """
    if isinstance(items, str):
        try:
            parse_matchers(items)
        except MatcherError as exc:
            raise PydanticCustomError(MATCHER_ERROR, "{reason}", {"reason": str(exc)}) from None
        return items
    for i, item in enumerate(items):
        try:
            parse_matcher_list([item])
        except MatcherError as exc:
            raise PydanticCustomError(MATCHER_ERROR, "{reason}", {"reason": str(exc), "index": i}) from None
    return items


def error_location(err: Mapping[str, Any]) -> tuple[str | int, ...]:
    """A pydantic error's location, down to the bad item of a ``match:`` list (see :func:`validate_matcher_list`)."""
    loc = tuple(err["loc"])
    ctx = err.get("ctx") or {}
    if err.get("type") == MATCHER_ERROR and isinstance(ctx.get("index"), int):
        return (*loc, ctx["index"])
    return loc


def matches_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    """Return whether every matcher matches (an empty list matches everything)."""
    return all(m.matches(labels) for m in matchers)


async def select_matching(
    matchers: Iterable[Matcher], items: Iterable[T], labels_of: Callable[[T], Mapping[str, str]]
) -> list[T]:
    """The ``items`` whose labels satisfy every matcher, in order, yielding to the event loop as it goes.

    RE2 keeps each match linear, but thousands of alerts times a long pattern from chat still add up:
    every :data:`YIELD_EVERY` seconds of matching the loop gets a turn, so webhooks and health checks
    are answered while a chat command filters.
    """
    wanted = list(matchers)
    out: list[T] = []
    started = time.perf_counter()
    for i, item in enumerate(items):
        if matches_all(wanted, labels_of(item)):
            out.append(item)
        if i % 64 == 63 and time.perf_counter() - started > YIELD_EVERY:
            await asyncio.sleep(0)
            started = time.perf_counter()
    return out


def format_matchers(matchers: Iterable[Matcher]) -> str:
    """Render matchers in the braces form, e.g. ``{severity="critical", namespace=~"prod"}``."""
    return "{" + ", ".join(str(m) for m in matchers) + "}"
