r"""Label-matcher regular expressions, evaluated with RE2 exactly as Alertmanager evaluates them.

Matcher regexes come from rules and runbooks, but also from people in chat (``alerts alertname=~"…"``,
``silence …``). Python's :mod:`re` backtracks: ``(.*.*)*x`` against a 16-character label takes half a
minute, during which the event loop (webhooks, health checks, SIGTERM) stands still. RE2 runs in time
linear in the input and refuses patterns whose compiled program would be too large, so no pattern from
anywhere can stall the service.

Semantics are Alertmanager's (``regexp.Compile("^(?:" + v + ")$")`` in Go, which is RE2):

* anchored at both ends: ``prod`` does not match ``prod-eu``, and ``$`` is the end of the text (Python's
  ``$`` would also accept a trailing newline);
* ``.`` does not match a newline; ``\d``, ``\w``, ``\s`` and ``\b`` are ASCII;
* no backreferences (``\1``) and no look-around (``(?=``, ``(?!``, ``(?<=``): such a pattern is refused
  with a :class:`RegexError` saying so, as Alertmanager would refuse it.
"""

from __future__ import annotations

from typing import Any

import re2

__all__ = ["MAX_PATTERN_CHARS", "AnchoredRegex", "RegexError", "compile_anchored"]

MAX_PATTERN_CHARS = 4096
"""Longest accepted pattern; RE2 also bounds the compiled program (8 MiB), so no pattern can be costly."""

_CACHE_SIZE = 1024


class RegexError(ValueError):
    """A pattern RE2 cannot compile (invalid, unsupported syntax such as backreferences, or too large)."""


def _options() -> Any:
    options = re2.Options()
    options.log_errors = False  # RE2 would print every refused pattern to stderr
    return options


_OPTIONS = _options()


class AnchoredRegex:
    """A fully anchored RE2 pattern; :meth:`matches` remembers recent answers (label values repeat).

    Alertmanager keeps a cache of the values each matcher has seen; this one is bounded.
    """

    __slots__ = ("_cache", "_regex", "pattern")

    def __init__(self, pattern: str) -> None:
        if len(pattern) > MAX_PATTERN_CHARS:
            raise RegexError(f"regular expression is longer than {MAX_PATTERN_CHARS} characters")
        try:
            self._regex: Any = re2.compile(f"^(?:{pattern})$", _OPTIONS)
        except re2.error as exc:
            raise RegexError(_describe(exc).replace(f"^(?:{pattern})$", pattern)) from None
        self.pattern = pattern
        self._cache: dict[str, bool] = {}

    def matches(self, value: str) -> bool:
        """Return whether the whole of ``value`` matches the pattern."""
        hit = self._cache.get(value)
        if hit is None:
            hit = self._regex.match(value) is not None
            if len(self._cache) >= _CACHE_SIZE:
                self._cache.clear()
            self._cache[value] = hit
        return hit

    def __repr__(self) -> str:
        return f"AnchoredRegex({self.pattern!r})"


def _describe(exc: Exception) -> str:
    raw = exc.args[0] if exc.args else str(exc)
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    if "invalid escape sequence: \\" in text and text[-1:].isdigit():
        return f"{text} (backreferences are not supported: matchers use RE2 syntax, as Alertmanager does)"
    if "invalid perl operator: (?" in text:
        return f"{text} (look-around is not supported: matchers use RE2 syntax, as Alertmanager does)"
    if "pattern too large" in text or "invalid repetition size" in text:
        return f"{text} (the pattern is too large for RE2)"
    return text


def compile_anchored(pattern: str) -> AnchoredRegex:
    """Compile ``pattern`` anchored at both ends; raise :class:`RegexError` with a readable reason."""
    return AnchoredRegex(pattern)
