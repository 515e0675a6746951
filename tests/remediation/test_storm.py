"""A runbook storm: many alerts for one target in many groups make one run, and the audit names every refusal."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from alert_router.remediation.worker import BATCH
from tests.helpers import settle
from tests.remediation.helpers import RESTART, alert_body, post, remediation_app, remediation_config

GROUPS = 20
PER_GROUP = 10


def storm_bodies() -> list[bytes]:
    """``GROUPS`` webhook bodies (one Alertmanager group each) of ``PER_GROUP`` alerts, all for prod/model-api."""
    bodies = []
    for g in range(GROUPS):
        body = json.loads(alert_body(group_key=f'{{}}:{{alertname="ModelServiceDown", pod_group="{g}"}}'))
        first = body["alerts"][0]
        body["alerts"] = [
            dict(first, fingerprint=f"{g:04x}{i:012x}", labels={**first["labels"], "pod": f"model-api-{g}-{i}"})
            for i in range(PER_GROUP)
        ]
        bodies.append(json.dumps(body).encode())
    return bodies


async def test_a_storm_for_one_target_makes_one_run_and_accounts_for_every_trigger(tmp_path: Path) -> None:
    assert GROUPS <= BATCH
    cfg = remediation_config(tmp_path, {"r": RESTART}, dry_run=True)
    async with remediation_app(cfg) as (client, rt):
        await asyncio.gather(*(post(client, b) for b in storm_bodies()))

        async def runbook_queue_empty() -> bool:
            return (await rt.store.depth(0)).outbox.get("runbook", 0) == 0

        from tests.helpers import wait_for

        await wait_for(runbook_queue_empty, timeout=30)
        await settle(rt, timeout=30)
        runs = await rt.store.runs(limit=10_000)
        records = await rt.store.audit_records()
    admitted = [r for r in runs if r.status != "skipped"]
    assert len(admitted) == 1  # one run for the target, whatever the number of alerts
    skipped_runs = [r for r in runs if r.status == "skipped"]
    # Refusals in one batch share one record: far fewer skipped runs than refused triggers.
    assert len(skipped_runs) < GROUPS * PER_GROUP - 1
    accounted: list[str] = []
    batches = 0
    for rec in records:
        data = json.loads(rec.data)
        if rec.event == "matched":
            accounted.append(data["fingerprint"])
        elif rec.event == "skipped" and "count" in data:
            batches += 1
            assert data["count"] == len(data["fingerprints"])
            assert data["guard"] in ("lock", "cooldown") and data["reason"]  # what refused them, and why
            assert rec.target == "Deployment/prod/model-api"
            accounted.extend(data["fingerprints"])
        elif rec.event == "skipped":
            accounted.append(data["fingerprint"])
    assert batches >= 1
    every = {f"{g:04x}{i:012x}" for g in range(GROUPS) for i in range(PER_GROUP)}
    assert sorted(accounted) == sorted(every)  # each trigger in exactly one record


def test_items_stored_before_triggers_were_grouped_are_one_trigger() -> None:
    """A ``runbook`` item written by an earlier version holds one alert: it is one trigger, keyed by the item."""
    from alert_router.remediation.plan import triggers
    from alert_router.store.base import OutboxItem

    legacy = OutboxItem(7, "runbook", "r", "g", {"alert": {"fingerprint": "a"}, "rule": "x", "group_key": "g"}, 1, 0)
    assert list(triggers(legacy)) == [("outbox:7", legacy.payload)]
    grouped = OutboxItem(8, "runbook", "r", "g", {"group_key": "g", "triggers": [
        {"alert": {"fingerprint": "a"}, "rule": "x"}, {"alert": {"fingerprint": "b"}, "rule": "x"}]}, 1, 0)
    keys = [(k, p["alert"]["fingerprint"], p["group_key"]) for k, p in triggers(grouped)]
    assert keys == [("outbox:8/0", "a", "g"), ("outbox:8/1", "b", "g")]
