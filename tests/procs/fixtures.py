"""Pytest fixtures that run real Alertmanager, Prometheus and PostgreSQL processes on loopback.

Registered as a plugin by ``tests/conftest.py``. Every process is stopped and its temp dir removed at
teardown, pass or fail; when a test fails, the tail of each process log it used is added to the report.

- ``alertmanager_factory``: ``await alertmanager_factory(webhooks, count=1, clustered=False, **options)``
  returns a list of started :class:`~tests.procs.alertmanager.Alertmanager`.
- ``prometheus_factory``: ``await prometheus_factory(**options)`` returns a started
  :class:`~tests.procs.prometheus.Prometheus`.
- ``postgres_dsn`` (session): a DSN of a fresh ``ar_test_<random>`` database, dropped at session end.
- ``fresh_pg_database``: a callable returning the DSN of a new empty database, dropped after the test.
- ``throwaway_postgres``: a private :class:`~tests.procs.postgres.PostgresServer` the test may stop,
  kill and restart; never the shared server.

Set ``AR_TEST_PG_PRIVATE=1`` to make the session use a private server even when a shared one answers, and
``AR_TEST_PG_ADMIN_DSN`` to point the session at a specific server.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Sequence
from typing import Any, Protocol

import pytest

from tests.procs.alertmanager import (
    ALERTMANAGER_BIN,
    Alertmanager,
    ClusterSettings,
    Webhook,
    free_port,
    require_binary,
)
from tests.procs.postgres import (
    PostgresServer,
    create_database,
    database_of,
    drop_database,
    find_shared_server,
)
from tests.procs.prometheus import PROMETHEUS_BIN, Prometheus

PRIVATE_PG_ENV = "AR_TEST_PG_PRIVATE"


class LogSource(Protocol):
    """Anything with a name and a log tail: the processes these fixtures start."""

    @property
    def name(self) -> str:
        """A short label such as ``alertmanager@40123``."""
        ...

    def log_text(self, tail_lines: int = 200) -> str:
        """The last lines of the process log."""
        ...


_LOG_SOURCES = pytest.StashKey[list[LogSource]]()


def register_log_source(node: pytest.Item, source: LogSource) -> None:
    """Attach ``source``'s log to ``node``'s report if the test fails."""
    node.stash.setdefault(_LOG_SOURCES, []).append(source)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    """Add the log tails of the processes a failing test used to its report."""
    report = yield
    if report.failed:
        for source in item.stash.get(_LOG_SOURCES, []):
            report.sections.append((f"{source.name} log (tail)", source.log_text() or "<empty>"))
    return report


def _require(path: str, what: str) -> None:
    try:
        require_binary(path, what)
    except FileNotFoundError as exc:
        pytest.fail(str(exc), pytrace=False)


class AlertmanagerFactory:
    """Starts Alertmanagers for one test and stops them all at teardown."""

    def __init__(self, node: pytest.Item) -> None:
        self._node = node
        self.instances: list[Alertmanager] = []

    async def __call__(
        self,
        webhooks: Sequence[Webhook | str],
        *,
        count: int = 1,
        clustered: bool = False,
        gossip_interval: str = "50ms",
        pushpull_interval: str = "1s",
        peer_timeout: str = "2s",
        wait_settled: bool = True,
        **options: Any,
    ) -> list[Alertmanager]:
        """Start ``count`` Alertmanagers sending to ``webhooks``; with ``clustered``, peered with each other.

        ``options`` are :class:`~tests.procs.alertmanager.Alertmanager` fields (``group_by``, ``group_wait``,
        ``group_interval``, ``repeat_interval``, ``resolve_timeout``, ``receiver_name``, ``extra_args``).
        Clustered instances are returned once gossip has settled with every peer visible (unless
        ``wait_settled`` is false); the first in the list usually has cluster position 0.
        """
        if count < 1:
            raise ValueError("count must be at least 1")
        cluster_ports = [free_port(udp_too=True) for _ in range(count)] if clustered else []
        started: list[Alertmanager] = []
        for index in range(count):
            cluster = None
            if clustered:
                cluster = ClusterSettings(
                    listen_port=cluster_ports[index],
                    peers=[f"127.0.0.1:{p}" for i, p in enumerate(cluster_ports) if i != index],
                    gossip_interval=gossip_interval,
                    pushpull_interval=pushpull_interval,
                    peer_timeout=peer_timeout,
                    expected_peers=count - 1,
                )
            am = Alertmanager(webhooks=list(webhooks), cluster=cluster, **options)
            self.instances.append(am)
            register_log_source(self._node, am)
            started.append(am)
        await asyncio.gather(*(am.start(wait_settled=wait_settled) for am in started))
        return started

    def cleanup(self) -> None:
        """Stop every instance and remove its temp dir."""
        for am in self.instances:
            am.cleanup()


@pytest.fixture
async def alertmanager_factory(request: pytest.FixtureRequest) -> AsyncIterator[AlertmanagerFactory]:
    """A callable that starts real Alertmanagers on loopback; all are stopped at teardown."""
    _require(ALERTMANAGER_BIN, "Alertmanager")
    factory = AlertmanagerFactory(request.node)
    try:
        yield factory
    finally:
        factory.cleanup()


class PrometheusFactory:
    """Starts Prometheus servers for one test and stops them all at teardown."""

    def __init__(self, node: pytest.Item) -> None:
        self._node = node
        self.instances: list[Prometheus] = []

    async def __call__(self, **options: Any) -> Prometheus:
        """Start a Prometheus with :class:`~tests.procs.prometheus.Prometheus` fields as ``options``.

        Useful ones: ``scrape_targets``, ``rules`` (file name -> YAML), ``alertmanager_urls``,
        ``scrape_interval``, ``evaluation_interval``, ``external_labels``.
        """
        prom = Prometheus(**options)
        self.instances.append(prom)
        register_log_source(self._node, prom)
        await prom.start()
        return prom

    def cleanup(self) -> None:
        """Stop every instance and remove its temp dir."""
        for prom in self.instances:
            prom.cleanup()


@pytest.fixture
async def prometheus_factory(request: pytest.FixtureRequest) -> AsyncIterator[PrometheusFactory]:
    """A callable that starts real Prometheus servers on loopback; all are stopped at teardown."""
    _require(PROMETHEUS_BIN, "Prometheus")
    factory = PrometheusFactory(request.node)
    try:
        yield factory
    finally:
        factory.cleanup()


def _new_private_server() -> PostgresServer:
    try:
        return PostgresServer()
    except FileNotFoundError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def pg_admin_dsn() -> Iterator[str]:
    """Admin DSN of the PostgreSQL the session uses: the shared one if it answers, else a private one."""
    shared = None if os.environ.get(PRIVATE_PG_ENV) else find_shared_server()
    if shared is not None:
        yield shared
        return
    server = _new_private_server()
    try:
        server.start()
        yield server.admin_dsn
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def postgres_dsn(pg_admin_dsn: str) -> Iterator[str]:
    """DSN of an empty ``ar_test_<random>`` database for the whole session, dropped at its end."""
    dsn = create_database(pg_admin_dsn)
    try:
        yield dsn
    finally:
        drop_database(pg_admin_dsn, database_of(dsn))


@pytest.fixture
def fresh_pg_database(pg_admin_dsn: str) -> Iterator[Callable[[], str]]:
    """A callable returning the DSN of a new empty database; each is dropped after the test."""
    created: list[str] = []

    def make() -> str:
        dsn = create_database(pg_admin_dsn)
        created.append(database_of(dsn))
        return dsn

    try:
        yield make
    finally:
        for name in created:
            drop_database(pg_admin_dsn, name)


@pytest.fixture
def throwaway_postgres(request: pytest.FixtureRequest) -> Iterator[PostgresServer]:
    """A private, started PostgreSQL server the test owns (stop/kill/restart freely); deleted afterwards.

    Use ``server.create_database()`` (or ``await server.acreate_database()``) for a DSN.
    """
    server = _new_private_server()
    register_log_source(request.node, server)
    try:
        server.start()
        yield server
    finally:
        server.cleanup()
