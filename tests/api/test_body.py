"""Request bodies are read whole however the network splits them; the cap, the media type and a body cut short.

Every test here sends with the raw-socket client of ``tests/rawhttp.py``, which writes a body in separate
TCP segments with pauses between them, as a real network delivers it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import fixture_json, read_jsonl, running_app, settle, wait_for, write_config
from tests.rawhttp import send


def big_group(alerts: int, annotation: int = 400) -> bytes:
    """One group of ``alerts`` alerts with long descriptions, as Alertmanager sends after an outage."""
    body = fixture_json("firing-service-down.json")
    template = body["alerts"][0]
    body["alerts"] = []
    for i in range(alerts):
        alert = json.loads(json.dumps(template))
        alert["labels"]["instance"] = f"10.0.{i // 250}.{i % 250}:8080"
        alert["annotations"]["description"] = f"replica {i} " + "d" * annotation
        alert["fingerprint"] = f"{i:016x}"
        body["alerts"].append(alert)
    return json.dumps(body).encode()


async def stored(rt: Any) -> int:
    d = await rt.store.depth(time.time())
    return d.inbox + sum(d.outbox.values()) + len(await rt.store.alerts())


def metric(text: str, line: str) -> float:
    for got in text.splitlines():
        if got.startswith(line + " "):
            return float(got.rsplit(" ", 1)[1])
    return 0.0


@pytest.mark.parametrize(
    ("segments", "content_type"),
    [(2, "application/json"), (10, "application/json; charset=utf-8"), (100, "Application/JSON")],
)
async def test_a_body_in_pieces_is_read_whole_and_notified_once(
    tmp_path: Path, segments: int, content_type: str
) -> None:
    body = big_group(300)  # about 150 KB: the size that was cut short and answered 400
    async with running_app(write_config(tmp_path)) as (client, rt):
        answer = await send(
            client.port or 0, "/webhook", body, segments=segments, pause=0.02, headers={"Content-Type": content_type}
        )
        assert answer.status == 200, answer.body[:300]
        assert json.loads(answer.body)["alerts"] == 300
        await settle(rt)
    (rec,) = read_jsonl(tmp_path / "data" / "out.jsonl")
    assert len(rec["alerts"]) == 300


async def test_a_small_body_in_two_segments_50ms_apart_is_accepted(tmp_path: Path) -> None:
    body = json.dumps(fixture_json("firing-service-down.json")).encode()
    async with running_app(write_config(tmp_path)) as (client, rt):
        answer = await send(client.port or 0, "/webhook", body, segments=2, pause=0.05)
        assert answer.status == 200, answer.body[:300]
        await settle(rt)
    assert len(read_jsonl(tmp_path / "data" / "out.jsonl")) == 1


async def test_a_chunked_body_in_pieces_is_read_whole(tmp_path: Path) -> None:
    body = big_group(100)
    async with running_app(write_config(tmp_path)) as (client, rt):
        answer = await send(client.port or 0, "/webhook", body, segments=20, pause=0.01, chunked=True)
        assert answer.status == 200, answer.body[:300]
        await settle(rt)
    (rec,) = read_jsonl(tmp_path / "data" / "out.jsonl")
    assert len(rec["alerts"]) == 100


async def test_a_chunked_body_over_the_cap_gets_413_before_it_ends(tmp_path: Path) -> None:
    body = big_group(2000)  # about 1 MB, sent in 1,000 chunks against a cap of 64 KiB
    config = write_config(tmp_path, "webhook: {max_body_bytes: 65536}\n")
    async with running_app(config) as (client, rt):
        answer = await send(client.port or 0, "/webhook", body, segments=1000, pause=0.002, chunked=True)
        assert answer.status == 413, answer.body[:300]
        assert json.loads(answer.body)["limit"] == 65536
        assert answer.sent < len(body)  # answered while the body was still coming
        assert await stored(rt) == 0
        metrics = await (await client.get("/metrics")).text()
    assert metric(metrics, 'alert_router_webhooks_total{outcome="too_large"}') == 1


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/xml", None],
)
async def test_a_body_that_is_not_json_gets_415_and_nothing_is_stored(
    tmp_path: Path, content_type: str | None
) -> None:
    body = json.dumps(fixture_json("firing-service-down.json")).encode()
    headers = {"Content-Type": content_type} if content_type else {"Content-Type": ""}
    async with running_app(write_config(tmp_path)) as (client, rt):
        answer = await send(client.port or 0, "/webhook", body, headers=headers)
        assert answer.status == 415, answer.body[:300]
        assert "application/json" in json.loads(answer.body)["error"]
        await settle(rt)
        assert await stored(rt) == 0
    assert not (tmp_path / "data" / "out.jsonl").exists()


async def test_a_body_that_stops_midway_gets_no_4xx_and_stores_nothing(tmp_path: Path) -> None:
    body = big_group(200)
    async with running_app(write_config(tmp_path)) as (client, rt):
        answer = await send(client.port or 0, "/webhook", body, segments=10, pause=0.01, stop_after=len(body) // 2)
        assert not 400 <= answer.status < 500
        text = ""

        async def counted() -> bool:
            nonlocal text
            text = await (await client.get("/metrics")).text()
            return metric(text, 'alert_router_body_incomplete_total{endpoint="webhook"}') == 1

        await wait_for(counted)
        assert metric(text, 'alert_router_webhooks_total{outcome="incomplete"}') == 1
        assert metric(text, 'alert_router_webhooks_total{outcome="invalid"}') == 0
        await settle(rt)
        assert await stored(rt) == 0


async def test_a_body_that_stalls_past_the_read_timeout_is_answered_503(tmp_path: Path) -> None:
    body = big_group(50)
    config = write_config(tmp_path, "webhook: {read_timeout: 0.5s}\n")
    async with running_app(config) as (client, rt):
        # Half the body, then silence (the connection stays open) until the server answers.
        answer = await send(client.port or 0, "/webhook", body, segments=2, pause=30)
        assert answer.status == 503, answer.body[:300]
        assert "Retry-After" in {k.title(): v for k, v in answer.headers.items()}
        await settle(rt)
        assert await stored(rt) == 0


async def test_telegram_and_the_runs_api_refuse_other_media_types(tmp_path: Path) -> None:
    async with running_app(write_config(tmp_path, "auth: {bearer_token: tok}\n")) as (client, _):
        answer = await send(
            client.port or 0,
            "/api/v1/runs/1/approve",
            b'{"user": "ops"}',
            segments=2,
            pause=0.02,
            headers={"Content-Type": "text/plain", "Authorization": "Bearer tok"},
        )
        assert answer.status == 415, answer.body[:300]
