"""The Loki client speaks query_range as documented: params, tenant, auth, TLS, errors and timeouts."""

from __future__ import annotations

import asyncio
import base64
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme
from aiohttp import web

from alert_router.enrich.loki import LokiClient, LokiError, parse_streams
from alert_router.errors import FailureReason
from tests.standins.loki import LokiStandin

T0 = 1_700_000_000_000_000_000
SEC = 1_000_000_000


@pytest.fixture
async def client(loki_standin: LokiStandin) -> AsyncIterator[LokiClient]:
    c = LokiClient(loki_standin.url, timeout=2.0)
    yield c
    await c.aclose()


async def test_sends_documented_params_and_parses_streams(loki_standin: LokiStandin, client: LokiClient) -> None:
    loki_standin.push({"app": "web", "pod": "web-1"}, T0 + 1 * SEC, "ERROR a")
    loki_standin.push({"app": "web", "pod": "web-2"}, T0 + 2 * SEC, "ERROR b")
    loki_standin.push({"app": "web", "pod": "web-1"}, T0 + 3 * SEC, "ERROR c")
    streams = await client.query_range('{app="web"}', start_ns=T0, end_ns=T0 + 10 * SEC, limit=2)
    rec = loki_standin.last_query
    assert rec.status == 200 and rec.method == "GET" and rec.path == "/loki/api/v1/query_range"
    assert rec.params == {
        "query": '{app="web"}',
        "start": str(T0),
        "end": str(T0 + 10 * SEC),
        "limit": "2",
        "direction": "backward",
    }
    assert rec.org_id is None and rec.authorization is None
    got = sorted((e.ts_ns, s.labels["pod"], e.line) for s in streams for e in s.entries)
    assert got == [(T0 + 2 * SEC, "web-2", "ERROR b"), (T0 + 3 * SEC, "web-1", "ERROR c")]


async def test_tenant_and_bearer_token() -> None:
    async with LokiStandin(tenant="team-a", bearer_token="t0ken") as loki:
        loki.push({"app": "x"}, T0, "mine", tenant="team-a")
        loki.push({"app": "x"}, T0, "theirs", tenant="team-b")
        c = LokiClient(loki.url, tenant="team-a", bearer_token="t0ken")
        try:
            streams = await c.query_range('{app="x"}', start_ns=T0, end_ns=T0 + SEC, limit=10)
            assert [e.line for s in streams for e in s.entries] == ["mine"]
            assert loki.last_query.org_id == "team-a"
            assert loki.last_query.authorization == "Bearer t0ken"
        finally:
            await c.aclose()
        wrong = LokiClient(loki.url, tenant="team-a", bearer_token="nope")
        try:
            with pytest.raises(LokiError) as info:
                await wrong.query_range('{app="x"}', start_ns=T0, end_ns=T0 + SEC, limit=10)
            assert info.value.reason is FailureReason.AUTH and info.value.status == 401
        finally:
            await wrong.aclose()


async def test_basic_auth() -> None:
    async with LokiStandin(basic_auth=("loki", "pw")) as loki:
        loki.push({"app": "x"}, T0, "line")
        c = LokiClient(loki.url, basic_auth=("loki", "pw"))
        try:
            streams = await c.query_range('{app="x"}', start_ns=T0, end_ns=T0 + SEC, limit=10)
            assert [e.line for s in streams for e in s.entries] == ["line"]
            assert loki.last_query.authorization == "Basic " + base64.b64encode(b"loki:pw").decode()
        finally:
            await c.aclose()
    with pytest.raises(ValueError, match="either"):
        LokiClient("http://127.0.0.1:1", bearer_token="x", basic_auth=("a", "b"))


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (500, FailureReason.SERVER_ERROR),
        (503, FailureReason.SERVER_ERROR),
        (429, FailureReason.RATE_LIMITED),
        (400, FailureReason.REJECTED),
        (403, FailureReason.AUTH),
    ],
)
async def test_http_errors_carry_reason_status_and_body(
    loki_standin: LokiStandin, client: LokiClient, status: int, reason: FailureReason
) -> None:
    loki_standin.fail_next(1, status=status, body="boom from loki")
    with pytest.raises(LokiError) as info:
        await client.query_range('{app="x"}', start_ns=T0, end_ns=T0 + SEC, limit=10)
    assert info.value.reason is reason and info.value.status == status
    assert str(info.value) == f"HTTP {status}: boom from loki"


