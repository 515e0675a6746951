"""A loopback stand-in for Grafana Loki's query API.

It speaks ``GET|POST /loki/api/v1/query_range`` the way Loki documents it
(docs/sources/reference/loki-http-api.md) and behaves like Loki on the edges the service
depends on:

* ``start``/``end`` are parsed like Loki's ``parseTimestamp`` (RFC3339, ns epoch, seconds
  epoch when at most 10 digits, float seconds); the range is ``[start, end)``; defaults are
  ``end = now`` and ``start = end - 1h``.
* ``limit`` defaults to 100; above 5000 it answers 400 ``max entries limit per query exceeded``.
* ``direction`` is ``backward`` (newest first, the default) or ``forward``.
* The LogQL stream selector is parsed for real: ``=``, ``!=``, ``=~``, ``!~`` with Go double-quoted
  strings (backslash escapes) or backtick raw strings; label regexes are fully anchored like
  Prometheus matchers, line-filter regexes are not. Line filters ``|=``, ``!=``, ``|~``, ``!~``
  and string label filters ``| name op "value"`` (``and`` or ``,`` between them; without a parser
  stage they test the stream's labels, as in Loki) follow. A syntax error answers 400
  ``parse error at line 1, col N: ...`` as ``text/plain``; a selector whose every matcher accepts
  the empty string answers Loki's 400 for that.
* Valid LogQL the stand-in does not model (parsers such as ``| json``, formatting stages such as
  ``| line_format``, ``or`` in label filters, metric queries) answers 501 so a test fails loudly
  instead of silently getting nothing.

Every request to the query endpoint is recorded in :attr:`LokiStandin.queries` (exact LogQL,
params, headers) before any check, so tests can assert on what arrived and count queries.
"""

from __future__ import annotations

import asyncio
import base64
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Literal

from aiohttp import web

MAX_ENTRIES_LIMIT = 5000
DEFAULT_LIMIT = 100

EMPTY_MATCHER_ERROR = (
    "parse error : queries require at least one regexp or equality matcher that does not have an "
    'empty-compatible value. For instance, app=~".*" does not meet this requirement, but app=~".+" will'
)

MatchOp = Literal["=", "!=", "=~", "!~"]
FilterOp = Literal["|=", "!=", "|~", "!~"]


class LogQLParseError(ValueError):
    """A LogQL syntax error; ``str()`` is the message Loki would answer with."""


class LogQLUnsupported(ValueError):
    """Valid LogQL that this stand-in does not evaluate (parsers, label filters, metric queries)."""


@dataclass(frozen=True)
class LabelMatcher:
    """One ``name op value`` matcher of a stream selector."""

    name: str
    op: MatchOp
    value: str

    def _regex(self) -> re.Pattern[str]:
        return re.compile(self.value)

    def matches(self, value: str) -> bool:
        """Tell whether a label value (``""`` when the label is absent) satisfies this matcher."""
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        hit = self._regex().fullmatch(value) is not None
        return hit if self.op == "=~" else not hit


@dataclass(frozen=True)
class LineFilter:
    """One line filter stage: ``|= "x"``, ``!= "x"``, ``|~ "re"`` or ``!~ "re"``."""

    op: FilterOp
    value: str

    def matches(self, line: str) -> bool:
        """Tell whether a log line passes this filter."""
        if self.op == "|=":
            return self.value in line
        if self.op == "!=":
            return self.value not in line
        hit = re.search(self.value, line) is not None
        return hit if self.op == "|~" else not hit


@dataclass(frozen=True)
class LogQuery:
    """A parsed log query: a stream selector and its line filters."""

    matchers: tuple[LabelMatcher, ...]
    filters: tuple[LineFilter, ...]
    label_filters: tuple[LabelMatcher, ...] = ()

    def selects(self, labels: Mapping[str, str]) -> bool:
        """Tell whether a stream with these labels is selected (and passes the label filters)."""
        return all(m.matches(labels.get(m.name, "")) for m in self.matchers + self.label_filters)

    def keeps(self, line: str) -> bool:
        """Tell whether a line passes every line filter."""
        return all(f.matches(line) for f in self.filters)


# --------------------------------------------------------------------------- LogQL lexer/parser

_GO_SIMPLE_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    '"': '"',
}

