"""What to draw for an alert: its expression split into the series and the comparison, with a unit.

An alerting rule's expression is usually ``<series> <op> <threshold>``: the alert fires for every series
of the left side that passes the comparison. The picture draws the left side over time and the threshold
as a line, so both come out of the rule's own expression, parsed with a real PromQL parser
(``promql-parser``, the Rust parser's Python binding), never with regular expressions:

* ``a > 0.5`` → series ``a``, threshold 0.5 (``0.5 < a`` is the same, read the other way round);
* ``a > b`` → series ``a``, and ``b`` drawn as a threshold line of its own (a threshold that moves);
* ``a > 0.5 and b`` / ``a > 0.5 unless b`` → the left side decides what fires: ``a > 0.5``;
* ``absent(a == 1)`` → series ``a``, threshold 1, and a note that the alert fires when there is no data;
* anything else (``a > bool 0.5`` included) → the whole expression, without a threshold.

The unit is inferred from the expression (Prometheus naming conventions: ``_seconds``, ``_bytes``,
``_ratio``; ``rate()`` is per second; ``time() - x_timestamp_seconds`` is an age in seconds; a counter
rate divided by a counter rate is a ratio), so that axes read "500 ms" and "30%".
:func:`expression_from_generator_url` takes the expression from an alert's ``generatorURL`` (``g0.expr``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import promql_parser as pp

__all__ = [
    "COMPARISONS",
    "GraphQuery",
    "PromQLError",
    "Unit",
    "analyse",
    "expression_from_generator_url",
    "infer_unit",
]

Unit = Literal["seconds", "ratio", "percent", "bytes", "bytes_per_second", "per_second", "count", "none"]
"""How values are shown: seconds as ms/s/min/h, ratios as %, bytes as KiB/MiB, rates per second."""

UNITS: tuple[str, ...] = Unit.__args__  # type: ignore[attr-defined]

COMPARISONS = {">": "<", "<": ">", ">=": "<=", "<=": ">=", "==": "==", "!=": "!="}
"""Comparison operators and their mirror image (``0.5 < a`` is ``a > 0.5``)."""

_PASS_THROUGH = frozenset(
    {"label_replace", "label_join", "abs", "ceil", "floor", "round", "clamp", "clamp_min", "clamp_max", "sort",
     "sort_desc", "sort_by_label", "sort_by_label_desc", "avg_over_time", "min_over_time", "max_over_time",
     "last_over_time", "quantile_over_time", "mad_over_time", "vector", "scalar", "sum_over_time", "increase",
     "delta", "idelta", "predict_linear", "holt_winters", "double_exponential_smoothing"}
)
_NAME_UNITS: tuple[tuple[str, str], ...] = (
    ("_timestamp_seconds", "timestamp"),
    ("_timestamp", "timestamp"),
    ("_seconds_total", "seconds"),
    ("_seconds", "seconds"),
    ("_bytes_total", "bytes"),
    ("_bytes", "bytes"),
    ("_ratio", "ratio"),
    ("_share", "ratio"),
    ("_fraction", "ratio"),
    ("_percent", "percent"),
    ("_total", "count"),
    ("_count", "count"),
)


class PromQLError(ValueError):
    """An expression that cannot be parsed (the message says why, briefly)."""


@dataclass(frozen=True)
class GraphQuery:
    """What one picture draws.

    ``series`` is the PromQL drawn as lines; ``op`` and ``threshold`` the comparison that fires the alert
    (``threshold_query`` instead when the other side is itself an expression); ``absent`` says the alert
    fires when ``series`` has no data at all; ``unit`` how values read; ``source`` the whole expression.
    """

    series: str
    op: str | None = None
    threshold: float | None = None
    threshold_query: str | None = None
    unit: str = "none"
    absent: bool = False
    source: str = ""

    def describe(self) -> str:
        """``p95 > 500 ms``-style words for the comparison (empty without one)."""
        from alert_router.graph.units import format_value

        if self.op is None:
            return "fires when there is no data" if self.absent else ""
        if self.threshold is not None:
            text = f"{self.op} {format_value(self.threshold, self.unit)}"
        else:
            query = " ".join((self.threshold_query or "?").split())
            text = f"{self.op} {query if len(query) <= 60 else query[:59] + '…'}"
        return text + (" (fires when there is no such series)" if self.absent else "")


def _parse(expr: str) -> Any:
    try:
        return pp.parse(expr)
    except ValueError as exc:
        raise PromQLError(f"cannot parse PromQL: {exc}") from None


def _strip(node: Any) -> Any:
    while isinstance(node, pp.ParenExpr):
        node = node.expr
    return node


def _op(node: Any) -> str:
    return str(node.op)


def _number(node: Any) -> float | None:
    """The value of a number literal (possibly negated or in parentheses), else ``None``."""
    node = _strip(node)
    if isinstance(node, pp.NumberLiteral):
        return float(node.val)
    if isinstance(node, pp.UnaryExpr):
        inner = _number(node.expr)
        return None if inner is None else -inner
    return None


def _text(node: Any) -> str:
    return str(node.prettify()).strip()


def analyse(expr: str, *, unit: str | None = None) -> GraphQuery:
    """Split ``expr`` into what to draw (see the module docstring); ``unit`` overrides the inferred one.

    Raises :class:`PromQLError` when ``expr`` is not PromQL.
    """
    source = expr.strip()
    node = _strip(_parse(source))
    absent = False
    if isinstance(node, pp.Call) and node.func.name in ("absent", "absent_over_time") and node.args:
        absent = True
        node = _strip(node.args[0])
        if isinstance(node, pp.MatrixSelector):
            node = node.vector_selector
    while isinstance(node, pp.BinaryExpr) and _op(node) in ("and", "unless"):
        node = _strip(node.lhs)
    if (
        isinstance(node, pp.BinaryExpr)
        and _op(node) in COMPARISONS
        and not (node.modifier is not None and node.modifier.return_bool)
    ):
        op = _op(node)
        lhs, rhs = _strip(node.lhs), _strip(node.rhs)
        if _number(lhs) is not None and _number(rhs) is None:
            lhs, rhs, op = rhs, lhs, COMPARISONS[op]
        threshold = _number(rhs)
        return GraphQuery(
            series=_text(lhs),
            op=op,
            threshold=threshold,
            threshold_query=None if threshold is not None else _text(rhs),
            unit=unit or _final(infer_unit(lhs)),
            absent=absent,
            source=source,
        )
    return GraphQuery(series=_text(node), unit=unit or _final(infer_unit(node)), absent=absent, source=source)


def _final(unit: str) -> str:
    return unit if unit in UNITS else "none"


def _selector_name(node: Any) -> str:
    if node.name:
        return str(node.name)
    for m in node.matchers.matchers:
        if m.name == "__name__" and str(m.op) in ("=", "MatchOp.Equal"):
            return str(m.value)
    return ""


def _name_unit(name: str) -> str:
    name = name.removesuffix("_bucket")
    for suffix, unit in _NAME_UNITS:
        if name.endswith(suffix):
            return unit
    return "none"


def _first_selector(node: Any) -> Any:
    found: list[Any] = []

    def visit(n: Any) -> bool:
        if isinstance(n, pp.VectorSelector):
            found.append(n)
            return False
        return True

    pp.walk(node, visit)
    return found[0] if found else None


def _vector_args(node: Any) -> list[Any]:
    return [a for a in node.args if _number(a) is None and not isinstance(_strip(a), pp.StringLiteral)]


def infer_unit(node: Any) -> str:
    """The unit of a parsed expression (``"number"`` for a literal, ``"timestamp"`` for times)."""
    node = _strip(node)
    if isinstance(node, pp.NumberLiteral):
        return "number"
    if isinstance(node, pp.UnaryExpr | pp.SubqueryExpr):
        return infer_unit(node.expr)
    if isinstance(node, pp.VectorSelector):
        return _name_unit(_selector_name(node))
    if isinstance(node, pp.MatrixSelector):
        return infer_unit(node.vector_selector)
    if isinstance(node, pp.AggregateExpr):
        op = _op(node)
        if op in ("count", "count_values"):
            return "count"
        if op == "group":
            return "none"
        return infer_unit(node.expr)
    if isinstance(node, pp.Call):
        return _call_unit(node)
    if isinstance(node, pp.BinaryExpr):
        return _binary_unit(_op(node), infer_unit(node.lhs), infer_unit(node.rhs), node)
    return "none"


def _call_unit(node: Any) -> str:
    name = node.func.name
    args = _vector_args(node)
    if name in ("time", "timestamp"):
        return "timestamp"
    if name in ("rate", "irate"):
        inner = infer_unit(args[0]) if args else "none"
        return {"seconds": "ratio", "bytes": "bytes_per_second"}.get(inner, "per_second")
    if name == "histogram_quantile":
        sel = _first_selector(node.args[-1])
        return _name_unit(_selector_name(sel)) if sel is not None else "none"
    if name in ("count_over_time", "absent", "absent_over_time", "changes", "resets"):
        return "count"
    if name in _PASS_THROUGH and args:
        return infer_unit(args[0])
    return "none"


def _binary_unit(op: str, left: str, right: str, node: Any) -> str:
    if op in COMPARISONS or op in ("and", "or", "unless"):
        return left
    if op == "-" and left == right == "timestamp":
        return "seconds"
    if op in ("+", "-"):
        if left == "number":
            return right
        return left if right in (left, "number") else "none"
    if op == "/":
        if right == "number":
            return left
        if left == right and left not in ("none", "number", "timestamp"):
            return "ratio"
        return "none"
    if op == "*":
        if "number" in (left, right):
            other = right if left == "number" else left
            factor = _number(node.lhs) if left == "number" else _number(node.rhs)
            if other == "ratio" and factor == 100:
                return "percent"
            return other
        return "none"
    return "none"


def expression_from_generator_url(url: str) -> str | None:
    """The ``g0.expr`` of a Prometheus ``generatorURL`` (``/graph?g0.expr=...``), or ``None``."""
    if not url:
        return None
    try:
        query = urlsplit(url).query
    except ValueError:
        return None
    values = parse_qs(query).get("g0.expr")
    expr = values[0].strip() if values else ""
    return expr or None
