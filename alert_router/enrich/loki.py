"""A small asynchronous client for Loki's ``GET /loki/api/v1/query_range``.

It sends ``query``, ``start``/``end`` (ns since the epoch), ``limit`` and ``direction`` (``backward``:
newest first), the tenant in ``X-Scope-OrgID`` and basic or bearer credentials for whatever proxy sits
in front of Loki. Every request has a timeout; TLS verification is on unless switched off, with an
optional CA bundle and client certificate. Failures raise :class:`LokiError` with a
:class:`~alert_router.errors.FailureReason`; the client never retries (the enrichment stage is bounded
by a short deadline and degrades instead).
"""

from __future__ import annotations

import base64
import json
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from alert_router import __version__
from alert_router.errors import AlertRouterError, FailureReason
from alert_router.httpsource import ssl_context as _ssl_context
from alert_router.scrub import scrub
from alert_router.streams import BodyIncomplete, BodyTooLarge, read_capped

__all__ = ["LokiClient", "LokiEntry", "LokiError", "LokiStream"]

QUERY_RANGE_PATH = "/loki/api/v1/query_range"
MAX_RESPONSE_BYTES = 16 * 1024 * 1024


class LokiError(AlertRouterError):
    """A query failed; ``reason`` is the failure class, ``status`` the HTTP status when there was one.

    The message may quote Loki's answer and ends up in notifications: it is scrubbed when built.
    """

    def __init__(self, reason: FailureReason, message: str, status: int | None = None) -> None:
        self.reason = reason
        self.status = status
        super().__init__(scrub(message))


@dataclass(frozen=True)
class LokiEntry:
    """One log line: its timestamp in ns since the epoch and its text."""

    ts_ns: int
    line: str


@dataclass(frozen=True)
class LokiStream:
    """One stream of a ``streams`` result: its labels and entries (in the order Loki sent them)."""

    labels: dict[str, str]
    entries: tuple[LokiEntry, ...]


def parse_streams(body: Any) -> list[LokiStream]:
    """Validate a ``query_range`` response body and return its streams.

    Raises :class:`LokiError` (``INVALID``) when the body is not the documented
    ``{"status": "success", "data": {"resultType": "streams", "result": [...]}}`` shape.
    """
    if not isinstance(body, dict) or body.get("status") != "success":
        raise LokiError(FailureReason.INVALID, "Loki answered without status=success")
    data = body.get("data")
    if not isinstance(data, dict) or data.get("resultType") != "streams" or not isinstance(data.get("result"), list):
        raise LokiError(FailureReason.INVALID, "Loki answered with something other than a streams result")
    streams: list[LokiStream] = []
    for item in data["result"]:
        if not isinstance(item, dict):
            raise LokiError(FailureReason.INVALID, "malformed stream in Loki's answer")
        labels = item.get("stream") or {}
        values = item.get("values") or []
        if not isinstance(labels, dict) or not isinstance(values, list):
            raise LokiError(FailureReason.INVALID, "malformed stream in Loki's answer")
        entries: list[LokiEntry] = []
        for v in values:
            if not isinstance(v, list) or len(v) < 2 or not isinstance(v[0], str) or not isinstance(v[1], str):
                raise LokiError(FailureReason.INVALID, "malformed entry in Loki's answer")
            try:
                ts = int(v[0])
            except ValueError:
                raise LokiError(FailureReason.INVALID, f"malformed timestamp {v[0][:40]!r} in Loki's answer") from None
            entries.append(LokiEntry(ts, v[1]))
        streams.append(LokiStream({str(k): str(val) for k, val in labels.items()}, tuple(entries)))
    return streams


class LokiClient:
    """Queries one Loki endpoint. Share one ``aiohttp.ClientSession`` between clients via ``session``."""

    def __init__(
        self,
        url: str,
        *,
        tenant: str = "",
        bearer_token: str = "",
        basic_auth: tuple[str, str] | None = None,
        verify_tls: bool = True,
        ca_file: str | None = None,
        cert_file: str | None = None,
        key_file: str | None = None,
        timeout: float = 2.0,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        if bearer_token and basic_auth:
            raise ValueError("give either a bearer token or basic credentials, not both")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._own_session = session is None
        self._session = session
        self._headers: dict[str, str] = {"User-Agent": f"alert-router/{__version__}", "Accept": "application/json"}
        if tenant:
            self._headers["X-Scope-OrgID"] = tenant
        if bearer_token:
            self._headers["Authorization"] = f"Bearer {bearer_token}"
        if basic_auth:
            if ":" in basic_auth[0]:
                raise ValueError("a basic-auth username cannot contain ':'")
            token = base64.b64encode(f"{basic_auth[0]}:{basic_auth[1]}".encode()).decode("ascii")
            self._headers["Authorization"] = f"Basic {token}"
        self._ssl: ssl.SSLContext | bool = True
        if self.url.startswith("https://"):
            self._ssl = _ssl_context(verify_tls, ca_file, cert_file, key_file)

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def query_range(
        self, query: str, *, start_ns: int, end_ns: int, limit: int, direction: str = "backward"
    ) -> list[LokiStream]:
        """Run one range query; return its streams or raise :class:`LokiError`."""
        params: Mapping[str, str] = {
            "query": query,
            "start": str(start_ns),
            "end": str(end_ns),
            "limit": str(limit),
            "direction": direction,
        }
        session = self._get_session()
        try:
            async with session.get(
                self.url + QUERY_RANGE_PATH,
                params=params,
                headers=self._headers,
                ssl=self._ssl,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                allow_redirects=False,
            ) as resp:
                status = resp.status
                raw = await read_capped(resp.content, MAX_RESPONSE_BYTES)
        except BodyTooLarge:
            raise LokiError(FailureReason.INVALID, "Loki's answer is larger than 16 MiB") from None
        except BodyIncomplete as exc:
            raise LokiError(FailureReason.CONNECTION, f"Loki's answer was cut short: {exc}") from None
        except TimeoutError:
            raise LokiError(FailureReason.TIMEOUT, f"no answer from Loki within {self.timeout:g}s") from None
        except aiohttp.ClientConnectorError as exc:
            raise LokiError(FailureReason.CONNECTION, f"cannot connect to Loki: {exc.os_error or exc}") from None
        except aiohttp.ClientError as exc:
            raise LokiError(FailureReason.CONNECTION, f"Loki request failed: {type(exc).__name__}: {exc}") from None
        if status != 200:
            text = raw.decode("utf-8", "replace").strip().replace("\n", " ")[:300]
            reason = (
                FailureReason.AUTH
                if status in (401, 403)
                else FailureReason.RATE_LIMITED
                if status == 429
                else FailureReason.SERVER_ERROR
                if status >= 500
                else FailureReason.REJECTED
            )
            raise LokiError(reason, f"HTTP {status}: {text}" if text else f"HTTP {status}", status)
        try:
            body = json.loads(raw)
        except ValueError:
            raise LokiError(FailureReason.INVALID, "Loki's answer is not JSON", status) from None
        return parse_streams(body)

    async def aclose(self) -> None:
        """Close the session if this client created it."""
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None
