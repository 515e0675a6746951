"""Fixtures for the chat tests: a store with one firing alert and a CommandService wired to fakes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from alert_router.chat.clock import ManualClock
from alert_router.chat.commands import CommandService
from alert_router.config import Config, load
from alert_router.store.sqlite import SQLiteStore
from tests.chat.support import FakeAlertmanager, FakeEngine, alert_payload, chat_config, ingest


@dataclass
class ChatEnv:
    """A config, an open store holding one firing alert, and commands wired to fakes."""

    config: Config
    store: SQLiteStore
    commands: CommandService
    alertmanager: FakeAlertmanager
    engine: FakeEngine
    clock: ManualClock
    wakes: list[int]


@pytest.fixture
async def chat_env(tmp_path: Path) -> AsyncIterator[ChatEnv]:
    config = load(chat_config(tmp_path), {})
    store = SQLiteStore(tmp_path / "data" / "store.db")
    await store.open()
    try:
        assert await ingest(store, config, alert_payload())
        am = FakeAlertmanager()
        engine = FakeEngine()
        clock = ManualClock()
        wakes: list[int] = []
        commands = CommandService(store, config, alertmanager=am, remediation=lambda: engine, clock=clock,
                                  wake_delivery=lambda: wakes.append(1))
        yield ChatEnv(config, store, commands, am, engine, clock, wakes)
    finally:
        await store.close()
