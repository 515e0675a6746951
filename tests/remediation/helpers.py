"""Helpers for the remediation tests: configs with runbooks and a kubeconfig, webhook bodies, waiting on runs."""

from __future__ import annotations

import contextlib
import copy
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alert_router.appkeys import Runtime
from alert_router.config import Config
from alert_router.remediation.runs import RunRecord
from tests.helpers import JSON_TYPE, fixture_json, running_app, settle, wait_for, write_config

RESTART = """\
name: restart
match: ['alertname="ModelServiceDown"']
target: {kind: Deployment, namespace: "{{ labels.namespace }}", name: "{{ labels.deployment }}"}
guards:
  allowed_namespaces: [prod, staging]
  cooldown: 30m
  max_runs: {count: 3, window: 6h}
  step_timeout: 10s
steps:
  - action: rollout_restart
  - action: wait_rollout
    timeout: 10s
"""


def rules_for(runbooks: dict[str, str]) -> str:
    """One rule per runbook file, matching the runbook's own alertname, sending to `file` and the runbook."""
    import yaml

    lines = ["rules:"]
    for text in runbooks.values():
        doc = yaml.safe_load(text)
        match = doc["match"][0] if isinstance(doc["match"], list) else doc["match"]
        lines.append(f"  - name: rule-{doc['name']}")
        lines.append(f"    match: [{json.dumps(match)}]")
        lines.append("    receivers: [file]")
        lines.append(f"    runbooks: [{doc['name']}]")
    lines.append("default:\n  receivers: [file]")
    return "\n".join(lines) + "\n"


def remediation_config(
    tmp: Path,
    runbooks: dict[str, str],
    *,
    kubeconfig: Path | None = None,
    dry_run: bool = False,
    extra: str = "",
    remediation: str = "",
) -> Path:
    """A config with the `file` receiver, one rule per runbook, fast polling and the stand-in's kubeconfig."""
    files = {f"{i}.yaml": text for i, text in enumerate(runbooks.values())}
    body = (
        f"dry_run: {'true' if dry_run else 'false'}\n"
        + (f"kubernetes: {{kubeconfig: {kubeconfig}}}\n" if kubeconfig else "")
        + "remediation: {poll_interval: 0.05, lease: 5s, retry: {attempts: 4, initial: 0.01, max: 0.05}"
        + (f", {remediation}" if remediation else "")
        + "}\n"
        + extra
    )
    return write_config(tmp, body, rules=rules_for(runbooks), runbooks=files)


def alert_body(
    alertname: str = "ModelServiceDown",
    labels: dict[str, str] | None = None,
    *,
    status: str = "firing",
    fingerprint: str = "f00dcafe00000001",
    group_key: str | None = None,
    starts_at: str | None = None,
) -> bytes:
    """A real Alertmanager 0.25 body (firing-service-down.json) with the alert replaced.

    A re-fire after a resolution needs a later ``starts_at`` (a new episode), as Alertmanager sends it.
    """
    body = fixture_json("firing-service-down.json")
    alert = copy.deepcopy(body["alerts"][0])
    all_labels = {"alertname": alertname, "namespace": "prod", "deployment": "model-api", "severity": "critical",
                  **(labels or {})}
    alert.update(labels=all_labels, status=status, fingerprint=fingerprint)
    if starts_at:
        alert["startsAt"] = starts_at
    if status == "resolved":
        alert["endsAt"] = "2026-11-27T00:10:00Z"
    body.update(alerts=[alert], status=status, commonLabels=all_labels,
                groupLabels={"alertname": alertname, "namespace": all_labels.get("namespace", "")})
    body["groupKey"] = group_key or f'{{}}:{{alertname="{alertname}", namespace="{all_labels.get("namespace", "")}"}}'
    return json.dumps(body).encode()


async def wait_run(rt: Runtime, status: str | set[str], *, runbook: str | None = None, timeout: float = 15.0,
                   count: int = 1) -> list[RunRecord]:
    """Wait until ``count`` runs (of ``runbook``) have one of the statuses; return them, oldest first."""
    wanted = {status} if isinstance(status, str) else status

    async def check() -> list[RunRecord] | None:
        runs = [r for r in await rt.store.runs(runbook=runbook, limit=1000) if r.status in wanted]
        return sorted(runs, key=lambda r: r.id) if len(runs) >= count else None

    found: list[RunRecord] = await wait_for(check, timeout)
    return found


async def post(client: Any, body: bytes) -> None:
    """POST a webhook body and require 200."""
    r = await client.post("/webhook", data=body, headers=JSON_TYPE)
    assert r.status == 200, await r.text()


def now() -> float:
    """Wall-clock time."""
    return time.time()


@asynccontextmanager
async def remediation_app(config: Config | Path) -> AsyncIterator[tuple[Any, Runtime]]:
    """``running_app`` that lets queued deliveries finish before shutdown.

    Shutting down while the deliverer is woken can hang it on Python 3.11 (``asyncio.wait_for`` swallows
    a cancellation that races the event): settling first keeps these tests away from that race.
    """
    async with running_app(config) as (client, rt):
        try:
            yield client, rt
        finally:
            with contextlib.suppress(AssertionError):
                await settle(rt, timeout=5)
