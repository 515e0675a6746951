"""What the JSON-over-HTTPS receivers share (PagerDuty, Opsgenie, Microsoft Teams, Discord): one request, classified.

A :class:`JsonHttp` holds one ``aiohttp`` session per channel and makes exactly one request per call: no
retries, no sleeping (the delivery stage owns both). Transport failures become retryable
:class:`~alert_router.channels.base.ChannelError` s (``timeout``, ``connection``). A status outside 2xx is
classified the same way for every platform by :func:`status_error`::

    429              rate_limited   retryable, after the wait the platform asked for
    5xx, 408         server_error   retryable
    401, 403         auth           permanent
    404, 410         not_found      permanent
    400, 413, 422    invalid        permanent
    anything else    rejected       permanent (3xx included: redirects are not followed)

Every text that leaves this module has the channel's secrets (webhook URLs, keys) replaced with ``***``:
error messages end up in logs, metrics, audit records and fallback messages.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from alert_router import __version__
from alert_router.channels.base import ChannelError
from alert_router.errors import FailureReason
from alert_router.render.support import redact
from alert_router.streams import BodyIncomplete, BodyTooLarge, read_capped

MAX_RESPONSE_BYTES = 1024 * 1024
"""At most this much of a response body is read (error bodies are short; a huge one is cut)."""
USER_AGENT = f"alert-router/{__version__}"


@dataclass(frozen=True)
class HttpResponse:
    """A response: its status, headers and body (``data`` is the parsed JSON, or ``None``)."""

    status: int
    headers: Mapping[str, str]
    text: str
    data: Any

    @property
    def ok(self) -> bool:
        """Whether the status is 2xx."""
        return 200 <= self.status < 300


def retry_after_seconds(value: str | None) -> float | None:
    """A ``Retry-After`` header in seconds (a number or an HTTP date), or ``None`` when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            parsed = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, parsed.timestamp() - time.time())


def status_error(platform: str, status: int, detail: str = "", retry_after: float | None = None) -> ChannelError:
    """Classify an HTTP status outside 2xx (the table in the module docstring)."""
    what = f"{platform}: HTTP {status}" + (f": {detail}" if detail else "")
    if status == 429:
        return ChannelError(FailureReason.RATE_LIMITED, what, retryable=True, retry_after=retry_after)
    if status >= 500 or status == 408:
        return ChannelError(FailureReason.SERVER_ERROR, what, retryable=True, retry_after=retry_after)
    if status in (401, 403):
        return ChannelError(FailureReason.AUTH, what, retryable=False)
    if status in (404, 410):
        return ChannelError(FailureReason.NOT_FOUND, what, retryable=False)
    if status in (400, 413, 422):
        return ChannelError(FailureReason.INVALID, what, retryable=False)
    return ChannelError(FailureReason.REJECTED, what, retryable=False)


class JsonHttp:
    """One channel's HTTP client: JSON requests, one attempt each, secrets kept out of every error text.

    Args:
        platform: the name errors start with (``pagerduty: HTTP 400: ...``).
        timeout: seconds for the whole request, connection included.
        secrets: called for the current secrets (URLs, keys) to redact from error texts.

    """

    def __init__(self, platform: str, timeout: float, secrets: Callable[[], Sequence[str]]) -> None:
        self.platform = platform
        self.timeout = timeout
        self._secrets = secrets
        self._session: aiohttp.ClientSession | None = None

    def redact(self, text: str) -> str:
        """``text`` with every secret of the channel replaced by ``***``."""
        return redact(text, self._secrets())

    async def request(
        self,
        method: str,
        url: str,
        body: Any = None,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> HttpResponse:
        """Send ``body`` as JSON (UTF-8); return the response. Transport failures raise a retryable ChannelError."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        sent = {"User-Agent": USER_AGENT, **(headers or {})}
        data: bytes | None = None
        if body is not None:
            data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            sent["Content-Type"] = "application/json; charset=utf-8"
        try:
            async with self._session.request(
                method, url, data=data, headers=sent, params=params, allow_redirects=False
            ) as resp:
                status, got = resp.status, dict(resp.headers)
                try:
                    raw = await read_capped(resp.content, MAX_RESPONSE_BYTES)
                except BodyTooLarge:
                    raw = b""  # nothing a platform says in an answer this large is read: its status tells
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise ChannelError(FailureReason.TIMEOUT, f"{self.platform}: request timed out", retryable=True) from exc
        except BodyIncomplete as exc:
            message = f"{self.platform}: the answer was cut short: {exc}"
            raise ChannelError(FailureReason.CONNECTION, message, retryable=True) from None
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            message = self.redact(f"{self.platform}: {type(exc).__name__}: {exc}")
            raise ChannelError(FailureReason.CONNECTION, message, retryable=True) from None
        text = raw.decode("utf-8", errors="replace")
        try:
            parsed = json.loads(text) if text.strip() else None
        except ValueError:
            parsed = None
        return HttpResponse(status, got, text, parsed)

    def error(self, response: HttpResponse, detail: str = "", retry_after: float | None = None) -> ChannelError:
        """The classified error for a non-2xx ``response`` (``detail``: what the platform said), secrets redacted."""
        return status_error(self.platform, response.status, self.redact(" ".join(detail.split())[:300]), retry_after)

    async def aclose(self) -> None:
        """Close the session."""
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()
            await asyncio.sleep(0)


def secret_values(*values: str) -> list[str]:
    """The non-empty values among ``values`` (for :class:`JsonHttp`'s ``secrets``)."""
    return [v for v in values if v]
