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

So no label value can end the string, add a matcher, or widen a regular expression. Which string a
placeholder sits in is decided by walking the query's stages, not by the character before the quote: it
may be the value of a stream matcher (``{app="{{ app }}"}``), of a label filter (``| app="{{ app }}"``,
with ``and``/``or``/``,`` and parentheses) or of a line filter (``|= "{{ msg }}"``). A template with a
placeholder anywhere else (outside quotes, in a backtick string, in a comment, in any parsing or
formatting stage such as ``| json x="…"``, ``| label_format a="…"``, ``| line_format "…"``, whose
strings Loki runs as Go templates or patterns) is refused when the configuration is loaded. Loki's own
template syntax in those stages (``{{ .pod }}``, ``{{ __line__ }}``) is left alone: no alert value can
reach it, so a label value such as ``{{ __line__ }}{{ .pod }}`` is only ever matched, never executed.

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
_BRACES = re.compile(r"\{\{(?:[^}\"]|\}(?!\}))*(?:\}\}|(?=\"|$))")
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


_STAGE_KEYWORDS = frozenset({
    "json", "logfmt", "regexp", "pattern", "unpack", "line_format", "label_format", "decolorize", "drop", "keep",
    "unwrap",
})
"""Pipeline stages that parse, format or rewrite; their strings are patterns or Go templates, never values."""

_TEMPLATE_STAGES = frozenset({"line_format", "label_format"})
_LINE_FILTERS: dict[str, Context | None] = {
    "|=": "literal", "!=": "literal", "|~": "regex", "!~": "regex", "|>": None, "!>": None,
}
_LABEL_OPS: dict[str, Context | None] = {
    "=": "literal", "!=": "literal", "=~": "regex", "!~": "regex",
    "==": None, ">": None, ">=": None, "<": None, "<=": None,
}
_OPS = ("|=", "|~", "|>", "!=", "!~", "!>", "=~", "==", ">=", "<=", "=", ">", "<", "|", ",", "(", ")", "{", "}",
        "[", "]")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OTHER = re.compile(r"[0-9.][0-9A-Za-z_.]*|\S")


@dataclass(frozen=True)
class _Token:
    kind: Literal["str", "raw", "word", "op", "other"]
    start: int
    end: int
    text: str


def _tokens(source: str) -> list[_Token]:
    """Split a template into LogQL tokens; strings stay whole, placeholders inside them untouched."""
    out: list[_Token] = []
    i, n = 0, len(source)
    while i < n:
        ch = source[i]
        if ch in " \t\r\n":
            i += 1
        elif ch == "#":
            nl = source.find("\n", i)
            if "{{" in source[i : n if nl < 0 else nl]:
                raise TemplateError("placeholders cannot be used in a comment")
            i = n if nl < 0 else nl + 1
        elif ch == "`":
            end = source.find("`", i + 1)
            if end < 0:
                raise TemplateError(f"unterminated raw string at offset {i}")
            out.append(_Token("raw", i, end + 1, source[i : end + 1]))
            i = end + 1
        elif ch == '"':
            j = i + 1
            while j < n and source[j] != '"':
                if source[j] == "\n":
                    raise TemplateError(f"unterminated string at offset {i}")
                j += 2 if source[j] == "\\" else 1
            if j >= n:
                raise TemplateError(f"unterminated string at offset {i}")
            out.append(_Token("str", i, j + 1, source[i : j + 1]))
            i = j + 1
        elif source.startswith("{{", i):
            raise TemplateError(
                'placeholders must be inside a double-quoted string, e.g. app="{{ app }}" '
                f"(found one at offset {i})"
            )
        elif m := _WORD.match(source, i):
            out.append(_Token("word", i, m.end(), m.group(0)))
            i = m.end()
        else:
            op = next((o for o in _OPS if source.startswith(o, i)), None)
            if op is not None:
                out.append(_Token("op", i, i + len(op), op))
                i += len(op)
            else:
                m = _OTHER.match(source, i)
                assert m is not None  # \S matches any non-space character
                out.append(_Token("other", i, m.end(), m.group(0)))
                i = m.end()
    return out


@dataclass(frozen=True)
class _Role:
    """What a string literal is in the query: a matcher or filter value (``context``), or something else."""

    context: Context | None
    where: str
    template: bool = False


