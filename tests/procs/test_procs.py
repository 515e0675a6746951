"""The process fixtures drive real Alertmanager, Prometheus and PostgreSQL exactly as the e2e tests will."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web

from tests.procs.alertmanager import Alertmanager, ProcessStartError, Webhook, free_port
from tests.procs.fixtures import AlertmanagerFactory, PrometheusFactory
from tests.procs.postgres import PostgresServer, create_database, database_of, drop_database

pytestmark = pytest.mark.e2e

FIRING_ENDS_AT = "0001-01-01T00:00:00Z"


@dataclass
class Delivery:
    """One webhook POST as the receiver saw it."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class Receiver:
    """A tiny aiohttp webhook receiver on a loopback port, recording every POST."""

    url: str
    deliveries: asyncio.Queue[Delivery] = field(default_factory=asyncio.Queue)
    wait_s: float = 15.0

    async def next(self) -> Delivery:
        """Return the next delivery, failing after ``wait_s`` seconds."""
        async with asyncio.timeout(self.wait_s):
            return await self.deliveries.get()

    async def collect(self, predicate: Callable[[Delivery], bool]) -> Delivery:
        """Return the first delivery matching ``predicate``, skipping others, failing after ``wait_s``."""
        async with asyncio.timeout(self.wait_s):
            while True:
                delivery = await self.deliveries.get()
                if predicate(delivery):
                    return delivery


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    queue: asyncio.Queue[Delivery] = asyncio.Queue()

    async def handle(request: web.Request) -> web.Response:
        body = await request.json()
        await queue.put(Delivery(request.path, dict(request.headers), body))
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield Receiver(url=f"http://{host}:{port}/webhook", deliveries=queue)
    finally:
        await runner.cleanup()


def _alertnames(delivery: Delivery) -> set[str]:
    return {a["labels"]["alertname"] for a in delivery.body["alerts"]}


async def test_alertmanager_delivers_firing_and_resolved_with_bearer_auth(
    alertmanager_factory: AlertmanagerFactory, receiver: Receiver
) -> None:
    [am] = await alertmanager_factory([Webhook(receiver.url, bearer_token="s3cret-token")])
    labels = {"alertname": "ServiceDown", "namespace": "prod", "severity": "page", "path": 'C:\\x "y"'}
    await am.push_alerts(
        [{"labels": labels, "annotations": {"summary": "api is down"}, "generatorURL": "http://prom/graph"}]
    )

    firing = await receiver.next()
    assert firing.path == "/webhook"
    assert firing.headers["Authorization"] == "Bearer s3cret-token"
    assert firing.headers["User-Agent"].startswith("Alertmanager/")
    body = firing.body
    assert body["version"] == "4"
    assert body["status"] == "firing"
    assert body["receiver"] == "alert-router"
    assert body["groupLabels"] == {"alertname": "ServiceDown"}
    assert body["groupKey"] == '{}:{alertname="ServiceDown"}'
    assert body["truncatedAlerts"] == 0
    [alert] = body["alerts"]
    assert alert["labels"] == labels
    assert alert["annotations"] == {"summary": "api is down"}
    assert alert["endsAt"] == FIRING_ENDS_AT
    assert alert["generatorURL"] == "http://prom/graph"

    listed = await am.alerts(filter=labels)
    assert [a["fingerprint"] for a in listed] == [alert["fingerprint"]]

    await am.resolve(labels)
    resolved = await receiver.collect(lambda d: d.body["status"] == "resolved")
    [gone] = resolved.body["alerts"]
    assert gone["fingerprint"] == alert["fingerprint"]
    assert gone["startsAt"] == alert["startsAt"]
    assert gone["endsAt"] != FIRING_ENDS_AT


async def test_basic_auth_and_max_alerts_truncation(
    alertmanager_factory: AlertmanagerFactory, receiver: Receiver
) -> None:
    hook = Webhook(receiver.url, basic_auth=("am", "pa:ss"), max_alerts=1, send_resolved=False)
    [am] = await alertmanager_factory([hook], group_by=["team"])
    await am.push_alerts([{"labels": {"alertname": f"Drift{i}", "team": "ml"}} for i in range(3)])

    delivery = await receiver.next()
    expected = "Basic " + base64.b64encode(b"am:pa:ss").decode()
    assert delivery.headers["Authorization"] == expected
    assert len(delivery.body["alerts"]) == 1
    assert delivery.body["truncatedAlerts"] == 2
    assert delivery.body["groupKey"] == '{}:{team="ml"}'


