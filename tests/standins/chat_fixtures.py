"""Pytest fixtures for the chat and mail stand-ins: Slack, Telegram and an SMTP server.

* ``slack_standin`` — a started :class:`~tests.standins.slack.SlackStandin` (token ``xoxb-test-token``,
  channels ``C0ALERTS`` and ``C0OPS``).
* ``telegram_standin`` — a started :class:`~tests.standins.telegram.TelegramStandin` (its ``token``,
  chats ``1001`` private, ``-1002`` group, ``-1001000000003`` supergroup); sets ``PTB_TIMEDELTA=true``.
* ``smtp_server`` — a plain-text :class:`~tests.standins.smtp.SmtpServer` without AUTH.
* ``smtp_server_factory(mode="starttls", auth=("u", "p"))`` — more servers; all stopped at teardown.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from tests.standins.slack import SlackStandin
from tests.standins.smtp import SmtpMode, SmtpServer
from tests.standins.telegram import TelegramStandin

SmtpServerFactory = Callable[..., SmtpServer]


@pytest.fixture
async def slack_standin() -> AsyncIterator[SlackStandin]:
    """A Slack Web API stand-in on loopback, closed after the test."""
    async with SlackStandin() as standin:
        yield standin


@pytest.fixture
async def telegram_standin(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[TelegramStandin]:
    """A Telegram Bot API stand-in on loopback, closed after the test.

    It also sets ``PTB_TIMEDELTA=true`` for the test: PTB 22.x otherwise emits a deprecation warning
    from inside ``RetryAfter.__init__``, which ``filterwarnings = error`` turns into an exception that
    replaces the ``RetryAfter``. With it, ``RetryAfter.retry_after`` is a ``datetime.timedelta``.
    """
    monkeypatch.setenv("PTB_TIMEDELTA", "true")
    async with TelegramStandin() as standin:
        yield standin


@pytest.fixture
def smtp_server_factory(tmp_path: Path) -> Iterator[SmtpServerFactory]:
    """Build and start SMTP servers: ``factory(mode="plain"|"starttls"|"tls", auth=None|(user, pw))``."""
    servers: list[SmtpServer] = []

    def make(mode: SmtpMode = "plain", auth: tuple[str, str] | None = None) -> SmtpServer:
        workdir = tmp_path / f"smtp{len(servers)}"
        workdir.mkdir()
        server = SmtpServer(mode=mode, auth=auth, workdir=workdir)
        servers.append(server)
        return server.start()

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def smtp_server(smtp_server_factory: SmtpServerFactory) -> SmtpServer:
    """A plain SMTP server without AUTH on 127.0.0.1."""
    return smtp_server_factory()
