"""A captured chat request cannot be replayed: not after a restart, not on another replica (issue 15, item 1).

The seen set lives in the store (``seen_requests``): a correctly signed Slack request sent again with the same
bytes and headers is refused (401) by a new app on the same SQLite file and by a second replica on the same
PostgreSQL database, and the command it carries runs once (one silence in a real Alertmanager). Telegram
updates are handled once per ``update_id`` in the same way, in webhook and in polling mode.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from alert_router.errors import StoreUnavailable
from tests.api.test_telegram_api import GROUP, SECRET, telegram_chat, user
from tests.chat.support import SLACK_SECRET, chat_config, slack_headers, slash_body
from tests.helpers import running_app, wait_for
from tests.procs.alertmanager import Alertmanager
from tests.standins.telegram import TelegramStandin

pytestmark = pytest.mark.e2e


def slack_chat(am: Alertmanager) -> str:
    return f"  slack: {{signing_secret: {SLACK_SECRET}}}\n  alertmanager: {{url: '{am.url}'}}\n"


async def chat_records(rt: Any) -> list[Any]:
    return [r for r in await rt.store.audit_records() if r.event.startswith("chat_")]


def silence_request() -> tuple[bytes, dict[str, str]]:
    body = slash_body("silence alertname=ReplayedX 1h captured", user_id="URESP", user_name="rita")
    return body, slack_headers(body)


async def test_a_signed_slack_request_replayed_after_a_restart_is_refused(
    tmp_path: Path, alertmanager_factory: Any
) -> None:
    [am] = await alertmanager_factory(["http://127.0.0.1:9/unused"])
    cfg = chat_config(tmp_path, slack_chat(am))
    body, headers = silence_request()
    async with running_app(cfg) as (client, rt):
        r = await client.post("/slack/commands", data=body, headers=headers)
        assert r.status == 200 and "Silence id" in (await r.json())["text"]
    assert len(await am.silences()) == 1
    async with running_app(cfg) as (client, rt):  # the service restarted: a new app on the same store
        r = await client.post("/slack/commands", data=body, headers=headers)
        assert r.status == 401 and (await r.json())["error"] == "replayed request"
        assert len(await chat_records(rt)) == 1, "only the first request was executed and audited"
    assert len(await am.silences()) == 1, "the replay created no second silence"


async def test_a_signed_slack_request_replayed_to_another_replica_is_refused(
    tmp_path: Path, alertmanager_factory: Any, fresh_pg_database: Callable[[], str]
) -> None:
    [am] = await alertmanager_factory(["http://127.0.0.1:9/unused"])
    dsn = fresh_pg_database()
    cfg_a = chat_config(tmp_path / "a", slack_chat(am) + f"store: '{dsn}'\n")
    cfg_b = chat_config(tmp_path / "b", slack_chat(am) + f"store: '{dsn}'\n")
    body, headers = silence_request()
    async with running_app(cfg_a) as (a, rt_a), running_app(cfg_b) as (b, _):
        first = await a.post("/slack/commands", data=body, headers=headers)
        assert first.status == 200 and "Silence id" in (await first.json())["text"]
        replay = await b.post("/slack/commands", data=body, headers=headers)
        assert replay.status == 401 and (await replay.json())["error"] == "replayed request"
        again = await a.post("/slack/commands", data=body, headers=headers)
        assert again.status == 401
        assert len(await chat_records(rt_a)) == 1
    assert len(await am.silences()) == 1, "one silence, whichever replica the copies reached"


async def test_a_telegram_update_is_handled_once_across_restarts_and_replicas(
    tmp_path: Path, telegram_standin: TelegramStandin, fresh_pg_database: Callable[[], str]
) -> None:
    dsn = fresh_pg_database()
    chat = telegram_chat(telegram_standin) + f"store: '{dsn}'\n"
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
    update = telegram_standin.inject_message(GROUP, "/status", user(telegram_standin, "viewer"))
    async with running_app(chat_config(tmp_path / "a", chat)) as (a, rt):
        assert (await a.post("/telegram/webhook", json=update, headers=headers)).status == 200
        await wait_for(lambda: telegram_standin.messages[GROUP], timeout=10)
    async with running_app(chat_config(tmp_path / "a", chat)) as (a, rt), \
            running_app(chat_config(tmp_path / "b", chat)) as (b, rt_b):
        for client in (a, b):  # Telegram re-delivers after the restart, to whichever replica
            assert (await client.post("/telegram/webhook", json=update, headers=headers)).status == 200
        for runtime in (rt, rt_b):
            await runtime.services["chat"].background.drain()
        assert len(telegram_standin.messages[GROUP]) == 1
        assert len(await chat_records(rt)) == 1


async def test_a_polled_update_seen_before_a_restart_is_not_handled_again(
    tmp_path: Path, telegram_standin: TelegramStandin
) -> None:
    """getUpdates confirms an update only with the next call's offset: one handled just before a restart comes
    back to the new process, which must skip it (and confirm it)."""
    cfg = chat_config(tmp_path, telegram_chat(telegram_standin, "polling"))
    update = telegram_standin.inject_message(GROUP, "/status", user(telegram_standin, "viewer"))
    async with running_app(cfg) as (_, rt):
        await wait_for(lambda: telegram_standin.messages[GROUP], timeout=10)
        await wait_for(lambda: not telegram_standin.pending_updates(), timeout=10)
    telegram_standin.requeue(update)  # as if the confirming getUpdates never reached Telegram
    async with running_app(cfg) as (_, rt):
        await wait_for(lambda: not telegram_standin.pending_updates(), timeout=10)
        await rt.services["chat"].background.drain()
        assert len(telegram_standin.messages[GROUP]) == 1
        assert len(await chat_records(rt)) == 1


class FlakyMemory:
    """``remember_request`` that fails with StoreUnavailable ``failures`` times, then asks the real store."""

    def __init__(self, store: Any, failures: int) -> None:
        self.store = store
        self.real = store.remember_request
        self.failures = failures
        self.calls = 0

    async def __call__(self, *args: Any) -> bool:
        self.calls += 1
        if self.calls <= self.failures:
            raise StoreUnavailable("database down (test)")
        result: bool = await self.real(*args)
        return result


async def test_while_the_store_is_down_chat_requests_get_503_and_run_nothing(
    tmp_path: Path, telegram_standin: TelegramStandin, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replay protection fails closed: without the store, nothing runs (Telegram re-delivers after a 5xx)."""
    cfg = chat_config(tmp_path, telegram_chat(telegram_standin) + f"  slack: {{signing_secret: {SLACK_SECRET}}}\n")
    async with running_app(cfg) as (client, rt):
        monkeypatch.setattr(rt.store, "remember_request", FlakyMemory(rt.store, 2))
        body = slash_body("status", user_id="UVIEWER")
        r = await client.post("/slack/commands", data=body, headers=slack_headers(body))
        assert r.status == 503 and r.headers["Retry-After"] and (await r.json())["request_id"]
        update = telegram_standin.inject_message(GROUP, "/status", user(telegram_standin, "viewer"))
        headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
        assert (await client.post("/telegram/webhook", json=update, headers=headers)).status == 503
        await rt.services["chat"].background.drain()
        assert await chat_records(rt) == [] and telegram_standin.messages[GROUP] == []
        assert (await client.post("/telegram/webhook", json=update, headers=headers)).status == 200  # re-delivery
        await rt.services["chat"].background.drain()
        assert len(telegram_standin.messages[GROUP]) == 1


async def test_a_polled_update_waits_for_the_store_instead_of_being_lost(
    tmp_path: Path, telegram_standin: TelegramStandin, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_app(chat_config(tmp_path, telegram_chat(telegram_standin, "polling"))) as (_, rt):
        flaky = FlakyMemory(rt.store, 1)
        monkeypatch.setattr(rt.store, "remember_request", flaky)
        telegram_standin.inject_message(GROUP, "/status", user(telegram_standin, "viewer"))
        await wait_for(lambda: telegram_standin.messages[GROUP], timeout=15)
        await wait_for(lambda: not telegram_standin.pending_updates(), timeout=10)
        assert flaky.calls == 2, "refused once while the store was down, then handled"
        assert len(telegram_standin.messages[GROUP]) == 1