async def test_clustered_pair_both_deliver_and_share_silences(
    alertmanager_factory: AlertmanagerFactory, receiver: Receiver
) -> None:
    am1, am2 = await alertmanager_factory([Webhook(receiver.url, bearer_token="t")], count=2, clustered=True)
    status = await am1.status()
    assert status["cluster"]["status"] == "ready"
    assert len(status["cluster"]["peers"]) == 2

    # Alerts are not gossiped, so each one reaches the receiver only through the instance it was pushed to.
    await am1.push_alerts([{"labels": {"alertname": "OnlyOnFirst"}}])
    await am2.push_alerts([{"labels": {"alertname": "OnlyOnSecond"}}])
    seen: set[str] = set()
    async with asyncio.timeout(15):
        while seen != {"OnlyOnFirst", "OnlyOnSecond"}:
            seen |= _alertnames(await receiver.next())
    assert await am2.alerts(filter={"alertname": "OnlyOnFirst"}) == []

    # Silences are gossiped: one created on am1 becomes visible on am2.
    silence_id = await am1.create_silence({"alertname": "Anything"})
    async with asyncio.timeout(10):
        while True:
            if silence_id in {s["id"] for s in await am2.silences()}:
                break
            await asyncio.sleep(0.1)


async def test_silence_create_list_expire(alertmanager_factory: AlertmanagerFactory, receiver: Receiver) -> None:
    [am] = await alertmanager_factory([receiver.url])
    labels = {"alertname": "Noisy", "severity": "warning"}
    silence_id = await am.create_silence({"alertname": "Noisy"}, comment="maintenance")
    await am.push_alerts([{"labels": labels}])

    [silence] = [s for s in await am.silences() if s["id"] == silence_id]
    assert silence["status"]["state"] == "active"
    assert silence["comment"] == "maintenance"
    assert silence["matchers"] == [{"name": "alertname", "value": "Noisy", "isRegex": False, "isEqual": True}]

    async with asyncio.timeout(5):
        while True:
            [alert] = await am.alerts(filter=labels)
            if alert["status"]["state"] == "suppressed":
                break
            await asyncio.sleep(0.1)
    assert alert["status"]["silencedBy"] == [silence_id]
    assert await am.alerts(filter=labels, silenced=False) == []

    await am.expire_silence(silence_id)
    [silence] = [s for s in await am.silences() if s["id"] == silence_id]
    assert silence["status"]["state"] == "expired"
    # Once the silence is gone the alert is notified.
    delivery = await receiver.next()
    assert _alertnames(delivery) == {"Noisy"}
    assert receiver.deliveries.empty()


async def test_missing_binary_fails_with_install_hint() -> None:
    am = Alertmanager(webhooks=["http://127.0.0.1:1/"], binary="/nonexistent/prometheus-alertmanager")
    try:
        with pytest.raises(FileNotFoundError, match=r"scripts/install-system-deps\.sh"):
            await am.start()
    finally:
        am.cleanup()


async def test_start_failure_raises_with_process_log() -> None:
    am = Alertmanager(webhooks=["ftp://not-an-http-url"])
    try:
        with pytest.raises(ProcessStartError, match=r"exited with status 1 before it was ready(.|\n)*ftp"):
            await am.start()
        assert am.process is not None
        assert not am.process.running
    finally:
        am.cleanup()


def test_free_port_is_bindable_and_not_repeated() -> None:
    ports = {free_port(udp_too=True) for _ in range(20)}
    assert len(ports) == 20
    port = ports.pop()
    with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        tcp.bind(("127.0.0.1", port))
        udp.bind(("127.0.0.1", port))


