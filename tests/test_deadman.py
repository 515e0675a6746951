"""The dead-man's switch: the Watchdog is recorded and never notified; its absence pages once; its return resolves."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from alert_router.config import load
from alert_router.deadman import PAGE_ALERTNAME, SWITCH
from alert_router.errors import ConfigError
from tests.helpers import JSON_TYPE, fixture_json, read_jsonl, running_app, settle, wait_for, write_config

RECEIVERS = """\
receivers:
  - name: file
    file: {path: out.jsonl, fsync: false}
  - name: pager
    file: {path: pager.jsonl, fsync: false}
"""


def watchdog_body(*others: dict[str, Any]) -> bytes:
    """A webhook like the one Alertmanager sends for kube-prometheus-stack's Watchdog (plus ``others``)."""
    body = fixture_json("firing-service-down.json")
    dog = dict(body["alerts"][0])
    dog.update(labels={"alertname": "Watchdog", "severity": "none", "prometheus": "monitoring/kube-prometheus"},
               annotations={"summary": "An alert that should always be firing to certify that Alertmanager works"},
               fingerprint="00watchdog000000")
    body.update(alerts=[dog, *others], groupKey='{}:{alertname="Watchdog"}',
                groupLabels={"alertname": "Watchdog"}, commonLabels={}, commonAnnotations={})
    return json.dumps(body).encode()


def config(tmp: Path, deadman: str) -> Path:
    return write_config(tmp, deadman, receivers=RECEIVERS)


async def test_the_watchdog_is_recorded_and_never_notified(tmp_path: Path) -> None:
    async with running_app(config(tmp_path, "")) as (client, rt):
        r = await client.post("/webhook", data=watchdog_body(), headers=JSON_TYPE)
        assert r.status == 200
        assert (await r.json())["heartbeat"] is True
        assert (await rt.store.depth(0)).inbox == 0  # nothing queued for a heartbeat-only body
        # In a group with a real alert: the alert is notified, the Watchdog is not.
        other = fixture_json("firing-service-down.json")["alerts"][0]
        r = await client.post("/webhook", data=watchdog_body(other), headers=JSON_TYPE)
        assert r.status == 200
        await settle(rt)
        out = read_jsonl(tmp_path / "data" / "out.jsonl")
        names = [a["labels"]["alertname"] for rec in out for a in rec["alerts"]]
        assert names == ["ModelServiceDown"]
        assert rt.metrics.registry.get_sample_value("alert_router_deadman_heartbeats_total") == 2
        state = await rt.store.deadman_beat(SWITCH, 0, 0, lambda s: [])
        assert state.status == "ok" and state.last_seen > 0


async def test_match_empty_routes_the_watchdog_like_any_alert(tmp_path: Path) -> None:
    async with running_app(config(tmp_path, "deadman: {match: []}\n")) as (client, rt):
        assert (await client.post("/webhook", data=watchdog_body(), headers=JSON_TYPE)).status == 200
        await settle(rt)
        assert [rec["alerts"][0]["labels"]["alertname"] for rec in read_jsonl(tmp_path / "data" / "out.jsonl")] == [
            "Watchdog"
        ]


async def test_a_missing_heartbeat_pages_once_and_its_return_resolves_once(tmp_path: Path) -> None:
    pager = tmp_path / "data" / "pager.jsonl"
    cfg = config(tmp_path, "deadman: {receivers: [pager], after: 1s, labels: {team: platform}}\n")
    async with running_app(cfg) as (client, rt):
        await wait_for(lambda: len(read_jsonl(pager)) == 1, 15)
        (page,) = read_jsonl(pager)
        assert page["status"] == "firing" and page["rule"] == "deadman"
        (alert,) = page["alerts"]
        assert alert["labels"] == {"alertname": PAGE_ALERTNAME, "severity": "critical", "source": "alert-router",
                                   "team": "platform"}
        assert rt.metrics.registry.get_sample_value("alert_router_deadman_firing") == 1
        await asyncio.sleep(1.5)  # several more checks: still one page
        assert len(read_jsonl(pager)) == 1
        assert not read_jsonl(tmp_path / "data" / "out.jsonl")  # the page goes to deadman.receivers only

        assert (await client.post("/webhook", data=watchdog_body(), headers=JSON_TYPE)).status == 200
        await wait_for(lambda: len(read_jsonl(pager)) == 2, 10)
        resolved = read_jsonl(pager)[1]
        assert resolved["status"] == "resolved" and resolved["group_key"] == page["group_key"]
        assert resolved["alerts"][0]["fingerprint"] == alert["fingerprint"]
        assert rt.metrics.registry.get_sample_value("alert_router_deadman_firing") == 0
        await client.post("/webhook", data=watchdog_body(), headers=JSON_TYPE)
        await asyncio.sleep(0.5)
        assert len(read_jsonl(pager)) == 2


def test_deadman_receivers_must_exist_and_matchers_parse(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(config(tmp_path, "deadman:\n  receivers: [pagr]\n"), {})
    (problem,) = info.value.problems
    assert "deadman: unknown receiver 'pagr'" in problem.message and problem.line > 1
    with pytest.raises(ConfigError, match=r"deadman\.match"):
        load(config(tmp_path, "deadman: {match: ['alertname=~\"(\"']}\n"), {})
