"""A real Alertmanager 0.25 delivers its webhook to ``alert-router serve`` over HTTPS, and over mutual TLS.

Alertmanager's ``http_config.tls_config`` trusts the CA made in the test (``ca_file``) and, for mutual TLS,
presents a client certificate (``cert_file``/``key_file``) from the CA named in alert-router's
``tls.client_ca_file``. Without that certificate the handshake fails: Alertmanager counts a failed
notification and alert-router stores nothing.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme

from tests.e2e.service import ServiceProcess
from tests.e2e.test_alertmanager_e2e import ALERT, AUTH, TOKEN
from tests.helpers import read_jsonl, wait_for, write_config
from tests.procs.alertmanager import Alertmanager, Webhook
from tests.test_tls import Certs

pytestmark = pytest.mark.e2e

ACCEPTED = 'alert_router_webhooks_total{outcome="accepted"}'


async def failed_notifications(am: Alertmanager) -> float:
    """Alertmanager's own count of webhook notifications that failed."""
    async with aiohttp.ClientSession() as s, s.get(am.url + "/metrics") as r:
        text = await r.text()
    pattern = re.compile(r'^alertmanager_notifications_failed_total\{[^}]*integration="webhook"[^}]*\} (\S+)$', re.M)
    return sum(float(v) for v in pattern.findall(text))


@pytest.mark.parametrize("mutual", [False, True], ids=["tls", "mutual-tls"])
async def test_alertmanager_delivers_over_tls(tmp_path: Path, alertmanager_factory: Any, mutual: bool) -> None:
    certs = Certs(tmp_path)
    cfg = write_config(tmp_path, AUTH + certs.config(mutual=mutual))
    svc = ServiceProcess(cfg, client_ssl=certs.client(cert_from=certs.client_ca if mutual else None))
    await svc.start()
    try:
        tls_config: dict[str, str] = {"ca_file": str(certs.dir / "server-ca.pem")}
        if mutual:
            cert, key = certs.client_files(certs.client_ca)
            tls_config |= {"cert_file": str(cert), "key_file": str(key)}
        (am,) = await alertmanager_factory(
            [Webhook(svc.url + "/webhook", bearer_token=TOKEN, tls_config=tls_config)],
            group_wait="1s", group_interval="1s", repeat_interval="1h",
        )
        await am.push_alerts([ALERT])
        await wait_for(lambda: svc.metric(ACCEPTED), 30)
        (note,) = await wait_for(lambda: read_jsonl(tmp_path / "data" / "out.jsonl"), 20)
        assert note["alerts"][0]["labels"]["alertname"] == "ModelServiceDown"
    finally:
        svc.stop()


@pytest.mark.parametrize("client_cert", ["none", "from another CA"])
async def test_alertmanager_without_a_valid_client_certificate_is_refused(
    tmp_path: Path, alertmanager_factory: Any, client_cert: str
) -> None:
    certs = Certs(tmp_path)
    cfg = write_config(tmp_path, AUTH + certs.config(mutual=True))
    svc = ServiceProcess(cfg, client_ssl=certs.client(cert_from=certs.client_ca))
    await svc.start()
    try:
        tls_config: dict[str, str] = {"ca_file": str(certs.dir / "server-ca.pem")}
        if client_cert != "none":
            cert, key = certs.client_files(trustme.CA(), "stranger")
            tls_config |= {"cert_file": str(cert), "key_file": str(key)}
        (am,) = await alertmanager_factory(
            [Webhook(svc.url + "/webhook", bearer_token=TOKEN, tls_config=tls_config)],
            group_wait="1s", group_interval="1s", repeat_interval="1h",
        )
        await am.push_alerts([ALERT])
        await wait_for(lambda: failed_notifications(am), 30)
        assert await svc.metric(ACCEPTED) == 0
        assert read_jsonl(tmp_path / "data" / "out.jsonl") == []
    finally:
        svc.stop()
