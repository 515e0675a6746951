"""deploy/alertmanager.yml: amtool accepts it, it routes to alert-router, and a real Alertmanager delivers."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web

REPO = Path(__file__).resolve().parents[2]
AM_CONFIG = REPO / "deploy" / "alertmanager.yml"
AM_CRD = REPO / "deploy" / "alertmanager-config.yaml"
WEBHOOK_URL = "http://alert-router.monitoring.svc:8080/webhook"
TOKEN_FILE = "/etc/alertmanager/secrets/alert-router-token/token"


def binary(name: str, package: str) -> str:
    """Return the path of a Debian-packaged binary, or fail the test with the way to install it."""
    path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if path is None:
        pytest.fail(f"{name} not found: run scripts/install-system-deps.sh (Debian package `{package}`)")
    return path


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run a command with a bound on its time and return its result with stdout and stderr as text."""
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=60, check=False)


def output(result: subprocess.CompletedProcess[str]) -> str:
    """Format a finished command for an assertion message."""
    return f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"


def load_config() -> dict[str, Any]:
    """The Alertmanager config as a dict."""
    config: dict[str, Any] = yaml.safe_load(AM_CONFIG.read_text())
    return config


def alert_router_webhook(config: dict[str, Any]) -> dict[str, Any]:
    """The single webhook_config of the alert-router receiver."""
    (receiver,) = [r for r in config["receivers"] if r["name"] == "alert-router"]
    (webhook,) = receiver["webhook_configs"]
    return dict(webhook)


def test_amtool_check_config_accepts_the_config() -> None:
    """amtool validates the shipped file as it is.

    amtool 0.25 does not open credentials_file (Alertmanager reads it on each notification), so the
    path need not exist here; the e2e test below proves the file is read at send time.
    """
    result = run(binary("amtool", "prometheus-alertmanager"), "check-config", AM_CONFIG)
    assert result.returncode == 0, output(result)
    assert "SUCCESS" in result.stdout, output(result)
    assert "2 receivers" in result.stdout, output(result)
    assert "1 inhibit rules" in result.stdout, output(result)


def test_amtool_check_config_rejects_an_unknown_receiver(tmp_path: Path) -> None:
    """A route naming a receiver that does not exist is rejected, so the check above can fail."""
    text = AM_CONFIG.read_text()
    broken = text.replace("route:\n  receiver: alert-router", "route:\n  receiver: alert-routr")
    assert broken != text
    (tmp_path / "alertmanager.yml").write_text(broken)
    result = run(binary("amtool", "prometheus-alertmanager"), "check-config", tmp_path / "alertmanager.yml")
    assert result.returncode != 0, output(result)
    assert "alert-routr" in result.stdout + result.stderr, output(result)


def test_webhook_receiver_settings() -> None:
    """The alert-router receiver posts every alert, resolved ones too, with a bearer token from a file."""
    config = load_config()
    webhook = alert_router_webhook(config)
    assert webhook["url"] == WEBHOOK_URL
    assert webhook["send_resolved"] is True
    assert webhook["max_alerts"] == 0
    auth = webhook["http_config"]["authorization"]
    assert auth["credentials_file"] == TOKEN_FILE
    assert "credentials" not in auth, "the token belongs in the mounted Secret, not in the config"
    assert config["route"]["receiver"] == "alert-router"
    assert config["route"]["group_by"] == ["alertname", "namespace"]


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["alertname=ModelServiceDown", "severity=critical", "namespace=prod"], "alert-router"),
        (["alertname=HighModelLatency", "severity=warning", "namespace=prod"], "alert-router"),
        (["alertname=ModelDataDrift", "severity=warning", "namespace=staging"], "alert-router"),
        (["alertname=Watchdog", "severity=none"], "alert-router"),
        (["alertname=InfoInhibitor", "severity=none"], "null"),
    ],
)
def test_routing_tree_sends_model_alerts_to_alert_router(labels: list[str], receiver: str) -> None:
    """amtool resolves each label set to the expected receiver."""
    amtool = binary("amtool", "prometheus-alertmanager")
    result = run(
        amtool,
        "config",
        "routes",
        "test",
        f"--config.file={AM_CONFIG}",
        f"--verify.receivers={receiver}",
        *labels,
    )
    assert result.returncode == 0, output(result)
    assert result.stdout.strip() == receiver, output(result)


