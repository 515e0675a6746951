"""What the OpenAPI tests share: the spec, a service running on its own thread, and credentials per request.

Schemathesis drives requests synchronously (``requests``), so the service runs on an event loop of its own
in a thread (:class:`ThreadedService`), with a Telegram stand-in on that loop for the bot's calls. Each
request gets valid credentials for its endpoint when ``sign`` is true (a bearer token for ``/webhook``,
``/metrics`` and the API, a Slack signature over the exact bytes sent, the Telegram secret header), so the
generated bodies reach the parsers behind the checks; with ``sign`` false the generated headers go as
they are and the checks themselves are fuzzed.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
import schemathesis
from aiohttp import web
from requests.auth import AuthBase
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from alert_router.app import build_app
from alert_router.appkeys import RUNTIME, Runtime
from alert_router.config import load
from tests.chat.support import USERS, slack_headers
from tests.helpers import write_config
from tests.standins.telegram import TelegramStandin

SPEC = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
TOKEN = "fuzz-api-token-0123"
SLACK_SECRET = "fuzz-slack-signing-secret"
TELEGRAM_SECRET = "fuzz-telegram-secret"
RESPONSE_URL = "http://127.0.0.1:9/"
"""Slack replies may only go here (nothing listens on the discard port): no request ever leaves the machine."""
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
"""What every answer must satisfy: no 5xx, and status, content type, headers and body as the spec says."""

STORED = ("inbox", "audit_log", "runbook_runs", "seen_requests")
"""Tables a request writes to directly (the workers never add rows to them on their own in these tests)."""

T = TypeVar("T")


def load_schema() -> Any:
    """``docs/openapi.yaml`` as a schemathesis schema."""
    return schemathesis.openapi.from_path(str(SPEC))


def service_config(tmp: Path, telegram: TelegramStandin, extra: str = "", *, rules: str | None = None,
                   runbooks: dict[str, str] | None = None, receivers: str | None = None) -> Path:
    """Every endpoint switched on: webhook and API credentials, metrics auth, Slack and Telegram (webhook mode)."""
    chat = (
        f"  slack: {{signing_secret: {SLACK_SECRET}, response_url_prefixes: ['{RESPONSE_URL}']}}\n"
        f"  telegram: {{token: '{telegram.token}', api_url: '{telegram.base_url}', mode: webhook, "
        f"webhook_secret: {TELEGRAM_SECRET}}}\n"
    )
    body = (
        USERS + chat
        + f"auth: {{bearer_token: {TOKEN}}}\nmetrics: {{auth: {{bearer_token: {TOKEN}}}}}\n"
        + "remediation: {approvers: [adam, 'api:ops']}\n" + extra
    )
    kwargs: dict[str, Any] = {"runbooks": runbooks, "receivers": receivers}
    if rules is not None:
        kwargs["rules"] = rules
    return write_config(tmp, body, **kwargs)


class ThreadedService:
    """The app (and a Telegram stand-in) on an event loop in a thread; :meth:`run` runs coroutines there."""

    def __init__(self, tmp: Path, config_for: Any) -> None:
        self.tmp = tmp
        self.config_for = config_for
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="service", daemon=True)
        self.telegram: TelegramStandin | None = None
        self.runner: web.AppRunner | None = None
        self.rt: Runtime | None = None
        self.port = 0

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        """Run ``coro`` on the service's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _start(self) -> None:
        self.telegram = await TelegramStandin().__aenter__()
        cfg = load(self.config_for(self.tmp, self.telegram), {})
        app = build_app(cfg)
        self.rt = app[RUNTIME]
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]
        await self.rt.services["chat.telegram"].set_webhook(f"{self.url}/telegram/webhook")

    async def _stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
        if self.telegram is not None:
            await self.telegram.__aexit__(None, None, None)

    def __enter__(self) -> ThreadedService:
        self.thread.start()
        self.run(self._start())
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.run(self._stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()

    @property
    def url(self) -> str:
        """The base URL."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def runtime(self) -> Runtime:
        """The running app's runtime."""
        assert self.rt is not None
        return self.rt

    def quiet(self) -> None:
        """Wait until chat commands started by earlier requests have finished."""
        self.run(self.runtime.services["chat"].background.drain(30))

    def stored(self) -> dict[str, int]:
        """Row counts of :data:`STORED`, read from the database file (a second, read-only connection)."""
        db = self.runtime.config.data_dir / "alert-router.db"
        conn = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            return {t: int(conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]) for t in STORED if t in tables}
        finally:
            conn.close()


class Credentials(AuthBase):
    """Valid credentials for the endpoint a request goes to, applied after its body is final."""

    def __init__(self, sign: bool) -> None:
        self.sign = sign

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        if not self.sign:
            return r
        path = urlsplit(r.url or "").path
        if path.startswith("/slack/"):
            body = r.body or b""
            raw = body.encode() if isinstance(body, str) else bytes(body)
            signed = slack_headers(raw, secret=SLACK_SECRET)
            r.headers["X-Slack-Request-Timestamp"] = signed["X-Slack-Request-Timestamp"]
            r.headers["X-Slack-Signature"] = signed["X-Slack-Signature"]
        elif path == "/telegram/webhook":
            r.headers["X-Telegram-Bot-Api-Secret-Token"] = TELEGRAM_SECRET
        else:
            r.headers["Authorization"] = f"Bearer {TOKEN}"
        return r
