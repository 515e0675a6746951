r"""LogQL queries built from a template and an alert's labels, safely.

A template is LogQL with ``{{ name }}`` placeholders, for example::

    {namespace="{{ namespace }}", app="{{ app }}"} |~ "(?i)(error|exception|traceback|fatal)"

Each placeholder takes its value from the alert's labels through a mapping with fallbacks
(``app: [app, app_kubernetes_io_name, deployment, job]`` tries those labels in order; a name with no
mapping is the label of the same name; a missing label is the empty string, as in Prometheus). Label
values are untrusted, so a placeholder may only sit inside a double-quoted string, and the value is
escaped for the string's role:

* after ``=``, ``!=`` (label matchers, label filters) or ``|=``, ``!=`` (line filters) it is a literal:
  Go string escaping (``\\``, ``"``, newlines and every control character);
* after ``=~``, ``!~`` or ``|~`` it is a regular expression: RE2 ``QuoteMeta`` first, then Go string
  escaping, so ``.*`` in a label value matches a literal dot and star.

So no label value can end the string, add a matcher, or widen a regular expression. A template whose
placeholders sit anywhere else (outside quotes, in a backtick string, in ``line_format``) is refused
when the configuration is loaded.

Before a query is sent, :func:`check_selector` parses its stream selector and refuses one where every
matcher accepts the empty string (Loki answers such a query with 400, and it would scan every stream).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "DEFAULT_LABEL_MAP",
    "DEFAULT_TEMPLATE",
    "EmptyCompatibleSelector",
    "LogQLError",
    "QueryTemplate",
    "SelectorMatcher",
    "TemplateError",
    "check_selector",
    "escape_string",
    "parse_selector",
    "quote_meta",
    "unquote_string",
]

DEFAULT_TEMPLATE = '{namespace="{{ namespace }}", app="{{ app }}"} |~ "(?i)(error|exception|traceback|fatal)"'
"""The model-monitoring default: error-looking lines of the alert's workload in its namespace."""

DEFAULT_LABEL_MAP: dict[str, list[str]] = {
    "app": ["app", "app_kubernetes_io_name", "deployment", "job"],
    "pod": ["pod"],
}
"""Placeholder → alert labels tried in order (clusters name the workload label differently)."""

Context = Literal["literal", "regex"]
MatchOp = Literal["=", "!=", "=~", "!~"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_RE2_SPECIAL = re.compile(r"([\\.+*?()|\[\]{}^$])")
_GO_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\", '"': '"'}


class LogQLError(ValueError):
    """Base class: a query could not be built or would be unsafe to send."""


class TemplateError(LogQLError):
    """The template itself is invalid (reported when the configuration is loaded)."""


class EmptyCompatibleSelector(LogQLError):
    """Every matcher of the stream selector matches the empty string: Loki would refuse the query."""


# --------------------------------------------------------------------------- escaping


def quote_meta(value: str) -> str:
    r"""Escape every RE2 metacharacter, like Go's ``regexp.QuoteMeta`` (``\.+*?()|[]{}^$``)."""
    return _RE2_SPECIAL.sub(r"\\\1", value)


_PLAIN = re.compile(r"[ !#-\[\]-~]*")


def escape_string(value: str) -> str:
    r"""Escape ``value`` for the inside of a Go/LogQL double-quoted string literal.

    ``\`` and ``"`` are backslash-escaped, newline/CR/tab become ``\n``/``\r``/``\t``, every other
    control, format or separator character becomes ``\xNN``/``\uNNNN``, and lone surrogates (which
    cannot be encoded) become U+FFFD. ``unquote_string('"' + escape_string(v) + '"') == v`` for any
    encodable ``v``.
    """
    if _PLAIN.fullmatch(value):  # the common case: printable ASCII without quotes or backslashes
        return value
    out: list[str] = []
    for ch in value:
        code = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif 0xD800 <= code <= 0xDFFF:
            out.append("\ufffd")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif code > 0x7F and unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(ch)
    return "".join(out)


def unquote_string(text: str, pos: int = 0) -> tuple[str, int]:
    """Read the Go string literal (double-quoted or backtick) at ``text[pos]``; return its value and end.

    Raises :class:`LogQLError` for an unterminated literal or an invalid escape, as Loki would.
    """
    if pos >= len(text) or text[pos] not in '"`':
        raise LogQLError(f"expected a quoted string at offset {pos}")
    if text[pos] == "`":
        end = text.find("`", pos + 1)
        if end < 0:
            raise LogQLError(f"unterminated raw string at offset {pos}")
        return text[pos + 1 : end].replace("\r", ""), end + 1
    i = pos + 1
    out: list[str] = []
    while True:
        if i >= len(text) or text[i] == "\n":
            raise LogQLError(f"unterminated string at offset {pos}")
        ch = text[i]
        if ch == '"':
            return "".join(out), i + 1
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        esc = text[i + 1 : i + 2]
        if esc in _GO_ESCAPES:
            out.append(_GO_ESCAPES[esc])
            i += 2
        elif esc and esc in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[esc]
            digits = text[i + 2 : i + 2 + width]
            if len(digits) != width or not all(c in "0123456789abcdefABCDEF" for c in digits):
                raise LogQLError(f"invalid escape \\{esc} at offset {i}")
            cp = int(digits, 16)
            if esc != "x" and (cp > 0x10FFFF or 0xD800 <= cp <= 0xDFFF):
                raise LogQLError(f"invalid code point in escape at offset {i}")
            out.append(chr(cp))
            i += 2 + width
        elif esc and esc in "01234567":
            digits = text[i + 1 : i + 4]
            if not re.fullmatch(r"[0-7]{3}", digits) or int(digits, 8) > 255:
                raise LogQLError(f"invalid octal escape at offset {i}")
            out.append(chr(int(digits, 8)))
            i += 4
        else:
            raise LogQLError(f"invalid escape \\{esc} at offset {i}")


# --------------------------------------------------------------------------- the stream selector


@dataclass(frozen=True)
class SelectorMatcher:
    """One ``name op "value"`` matcher of a stream selector (``value`` unescaped)."""

    name: str
    op: MatchOp
    value: str

    def matches_empty(self) -> bool:
        """Whether a stream without this label (the empty string) satisfies the matcher.

        Label regexes are fully anchored as in Prometheus. A regex Python cannot compile is treated
        as not matching the empty string and left for Loki to judge.
        """
        if self.op == "=":
            return self.value == ""
        if self.op == "!=":
            return self.value != ""
        try:
            hit = re.fullmatch(self.value, "", re.DOTALL) is not None
        except re.error:
            return self.op == "!~"
        return hit if self.op == "=~" else not hit

    def __str__(self) -> str:
        return f'{self.name}{self.op}"{escape_string(self.value)}"'


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text):
        if text[pos] in " \t\r\n":
            pos += 1
        elif text[pos] == "#":
            nl = text.find("\n", pos)
            pos = len(text) if nl < 0 else nl + 1
        else:
            break
    return pos


