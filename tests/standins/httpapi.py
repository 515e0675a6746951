"""What the JSON-API stand-ins (PagerDuty, Opsgenie, Teams, Discord) share: lifecycle, request log, faults, rates.

A subclass adds its routes in :meth:`HttpApiStandin.routes` and says how the platform answers an injected
server error and a rate limit (:meth:`error_response`, :meth:`throttled`). Each handler starts with
``await self.intercept(method, key)``, which applies an injected fault or the enforced rate limit first and
returns the response to send instead, if any.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import defaultdict
from types import TracebackType
from typing import Any, Self

from aiohttp import web

from tests.standins.slack import FaultControls, FaultQueue, RequestRecord, TokenBucket, peak_rate, start_site


class HttpApiStandin(FaultControls):
    """A loopback HTTP API for tests; use it as an async context manager (``async with XStandin() as s``)."""

    max_body = 4 * 1024 * 1024
    """Bodies larger than this are refused by aiohttp itself (413)."""

    def __init__(self) -> None:
        self.requests: list[RequestRecord] = []
        """Every request that reached a handler, in arrival order (``method`` is the API operation)."""
        self.request_times: dict[str, list[float]] = defaultdict(list)
        """``time.monotonic()`` of every request per rate-limit key, accepted or not."""
        self.faults = FaultQueue()
        self._rate: tuple[float, float] | None = None
        self._buckets: dict[str, TokenBucket] = {}
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- lifecycle -------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash)."""
        if not self.port:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return f"http://127.0.0.1:{self.port}"

    def routes(self, app: web.Application) -> None:  # pragma: no cover - every stand-in overrides it
        """Add the platform's routes to ``app``."""
        raise NotImplementedError

    async def start(self) -> Self:
        """Bind to an ephemeral loopback port and start answering."""
        app = web.Application(client_max_size=self.max_body)
        self.routes(app)
        self._runner, self.port = await start_site(app)
        return self

    async def close(self) -> None:
        """Stop answering and release the port; delayed requests are woken first."""
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- controls for tests (and fail_next / rate_limit_next / delay_next of FaultControls) -------------

    def enforce_rate(self, per_second: float | None, burst: float = 1.0) -> None:
        """Enforce a token bucket per rate-limit key; over it answer the platform's 429. ``None`` switches it off."""
        self._rate = None if per_second is None else (per_second, burst)
        self._buckets.clear()

    def peak_rate(self, key: str, window: float = 1.0) -> int:
        """The most requests for ``key`` seen in any ``window`` seconds."""
        return peak_rate(self.request_times[key], window)

    def statuses(self, method: str | None = None) -> list[int]:
        """The statuses answered, in order (of ``method`` only, if given)."""
        return [r.status for r in self.requests if method is None or r.method == method]

    # -- for subclasses --------------------------------------------------------------------------------

    def error_response(self, status: int) -> web.Response:
        """The platform's answer to an injected server error."""
        return web.json_response({"error": "injected"}, status=status)

    def throttled(self, wait: float, key: str) -> web.Response:  # pragma: no cover - every stand-in overrides it
        """The platform's 429 asking the client to wait ``wait`` seconds."""
        raise NotImplementedError

    @staticmethod
    async def read_json(request: web.Request) -> tuple[Any, dict[str, Any]]:
        """The request's JSON body (``None`` when it does not parse; ``{}`` when empty) and it as params."""
        raw = await request.read()
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError:
            body = None
        return body, body if isinstance(body, dict) else {}

    def record(self, method: str, params: dict[str, Any], status: int, error: str | None = None,
               key: str | None = None) -> None:
        """Log one answered request."""
        self.requests.append(RequestRecord(method, params, time.monotonic(), status, error, key))

    async def intercept(self, method: str, key: str, params: dict[str, Any] | None = None) -> web.Response | None:
        """Apply an injected fault or the enforced rate to this request; return the response that replaces it."""
        now = time.monotonic()
        self.request_times[key].append(now)
        fault = self.faults.pop(method)
        if fault is not None:
            if fault.kind == "delay":
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), timeout=fault.delay)
            elif fault.kind == "ratelimit":
                self.record(method, params or {}, 429, "ratelimited", key)
                return self.throttled(float(fault.retry_after), key)
            else:
                self.record(method, params or {}, fault.status, "injected", key)
                return self.error_response(fault.status)
        if self._rate is not None:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = TokenBucket(*self._rate)
            wait = bucket.take(now)
            if wait > 0:
                self.record(method, params or {}, 429, "ratelimited", key)
                return self.throttled(wait, key)
        return None