class _Classifier:
    """Walks the tokens of a log query and tells, for each string literal, what role it plays.

    Only three roles take placeholders: the value of a stream-selector matcher, of a label filter
    (``| name op "value"``, chained with ``and``/``or``/``,`` and parentheses) and of a line filter
    (``|= "x"``, ``!~ "y"``, ``or "z"``). Every other string, and everything after a token the walk
    does not understand, is "something else": a placeholder there is refused.
    """

    def __init__(self, tokens: list[_Token]) -> None:
        self.toks = tokens
        self.i = 0
        self.roles: dict[int, _Role] = {}

    def peek(self, k: int = 0) -> _Token | None:
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else None

    def is_(self, text: str, k: int = 0) -> bool:
        t = self.peek(k)
        return t is not None and t.kind in ("op", "word") and t.text == text

    def run(self) -> dict[int, _Role]:
        try:
            self._selector()
            while self.peek() is not None:
                self._stage()
        except _Lost:
            for t in self.toks[self.i :]:
                if t.kind in ("str", "raw"):
                    self.roles.setdefault(t.start, _Role(None, "a part of the query alert-router cannot classify"))
        for t in self.toks:
            if t.kind in ("str", "raw"):
                self.roles.setdefault(t.start, _Role(None, "a part of the query alert-router cannot classify"))
        return self.roles

    def _value(self, context: Context | None, where: str, template: bool = False) -> None:
        t = self.peek()
        if t is None or t.kind not in ("str", "raw"):
            raise _Lost
        self.roles[t.start] = _Role(context if t.kind == "str" else None, where, template)
        self.i += 1

    def _selector(self) -> None:
        if not self.is_("{"):
            raise _Lost
        self.i += 1
        while not self.is_("}"):
            name, op = self.peek(), self.peek(1)
            if name is None or name.kind != "word" or op is None or op.text not in ("=", "!=", "=~", "!~"):
                raise _Lost
            self.i += 2
            self._value(_LABEL_OPS[op.text], "a stream matcher")
            if self.is_(","):
                self.i += 1
        self.i += 1

    def _stage(self) -> None:
        t = self.peek()
        assert t is not None
        if t.kind == "op" and t.text in _LINE_FILTERS:
            self.i += 1
            self._line_filter(_LINE_FILTERS[t.text], t.text)
            while self.is_("or") and (nxt := self.peek(1)) is not None and nxt.kind in ("str", "raw"):
                self.i += 1
                self._value(_LINE_FILTERS[t.text], f"a `{t.text}` line filter")
            return
        if not self.is_("|"):
            raise _Lost
        self.i += 1
        word = self.peek()
        if word is not None and word.kind == "word" and word.text in _STAGE_KEYWORDS:
            self.i += 1
            self._keyword_stage(word.text)
            return
        self._label_filter()

    def _line_filter(self, context: Context | None, op: str) -> None:
        if self.is_("ip") and self.is_("(", 1):
            self.i += 2
            self._value(None, f"an ip() line filter after {op}")
            if not self.is_(")"):
                raise _Lost
            self.i += 1
            return
        self._value(context, f"a `{op}` line filter" if context else f"a `{op}` pattern filter")

    def _keyword_stage(self, keyword: str) -> None:
        where = f"a `| {keyword}` stage"
        template = keyword in _TEMPLATE_STAGES
        while (t := self.peek()) is not None:
            if t.kind == "op" and t.text in ("|", "|=", "|~", "|>"):
                return
            if t.kind == "op" and t.text in ("!=", "!~", "!>"):
                prev = self.toks[self.i - 1]
                if prev.kind != "word":  # after a value it starts a line filter; after a name it is a matcher
                    return
            if t.kind in ("str", "raw"):
                self.roles[t.start] = _Role(None, where, template)
            self.i += 1

    def _label_filter(self) -> None:
        while True:
            if self.is_("("):
                self.i += 1
                self._label_filter()
                if not self.is_(")"):
                    raise _Lost
                self.i += 1
            else:
                name, op = self.peek(), self.peek(1)
                if name is None or name.kind != "word" or op is None or op.text not in _LABEL_OPS:
                    raise _Lost
                self.i += 2
                value = self.peek()
                if value is not None and value.kind in ("str", "raw"):
                    self._value(_LABEL_OPS[op.text], f"a `{op.text}` label filter")
                elif self.is_("ip") and self.is_("(", 1):
                    self.i += 2
                    self._value(None, "an ip() label filter")
                    if not self.is_(")"):
                        raise _Lost
                    self.i += 1
                elif value is not None and value.kind in ("other", "word"):
                    self.i += 1  # a number, a duration or a byte size
                else:
                    raise _Lost
            if self.is_("and") or self.is_("or") or self.is_(","):
                self.i += 1
                continue
            return


class _Lost(Exception):
    """The walk met a token it does not understand; what follows is treated as unclassified."""


def _refuse(name: str, role: _Role) -> TemplateError:
    why = " (Loki runs that string as a Go template)" if role.template else ""
    return TemplateError(
        f"placeholder {{{{ {name} }}}} must be in the value of a matcher or filter (after =, !=, =~, !~, |=, |~); "
        f"here it is in {role.where}{why}"
    )


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
        """Compile ``source``; raise :class:`TemplateError` saying what is wrong and where.

        Each string literal is classified by its place in the query (see :class:`_Classifier`). A
        ``{{ name }}`` placeholder is accepted only in a matcher, label-filter or line-filter value.
        In any other string (``line_format``, ``label_format``, ``json``, ``regexp``...) it is refused;
        other ``{{ ... }}`` text there (``{{ .pod }}``, ``{{ __line__ }}``) is Loki's own template syntax
        and is left alone, since no alert value can reach it.
        """
        tokens = _tokens(source)
        roles = _Classifier(tokens).run()
        slots: list[_Slot] = []
        for tok in tokens:
            if tok.kind not in ("str", "raw"):
                continue
            role = roles[tok.start]
            for m in _BRACES.finditer(source, tok.start, tok.end):
                placeholder = _PLACEHOLDER.fullmatch(m.group(0))
                ours = placeholder is not None and not placeholder.group(1).startswith("__")
                if tok.kind == "raw":
                    if ours:
                        raise TemplateError(
                            "placeholders cannot be used inside a `backtick` string (values could not be escaped); "
                            'use double quotes: app="{{ app }}"'
                        )
                    continue
                if role.context is None:
                    if ours:
                        assert placeholder is not None
                        raise _refuse(placeholder.group(1), role)
                    continue  # Go template syntax of a line_format/label_format: Loki's, not ours
                if placeholder is None:
                    raise TemplateError(f"malformed placeholder at offset {m.start()}: write {{{{ label_name }}}}")
                slots.append(_Slot(m.start(), m.end(), placeholder.group(1), role.context))
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