def parse_selector(query: str) -> tuple[list[SelectorMatcher], int]:
    """Parse the leading ``{...}`` stream selector of a log query; return its matchers and where it ends.

    Raises :class:`LogQLError` when the query does not start with a well-formed selector.
    """
    pos = _skip_ws(query, 0)
    if not query.startswith("{", pos):
        raise LogQLError('a log query must start with a stream selector such as {app="x"}')
    pos = _skip_ws(query, pos + 1)
    matchers: list[SelectorMatcher] = []
    if query.startswith("}", pos):
        return matchers, pos + 1
    while True:
        m = _NAME.match(query, pos)
        if not m:
            raise LogQLError(f"expected a label name at offset {pos}")
        name = m.group(0)
        pos = _skip_ws(query, m.end())
        for op in ("=~", "!~", "!=", "="):
            if query.startswith(op, pos):
                pos += len(op)
                break
        else:
            raise LogQLError(f"expected =, !=, =~ or !~ after {name} at offset {pos}")
        pos = _skip_ws(query, pos)
        value, pos = unquote_string(query, pos)
        if op in ("=~", "!~"):
            try:
                re.compile(value)
            except re.error as exc:
                raise LogQLError(f"invalid regular expression for {name}: {exc}") from None
        matchers.append(SelectorMatcher(name, op, value))
        pos = _skip_ws(query, pos)
        if query.startswith("}", pos):
            return matchers, pos + 1
        if not query.startswith(",", pos):
            raise LogQLError(f"expected ',' or '}}' at offset {pos}")
        pos = _skip_ws(query, pos + 1)
        if query.startswith("}", pos):
            return matchers, pos + 1


def _check_pipeline(query: str, pos: int) -> None:
    """Check that every string literal after the selector is well formed (the rest is Loki's to judge)."""
    while pos < len(query):
        ch = query[pos]
        if ch in '"`':
            _, pos = unquote_string(query, pos)
        elif ch == "#":
            pos = _skip_ws(query, pos)
        else:
            pos += 1


def check_selector(query: str) -> list[SelectorMatcher]:
    """Refuse a query Loki would reject for its selector; return the selector's matchers.

    Raises :class:`EmptyCompatibleSelector` when every matcher accepts the empty string (``{}``,
    ``{app=""}``, ``{app=~".*"}``), and :class:`LogQLError` for a malformed selector or string.
    """
    matchers, end = parse_selector(query)
    _check_pipeline(query, end)
    if all(m.matches_empty() for m in matchers):
        shown = "{" + ", ".join(str(m) for m in matchers) + "}"
        raise EmptyCompatibleSelector(f"every matcher of {shown} matches the empty string, which Loki refuses")
    return matchers


# --------------------------------------------------------------------------- templates


@dataclass(frozen=True)
class _Slot:
    start: int
    end: int
    name: str
    context: Context