async def test_loki_refusals_are_reported_with_lokis_message(loki_standin: LokiStandin, client: LokiClient) -> None:
    with pytest.raises(LokiError, match="max entries limit") as info:
        await client.query_range('{app="x"}', start_ns=T0, end_ns=T0 + SEC, limit=5001)
    assert info.value.reason is FailureReason.REJECTED
    with pytest.raises(LokiError, match="empty-compatible"):
        await client.query_range('{app=~".*"}', start_ns=T0, end_ns=T0 + SEC, limit=10)


async def test_timeout_is_bounded(loki_standin: LokiStandin) -> None:
    loki_standin.delay = 1.0
    c = LokiClient(loki_standin.url, timeout=0.2)
    try:
        t = time.monotonic()
        with pytest.raises(LokiError) as info:
            await c.query_range('{app="x"}', start_ns=T0, end_ns=T0 + SEC, limit=10)
        assert info.value.reason is FailureReason.TIMEOUT
        assert time.monotonic() - t < 0.8
    finally:
        await c.aclose()


async def test_connection_refused() -> None:
    async with LokiStandin() as loki:
        url = loki.url
    c = LokiClient(url, timeout=1.0)
    try:
        with pytest.raises(LokiError) as info:
            await c.query_range('{app="x"}', start_ns=T0, end_ns=T0 + SEC, limit=10)
        assert info.value.reason is FailureReason.CONNECTION
    finally:
        await c.aclose()


def test_malformed_answers_are_invalid() -> None:
    for body in [
        [],
        {"status": "error"},
        {"status": "success", "data": {"resultType": "matrix", "result": []}},
        {"status": "success", "data": {"resultType": "streams", "result": [{"stream": {}, "values": [[1, "x"]]}]}},
        {"status": "success", "data": {"resultType": "streams", "result": [{"stream": {}, "values": [["x", "y"]]}]}},
    ]:
        with pytest.raises(LokiError) as info:
            parse_streams(body)
        assert info.value.reason is FailureReason.INVALID


async def test_tls_verification_with_ca_file_and_refusal_without(loki_standin: LokiStandin, tmp_path: Path) -> None:
    """The stand-in's app is also served over TLS (a second site on its runner) with a trustme certificate."""
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    runner = loki_standin._runner
    assert runner is not None
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx)
    await site.start()
    assert site._server is not None
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    url = f"https://127.0.0.1:{port}"
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    loki_standin.push({"app": "x"}, T0, "over tls")
    clients = [
        LokiClient(url, ca_file=str(ca_file)),
        LokiClient(url),
        LokiClient(url, verify_tls=False),
    ]
    try:
        streams = await clients[0].query_range('{app="x"}', start_ns=T0, end_ns=T0 + SEC, limit=10)
        assert [e.line for s in streams for e in s.entries] == ["over tls"]
        with pytest.raises(LokiError) as info:  # unknown CA: verification is on by default
            await clients[1].query_range('{app="x"}', start_ns=T0, end_ns=T0 + SEC, limit=10)
        assert info.value.reason is FailureReason.CONNECTION
        streams = await clients[2].query_range('{app="x"}', start_ns=T0, end_ns=T0 + SEC, limit=10)
        assert [e.line for s in streams for e in s.entries] == ["over tls"]
    finally:
        for c in clients:
            await c.aclose()
        await site.stop()
        await asyncio.sleep(0)
