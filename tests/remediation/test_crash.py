"""A run cut short by a crash (SIGKILL of a real `alert-router serve`) is reported on restart, never repeated."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from alert_router.config import load
from alert_router.remediation.commands import open_for_reading
from alert_router.remediation.runs import RunRecord
from tests.helpers import JSON_TYPE, read_jsonl, settle, wait_for
from tests.procs.alertmanager import free_port
from tests.remediation.helpers import RESTART, alert_body, remediation_app, remediation_config, wait_run
from tests.standins.kube import KubeApiStandin

WAIT_FOR_RESOLUTION = RESTART + """\
  - action: wait_resolved
    timeout: 60s
"""


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    """Start `alert-router serve` for a config; killed (if still alive) at teardown."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(cfg: Path) -> subprocess.Popen[bytes]:
        log = (tmp_path / f"serve{len(procs)}.log").open("wb")
        env = {k: v for k, v in os.environ.items() if not k.startswith("ALERT_ROUTER_")}
        proc = subprocess.Popen(
            [sys.executable, "-m", "alert_router", "serve", "--config", str(cfg), "--log-format", "console"],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path,
        )
        log.close()
        procs.append(proc)
        return proc

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait(10)


async def _ready(url: str) -> None:
    async def up() -> bool:
        try:
            async with aiohttp.ClientSession() as s, s.get(url + "/readyz", timeout=aiohttp.ClientTimeout(1)) as r:
                return r.status == 200
        except aiohttp.ClientError:
            return False

    await wait_for(up, 20, 0.1)


async def _run_in_store(cfg: Path, predicate: Any) -> RunRecord:
    """Poll the live service's store read-only (as `alert-router runs` does) until a run matches."""
    config = load(cfg, {})

    async def check() -> RunRecord | None:
        store = open_for_reading(config.store_url)
        try:
            await store.open()
        except Exception:
            return None
        try:
            runs = await store.runs()
        except Exception:
            return None
        finally:
            await store.close()
        return next((r for r in runs if predicate(r)), None)

    found: RunRecord = await wait_for(check, 20, 0.1)
    return found


def _step_status(run: RunRecord, index: int) -> str | None:
    steps = run.data.get("steps") or []
    return steps[index]["status"] if len(steps) > index else None


async def _crash_and_restart(tmp_path: Path, kube: KubeApiStandin, serve: Any, step_index: int,
                             delay: float = 0.0) -> tuple[RunRecord, list[Any], list[dict[str, Any]]]:
    port = free_port()
    cfg = remediation_config(tmp_path, {"r": WAIT_FOR_RESOLUTION}, kubeconfig=kube.kubeconfig(tmp_path / "kc"),
                             extra=f"listen: 127.0.0.1:{port}\n")
    proc = serve(cfg)
    url = f"http://127.0.0.1:{port}"
    await _ready(url)
    kube.delay = delay
    async with aiohttp.ClientSession() as s, s.post(url + "/webhook", data=alert_body(), headers=JSON_TYPE) as r:
        assert r.status == 200
    running = await _run_in_store(cfg, lambda r: r.status == "running" and _step_status(r, step_index) == "started")
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    kube.delay = 0.0
    async with remediation_app(cfg) as (_, rt):
        (run,) = await wait_run(rt, "interrupted")
        await settle(rt)
        audit = await rt.store.audit_records(run_id=run.id)
        await asyncio.sleep(0.3)  # nothing may resume the run
        assert (await rt.store.run(run.id)).status == "interrupted"  # type: ignore[union-attr]
    assert run.id == running.id and run.finished_at is not None
    records = read_jsonl(tmp_path / "data" / "out.jsonl")
    runs = [x for rec in records for x in rec.get("extra", {}).get("runbook_runs", [])]
    return run, audit, runs


async def test_crash_during_a_wait_is_reported_on_restart(tmp_path: Path, serve: Any) -> None:
    with KubeApiStandin() as kube:
        kube.add_deployment("prod", "model-api", replicas=1)
        run, audit, posted = await _crash_and_restart(tmp_path, kube, serve, step_index=2)
        patches = kube.requests_to("/deployments/model-api", "PATCH")
    assert len(patches) == 1  # the restart happened once and was not repeated
    assert "interrupted during step 3 (wait_resolved)" in run.summary and "not resumed" in run.summary
    assert [s["status"] for s in run.data["steps"]] == ["ok", "ok", "started"]
    assert audit[-1].event == "interrupted" and audit[-1].details["previous_owner"]
    assert posted[-1]["run_id"] == run.id and posted[-1]["status"] == "interrupted"


async def test_crash_during_a_mutating_step_is_never_repeated(tmp_path: Path, serve: Any) -> None:
    with KubeApiStandin() as kube:
        kube.add_deployment("prod", "model-api", replicas=1)
        run, audit, posted = await _crash_and_restart(tmp_path, kube, serve, step_index=0, delay=2.0)
        time.sleep(0.1)
        patches = kube.requests_to("/deployments/model-api", "PATCH")
    assert patches == []
    assert "interrupted during step 1 (rollout_restart)" in run.summary
    assert "may or may not have been applied" in run.summary and "not repeated automatically" in run.summary
    assert audit[-1].event == "interrupted"
    assert posted[-1]["status"] == "interrupted"