def _string_context(template: str, quote_pos: int) -> Context | None:
    """The role of the string literal starting at ``quote_pos``, from the operator just before it."""
    before = template[:quote_pos].rstrip()
    for op, ctx in (("=~", "regex"), ("!~", "regex"), ("|~", "regex"), ("!=", "literal"), ("|=", "literal")):
        if before.endswith(op):
            return ctx  # type: ignore[return-value]
    if before.endswith("=") and not before.endswith(("==", ">=", "<=")):
        return "literal"
    return None


@dataclass(frozen=True)
class QueryTemplate:
    """A compiled LogQL template: where each placeholder sits and how its value must be escaped."""

    source: str
    slots: tuple[_Slot, ...]

    @property
    def placeholders(self) -> tuple[str, ...]:
        """The placeholder names, in order of first appearance."""
        return tuple(dict.fromkeys(s.name for s in self.slots))

    @classmethod
    def compile(cls, source: str) -> QueryTemplate:
        """Compile ``source``; raise :class:`TemplateError` saying what is wrong and where."""
        slots: list[_Slot] = []
        i = 0
        n = len(source)
        while i < n:
            ch = source[i]
            if ch == "#":
                nl = source.find("\n", i)
                comment = source[i : n if nl < 0 else nl]
                if "{{" in comment:
                    raise TemplateError("placeholders cannot be used in a comment")
                i = n if nl < 0 else nl + 1
            elif ch == "`":
                end = source.find("`", i + 1)
                if end < 0:
                    raise TemplateError(f"unterminated raw string at offset {i}")
                if "{{" in source[i:end]:
                    raise TemplateError(
                        "placeholders cannot be used inside a `backtick` string (values could not be escaped); "
                        'use double quotes: app="{{ app }}"'
                    )
                i = end + 1
            elif ch == '"':
                start = i
                i += 1
                while i < n and source[i] != '"':
                    if source[i] == "\n":
                        raise TemplateError(f"unterminated string at offset {start}")
                    if source[i] == "\\":
                        i += 2
                        continue
                    if source.startswith("{{", i):
                        m = _PLACEHOLDER.match(source, i)
                        if not m:
                            raise TemplateError(f"malformed placeholder at offset {i}: write {{{{ label_name }}}}")
                        ctx = _string_context(source, start)
                        if ctx is None:
                            raise TemplateError(
                                f"placeholder {{{{ {m.group(1)} }}}} must be in the value of a matcher or filter "
                                "(after =, !=, =~, !~, |=, |~)"
                            )
                        slots.append(_Slot(m.start(), m.end(), m.group(1), ctx))
                        i = m.end()
                        continue
                    i += 1
                if i >= n:
                    raise TemplateError(f"unterminated string at offset {start}")
                i += 1
            elif source.startswith("{{", i):
                raise TemplateError(
                    'placeholders must be inside a double-quoted string, e.g. app="{{ app }}" '
                    f"(found one at offset {i})"
                )
            else:
                i += 1
        template = cls(source, tuple(slots))
        sample = template.render({name: "x" for name in template.placeholders}, {})
        try:
            check_selector(sample)
        except EmptyCompatibleSelector as exc:
            raise TemplateError(str(exc)) from None
        except LogQLError as exc:
            raise TemplateError(f"not a valid log query: {exc}") from None
        return template

    def resolve(self, name: str, labels: Mapping[str, str], label_map: Mapping[str, Sequence[str]]) -> str:
        """The value of placeholder ``name``: the first non-empty label it maps to, else ``""``.

        A missing label is the empty string, as in Prometheus and Alertmanager matchers.
        """
        for label in label_map.get(name) or [name]:
            value = labels.get(label, "")
            if value != "":
                return value
        return ""

    def missing(self, labels: Mapping[str, str], label_map: Mapping[str, Sequence[str]]) -> list[str]:
        """Describe the placeholders the alert has no label for, e.g. ``{{ app }} (tried app, job)``."""
        return [
            f"{{{{ {name} }}}} (tried {', '.join(label_map.get(name) or [name])})"
            for name in self.placeholders
            if self.resolve(name, labels, label_map) == ""
        ]

    def render(self, labels: Mapping[str, str], label_map: Mapping[str, Sequence[str]]) -> str:
        """Substitute every placeholder with its escaped value (a missing label renders as ``""``)."""
        out: list[str] = []
        pos = 0
        for slot in self.slots:
            value = self.resolve(slot.name, labels, label_map)
            if slot.context == "regex":
                value = quote_meta(value)
            out.append(self.source[pos : slot.start])
            out.append(escape_string(value))
            pos = slot.end
        out.append(self.source[pos:])
        return "".join(out)

    def build(self, labels: Mapping[str, str], label_map: Mapping[str, Sequence[str]]) -> str:
        """Render for ``labels`` and run the pre-flight :func:`check_selector`; return the query to send.

        Raises :class:`EmptyCompatibleSelector` (naming the labels the alert lacks) when Loki would
        refuse the query.
        """
        query = self.render(labels, label_map)
        try:
            check_selector(query)
        except EmptyCompatibleSelector as exc:
            missing = self.missing(labels, label_map)
            if missing:
                raise EmptyCompatibleSelector(f"{exc}; the alert has no label for {', '.join(missing)}") from None
            raise
        return query