def test_alertmanager_config_crd_matches_the_plain_config() -> None:
    """deploy/alertmanager-config.yaml routes like alertmanager.yml and takes the token from a Secret."""
    docs = [d for d in yaml.safe_load_all(AM_CRD.read_text()) if d]
    (crd,) = docs
    assert crd["apiVersion"] == "monitoring.coreos.com/v1alpha1"
    assert crd["kind"] == "AlertmanagerConfig"
    assert crd["metadata"]["name"] == "alert-router"
    assert crd["metadata"]["namespace"] == "prod", "the operator scopes the route to its own namespace"
    config = load_config()
    route = crd["spec"]["route"]
    assert route["receiver"] == "alert-router"
    assert route["groupBy"] == config["route"]["group_by"]
    assert route["groupWait"] == config["route"]["group_wait"]
    assert route["groupInterval"] == config["route"]["group_interval"]
    assert route["repeatInterval"] == config["route"]["repeat_interval"]
    (receiver,) = crd["spec"]["receivers"]
    (webhook,) = receiver["webhookConfigs"]
    plain = alert_router_webhook(config)
    assert webhook["url"] == plain["url"]
    assert webhook["sendResolved"] is plain["send_resolved"] is True
    assert webhook["maxAlerts"] == plain["max_alerts"] == 0
    auth = webhook["httpConfig"]["authorization"]
    assert auth["type"] == "Bearer"
    assert auth["credentials"] == {"name": "alert-router-token", "key": "token"}


# --- a real Alertmanager 0.25 sends the configured webhook ---------------------------------------------


def free_port() -> int:
    """An ephemeral loopback port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
async def webhook_sink() -> AsyncIterator[tuple[str, asyncio.Queue[tuple[dict[str, str], Any]]]]:
    """A loopback webhook receiver; yields its URL and a queue of (headers, JSON body) per request."""
    received: asyncio.Queue[tuple[dict[str, str], Any]] = asyncio.Queue()

    async def handle(request: web.Request) -> web.Response:
        await received.put((dict(request.headers), await request.json()))
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/webhook", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}/webhook", received
    finally:
        await runner.cleanup()


def loopback_copy(tmp_path: Path, url: str, token_file: Path) -> Path:
    """The shipped config with the webhook URL and token path pointed at this test, and short waits."""
    config = load_config()
    webhook = alert_router_webhook(config)
    for receiver in config["receivers"]:
        if receiver["name"] == "alert-router":
            webhook["url"] = url
            webhook["http_config"]["authorization"]["credentials_file"] = str(token_file)
            receiver["webhook_configs"] = [webhook]
    for route in [config["route"], *config["route"].get("routes", [])]:
        if "group_wait" in route:
            route["group_wait"] = "1s"
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.e2e
@pytest.mark.timeout(60)
async def test_real_alertmanager_posts_to_alert_router_with_the_token_file(
    tmp_path: Path, webhook_sink: tuple[str, asyncio.Queue[tuple[dict[str, str], Any]]]
) -> None:
    """Alertmanager 0.25 with this config posts a pushed alert with `Authorization: Bearer <file content>`."""
    url, received = webhook_sink
    token_file = tmp_path / "token"
    token_file.write_text("t0ken-from-file\n")
    config_path = loopback_copy(tmp_path, url, token_file)
    port = free_port()
    log_path = tmp_path / "alertmanager.log"
    with log_path.open("w") as log:
        proc = await asyncio.create_subprocess_exec(
            binary("prometheus-alertmanager", "prometheus-alertmanager"),
            f"--config.file={config_path}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    alert = {
        "labels": {
            "alertname": "ModelServiceDown",
            "severity": "critical",
            "team": "mlops",
            "namespace": "prod",
            "job": "model-api",
            "deployment": "model-api",
        },
        "annotations": {"summary": "Model service might be down!"},
    }
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            deadline = time.monotonic() + 20
            while True:
                assert proc.returncode is None, f"alertmanager exited:\n{log_path.read_text()}"
                try:
                    async with session.get(f"{base}/-/ready") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                assert time.monotonic() < deadline, f"alertmanager not ready:\n{log_path.read_text()}"
                await asyncio.sleep(0.1)
            async with session.post(f"{base}/api/v2/alerts", json=[alert]) as response:
                assert response.status == 200, await response.text()
            try:
                headers, body = await asyncio.wait_for(received.get(), timeout=20)
            except TimeoutError:
                pytest.fail(f"no webhook within 20s:\n{log_path.read_text()}")
    finally:
        if proc.returncode is None:
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), timeout=10)
        except TimeoutError:
            proc.kill()
            await proc.wait()
    assert headers["Authorization"] == "Bearer t0ken-from-file"
    assert headers["User-Agent"].startswith("Alertmanager/")
    assert body["receiver"] == "alert-router"
    assert body["status"] == "firing"
    assert body["groupLabels"] == {"alertname": "ModelServiceDown", "namespace": "prod"}
    assert body["groupKey"].endswith('{alertname="ModelServiceDown", namespace="prod"}'), json.dumps(body)
    (sent,) = body["alerts"]
    assert sent["labels"] == alert["labels"]
    assert body["truncatedAlerts"] == 0


def test_the_watchdog_reaches_alert_router_on_its_own_every_minute() -> None:
    """The dead-man's switch route: its own group, sent at once and repeated every minute (deadman.after: 5m)."""
    config = load_config()
    (route,) = [r for r in config["route"]["routes"] if r.get("matchers") == ['alertname = "Watchdog"']]
    assert route["receiver"] == "alert-router"
    assert route["group_by"] == ["alertname"]
    assert route["group_wait"] == "0s"
    assert route["repeat_interval"] == route["group_interval"] == "1m"
    assert not route.get("continue")
