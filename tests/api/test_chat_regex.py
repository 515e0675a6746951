"""A regular expression from chat cannot freeze the service: matchers run on RE2 (linear time) and the
service keeps answering /healthz while a chat command filters alerts (Slack and Telegram)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.api.test_slack_api import SLACK_CHAT
from tests.api.test_telegram_api import GROUP, SECRET, telegram_chat, user
from tests.chat.support import alert_payload, chat_config, slack_headers, slash_body
from tests.helpers import JSON_TYPE, running_app, wait_for
from tests.standins.telegram import TelegramStandin

# With Python's backtracking re, "(.*.*)*x" against these 16 characters takes about 30 s of CPU, on the loop.
LONG_NAME = "a" * 16
BACKTRACKING = 'alerts alertname=~"(.*.*)*x"'
STALL_LIMIT = 2.0
"""Seconds: a loose bound on the longest gap between two /healthz answers (the target is 100 ms)."""


async def firing_long_name(client: Any, rt: Any) -> None:
    body = alert_payload("f00dfeed00000001", alertname=LONG_NAME)
    assert (await client.post("/webhook", data=json.dumps(body).encode(), headers=JSON_TYPE)).status == 200
    await wait_for(lambda: rt.store.alert("f00dfeed00000001"))


async def health_gaps_while(client: Any, command: Callable[[], Awaitable[Any]]) -> tuple[Any, list[float]]:
    """Run ``command`` while probing /healthz back to back; return its result and the gaps between answers.

    A probe is always in flight while the command runs, so a loop blocked by the command shows up as one
    long gap (in-process, the blocked loop delays the probe's answer and its clock reading alike).
    """
    loop = asyncio.get_running_loop()
    gaps: list[float] = []
    done = asyncio.Event()

    async def probe() -> None:
        last = loop.time()
        while not done.is_set() or len(gaps) < 2:
            r = await client.get("/healthz")
            assert r.status == 200
            now = loop.time()
            gaps.append(now - last)
            last = now
            await asyncio.sleep(0.005)

    prober = asyncio.create_task(probe())
    await wait_for(lambda: gaps, timeout=10)  # probing has started before the command is sent
    try:
        result = await command()
    finally:
        done.set()
    await prober
    return result, gaps


async def test_a_backtracking_regex_from_slack_leaves_healthz_answering(tmp_path: Path) -> None:
    async with running_app(chat_config(tmp_path, SLACK_CHAT)) as (client, rt):
        await firing_long_name(client, rt)

        async def command() -> dict[str, Any]:
            body = slash_body(BACKTRACKING, user_id="UVIEWER")
            r = await client.post("/slack/commands", data=body, headers=slack_headers(body))
            assert r.status == 200
            answer: dict[str, Any] = await r.json()
            return answer

        answer, gaps = await health_gaps_while(client, command)
        assert answer["text"].startswith("No firing alerts matching {alertname=~")
        assert max(gaps) < STALL_LIMIT, f"/healthz stalled {max(gaps):.1f}s while the command ran"


async def test_a_backtracking_regex_from_telegram_leaves_healthz_answering(
    tmp_path: Path, telegram_standin: TelegramStandin
) -> None:
    async with running_app(chat_config(tmp_path, telegram_chat(telegram_standin))) as (client, rt):
        await firing_long_name(client, rt)

        async def command() -> str:
            update = telegram_standin.inject_message(GROUP, f"/{BACKTRACKING}", user(telegram_standin, "viewer"))
            r = await client.post("/telegram/webhook", json=update,
                                  headers={"X-Telegram-Bot-Api-Secret-Token": SECRET})
            assert r.status == 200
            (reply,) = await wait_for(lambda: telegram_standin.messages[GROUP], timeout=60)
            return str(reply.text)

        text, gaps = await health_gaps_while(client, command)
        assert text.startswith("No firing alerts matching {alertname=~")
        assert max(gaps) < STALL_LIMIT, f"/healthz stalled {max(gaps):.1f}s while the command ran"


@pytest.mark.parametrize(("pattern", "reason"), [("(a)\\\\1", "backreferences are not supported"),
                                                 ("(?=a).*", "look-around is not supported")])
async def test_a_regex_re2_cannot_run_gets_a_clear_answer_in_chat(tmp_path: Path, pattern: str, reason: str) -> None:
    async with running_app(chat_config(tmp_path, SLACK_CHAT)) as (client, _rt):
        body = slash_body(f'alerts alertname=~"{pattern}"', user_id="UVIEWER")
        r = await client.post("/slack/commands", data=body, headers=slack_headers(body))
        answer = await r.json()
        assert "invalid regular expression" in answer["text"] and reason in answer["text"]
