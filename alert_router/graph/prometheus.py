"""A small asynchronous client for Prometheus's ``GET /api/v1/query_range`` (Thanos and Mimir answer the same).

It sends ``query``, ``start``, ``end`` (Unix seconds) and ``step`` (seconds) with the tenant, credentials and
TLS settings every data source shares (:mod:`alert_router.httpsource`), and returns the ``matrix`` as
:class:`Series`. Failures raise :class:`~alert_router.httpsource.SourceError`; Prometheus's own error answers
(``{"status": "error", "errorType": "bad_data", "error": ...}``, HTTP 400/422/503) keep its message.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import aiohttp

from alert_router.errors import FailureReason
from alert_router.graph.settings import PrometheusSettings
from alert_router.httpsource import SourceClient, SourceError

__all__ = ["PrometheusClient", "Series", "parse_matrix"]

QUERY_RANGE_PATH = "/api/v1/query_range"
MAX_POINTS = 11_000
"""Prometheus refuses a range query of more than 11,000 points per series."""


@dataclass(frozen=True)
class Series:
    """One series of a range query: its labels and its samples (Unix seconds, value; NaN for NaN and ±Inf)."""

    labels: dict[str, str]
    times: tuple[float, ...]
    values: tuple[float, ...]


def _value(raw: Any) -> float:
    try:
        v = float(raw)
    except (TypeError, ValueError):
        raise SourceError(
            FailureReason.INVALID, f"malformed sample value {str(raw)[:40]!r} in Prometheus's answer"
        ) from None
    return v if math.isfinite(v) else math.nan


def parse_matrix(body: Any) -> list[Series]:
    """Validate a ``query_range`` answer and return its series (a scalar result becomes one unlabelled series).

    Raises :class:`SourceError` (``INVALID``) for anything but the documented
    ``{"status": "success", "data": {"resultType": "matrix", "result": [...]}}``.
    """
    if not isinstance(body, dict) or body.get("status") != "success":
        raise SourceError(FailureReason.INVALID, "Prometheus answered without status=success")
    data = body.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("result"), list):
        raise SourceError(FailureReason.INVALID, "Prometheus answered without data.result")
    if data.get("resultType") != "matrix":
        raise SourceError(FailureReason.INVALID, f"Prometheus answered a {data.get('resultType')!r}, not a matrix")
    out: list[Series] = []
    for item in data["result"]:
        if not isinstance(item, dict) or not isinstance(item.get("values", []), list):
            raise SourceError(FailureReason.INVALID, "malformed series in Prometheus's answer")
        labels = item.get("metric") or {}
        if not isinstance(labels, dict):
            raise SourceError(FailureReason.INVALID, "malformed series labels in Prometheus's answer")
        times: list[float] = []
        values: list[float] = []
        for pair in item.get("values") or []:
            if not isinstance(pair, list) or len(pair) != 2 or not isinstance(pair[0], int | float):
                raise SourceError(FailureReason.INVALID, "malformed sample in Prometheus's answer")
            times.append(float(pair[0]))
            values.append(_value(pair[1]))
        out.append(Series({str(k): str(v) for k, v in labels.items()}, tuple(times), tuple(values)))
    return out


class PrometheusClient(SourceClient):
    """Range queries against one Prometheus (or Thanos Query, or Mimir's Prometheus API)."""

    def __init__(self, settings: PrometheusSettings, *, session: aiohttp.ClientSession | None = None) -> None:
        super().__init__("Prometheus", settings, session=session)

    async def query_range(self, query: str, *, start: float, end: float, step: float) -> list[Series]:
        """Run one range query; return its series or raise :class:`SourceError`."""
        if (end - start) / step > MAX_POINTS:
            raise ValueError(f"{(end - start) / step:.0f} points per series: Prometheus allows {MAX_POINTS}")
        params = {"query": query, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
        try:
            body = await self.get_json(QUERY_RANGE_PATH, params)
        except SourceError as exc:
            raise _prometheus_error(exc) from None
        return parse_matrix(body)


def _prometheus_error(exc: SourceError) -> SourceError:
    """Prometheus explains a refused query in JSON (``errorType``, ``error``): keep that, not the raw body."""
    text = str(exc)
    head, _, rest = text.partition(": ")
    if exc.status is not None and rest.startswith("{"):
        try:
            body = json.loads(rest)
        except ValueError:
            return exc
        if isinstance(body, dict) and body.get("error"):
            message = f"{head}: {body.get('errorType', 'error')}: {body['error']}"
            return SourceError(exc.reason, message[:400], exc.status)
    return exc