_METRIC_WORDS = {
    "rate",
    "count_over_time",
    "bytes_over_time",
    "bytes_rate",
    "sum",
    "avg",
    "min",
    "max",
    "count",
    "topk",
    "bottomk",
    "stddev",
    "stdvar",
    "sort",
    "sort_desc",
    "absent_over_time",
    "quantile_over_time",
    "sum_over_time",
    "avg_over_time",
    "max_over_time",
    "min_over_time",
    "first_over_time",
    "last_over_time",
    "rate_counter",
    "vector",
    "label_replace",
}


_STAGE_WORDS = {"json", "logfmt", "regexp", "pattern", "unpack", "line_format", "label_format", "decolorize", "drop",
                "keep", "unwrap"}


class _Parser:
    """A small recursive-descent parser for ``selector line_filter*``."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    # -- helpers ------------------------------------------------------------------------------
    def _col(self, pos: int | None = None) -> tuple[int, int]:
        p = self.pos if pos is None else pos
        line = self.text.count("\n", 0, p) + 1
        last_nl = self.text.rfind("\n", 0, p)
        return line, p - last_nl  # 1-based column

    def error(self, what: str, pos: int | None = None) -> LogQLParseError:
        line, col = self._col(pos)
        return LogQLParseError(f"parse error at line {line}, col {col}: syntax error: {what}")

    def _unexpected(self) -> LogQLParseError:
        if self.pos >= len(self.text):
            return self.error("unexpected $end")
        tok = self._peek_token_text()
        return self.error(f"unexpected {tok}")

    def _peek_token_text(self) -> str:
        m = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\S").match(self.text, self.pos)
        return m.group(0) if m else "$end"

    def skip_ws(self) -> None:
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch in " \t\r\n":
                self.pos += 1
            elif ch == "#":  # LogQL comments run to the end of the line
                nl = self.text.find("\n", self.pos)
                self.pos = len(self.text) if nl < 0 else nl + 1
            else:
                break

    def at_end(self) -> bool:
        self.skip_ws()
        return self.pos >= len(self.text)

    def take(self, lit: str) -> bool:
        self.skip_ws()
        if self.text.startswith(lit, self.pos):
            self.pos += len(lit)
            return True
        return False

    # -- tokens -------------------------------------------------------------------------------
    def identifier(self) -> str:
        self.skip_ws()
        m = re.compile(r"[A-Za-z_][A-Za-z0-9_]*").match(self.text, self.pos)
        if not m:
            raise self._unexpected()
        self.pos = m.end()
        return m.group(0)

    def string(self) -> str:
        """Read a Go double-quoted or backtick raw string literal."""
        self.skip_ws()
        if self.pos >= len(self.text):
            raise self._unexpected()
        quote = self.text[self.pos]
        start = self.pos
        if quote == "`":
            end = self.text.find("`", self.pos + 1)
            if end < 0:
                raise self.error("literal not terminated", start)
            self.pos = end + 1
            return self.text[start + 1 : end].replace("\r", "")
        if quote != '"':
            raise self._unexpected()
        self.pos += 1
        out: list[str] = []
        while True:
            if self.pos >= len(self.text) or self.text[self.pos] == "\n":
                raise self.error("literal not terminated", start)
            ch = self.text[self.pos]
            if ch == '"':
                self.pos += 1
                return "".join(out)
            if ch != "\\":
                out.append(ch)
                self.pos += 1
                continue
            self.pos += 1
            if self.pos >= len(self.text):
                raise self.error("literal not terminated", start)
            esc = self.text[self.pos]
            if esc in _GO_SIMPLE_ESCAPES:
                out.append(_GO_SIMPLE_ESCAPES[esc])
                self.pos += 1
            elif esc in "xuU":
                width = {"x": 2, "u": 4, "U": 8}[esc]
                digits = self.text[self.pos + 1 : self.pos + 1 + width]
                if len(digits) != width or not re.fullmatch(r"[0-9A-Fa-f]+", digits):
                    raise self.error("invalid syntax", start)
                cp = int(digits, 16)
                if esc != "x" and (cp > 0x10FFFF or 0xD800 <= cp <= 0xDFFF):
                    raise self.error("invalid syntax", start)
                out.append(chr(cp))
                self.pos += 1 + width
            elif esc in "01234567":
                digits = self.text[self.pos : self.pos + 3]
                if not re.fullmatch(r"[0-7]{3}", digits) or int(digits, 8) > 255:
                    raise self.error("invalid syntax", start)
                out.append(chr(int(digits, 8)))
                self.pos += 3
            else:
                raise self.error("invalid syntax", start)

    # -- grammar ------------------------------------------------------------------------------
    def parse(self) -> LogQuery:
        self.skip_ws()
        if not self.text.startswith("{", self.pos):
            m = re.compile(r"[A-Za-z_][A-Za-z0-9_]*").match(self.text, self.pos)
            if m and m.group(0) in _METRIC_WORDS:
                raise LogQLUnsupported(f"metric queries ({m.group(0)}) are not implemented by the stand-in")
            raise self._unexpected()
        matchers = self.selector()
        filters: list[LineFilter] = []
        label_filters: list[LabelMatcher] = []
        while not self.at_end():
            if self.label_filter(label_filters):
                continue
            op = self._filter_op()
            if op is None:
                if self.text.startswith("|", self.pos) or self.text.startswith("[", self.pos):
                    raise LogQLUnsupported(f"pipeline stage at col {self._col()[1]} is not implemented by the stand-in")
                raise self._unexpected()
            value = self.string()
            if op in ("|~", "!~"):
                try:
                    re.compile(value)
                except re.error as exc:
                    raise LogQLParseError(f"parse error : error parsing regexp: {exc}") from None
            filters.append(LineFilter(op, value))
        return LogQuery(tuple(matchers), tuple(filters), tuple(label_filters))

    def label_filter(self, out: list[LabelMatcher]) -> bool:
        """Parse ``| name op "value" (and|, name op "value")*`` into ``out``; False when not at one."""
        self.skip_ws()
        m = re.compile(r"\|\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=(?!=))").match(self.text, self.pos)
        if not m or m.group(1) in _STAGE_WORDS:
            return False
        self.pos = m.start(1)
        while True:
            name = self.identifier()
            self.skip_ws()
            op = next((o for o in ("=~", "!~", "!=", "=") if self.text.startswith(o, self.pos)), None)
            if op is None or self.text.startswith("==", self.pos):
                raise LogQLUnsupported(f"label filter at col {self._col()[1]} is not implemented by the stand-in")
            self.pos += len(op)
            value = self.string()
            out.append(LabelMatcher(name, op, value))  # type: ignore[arg-type]
            if self.take(","):
                continue
            self.skip_ws()
            if re.compile(r"and\b").match(self.text, self.pos):
                self.pos += 3
                continue
            if re.compile(r"or\b").match(self.text, self.pos):
                raise LogQLUnsupported("'or' in label filters is not implemented by the stand-in")
            return True

    def _filter_op(self) -> FilterOp | None:
        self.skip_ws()
        for op in ("|=", "!=", "|~", "!~"):
            if self.text.startswith(op, self.pos):
                self.pos += 2
                return op
        return None

    def selector(self) -> list[LabelMatcher]:
        if not self.take("{"):
            raise self._unexpected()
        matchers: list[LabelMatcher] = []
        if self.take("}"):
            return matchers
        while True:
            name = self.identifier()
            self.skip_ws()
            op: MatchOp
            for candidate in ("=~", "!~", "!=", "="):
                if self.text.startswith(candidate, self.pos):
                    op = candidate
                    self.pos += len(candidate)
                    break
            else:
                raise self._unexpected()
            value = self.string()
            if op in ("=~", "!~"):
                try:
                    re.compile(value)
                except re.error as exc:
                    raise LogQLParseError(f"parse error : error parsing regexp: {exc}") from None
            matchers.append(LabelMatcher(name, op, value))
            if self.take("}"):
                return matchers
            if not self.take(","):
                raise self._unexpected()
            if self.take("}"):  # a trailing comma is accepted by Loki's grammar
                return matchers


def parse_logql(query: str) -> LogQuery:
    """Parse ``{selector} line_filter*`` into a :class:`LogQuery`.

    Raises :class:`LogQLParseError` with Loki's message for syntax errors and for selectors
    whose every matcher accepts the empty string, and :class:`LogQLUnsupported` for valid LogQL
    the stand-in does not evaluate.
    """
    parsed = _Parser(query).parse()
    if all(m.matches("") for m in parsed.matchers):
        raise LogQLParseError(EMPTY_MATCHER_ERROR)
    return parsed


# --------------------------------------------------------------------------- timestamps


def parse_loki_timestamp(value: str) -> int:
    """Parse a Loki ``start``/``end`` value into ns since the epoch, like Loki's ``parseTimestamp``."""
    if "." in value:
        try:
            seconds = float(value)
        except ValueError:
            pass
        else:
            whole = int(seconds)
            frac = round((seconds - whole) * 1000) / 1000
            return whole * 1_000_000_000 + int(frac * 1_000_000_000)
    if re.fullmatch(r"[+-]?\d+", value):
        n = int(value)
        return n * 1_000_000_000 if len(value) <= 10 else n
    return _parse_rfc3339_ns(value)


