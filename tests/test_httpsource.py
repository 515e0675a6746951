"""The shared data-source client: tenant and credentials as headers, and every failure classified."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from pydantic import ValidationError

from alert_router.errors import FailureReason
from alert_router.httpsource import SourceClient, SourceError, SourceSettings
from tests.loopback import serve


class Server:
    def __init__(self) -> None:
        self.headers: list[dict[str, str]] = []
        self.answer: tuple[int, bytes] = (200, b'{"ok": true}')
        self.stall = asyncio.Event()
        self.stalled = False
        self.app = web.Application()
        self.app.router.add_get("/q", self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        self.headers.append(dict(request.headers))
        if self.stalled:
            await self.stall.wait()
        return web.Response(status=self.answer[0], body=self.answer[1], content_type="application/json")


@pytest.fixture
async def server() -> AsyncIterator[tuple[Server, str]]:
    s = Server()
    async with serve(s.app) as url:
        try:
            yield s, url
        finally:
            s.stall.set()  # before the server stops: it waits for its handlers


async def get(url: str, **settings: Any) -> Any:
    client = SourceClient("Thing", SourceSettings.model_validate({"url": url, **settings}))
    try:
        return await client.get_json("/q", {"a": "1"})
    finally:
        await client.aclose()


async def test_headers(server: tuple[Server, str]) -> None:
    """Tenant as X-Scope-OrgID, a bearer token or basic credentials as Authorization."""
    s, url = server
    assert await get(url, tenant="ml", bearer_token="t0k3n") == {"ok": True}
    await get(url, basic_auth={"username": "u", "password": "p"})
    assert s.headers[0]["X-Scope-OrgID"] == "ml" and s.headers[0]["Authorization"] == "Bearer t0k3n"
    assert s.headers[1]["Authorization"] == "Basic dTpw" and "X-Scope-OrgID" not in s.headers[1]
    with pytest.raises(ValidationError, match="either bearer_token or basic_auth"):
        SourceSettings.model_validate(
            {"url": url, "bearer_token": "a", "basic_auth": {"username": "u", "password": "p"}}
        )


@pytest.mark.parametrize(
    ("answer", "reason"),
    [((401, b"no"), FailureReason.AUTH), ((429, b""), FailureReason.RATE_LIMITED),
     ((503, b"down"), FailureReason.SERVER_ERROR), ((400, b"bad"), FailureReason.REJECTED),
     ((200, b"<html>"), FailureReason.INVALID)],
)
async def test_failures(server: tuple[Server, str], answer: tuple[int, bytes], reason: FailureReason) -> None:
    s, url = server
    s.answer = answer
    with pytest.raises(SourceError) as exc:
        await get(url)
    assert exc.value.reason is reason


async def test_timeout_and_refused(server: tuple[Server, str]) -> None:
    """A stalled answer is a timeout; a closed port a connection failure, both naming the source."""
    s, url = server
    s.stalled = True
    with pytest.raises(SourceError, match=r"no answer from Thing within 0\.3s") as exc:
        await get(url, timeout="0.3s")
    assert exc.value.reason is FailureReason.TIMEOUT
    with pytest.raises(SourceError, match="cannot connect to Thing") as exc:
        await get("http://127.0.0.1:9")
    assert exc.value.reason is FailureReason.CONNECTION
