"""The excerpt reaches people: Slack and Telegram messages (real channels) carry the log lines, or say why not."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from alert_router.config import load
from tests.enrich.support import NS, ns
from tests.helpers import fixture_json, read_jsonl, running_app, wait_for, write_config
from tests.standins.loki import LokiStandin
from tests.standins.slack import SlackStandin
from tests.standins.telegram import TelegramStandin

RULES = """\
rules:
  - name: everyone
    match: []
    receivers: [file, slack, telegram]
"""


def _config(tmp: Path, loki: LokiStandin, slack: SlackStandin, telegram: TelegramStandin) -> Any:
    receivers = (
        "receivers:\n"
        "  - name: file\n    file: {path: out.jsonl, fsync: false}\n"
        f"  - name: slack\n    slack: {{token: xoxb-test-token, channel: C0ALERTS, api_url: '{slack.base_url}',"
        " actions: false}\n"
        f"  - name: telegram\n    telegram: {{token: '{telegram.token}', chat_id: 1001, api_url: '{telegram.base_url}',"
        " actions: false}\n"
    )
    body = f"enrich:\n  loki: {{url: '{loki.url}', timeout: 1s}}\n"
    return load(write_config(tmp, body, rules=RULES, receivers=receivers), {})


def _webhook(starts: datetime) -> bytes:
    data = fixture_json("firing-service-down.json")
    data["alerts"][0]["startsAt"] = starts.isoformat().replace("+00:00", "Z")
    return json.dumps(data).encode()


def _slack_text(slack: SlackStandin) -> str:
    (msg,) = slack.messages["C0ALERTS"]
    # mrkdwn escaping shows a word holding `_ * ~` as a code span; compare the visible text
    raw = msg.text + "\n" + json.dumps(msg.blocks, ensure_ascii=False)
    assert "\u200b" not in raw
    return re.sub(r"`([^`\n]*)`", r"\1", raw)


def _telegram_text(telegram: TelegramStandin) -> str:
    (msg,) = telegram.messages[1001]
    return msg.text


async def _run(tmp_path: Path, config: Any, slack: SlackStandin, telegram: TelegramStandin, starts: datetime) -> None:
    async with running_app(config) as (client, _):
        r = await client.post("/webhook", data=_webhook(starts), headers={"Content-Type": "application/json"})
        assert r.status == 200
        await wait_for(
            lambda: (
                slack.messages.get("C0ALERTS")
                and telegram.messages.get(1001)
                and read_jsonl(tmp_path / "data" / "out.jsonl")
            )
        )


async def test_log_lines_appear_in_slack_and_telegram(
    loki_standin: LokiStandin, slack_standin: SlackStandin, telegram_standin: TelegramStandin, tmp_path: Path
) -> None:
    starts = datetime.now(UTC) - timedelta(minutes=1)
    stream = {"namespace": "prod", "app": "model-api", "pod": "model-api-7d9f-1"}
    loki_standin.push(stream, ns(starts) - 3 * NS, "ERROR CUDA error: out of memory <tensor & co>")
    loki_standin.push(stream, ns(starts) - 1 * NS, "FATAL worker exited, password=hunter2")
    await _run(
        tmp_path,
        _config(tmp_path, loki_standin, slack_standin, telegram_standin),
        slack_standin,
        telegram_standin,
        starts,
    )
    for text in (_slack_text(slack_standin), _telegram_text(telegram_standin)):
        assert "ERROR CUDA error: out of memory <tensor & co>" in text.replace("&lt;", "<").replace(
            "&gt;", ">"
        ).replace("&amp;", "&")
        assert "FATAL worker exited, password=[REDACTED]" in text
        assert "hunter2" not in text
        assert text.index("out of memory") < text.index("FATAL worker exited")  # newest last


async def test_unavailable_logs_are_stated_in_slack_and_telegram(
    loki_standin: LokiStandin, slack_standin: SlackStandin, telegram_standin: TelegramStandin, tmp_path: Path
) -> None:
    loki_standin.fail_next(5, status=500, body="loki is down")
    await _run(
        tmp_path,
        _config(tmp_path, loki_standin, slack_standin, telegram_standin),
        slack_standin,
        telegram_standin,
        datetime.now(UTC),
    )
    for text in (_slack_text(slack_standin), _telegram_text(telegram_standin)):
        assert "Logs unavailable: server_error: HTTP 500: loki is down" in text
