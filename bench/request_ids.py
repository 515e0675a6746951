"""What the error middleware (request ids, JSON errors) costs per request, side by side with no middleware.

Measures CPU time (``time.process_time``, so other load on the machine matters little) of aiohttp's handler
chain for three answers: a 200 JSON answer (the webhook's case), a returned 400 JSON error (the id is added
to the body) and a raised 404 (aiohttp's plain text turned into JSON). Each runs the real
``alert_router.api.errors.error_middleware`` on a mocked request (reused: building mocks is slow), without
sockets, and prints microseconds per request and the difference.

Run from the repository root: ``.venv/bin/python bench/request_ids.py [--requests 50000]`` (a few seconds).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from alert_router.api.errors import error_middleware

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def accepted(request: web.Request) -> web.Response:
    return web.json_response({"status": "accepted", "id": 1, "alerts": 10})


async def invalid(request: web.Request) -> web.Response:
    return web.json_response({"error": "alerts.0.labels: an alert needs at least one label", "field": "x"}, status=400)


async def missing(request: web.Request) -> web.Response:
    raise web.HTTPNotFound()


async def per_request(handler: Handler, n: int, middleware: bool) -> float:
    """Microseconds of CPU per request."""
    request = make_mocked_request("POST", "/webhook")
    started = time.process_time()
    for _ in range(n):
        if middleware:
            await error_middleware(request, handler)
        else:
            with contextlib.suppress(web.HTTPException):
                await handler(request)
    return (time.process_time() - started) / n * 1e6


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=50_000)
    n = ap.parse_args().requests
    print(f"{n} requests each, CPU microseconds per request")
    print(f"{'answer':<28}{'no middleware':>15}{'middleware':>12}{'added':>9}")
    for name, handler in (("200 JSON (webhook accepted)", accepted), ("400 JSON error returned", invalid),
                          ("404 raised by aiohttp", missing)):
        await per_request(handler, 1000, True)  # warm up
        bare = await per_request(handler, n, False)
        wrapped = await per_request(handler, n, True)
        print(f"{name:<28}{bare:>15.1f}{wrapped:>12.1f}{wrapped - bare:>9.1f}")


if __name__ == "__main__":
    asyncio.run(main())