def _parse_rfc3339_ns(value: str) -> int:
    m = re.fullmatch(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})", value)
    if not m:
        raise ValueError(f'parsing time "{value}" as RFC3339Nano: cannot parse')
    base, frac, tz = m.groups()
    dt = datetime.fromisoformat(base + ("+00:00" if tz == "Z" else tz))
    ns = int((frac or "").ljust(9, "0"))
    return int(dt.timestamp()) * 1_000_000_000 + ns


# --------------------------------------------------------------------------- the server


@dataclass(frozen=True)
class LokiQueryRecord:
    """One request received on a query endpoint, recorded before any validation."""

    method: str
    path: str
    query: str | None
    params: dict[str, str]
    headers: dict[str, str]
    status: int = 0

    @property
    def org_id(self) -> str | None:
        """The ``X-Scope-OrgID`` header, if any."""
        return self.headers.get("X-Scope-OrgID")

    @property
    def authorization(self) -> str | None:
        """The ``Authorization`` header, if any."""
        return self.headers.get("Authorization")


@dataclass
class _Entry:
    labels: dict[str, str]
    ts_ns: int
    line: str
    tenant: str
    seq: int


@dataclass
class _Faults:
    fail_remaining: int = 0
    fail_status: int = 500
    fail_body: str = "internal server error"


