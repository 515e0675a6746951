"""``/healthz``, ``/readyz`` and ``/metrics``.

``/readyz`` answers within its documented 2 s whatever the database does, and only 200 when the store works;
``/metrics`` is open by default and ``metrics.auth`` puts credentials on it, while the probes stay open.

The PostgreSQL case runs the service against a real server through :class:`tests.netproxy.TcpProxy`, which
stalls the network the way a hung database or a black-holed route does: sockets stay open, nothing answers.
The SQLite cases load the store's own thread with work the way a storm does.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest

from alert_router.api.health import READY_TIMEOUT
from alert_router.errors import StoreUnavailable
from alert_router.store.sqlite import SQLiteStore
from tests.helpers import running_app, wait_for, write_config
from tests.netproxy import TcpProxy

# A probe that gets no answer within this is a failed probe (kubelet's readiness timeoutSeconds is 3 in the
# chart). Far above READY_TIMEOUT, far below what a stalled database used to cost (13 s, or a late 200).
PROBE_TIMEOUT = aiohttp.ClientTimeout(total=READY_TIMEOUT + 2.5)


async def probe(client: Any) -> tuple[int, dict[str, Any]]:
    """One readiness probe with the probe's own timeout; a probe that times out fails the test."""
    async with client.get("/readyz", timeout=PROBE_TIMEOUT) as r:
        return r.status, await r.json()


def via_proxy(dsn: str, proxy: TcpProxy) -> str:
    parts = urlsplit(dsn)
    return dsn.replace(f"@{parts.hostname}:{parts.port}/", f"@127.0.0.1:{proxy.port}/")


@pytest.mark.e2e
async def test_readyz_answers_503_within_2s_while_postgres_stalls_and_200_after(
    tmp_path: Path, fresh_pg_database: Callable[[], str]
) -> None:
    dsn = fresh_pg_database()
    parts = urlsplit(dsn)
    async with TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432) as proxy:
        cfg = write_config(tmp_path, f"store: {via_proxy(dsn, proxy)}\npostgres: {{connect_timeout: 1s}}\n")
        async with running_app(cfg) as (client, _rt):
            assert (await probe(client))[0] == 200
            proxy.stall()
            try:
                # Every probe during the stall answers, and answers "not ready": never a late 200.
                for _ in range(3):
                    status, body = await probe(client)
                    assert status == 503, body
                    assert body["status"] == "store unavailable"
            finally:
                proxy.forward()
            await wait_for(lambda: _status_is(client, 200), 20)


async def _status_is(client: Any, want: int) -> bool:
    return (await probe(client))[0] == want


async def test_readyz_stays_ready_while_the_sqlite_thread_works_through_a_backlog(tmp_path: Path) -> None:
    async with running_app(write_config(tmp_path)) as (client, rt):
        store = rt.store
        assert isinstance(store, SQLiteStore)
        # Several seconds of queued writes, each round of them short: a busy store, not a broken one.
        backlog = [asyncio.ensure_future(store._write(lambda c: time.sleep(0.03))) for _ in range(200)]
        try:
            await asyncio.sleep(0.3)
            for _ in range(3):
                status, body = await probe(client)
                assert status == 200, body
            assert not all(f.done() for f in backlog), "the backlog must still be queued when the probes answer"
        finally:
            await asyncio.gather(*backlog)


async def test_readyz_is_503_while_one_sqlite_commit_is_stuck_and_200_after(tmp_path: Path) -> None:
    async with running_app(write_config(tmp_path)) as (client, rt):
        store = rt.store
        assert isinstance(store, SQLiteStore)
        release = asyncio.Event()
        loop = asyncio.get_running_loop()
        stuck = asyncio.ensure_future(
            store._write(lambda c: asyncio.run_coroutine_threadsafe(release.wait(), loop).result(30))
        )
        try:
            await asyncio.sleep(READY_TIMEOUT * 0.75 + 0.3)  # longer than the stall readiness tolerates
            status, body = await probe(client)
            assert status == 503, body
            assert "running for" in body["error"]
        finally:
            release.set()
            await stuck
        await wait_for(lambda: _status_is(client, 200), 10)


async def test_ping_fails_when_the_last_sqlite_commit_failed(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    try:
        await store.ping()

        def failing_commit(conn: Any) -> None:
            conn.execute("COMMIT")  # ends the shared transaction early: the group's own COMMIT then fails

        with pytest.raises(StoreUnavailable):
            await store._write(failing_commit)
        with pytest.raises(StoreUnavailable, match="last commit failed"):
            await store.ping()
        await store._write(lambda c: c.execute("SELECT 1"))
        await store.ping()
    finally:
        await store.close()


async def test_metrics_are_open_without_metrics_auth(tmp_path: Path) -> None:
    async with running_app(write_config(tmp_path, "auth: {bearer_token: webhook-token}\n")) as (client, _):
        r = await client.get("/metrics")
        assert r.status == 200 and "alert_router_webhooks_total" in await r.text()


async def test_metrics_auth_asks_scrapers_for_credentials(tmp_path: Path) -> None:
    auth = "metrics: {auth: {bearer_token: scrape-token, basic: {username: prom, password: pw}}}\n"
    cfg = write_config(tmp_path, auth)
    async with running_app(cfg) as (client, _):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic " + base64.b64encode(
                b"prom:nope").decode()}):
            r = await client.get("/metrics", headers=headers)
            assert r.status == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
            assert "alert_router" not in await r.text()
        for headers in ({"Authorization": "Bearer scrape-token"},
                        {"Authorization": "Basic " + base64.b64encode(b"prom:pw").decode()}):
            r = await client.get("/metrics", headers=headers)
            assert r.status == 200 and "alert_router_webhooks_total" in await r.text()
        for probe in ("/healthz", "/readyz"):  # probes stay open: the kubelet sends no credentials
            assert (await client.get(probe)).status == 200
