"""Logging: every line is JSON whoever logs it, and a repeating failure is one line per interval with a count."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest

from alert_router.logging import REPEATED, RepeatFilter
from tests.e2e.service import ServiceProcess
from tests.helpers import JSON_TYPE, fixture_bytes, wait_for, write_config
from tests.netproxy import TcpProxy


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def record(name: str, level: int, msg: Any, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, None) if exc is not None else None
    return logging.LogRecord(name, level, __file__, 1, msg, (), exc_info)


def test_repeat_filter_passes_one_per_interval_and_counts_the_rest() -> None:
    clock = Clock()
    f = RepeatFilter(60, clock)
    floor = "Failed to restore the pool connection floor; retrying"
    assert f.filter(record("asyncpg.pool", logging.WARNING, floor, OSError()))
    assert [f.filter(record("asyncpg.pool", logging.WARNING, floor, OSError())) for _ in range(6)] == [False] * 6
    # The same failure while its cause changes (reset, then refused): still one failure.
    assert not f.filter(record("asyncpg.pool", logging.WARNING, floor, ConnectionRefusedError()))
    # Another logger or another level is another failure.
    assert f.filter(record("asyncpg.connect", logging.WARNING, floor, OSError()))
    assert f.filter(record("asyncpg.pool", logging.ERROR, floor, OSError()))
    # Info lines are never held back.
    assert all(f.filter(record("alert_router.app", logging.INFO, "started")) for _ in range(3))
    clock.now += 60
    again = record("asyncpg.pool", logging.WARNING, floor, OSError())
    assert f.filter(again)
    assert getattr(again, REPEATED) == 7


def test_repeat_filter_tells_structlog_events_apart_by_receiver() -> None:
    clock = Clock()
    f = RepeatFilter(60, clock)

    def event(**kw: Any) -> logging.LogRecord:
        return record("alert_router.deliver", logging.WARNING, {"event": "delivery attempt failed", **kw})

    assert f.filter(event(receiver="slack", outbox_id=1))
    assert not f.filter(event(receiver="slack", outbox_id=2))  # the same failure, another item
    assert f.filter(event(receiver="telegram", outbox_id=3))
    clock.now += 61
    later = event(receiver="slack", outbox_id=4)
    assert f.filter(later)
    assert later.msg[REPEATED] == 1
    assert RepeatFilter(0, clock).filter(event(receiver="slack"))  # 0: every line


def run_python(code: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stderr.splitlines()


def test_library_tracebacks_warnings_and_own_events_are_json_lines() -> None:
    lines = run_python(
        """
        import logging, warnings, structlog
        from alert_router.logging import configure_logging
        configure_logging("json", "info")  # repeats: once per 60 s (the default)
        try:
            raise ConnectionRefusedError("connect call failed")
        except OSError:
            for _ in range(5):
                logging.getLogger("asyncpg.pool").warning("Failed to restore the pool connection floor; retrying",
                                                          exc_info=True)
        logging.getLogger("telegram.ext").error("Error while getting Updates: %s", "Conflict")
        logging.getLogger("kubernetes.client.rest").info("per-request chatter")
        warnings.warn("something is deprecated", UserWarning)
        log = structlog.get_logger("alert_router.deliver")
        for _ in range(3):
            log.warning("store unavailable; delivery pauses", error="no answer", bearer_token="s3cret")
        log.info("alert-router started")
        log.debug("not at info level")
        """
    )
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    events = Counter((r["logger"], r["event"].splitlines()[0]) for r in records)
    assert events[("asyncpg.pool", "Failed to restore the pool connection floor; retrying")] == 1
    assert events[("alert_router.deliver", "store unavailable; delivery pauses")] == 1
    assert events[("telegram.ext", "Error while getting Updates: Conflict")] == 1
    assert ("alert_router.deliver", "alert-router started") in events
    assert not any(r["logger"] == "kubernetes.client.rest" for r in records), "library info lines stay out"
    assert not any(r["event"] == "not at info level" for r in records)
    floor = next(r for r in records if r["logger"] == "asyncpg.pool")
    assert floor["level"] == "warning"
    assert "ConnectionRefusedError: connect call failed" in floor["exception"]
    assert any(r["logger"] == "py.warnings" and "something is deprecated" in r["event"] for r in records)
    own = next(r for r in records if r["event"] == "store unavailable; delivery pauses")
    assert own["bearer_token"] == "***"
    assert all({"timestamp", "level", "logger", "event"} <= r.keys() for r in records)


@pytest.mark.e2e
async def test_a_database_outage_leaves_a_json_log_with_each_failure_once(
    tmp_path: Path, fresh_pg_database: Callable[[], str]
) -> None:
    dsn = fresh_pg_database()
    parts = urlsplit(dsn)
    async with TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432) as proxy:
        proxied = dsn.replace(f"@{parts.hostname}:{parts.port}/", f"@127.0.0.1:{proxy.port}/")
        # The default log.repeat_interval (60 s) outlasts the test: each failure may be logged once.
        cfg = write_config(tmp_path, f"store: {proxied}\npostgres: {{connect_timeout: 1s, pool_min: 2}}\n")
        svc = ServiceProcess(cfg)
        await svc.start()
        try:
            proxy.cut()  # the database goes away: every pooled connection breaks, reconnects are refused
            async with aiohttp.ClientSession() as session:
                for _ in range(5):  # webhooks during the outage: each is answered 503 (and would be logged)
                    async with session.post(svc.url + "/webhook", data=fixture_bytes("firing-service-down.json"),
                                            headers=JSON_TYPE) as r:
                        assert r.status == 503
                await wait_for(lambda: _logged(svc.log, "Failed to restore the pool connection floor"), 20)
                await wait_for(lambda: _logged(svc.log, "store unavailable; delivery pauses"), 20)
            proxy.forward()
            await wait_for(lambda: _ready(svc), 20)
        finally:
            svc.stop()
    lines = svc.log.read_text().splitlines()
    records = [json.loads(line) for line in lines]  # no plain-text traceback anywhere
    failures = Counter((r["logger"], r["level"], r["event"]) for r in records if r["level"] in ("warning", "error"))
    assert failures, lines
    assert max(failures.values()) == 1, failures  # each failure once in the interval, however often it happened
    assert any(r["event"].startswith("webhook not stored: store unavailable") for r in records), failures


def _logged(log: Path, text: str) -> bool:
    return text in log.read_text()


async def _ready(svc: ServiceProcess) -> bool:
    try:
        async with aiohttp.ClientSession() as s, s.get(svc.url + "/readyz") as r:
            return r.status == 200
    except aiohttp.ClientError:
        return False
