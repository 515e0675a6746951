"""``/healthz``, ``/readyz`` and ``/metrics``: open by default; ``metrics.auth`` puts credentials on ``/metrics``."""

from __future__ import annotations

import base64
from pathlib import Path

from tests.helpers import running_app, write_config


async def test_metrics_are_open_without_metrics_auth(tmp_path: Path) -> None:
    async with running_app(write_config(tmp_path, "auth: {bearer_token: webhook-token}\n")) as (client, _):
        r = await client.get("/metrics")
        assert r.status == 200 and "alert_router_webhooks_total" in await r.text()


async def test_metrics_auth_asks_scrapers_for_credentials(tmp_path: Path) -> None:
    auth = "metrics: {auth: {bearer_token: scrape-token, basic: {username: prom, password: pw}}}\n"
    cfg = write_config(tmp_path, auth)
    async with running_app(cfg) as (client, _):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic " + base64.b64encode(
                b"prom:nope").decode()}):
            r = await client.get("/metrics", headers=headers)
            assert r.status == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
            assert "alert_router" not in await r.text()
        for headers in ({"Authorization": "Bearer scrape-token"},
                        {"Authorization": "Basic " + base64.b64encode(b"prom:pw").decode()}):
            r = await client.get("/metrics", headers=headers)
            assert r.status == 200 and "alert_router_webhooks_total" in await r.text()
        for probe in ("/healthz", "/readyz"):  # probes stay open: the kubelet sends no credentials
            assert (await client.get(probe)).status == 200
