"""Pictures in pages, end to end: a real Prometheus with known data fires, and the picture reaches Slack, Telegram
and email showing the threshold where the data says.

Prometheus loads one backfilled hour of a model service (``promtool tsdb create-blocks-from openmetrics``,
tests/graph/data.py) and scrapes an exporter that continues it; it evaluates the shipped
``rules/prometheus/model-monitoring.yml`` (``for:`` of HighModelLatency and ModelDataDrift shortened) and
sends to a real Alertmanager, which posts to alert-router. alert-router queries the same Prometheus for the
pictures and delivers to the Slack and Telegram stand-ins and an SMTP server (aiosmtpd).

Then, with Prometheus refusing connections or hanging (SIGSTOP: the socket accepts, nothing answers), the
message still goes out, without a picture, saying why.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import ClientSession

from alert_router.app import build_app
from alert_router.appkeys import RUNTIME
from alert_router.config import load
from tests.graph.data import AFTER_DRIFT, AFTER_P95, BEFORE_DRIFT, BEFORE_P95, Exporter, ModelData, backfill
from tests.graph.pixels import check_picture
from tests.loopback import serve
from tests.procs.alertmanager import Webhook, free_port
from tests.procs.fixtures import AlertmanagerFactory, PrometheusFactory
from tests.standins.slack import SlackStandin
from tests.standins.smtp import SmtpServer
from tests.standins.telegram import TelegramStandin

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "rules" / "prometheus" / "model-monitoring.yml"
SLACK_TOKEN = "xoxb-test-token"
TG_TOKEN = "123456789:AAHstandin-token_0123456789abcdefghi"
CHAT = -1002
WIDTH, HEIGHT = 800, 400


def fast_rules(*alerts: str) -> str:
    """The shipped rules with ``for: 1s`` for ``alerts`` (the others keep theirs)."""
    doc = yaml.safe_load(RULES.read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") in alerts:
                rule["for"] = "1s"
    return yaml.safe_dump(doc, sort_keys=False)


def write_config(root: Path, prometheus_url: str, slack: SlackStandin, tg: TelegramStandin, smtp: SmtpServer,
                 **graph: Any) -> Path:
    (root / "rules").mkdir()
    (root / "runbooks").mkdir()
    (root / "rules" / "pages.yaml").write_text(yaml.safe_dump({"rules": [
        {"name": "pages", "match": ['alertname=~"HighModelLatency|ModelDataDrift"'],
         "receivers": ["slack", "telegram", "email"]},
    ]}))
    config = {
        "data_dir": str(root / "data"),
        "ingest": {"poll_interval": 0.2},
        "graph": {"prometheus": {"url": prometheus_url}, "width": WIDTH, "height": HEIGHT, **graph},
        "receivers": [
            {"name": "slack", "slack": {"token": SLACK_TOKEN, "channel": "C0ALERTS", "api_url": slack.base_url,
                                        "timeout": 10}},
            {"name": "telegram", "telegram": {"token": TG_TOKEN, "chat_id": CHAT, "api_url": tg.base_url}},
            {"name": "email", "email": {"host": "127.0.0.1", "port": smtp.port, "mode": "plain",
                                        "from": "alerts@example.test", "to": ["oncall@example.test"]}},
        ],
        "rules": "rules/",
        "runbooks": "runbooks/",
    }
    path = root / "alert-router.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


async def until(what: str, check: Callable[[], Any], seconds: float = 60.0) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


@pytest.mark.timeout(120)
async def test_latency_and_drift_pages_carry_a_picture_with_the_threshold_where_the_data_says(
    tmp_path: Path, prometheus_factory: PrometheusFactory, alertmanager_factory: AlertmanagerFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """HighModelLatency and ModelDataDrift fire in a real Prometheus; each reaches Slack (thread upload), Telegram
    (a photo replying to the message) and email (an inline cid: image) as an 800x400 PNG, not blank, with the
    threshold line at the row of 500 ms (30%) and the data at the rows of the values before and after the jump.
    One query and one drawing per group, whatever the three receivers."""
    monkeypatch.setenv("PTB_TIMEDELTA", "true")
    data = ModelData(time.time())
    workdir = Path(tempfile.mkdtemp(prefix="ar-prom-graph-"))
    await asyncio.to_thread(backfill, data, workdir / "data")
    router_port = free_port()
    smtp = SmtpServer().start()
    try:
        async with (
            SlackStandin(token=SLACK_TOKEN) as slack,
            TelegramStandin(token=TG_TOKEN) as tg,
            serve(Exporter(data).app) as exporter_url,
        ):
            (am,) = await alertmanager_factory(
                [Webhook(f"http://127.0.0.1:{router_port}/webhook")], group_by=("alertname",),
                group_wait="1s", group_interval="1s",
            )
            prom = await prometheus_factory(
                workdir=workdir, self_scrape=False, alertmanager_urls=[am.url],
                scrape_configs=[{"job_name": "model-api", "static_configs": [{
                    "targets": [exporter_url.removeprefix("http://")],
                    "labels": {"namespace": "prod", "instance": "model-api-0"}}]}],
                rules={"model-monitoring.yml": fast_rules("HighModelLatency", "ModelDataDrift")},
            )
            config = load(write_config(tmp_path, prom.url, slack, tg, smtp), {})
            app = build_app(config)
            async with serve(app, router_port):
                await until("two Slack uploads", lambda: len(slack.files) >= 2, 90)
                await until("two Telegram photos", lambda: len(tg.photos[CHAT]) >= 2)
                mails = await smtp.wait_for_messages(2, seconds=30)
                grapher = app[RUNTIME].services["grapher"]
                assert grapher.renders_started == 2, "one drawing per group, shared by its three receivers"
                assert grapher.queries_sent == 2, "one query per expression"

            expected = {
                "HighModelLatency": (0.5, BEFORE_P95, AFTER_P95),
                "ModelDataDrift": (0.3, BEFORE_DRIFT, AFTER_DRIFT),
            }
            # Slack: each picture is a file shared into the thread of its group's message.
            messages = slack.messages["C0ALERTS"]
            parents = {m.ts: m for m in messages if not m.files}
            seen: set[str] = set()
            for share in (m for m in messages if m.files):
                parent = parents[str(share.thread_ts)]
                name = next(n for n in expected if n in parent.text)
                seen.add(name)
                (file,) = share.files
                assert file.as_api()["mimetype"] == "image/png" and file.alt_txt and name in file.alt_txt
                assert file.content is not None
                check_picture(file.content, width=WIDTH, height=HEIGHT, threshold=expected[name][0],
                              before=expected[name][1], after=expected[name][2])
            assert seen == set(expected)
            # Telegram: each picture is a photo replying to its group's message.
            texts = {m.message_id: m.text for m in tg.messages[CHAT]}
            for photo in tg.photos[CHAT]:
                assert photo.reply_to in texts
                name = next(n for n in expected if n in texts[photo.reply_to])
                assert name in photo.caption
                check_picture(photo.data, width=WIDTH, height=HEIGHT, threshold=expected[name][0],
                              before=expected[name][1], after=expected[name][2])
            # Email: the HTML part links the picture by Content-ID; the picture is a related part.
            for mail in mails[:2]:
                msg = mail.message
                name = next(n for n in expected if n in str(msg["Subject"]))
                html_part = msg.get_body(preferencelist=("html",))
                assert html_part is not None
                related = [p for p in msg.walk() if p.get_content_type() == "image/png"]
                assert len(related) == 1
                cid = related[0]["Content-ID"].strip("<>")
                assert f'src="cid:{cid}"' in html_part.get_content()
                check_picture(related[0].get_content(), width=WIDTH, height=HEIGHT, threshold=expected[name][0],
                              before=expected[name][1], after=expected[name][2])
    finally:
        smtp.stop()


def body(generator_url: str) -> dict[str, Any]:
    return {
        "version": "4", "status": "firing", "receiver": "alert-router",
        "groupKey": '{}:{alertname="HighModelLatency"}', "groupLabels": {"alertname": "HighModelLatency"},
        "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://am", "truncatedAlerts": 0,
        "alerts": [{
            "status": "firing", "fingerprint": "5f1c0e7a9b2d4c11",
            "labels": {"alertname": "HighModelLatency", "namespace": "prod", "job": "model-api",
                       "deployment": "model-api", "severity": "warning"},
            "annotations": {"summary": "p95 latency above 500ms"},
            "startsAt": "2026-11-27T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": generator_url,
        }],
    }


@pytest.mark.timeout(90)
@pytest.mark.parametrize("outage", ["refused", "hanging"])
async def test_prometheus_down_or_hanging_the_page_goes_without_the_picture_and_says_so(
    outage: str, tmp_path: Path, prometheus_factory: PrometheusFactory, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With Prometheus refusing connections, or accepting them and never answering (a real Prometheus stopped
    with SIGSTOP), the Slack, Telegram and email messages go out without a picture and name the reason."""
    from urllib.parse import urlencode

    monkeypatch.setenv("PTB_TIMEDELTA", "true")
    expr = yaml.safe_load(RULES.read_text())["groups"][1]["rules"][0]["expr"]
    generator = "http://prometheus:9090/graph?" + urlencode({"g0.expr": expr, "g0.tab": "1"})
    prom = None
    if outage == "hanging":
        prom = await prometheus_factory(self_scrape=False)
        assert prom.process is not None and prom.process.pid is not None
        os.kill(prom.process.pid, signal.SIGSTOP)
        url = prom.url
    else:
        url = f"http://127.0.0.1:{free_port()}"
    smtp = SmtpServer().start()
    try:
        async with SlackStandin(token=SLACK_TOKEN) as slack, TelegramStandin(token=TG_TOKEN) as tg:
            config = load(write_config(tmp_path, url, slack, tg, smtp, timeout="1s"), {})
            app = build_app(config)
            async with serve(app) as router, ClientSession() as http:
                async with http.post(f"{router}/webhook", json=body(generator)) as resp:
                    assert resp.status == 200
                reason = {"refused": "cannot connect to Prometheus", "hanging": "Prometheus did not answer within 1s"}[
                    outage
                ]
                msg = await until("the Slack message", lambda: slack.messages["C0ALERTS"])
                assert "Graph unavailable" in msg[0].text or any(
                    "Graph unavailable" in str(b) for b in msg[0].blocks or []
                )
                assert reason in str(msg[0].blocks), msg[0].blocks
                tg_msgs = await until("the Telegram message", lambda: tg.messages[CHAT])
                assert reason in tg_msgs[0].text and "Graph unavailable: " in tg_msgs[0].text
                (mail,) = await smtp.wait_for_messages(1, seconds=30)
                html_part = mail.message.get_body(preferencelist=("html",))
                assert html_part is not None and reason in html_part.get_content()
                assert not slack.files and not tg.photos[CHAT], "no picture may be sent"
                assert not [p for p in mail.message.walk() if p.get_content_type() == "image/png"]
    finally:
        smtp.stop()
        if prom is not None and prom.process is not None and prom.process.pid is not None:
            os.kill(prom.process.pid, signal.SIGCONT)
    shutil.rmtree(tmp_path / "data", ignore_errors=True)
