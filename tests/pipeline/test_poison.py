"""No poison bodies: what one store cannot hold never holds back the others, on SQLite and PostgreSQL alike.

A U+0000 anywhere in a body is kept as U+FFFD (PostgreSQL's text cannot hold U+0000; both stores keep the
same thing), an over-long ``groupKey`` or fingerprint is shortened with a hash, and a body that fails at
ingest is set aside (failed, counted, listed) without holding back the rest of its batch.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from alert_router.cli import main
from alert_router.config import load
from alert_router.errors import StoreRejected, StoreUnavailable
from alert_router.metrics import Metrics
from alert_router.models import MAX_KEY_BYTES
from alert_router.pipeline.ingest import Ingestor
from alert_router.store import create_store
from alert_router.store.base import InboxItem
from tests.helpers import JSON_TYPE, fixture_json, read_jsonl, running_app, settle, write_config


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'data' / 'store.db'}"
    make: Callable[[], str] = request.getfixturevalue("fresh_pg_database")
    return make()


def body(n: int, *, group_key: str | None = None, fingerprint: str | None = None, label: str = "x",
         annotation: str = "fine") -> dict[str, Any]:
    """A one-alert body of its own group ``n``."""
    doc = fixture_json("firing-service-down.json")
    alert = doc["alerts"][0]
    alert["labels"]["alertname"] = f"Poison{n}"
    alert["labels"]["detail"] = label
    alert["annotations"]["summary"] = annotation
    alert["fingerprint"] = fingerprint or f"{n:016x}"
    doc["groupKey"] = group_key or f'{{}}:{{alertname="Poison{n}"}}'
    return doc


POISON = {
    "nul in groupKey": body(1, group_key='{}:{alertname="Poison1\x00"}'),
    "nul in fingerprint": body(2, fingerprint="00000000\x0000000002"),
    "nul in a label value": body(3, label="a\x00b"),
    "nul in an annotation": body(4, annotation="\x00" * 3),
    "groupKey of 5 KB": body(5, group_key="{}:{alertname=\"Poison5\", x=\"" + "k" * 5000 + "\"}"),
    "fingerprint of 4 KB": body(6, fingerprint="f" * 4000),
}
CLEAN = [body(n) for n in range(10, 16)]


async def test_nul_and_long_keys_beside_clean_bodies_are_all_delivered(tmp_path: Path, store_url: str) -> None:
    out = tmp_path / "data" / "out.jsonl"
    config = write_config(tmp_path, f"store: {store_url}\n")
    statuses: dict[str, int] = {}
    async with running_app(config) as (client, rt):
        docs = [("clean", CLEAN[0]), *POISON.items(), *(("clean", d) for d in CLEAN[1:])]
        for name, doc in docs:
            r = await client.post("/webhook", data=json.dumps(doc).encode(), headers=JSON_TYPE)
            statuses[name] = r.status
        await settle(rt)
        failed = await rt.store.failed_inbox()
        metrics = await (await client.get("/metrics")).text()
    assert set(statuses.values()) == {200}, statuses  # nothing answered 5xx (retried for ever) or 4xx (lost)
    assert not failed
    assert "alert_router_inbox_failed_total 0.0" in metrics
    records = read_jsonl(out)
    names = sorted(rec["alerts"][0]["labels"]["alertname"] for rec in records)
    assert names == sorted(d["alerts"][0]["labels"]["alertname"] for _, d in docs)  # each delivered, once
    by_name = {rec["alerts"][0]["labels"]["alertname"]: rec for rec in records}
    text = json.dumps(records, ensure_ascii=False)
    assert "\x00" not in text and "\\u0000" not in text
    assert by_name["Poison1"]["group_key"] == '{}:{alertname="Poison1\ufffd"}'
    assert by_name["Poison2"]["alerts"][0]["fingerprint"] == "00000000\ufffd00000002"
    assert by_name["Poison3"]["alerts"][0]["labels"]["detail"] == "a\ufffdb"
    assert by_name["Poison4"]["alerts"][0]["annotations"]["summary"] == "\ufffd" * 3
    assert len(by_name["Poison5"]["group_key"].encode()) <= MAX_KEY_BYTES
    assert len(by_name["Poison6"]["alerts"][0]["fingerprint"].encode()) <= MAX_KEY_BYTES


async def test_a_body_that_fails_at_ingest_is_set_aside_and_holds_back_nothing(
    tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """One body the store refuses, one that fails every time: the four clean ones of the batch go through."""
    path = write_config(tmp_path, f"store: {store_url}\ningest: {{max_attempts: 3}}\n")
    config = load(path, {})
    store = create_store(config.store_url)
    await store.open()
    try:
        metrics = Metrics()
        ingest = Ingestor(store, config, metrics, "test-owner")
        docs = [CLEAN[0], body(20), CLEAN[1], body(21), CLEAN[2], CLEAN[3]]
        for i, doc in enumerate(docs):
            await store.enqueue(json.dumps(doc).encode(), doc["groupKey"], time.time() + i)
        real_commit = store.commit_inbox
        refused_key, flaky_key = docs[1]["groupKey"], docs[3]["groupKey"]

        async def commit(item: InboxItem, *args: Any, **kwargs: Any) -> Any:
            if item.group_key == refused_key:
                raise StoreRejected("value too long for type character varying(8)")
            if item.group_key == flaky_key:
                raise StoreUnavailable('invalid byte sequence for encoding "UTF8": 0x00 (as a driver might say)')
            return await real_commit(item, *args, **kwargs)

        monkeypatch.setattr(store, "commit_inbox", commit)
        assert await ingest.run_once() == 6
        alerts = {a.labels["alertname"] for a in await store.alerts()}
        assert alerts == {d["alerts"][0]["labels"]["alertname"] for d in (CLEAN[0], CLEAN[1], CLEAN[2], CLEAN[3])}
        (refused,) = await store.failed_inbox()  # set aside at once: the store will never take it
        assert refused.group_key == refused_key and "refuses" in refused.error
        for _ in range(5):  # the flaky one is claimed again once its lease lapses, until it runs out of attempts
            await _expire_leases(store)
            await ingest.run_once()  # the store answers its ping: this body fails, not the store
        failed = {f.group_key: f for f in await store.failed_inbox()}
        assert set(failed) == {refused_key, flaky_key}
        assert failed[flaky_key].attempts == 3 and "0x00" in failed[flaky_key].error
        assert metrics.inbox_failed._value.get() == 2
        assert (await store.depth(time.time())).inbox == 0
        capsys.readouterr()
        assert await asyncio.to_thread(main, ["inbox", "failed", "--config", str(path), "--json"]) == 0
        listed = json.loads(capsys.readouterr().out)
        assert {f["group_key"] for f in listed} == {refused_key, flaky_key}
    finally:
        await store.close()


async def _expire_leases(store: Any) -> None:
    """Let every claimed inbox item's lease lapse now (as if the lease time had passed)."""
    if hasattr(store, "_pool") and store._pool is not None:
        async with store._pool.acquire() as conn:
            await conn.execute("UPDATE inbox SET lease_until = 0 WHERE status = 'pending'")
    else:
        await store._write(lambda conn: conn.execute("UPDATE inbox SET lease_until = 0 WHERE status = 'pending'"))


