"""POST /webhook: auth, validation, size limit, durable accept, and nothing stored for rejected requests."""

import base64
import json
import time
from pathlib import Path

import pytest

from alert_router.errors import StoreRejected, StoreUnavailable
from tests.helpers import JSON_TYPE, fixture_bytes, fixture_json, read_jsonl, running_app, settle, write_config

AUTH = "auth:\n  bearer_token: s3cret-token\n  basic: {username: am, password: pw}\n"
BEARER = {"Authorization": "Bearer s3cret-token"}
SENT = {**BEARER, **JSON_TYPE}


async def stored(rt) -> int:
    d = await rt.store.depth(time.time())
    return d.inbox + sum(d.outbox.values()) + len(await rt.store.alerts())


async def test_accepts_and_delivers_to_file(tmp_path: Path) -> None:
    async with running_app(write_config(tmp_path, AUTH)) as (client, rt):
        r = await client.post("/webhook", data=fixture_bytes("firing-service-down.json"), headers=SENT)
        assert r.status == 200
        assert (await r.json())["status"] == "accepted"
        await settle(rt)
    (rec,) = read_jsonl(tmp_path / "data" / "out.jsonl")
    assert rec["receiver"] == "file" and rec["rule"] == "everything" and rec["status"] == "firing"
    assert rec["group_key"] == '{}:{alertname="ModelServiceDown", namespace="prod"}'
    assert rec["alerts"][0]["labels"]["alertname"] == "ModelServiceDown"
    assert rec["alerts"][0]["annotations"]["summary"] == "Model service might be down!"


async def test_basic_auth_accepted(tmp_path: Path) -> None:
    cred = base64.b64encode(b"am:pw").decode()
    async with running_app(write_config(tmp_path, AUTH)) as (client, _):
        r = await client.post("/webhook", data=fixture_bytes("firing-service-down.json"),
                              headers={"Authorization": f"Basic {cred}", **JSON_TYPE})
        assert r.status == 200


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Bearer s3cret-token-and-more"},
     {"Authorization": "Basic " + base64.b64encode(b"am:nope").decode()}, {"Authorization": "Basic !!!"},
     {"Authorization": "s3cret-token"}],
)
async def test_bad_credentials_get_401_and_store_nothing(tmp_path: Path, headers: dict[str, str]) -> None:
    async with running_app(write_config(tmp_path, AUTH)) as (client, rt):
        r = await client.post("/webhook", data=fixture_bytes("firing-service-down.json"), headers=headers)
        assert r.status == 401
        assert "WWW-Authenticate" in r.headers
        assert await stored(rt) == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", None),
        (json.dumps({**fixture_json("firing-service-down.json"), "version": "3"}).encode(), "version"),
        (json.dumps({**fixture_json("firing-service-down.json"), "alerts": "x"}).encode(), "alerts"),
        (b"[]", None),
    ],
)
async def test_bad_body_gets_400_naming_field(tmp_path: Path, body: bytes, field: str | None) -> None:
    async with running_app(write_config(tmp_path, AUTH)) as (client, rt):
        r = await client.post("/webhook", data=body, headers=SENT)
        assert r.status == 400
        err = await r.json()
        assert err["error"]
        assert err.get("field") == field
        assert await stored(rt) == 0
        metrics = await (await client.get("/metrics")).text()
        assert 'alert_router_webhooks_total{outcome="invalid"} 1.0' in metrics


async def test_oversized_body_gets_413(tmp_path: Path) -> None:
    body = fixture_json("firing-service-down.json")
    body["alerts"][0]["annotations"]["description"] = "x" * 5000
    async with running_app(write_config(tmp_path, AUTH + "webhook: {max_body_bytes: 4096}\n")) as (client, rt):
        r = await client.post("/webhook", data=json.dumps(body).encode(), headers=SENT)
        assert r.status == 413
        assert await stored(rt) == 0
        # A chunked body without Content-Length is measured too.

        async def chunks():
            yield json.dumps(body).encode()

        r = await client.post("/webhook", data=chunks(), headers=SENT)
        assert r.status == 413
        assert await stored(rt) == 0


async def test_store_down_gets_503(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with running_app(write_config(tmp_path, AUTH)) as (client, rt):

        async def broken(*a, **k):
            raise StoreUnavailable("disk on fire")

        monkeypatch.setattr(rt.store, "enqueue", broken)
        monkeypatch.setattr(rt.store, "ping", broken)
        r = await client.post("/webhook", data=fixture_bytes("firing-service-down.json"), headers=SENT)
        assert r.status == 503
        assert "Retry-After" in r.headers
        assert (await client.get("/readyz")).status == 503
        assert (await client.get("/healthz")).status == 200


async def test_a_body_the_store_refuses_for_good_gets_400_naming_the_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Retrying a body the store can never hold would be 503 for ever: it is a 400 that names the field."""
    async with running_app(write_config(tmp_path, AUTH)) as (client, rt):

        async def refused(*a, **k):
            raise StoreRejected("groupKey cannot be stored: index row size exceeds maximum", "groupKey")

        monkeypatch.setattr(rt.store, "enqueue", refused)
        r = await client.post("/webhook", data=fixture_bytes("firing-service-down.json"), headers=SENT)
        assert r.status == 400
        assert (await r.json())["field"] == "groupKey"


async def test_repeat_and_resolution(tmp_path: Path) -> None:
    async with running_app(write_config(tmp_path, AUTH)) as (client, rt):
        for name in ["firing-service-down.json", "repeat-service-down.json", "firing-service-down.json",
                     "resolved-service-down.json", "resolved-service-down.json"]:
            assert (await client.post("/webhook", data=fixture_bytes(name), headers=SENT)).status == 200
        await settle(rt)
        metrics = await (await client.get("/metrics")).text()
    recs = read_jsonl(tmp_path / "data" / "out.jsonl")
    assert [r["status"] for r in recs] == ["firing", "resolved"]
    assert "alert_router_alerts_deduplicated_total 3.0" in metrics
    assert 'alert_router_notifications_total{outcome="sent",receiver="file"} 2.0' in metrics


async def test_truncated_group_travels_together(tmp_path: Path) -> None:
    async with running_app(write_config(tmp_path)) as (client, rt):
        body = fixture_bytes("firing-latency-truncated.json")
        assert (await client.post("/webhook", data=body, headers=JSON_TYPE)).status == 200
        await settle(rt)
    (rec,) = read_jsonl(tmp_path / "data" / "out.jsonl")
    assert len(rec["alerts"]) == 3 and rec["truncated_alerts"] == 1
    assert sorted(rec["changed"]) == sorted(a["fingerprint"] for a in rec["alerts"])
