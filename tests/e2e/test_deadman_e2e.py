"""The dead-man's switch across three replicas, fed by a real Alertmanager re-sending a Watchdog every second.

Alertmanager stops (the pipeline is broken): exactly one page across the replicas, also after one of them
restarts. A new Alertmanager sends the Watchdog again: exactly one resolution. The Watchdog itself is never
notified.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.service import ServiceProcess
from tests.e2e.test_replicas import RECEIVERS, TOKEN, out_files, replicas
from tests.helpers import read_jsonl, wait_for
from tests.procs.alertmanager import Webhook

pytestmark = pytest.mark.e2e

AFTER = 5.0  # five times the Watchdog's repeat: room for a late one on a loaded machine
EXTRA = f"deadman: {{receivers: [pager], after: {AFTER:g}s}}\n"
PAGER = RECEIVERS + "  - name: pager\n    file: {path: pager.jsonl, fsync: false}\n"
WATCHDOG = {"alertname": "Watchdog", "severity": "none"}


def pages(svcs: list[ServiceProcess]) -> Counter[str]:
    """Pages written by all replicas, by status."""
    return Counter(rec["status"] for s in svcs for rec in read_jsonl(s.config.parent / "data" / "pager.jsonl"))


async def heartbeats(svcs: list[ServiceProcess]) -> float:
    return sum([await s.metric("alert_router_deadman_heartbeats_total") for s in svcs])


async def test_three_replicas_page_once_when_the_watchdog_stops_and_resolve_once_when_it_returns(
    tmp_path: Path, fresh_pg_database: Callable[[], str], alertmanager_factory: Any
) -> None:
    dsn = fresh_pg_database()
    async with replicas(tmp_path, dsn, extra=EXTRA, receivers=PAGER) as svcs:
        hooks = [Webhook(s.url + "/webhook", bearer_token=TOKEN) for s in svcs]
        options = {"group_wait": "0s", "group_interval": "1s", "repeat_interval": "1s"}
        (am,) = await alertmanager_factory(hooks, **options)
        forever = datetime.now(UTC) + timedelta(hours=1)
        await am.push_alerts([{"labels": WATCHDOG, "endsAt": forever}])
        await wait_for(lambda: _at_least(heartbeats(svcs), 6), 20)
        await asyncio.sleep(AFTER + 1)  # longer than deadman.after: the heartbeat keeps the switch quiet
        assert pages(svcs) == Counter()

        am.stop()  # the alerting pipeline breaks
        await wait_for(lambda: pages(svcs)["firing"] >= 1, AFTER * 3 + 10)
        await asyncio.sleep(AFTER)  # every replica checked several times since
        assert pages(svcs) == Counter({"firing": 1})

        # A restarted replica remembers (the state is in the database): no second page.
        svcs[0].stop()
        svcs[0] = ServiceProcess(svcs[0].config)
        await svcs[0].start()
        await asyncio.sleep(AFTER + 2)
        assert pages(svcs) == Counter({"firing": 1})

        (am2,) = await alertmanager_factory(hooks, **options)
        await am2.push_alerts([{"labels": WATCHDOG, "endsAt": forever}])
        await wait_for(lambda: pages(svcs)["resolved"] >= 1, 20)
        await asyncio.sleep(2)  # more heartbeats, to every replica
        assert pages(svcs) == Counter({"firing": 1, "resolved": 1})
        watchdog_notified = [rec for f in out_files(svcs) for rec in read_jsonl(f)
                             if any(a["labels"].get("alertname") == "Watchdog" for a in rec["alerts"])]
        assert watchdog_notified == []


async def _at_least(value: Any, n: float) -> bool:
    return bool(await value >= n)