async def test_postgresql_refusing_the_data_is_store_rejected_naming_the_field(
    fresh_pg_database: Callable[[], str],
) -> None:
    """PostgreSQL's data exceptions (here U+0000 in text) are permanent: StoreRejected, not StoreUnavailable."""
    store = create_store(fresh_pg_database())
    await store.open()
    try:
        with pytest.raises(StoreRejected) as caught:
            await store.enqueue(b"{}", "group\x00key", time.time())
        assert caught.value.field == "groupKey"
        assert await store.enqueue(b"{}", "group\ufffdkey", time.time()) >= 1  # the store itself is fine
    finally:
        await store.close()


async def test_an_outage_sets_nothing_aside(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """While the store does not answer, every body fails: ingest pauses, and no body is given up on."""
    config = load(write_config(tmp_path, "ingest: {max_attempts: 2}\n"), {})
    store = create_store(config.store_url)
    await store.open()
    try:
        metrics = Metrics()
        ingest = Ingestor(store, config, metrics, "test-owner")
        for doc in CLEAN[:3]:
            await store.enqueue(json.dumps(doc).encode(), doc["groupKey"], time.time())

        async def down(*args: Any, **kwargs: Any) -> Any:
            raise StoreUnavailable("database is locked")

        monkeypatch.setattr(store, "commit_inbox", down)
        monkeypatch.setattr(store, "ping", down)
        for _ in range(4):
            with pytest.raises(StoreUnavailable):
                await ingest.run_once()
            await _expire_leases(store)
        monkeypatch.undo()
        assert await store.failed_inbox() == [] and metrics.inbox_failed._value.get() == 0
        await ingest.run_once()
        assert len(await store.alerts()) == 3
    finally:
        await store.close()