async def test_postgres_dsn_is_a_private_fresh_database(postgres_dsn: str) -> None:
    conn = await asyncpg.connect(postgres_dsn)
    try:
        assert await conn.fetchval("SELECT 1") == 1
        name = await conn.fetchval("SELECT current_database()")
        assert name == database_of(postgres_dsn)
        assert name.startswith("ar_test_")
        tables = await conn.fetchval("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
        assert tables == 0
    finally:
        await conn.close()


async def test_fresh_pg_database_gives_distinct_empty_databases(
    fresh_pg_database: Callable[[], str], pg_admin_dsn: str
) -> None:
    first, second = fresh_pg_database(), fresh_pg_database()
    assert database_of(first) != database_of(second)
    conn = await asyncpg.connect(first)
    try:
        await conn.execute("CREATE TABLE t (x int)")
    finally:
        await conn.close()
    conn = await asyncpg.connect(second)
    try:
        assert await conn.fetchval("SELECT to_regclass('public.t')") is None
    finally:
        await conn.close()


async def test_drop_database_removes_it_even_with_open_connections(pg_admin_dsn: str) -> None:
    dsn = await asyncio.to_thread(create_database, pg_admin_dsn)
    holder = await asyncpg.connect(dsn)
    await asyncio.to_thread(drop_database, pg_admin_dsn, database_of(dsn))
    assert holder.is_closed() or not await _still_usable(holder)
    await holder.close()
    admin = await asyncpg.connect(pg_admin_dsn)
    try:
        exists = await admin.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1", database_of(dsn))
    finally:
        await admin.close()
    assert exists == 0


async def _still_usable(conn: asyncpg.Connection) -> bool:
    try:
        await conn.fetchval("SELECT 1")
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
        return False
    return True


async def test_throwaway_postgres_survives_restart_and_crash(throwaway_postgres: PostgresServer) -> None:
    server = throwaway_postgres
    assert server.port != 5432
    dsn = await server.acreate_database()
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE TABLE kept (x int); INSERT INTO kept VALUES (1)")
        owner = await conn.fetchval("SELECT current_setting('data_directory')")
        assert owner == str(server.data_dir)
    finally:
        await conn.close()
    if os.geteuid() == 0:
        assert server.process is not None
        status = await asyncio.to_thread(Path(f"/proc/{server.process.pid}/status").read_text)
        uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
        assert uid_line.split()[1] != "0", "PostgreSQL must not run as root"

    held = await asyncpg.connect(dsn)
    await server.arestart("fast")
    assert not await _still_usable(held)
    await held.close()
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM kept") == 1
        await conn.execute("INSERT INTO kept VALUES (2)")
    finally:
        await conn.close()

    server.kill()
    assert not server.running
    with pytest.raises(ConnectionRefusedError):
        await asyncpg.connect(dsn, timeout=2)
    await server.astart()
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM kept") == 2
    finally:
        await conn.close()


ALWAYS_FIRING_RULES = """
groups:
- name: procs-test
  rules:
  - alert: AlwaysFiring
    expr: vector(1)
    labels:
      severity: info
    annotations:
      summary: fires from the first evaluation
"""


async def test_prometheus_scrapes_and_alerts_through_alertmanager(
    prometheus_factory: PrometheusFactory, alertmanager_factory: AlertmanagerFactory, receiver: Receiver
) -> None:
    [am] = await alertmanager_factory([receiver.url])
    prom = await prometheus_factory(rules={"always.yml": ALWAYS_FIRING_RULES}, alertmanager_urls=[am.url])

    async with asyncio.timeout(15):
        while True:
            up = await prom.query('up{job="prometheus"}')
            if up:
                break
            await asyncio.sleep(0.2)
    assert up[0]["value"][1] == "1"
    assert up[0]["metric"]["instance"] == f"127.0.0.1:{prom.port}"

    delivery = await receiver.collect(lambda d: "AlwaysFiring" in _alertnames(d))
    [alert] = delivery.body["alerts"]
    assert alert["labels"] == {"alertname": "AlwaysFiring", "severity": "info"}
    assert alert["generatorURL"].startswith("http://")
    assert [a["labels"]["alertname"] for a in await prom.alerts()] == ["AlwaysFiring"]
