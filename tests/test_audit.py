"""The audit log is a hash chain: `audit verify` catches an edited, a removed, a reordered or a cut-off record."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from alert_router.audit import GENESIS, AuditChain, AuditEntry, AuditRecord, seal, verify
from alert_router.cli import main
from alert_router.config import load
from alert_router.store import create_store
from tests.helpers import running_app, write_config

ENTRIES = [
    AuditEntry("matched", {"fingerprint": "f1"}, runbook="restart", run_id=1, target="Deployment/prod/model-api"),
    AuditEntry("step", {"action": "rollout_restart", "status": "ok"}, runbook="restart", run_id=1),
    AuditEntry("step", {"action": "wait_rollout", "status": "ok"}, runbook="restart", run_id=1),
    AuditEntry("approval_granted", {}, runbook="retrain", run_id=2, actor="alice"),
    AuditEntry("finished", {"status": "succeeded", "summary": "done"}, runbook="restart", run_id=1),
]


def chain_of(entries: list[AuditEntry]) -> list[AuditRecord]:
    out, prev = [], GENESIS
    for i, e in enumerate(entries, start=1):
        rec = seal(e, i, 1_700_000_000.0 + i, prev)
        out.append(rec)
        prev = rec.hash
    return out


def test_an_untouched_chain_verifies() -> None:
    records = chain_of(ENTRIES)
    result = verify(AuditChain(records, head_seq=5, head_hash=records[-1].hash))
    assert result.ok and result.checked == 5 and result.head_hash == records[-1].hash
    assert records[1].prev_hash == records[0].hash


def test_each_kind_of_tampering_is_named() -> None:
    records = chain_of(ENTRIES)

    def problems(recs: list[AuditRecord]) -> str:
        return " ".join(verify(AuditChain(recs, head_seq=5, head_hash=records[-1].hash)).problems)

    edited = [*records[:1], dataclasses.replace(records[1], actor="mallory"), *records[2:]]
    assert "record #2: content does not match its hash: the record was edited" in problems(edited)
    assert "record #3 missing" in problems(records[:2] + records[3:])
    assert "out of order" in problems([records[0], records[2], records[1], records[3], records[4]])
    assert "records at the end were removed" in problems(records[:4])


# -- against the store and the CLI ---------------------------------------------------------------


async def _store_with_records(tmp_path: Path) -> tuple[Path, Path]:
    cfg = write_config(tmp_path)
    config = load(cfg, {})
    store = create_store(config.store_url)
    await store.open()
    try:
        for e in ENTRIES:
            await store.append_audit([e], time.time())
    finally:
        await store.close()
    return cfg, Path(config.store_url.removeprefix("sqlite:///"))


def _tamper(db: Path, *statements: str) -> None:
    conn = sqlite3.connect(db)
    try:
        for stmt in statements:
            conn.execute(stmt)
        conn.commit()
    finally:
        conn.close()


TAMPERING: dict[str, tuple[Callable[[Path], None], str]] = {
    "edited": (lambda db: _tamper(db, "UPDATE audit_log SET actor='mallory' WHERE seq=2"),
               "record #2: content does not match its hash: the record was edited"),
    "edited-data": (lambda db: _tamper(db, """UPDATE audit_log SET data='{"action":"rollout_restart","status":"failed"}'
                                               WHERE seq=2"""),
                    "record #2: content does not match its hash"),
    "removed": (lambda db: _tamper(db, "DELETE FROM audit_log WHERE seq=3"),
                "record #3 missing: records were removed"),
    "reordered": (lambda db: _tamper(db, "UPDATE audit_log SET seq=-2 WHERE seq=2",
                                     "UPDATE audit_log SET seq=2 WHERE seq=3",
                                     "UPDATE audit_log SET seq=3 WHERE seq=-2"),
                  "does not link to the record before it"),
    "cut-off": (lambda db: _tamper(db, "DELETE FROM audit_log WHERE seq=5"),
                "the log ends at #4 but its head names #5: records at the end were removed"),
}


async def test_audit_verify_accepts_an_intact_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg, _ = await _store_with_records(tmp_path)
    assert await asyncio.to_thread(main, ["audit", "verify", "--config", str(cfg)]) == 0
    assert "OK: 5 audit record(s), chain intact" in capsys.readouterr().out


@pytest.mark.parametrize("kind", sorted(TAMPERING))
async def test_audit_verify_catches_tampering(kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg, db = await _store_with_records(tmp_path)
    tamper, expected = TAMPERING[kind]
    tamper(db)
    assert await asyncio.to_thread(main, ["audit", "verify", "--config", str(cfg)]) == 1
    out = capsys.readouterr().out
    assert expected in out, out
    assert out.startswith("TAMPERED: ")


async def test_audit_list_filters(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg, _ = await _store_with_records(tmp_path)
    assert await asyncio.to_thread(main, ["audit", "list", "--config", str(cfg), "--runbook", "retrain"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert "#4" in line and "approval_granted" in line and "by=alice" in line
    future = str(int(time.time()) + 3600)
    assert await asyncio.to_thread(main, ["audit", "list", "--config", str(cfg), "--since", future]) == 0
    assert capsys.readouterr().out.strip() == "no audit records"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_pruning_keeps_the_chain_verifiable(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}" if backend == "sqlite" else request.getfixturevalue("fresh_pg_database")()
    store = create_store(url)
    await store.open()
    try:
        await store.append_audit(ENTRIES[:3], 1000.0)
        await store.append_audit(ENTRIES[3:], 2000.0)
        assert await store.prune_audit(1500.0) == 3
        chain = await store.audit_chain()
        assert [r.seq for r in chain.records] == [4, 5] and chain.anchor_seq == 3
        assert verify(chain).ok
        await store.append_audit([AuditEntry("finished", {"status": "failed"})], 3000.0)
        assert verify(await store.audit_chain()).ok
    finally:
        await store.close()


# -- over the API ---------------------------------------------------------------------------------


async def test_audit_api_is_authenticated_and_verifiable_by_the_client(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, "auth: {bearer_token: tok}\n")
    async with running_app(cfg) as (client, rt):
        await rt.store.append_audit(ENTRIES, time.time())
        assert (await client.get("/api/v1/audit")).status == 401
        assert (await client.get("/api/v1/audit", headers={"Authorization": "Bearer nope"})).status == 401
        r = await client.get("/api/v1/audit", headers={"Authorization": "Bearer tok"})
        assert r.status == 200
        body = await r.json()
        r = await client.get("/api/v1/audit?run_id=2", headers={"Authorization": "Bearer tok"})
        (only,) = (await r.json())["records"]
        r = await client.get("/api/v1/audit/verify", headers={"Authorization": "Bearer tok"})
        assert r.status == 200 and (await r.json())["ok"] is True
    records = [AuditRecord.from_json(obj) for obj in body["records"]]
    assert [r.event for r in records] == [e.event for e in ENTRIES]
    assert verify(AuditChain(records)).ok  # the client recomputes every hash itself
    assert only["actor"] == "alice" and only["data"] == {}


async def test_api_refuses_everything_without_configured_credentials(tmp_path: Path) -> None:
    async with running_app(write_config(tmp_path)) as (client, _):
        for path in ("/api/v1/audit", "/api/v1/runs"):
            assert (await client.get(path)).status == 403
        assert (await client.post("/api/v1/runs/1/approve", json={"user": "x"})).status == 403


async def test_audit_list_into_a_closed_pipe_exits_quietly(tmp_path: Path) -> None:
    """`alert-router audit list | head`: the reader went away; no BrokenPipeError traceback, status 141."""
    import subprocess
    import sys

    cfg, _ = await _store_with_records(tmp_path)

    def run() -> tuple[int, str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "alert_router", "audit", "list", "--config", str(cfg)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()  # the reader is gone before the first line is written
        with proc.stderr:
            err = proc.stderr.read().decode()
        return proc.wait(timeout=60), err

    code, err = await asyncio.to_thread(run)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert code == 141
