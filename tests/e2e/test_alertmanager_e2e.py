"""End to end with a real Alertmanager 0.25: exactly one notification per alert state change.

Alertmanager sends to the service over loopback with bearer auth and short group/repeat intervals;
alerts are pushed through its API v2. The ``file`` receiver's lines are the notifications.
"""

import asyncio
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from alert_router.app import build_app
from alert_router.appkeys import RUNTIME
from alert_router.config import load
from tests.e2e.service import ServiceProcess
from tests.helpers import read_jsonl, settle, wait_for, write_config
from tests.procs.alertmanager import Webhook

pytestmark = pytest.mark.e2e

TOKEN = "e2e-token"
AUTH = f"auth: {{bearer_token: {TOKEN}}}\n"
ALERT = {
    "labels": {"alertname": "ModelServiceDown", "namespace": "prod", "deployment": "model-api", "severity": "critical"},
    "annotations": {"summary": "Model service might be down!"},
}


async def accepted(rt) -> float:
    return rt.metrics.webhooks.labels("accepted")._value.get()


async def test_one_notification_per_state_change(tmp_path: Path, alertmanager_factory) -> None:
    app = build_app(load(write_config(tmp_path, AUTH), {}))
    rt = app[RUNTIME]
    out = tmp_path / "data" / "out.jsonl"
    async with TestServer(app, host="127.0.0.1") as server:
        (am,) = await alertmanager_factory(
            [Webhook(str(server.make_url("/webhook")), bearer_token=TOKEN)],
            group_wait="1s",
            group_interval="1s",
            repeat_interval="2s",
        )
        await am.push_alerts([ALERT])
        await wait_for(lambda: len(read_jsonl(out)) == 1, 20)
        # Repeats keep arriving every repeat_interval and produce nothing new.
        seen = await accepted(rt)
        await wait_for(lambda: _more(rt, seen + 2), 20)
        await settle(rt)
        assert len(read_jsonl(out)) == 1
        await am.resolve(ALERT["labels"])
        await wait_for(lambda: len(read_jsonl(out)) == 2, 20)
        await asyncio.sleep(2.5)  # a resolved group is not repeated, and nothing else may appear
        await settle(rt)
    recs = read_jsonl(out)
    assert [r["status"] for r in recs] == ["firing", "resolved"]
    assert recs[0]["alerts"][0]["labels"] == ALERT["labels"]
    assert recs[0]["group_key"] == recs[1]["group_key"]
    assert rt.metrics.alerts_deduplicated._value.get() >= 2


async def _more(rt, n: float) -> bool:
    return await accepted(rt) >= n


async def test_two_unclustered_alertmanagers_produce_one(tmp_path: Path, alertmanager_factory) -> None:
    app = build_app(load(write_config(tmp_path, AUTH), {}))
    rt = app[RUNTIME]
    out = tmp_path / "data" / "out.jsonl"
    async with TestServer(app, host="127.0.0.1") as server:
        ams = await alertmanager_factory(
            [Webhook(str(server.make_url("/webhook")), bearer_token=TOKEN)],
            count=2,
            group_wait="1s",
            group_interval="1s",
            repeat_interval="1h",
        )
        await asyncio.gather(*(am.push_alerts([ALERT]) for am in ams))
        await wait_for(lambda: _more(rt, 2), 20)  # both instances delivered their copy
        await settle(rt)
        assert len(read_jsonl(out)) == 1
        await asyncio.gather(*(am.resolve(ALERT["labels"]) for am in ams))
        await wait_for(lambda: _more(rt, 4), 20)
        await settle(rt)
    assert [r["status"] for r in read_jsonl(out)] == ["firing", "resolved"]


async def test_wrong_token_is_refused_and_nothing_stored(tmp_path: Path, alertmanager_factory) -> None:
    app = build_app(load(write_config(tmp_path, AUTH), {}))
    rt = app[RUNTIME]
    async with TestServer(app, host="127.0.0.1") as server:
        (am,) = await alertmanager_factory([Webhook(str(server.make_url("/webhook")), bearer_token="wrong")])
        await am.push_alerts([ALERT])
        await wait_for(lambda: rt.metrics.webhooks.labels("unauthorized")._value.get() >= 1, 20)
        assert await rt.store.alerts() == []
        assert (await rt.store.depth(0)).inbox == 0
    assert read_jsonl(tmp_path / "data" / "out.jsonl") == []


async def test_sigkill_after_accept_delivers_after_restart(tmp_path: Path, alertmanager_factory) -> None:
    # The file receiver's directory is blocked by a plain file: delivery fails (retryably) until it is removed.
    blocker = tmp_path / "data" / "out"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("not a directory")
    receivers = "receivers:\n  - name: file\n    file: {path: out/out.jsonl, fsync: true}\n"
    cfg = write_config(
        tmp_path, AUTH + "delivery: {retry_for: 1s, attempt_timeout: 2s, postpone: 0.5s}\n", receivers=receivers
    )
    svc = ServiceProcess(cfg)
    await svc.start()
    try:
        (am,) = await alertmanager_factory(
            [Webhook(svc.url + "/webhook", bearer_token=TOKEN)],
            group_wait="1s",
            group_interval="1s",
            repeat_interval="1h",
        )
        await am.push_alerts([ALERT])
        await wait_for(lambda: svc.metric('alert_router_webhooks_total{outcome="accepted"}'), 20)
        await wait_for(lambda: svc.metric("alert_router_delivery_failures_total"), 20)
        svc.kill()
        blocker.unlink()
        await svc.start()
        out = tmp_path / "data" / "out" / "out.jsonl"
        await wait_for(lambda: len(read_jsonl(out)) == 1, 30)
        await asyncio.sleep(1.5)
        assert len(read_jsonl(out)) == 1
        assert read_jsonl(out)[0]["alerts"][0]["labels"]["alertname"] == "ModelServiceDown"
    finally:
        svc.stop()


async def test_a_group_of_300_alerts_with_long_annotations_is_delivered_once(
    tmp_path: Path, alertmanager_factory
) -> None:
    """About 600 KB in one body, under the 1 MiB cap: it arrives in many TCP segments and must be read whole."""
    app = build_app(load(write_config(tmp_path, AUTH), {}))
    rt = app[RUNTIME]
    out = tmp_path / "data" / "out.jsonl"
    alerts = [
        {
            "labels": {**ALERT["labels"], "instance": f"10.0.{i // 250}.{i % 250}:8080"},
            "annotations": {"summary": f"replica {i} is down", "description": f"replica {i}: " + "why " * 450},
        }
        for i in range(300)
    ]
    async with TestServer(app, host="127.0.0.1") as server:
        (am,) = await alertmanager_factory(
            [Webhook(str(server.make_url("/webhook")), bearer_token=TOKEN)],
            group_wait="1s",
            group_interval="1h",
            repeat_interval="1h",
        )
        await am.push_alerts(alerts)
        await wait_for(lambda: read_jsonl(out), 30)
        await asyncio.sleep(2)  # nothing else may appear (a retry of a body taken twice would)
        await settle(rt)
    (rec,) = read_jsonl(out)
    assert len(rec["alerts"]) == 300
    assert {a["labels"]["instance"] for a in rec["alerts"]} == {a["labels"]["instance"] for a in alerts}
    assert rt.metrics.webhooks.labels("invalid")._value.get() == 0
    assert rt.metrics.webhooks.labels("accepted")._value.get() == 1