@dataclass
class LokiStandin:
    """A Loki query API on ``127.0.0.1:<ephemeral>``; use as ``async with LokiStandin() as loki``.

    ``bearer_token`` or ``basic_auth`` (user, password) make the stand-in demand that credential
    (401 otherwise), like an auth proxy in front of Loki. ``tenant`` turns on multi-tenancy:
    ``X-Scope-OrgID`` becomes mandatory (401 ``no org id``) and a query only sees entries pushed
    for its tenant (``push`` defaults to ``tenant``). ``delay`` seconds are slept before each
    answer; :meth:`fail_next` injects failures.
    """

    bearer_token: str | None = None
    basic_auth: tuple[str, str] | None = None
    tenant: str | None = None
    delay: float = 0.0
    max_entries_limit: int = MAX_ENTRIES_LIMIT
    queries: list[LokiQueryRecord] = field(default_factory=list)
    _entries: list[_Entry] = field(default_factory=list, repr=False)
    _faults: _Faults = field(default_factory=_Faults, repr=False)
    _runner: web.AppRunner | None = field(default=None, repr=False)
    _port: int = field(default=0, repr=False)

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Bind to ``127.0.0.1:0`` and start serving."""
        app = web.Application()
        app.router.add_route("GET", "/loki/api/v1/query_range", self._query_range)
        app.router.add_route("POST", "/loki/api/v1/query_range", self._query_range)
        app.router.add_get("/ready", self._ready)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None)
        assert sockets
        self._port = int(sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop serving and release the socket."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> LokiStandin:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:41234`` (no trailing slash)."""
        if not self._port:
            raise RuntimeError("LokiStandin is not started")
        return f"http://127.0.0.1:{self._port}"

    # -- test API ----------------------------------------------------------------------------
    def push(self, labels: Mapping[str, str], ts_ns: int, line: str, *, tenant: str | None = None) -> None:
        """Store one log line for stream ``labels`` at ``ts_ns`` (ns since the epoch)."""
        if not labels:
            raise ValueError("a Loki stream needs at least one label")
        self._entries.append(
            _Entry(dict(labels), int(ts_ns), line, tenant or self.tenant or "fake", len(self._entries))
        )

    def fail_next(self, n: int = 1, status: int = 500, body: str = "internal server error") -> None:
        """Answer the next ``n`` query requests with ``status`` and a text ``body``."""
        self._faults = _Faults(n, status, body)

    @property
    def query_count(self) -> int:
        """How many requests reached the query endpoint (rejected ones included)."""
        return len(self.queries)

    @property
    def last_query(self) -> LokiQueryRecord:
        """The most recent recorded query request."""
        if not self.queries:
            raise AssertionError("Loki stand-in received no query")
        return self.queries[-1]

    # -- handlers ----------------------------------------------------------------------------
    async def _ready(self, request: web.Request) -> web.Response:
        return web.Response(text="ready\n")

    async def _query_range(self, request: web.Request) -> web.Response:
        params: dict[str, str] = dict(request.query)
        if request.method == "POST":
            form = await request.post()
            params.update({k: str(v) for k, v in form.items()})
        record_index = len(self.queries)
        self.queries.append(
            LokiQueryRecord(
                method=request.method,
                path=request.path,
                query=params.get("query"),
                params=params,
                headers=dict(request.headers),
            )
        )
        response = await self._answer(request, params)
        rec = self.queries[record_index]
        self.queries[record_index] = LokiQueryRecord(
            rec.method, rec.path, rec.query, rec.params, rec.headers, response.status
        )
        return response

    async def _answer(self, request: web.Request, params: dict[str, str]) -> web.Response:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self._faults.fail_remaining > 0:
            self._faults.fail_remaining -= 1
            return _text(self._faults.fail_status, self._faults.fail_body)
        if not self._authorized(request):
            return web.Response(
                status=401,
                text="Unauthorized\n",
                content_type="text/plain",
                headers={"WWW-Authenticate": 'Basic realm="loki"' if self.basic_auth else "Bearer"},
            )
        tenant = "fake"
        if self.tenant is not None:
            org = request.headers.get("X-Scope-OrgID", "")
            if not org:
                return _text(401, "no org id")
            tenant = org

        query = params.get("query", "")
        try:
            limit = int(params["limit"]) if params.get("limit", "") != "" else DEFAULT_LIMIT
        except ValueError:
            return _text(400, f'strconv.Atoi: parsing "{params["limit"]}": invalid syntax')
        if limit <= 0:
            return _text(400, "limit must be a positive value")
        try:
            end_ns = parse_loki_timestamp(params["end"]) if params.get("end", "") != "" else time.time_ns()
        except ValueError as exc:
            return _text(400, f"could not parse 'end' parameter: {exc}")
        try:
            start_ns = (
                parse_loki_timestamp(params["start"])
                if params.get("start", "") != ""
                else min(end_ns, time.time_ns()) - 3600 * 1_000_000_000
            )
        except ValueError as exc:
            return _text(400, f"could not parse 'start' parameter: {exc}")
        if end_ns < start_ns:
            return _text(400, "end timestamp must not be before or equal to start time")
        direction = params.get("direction", "") or "backward"
        if direction.lower() not in ("backward", "forward"):
            return _text(400, f"invalid direction '{direction}'")
        forward = direction.lower() == "forward"
        try:
            parsed = parse_logql(query)
        except LogQLParseError as exc:
            return _text(400, str(exc))
        except LogQLUnsupported as exc:
            return _text(501, f"loki stand-in: {exc}")
        if limit > self.max_entries_limit:
            return _text(
                400,
                "max entries limit per query exceeded, limit > max_entries_limit_per_query "
                f"({limit} > {self.max_entries_limit})",
            )
        return web.json_response(self._select(parsed, tenant, start_ns, end_ns, limit, forward))

    def _authorized(self, request: web.Request) -> bool:
        if self.bearer_token is None and self.basic_auth is None:
            return True
        header = request.headers.get("Authorization", "")
        if self.bearer_token is not None and header == f"Bearer {self.bearer_token}":
            return True
        if self.basic_auth is not None and header.startswith("Basic "):
            try:
                decoded = base64.b64decode(header[6:], validate=True).decode()
            except ValueError:
                return False
            user, _, password = decoded.partition(":")
            return (user, password) == self.basic_auth
        return False

    def _select(
        self, parsed: LogQuery, tenant: str, start_ns: int, end_ns: int, limit: int, forward: bool
    ) -> dict[str, object]:
        hits = [
            e
            for e in self._entries
            if e.tenant == tenant and start_ns <= e.ts_ns < end_ns and parsed.selects(e.labels) and parsed.keeps(e.line)
        ]
        if forward:
            hits.sort(key=lambda e: (e.ts_ns, e.seq))
        else:
            hits.sort(key=lambda e: (-e.ts_ns, e.seq))
        hits = hits[:limit]
        streams: dict[tuple[tuple[str, str], ...], list[list[str]]] = {}
        for e in hits:
            key = tuple(sorted(e.labels.items()))
            streams.setdefault(key, []).append([str(e.ts_ns), e.line])
        result = [{"stream": dict(key), "values": values} for key, values in streams.items()]
        return {
            "status": "success",
            "data": {"resultType": "streams", "result": result, "stats": {}},
        }


def _text(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=message + "\n", content_type="text/plain")
