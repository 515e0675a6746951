"""Test helpers shared across the suite: write a config, run the app in-process, load fixtures, wait for things."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from alert_router.app import build_app
from alert_router.appkeys import RUNTIME, Runtime
from alert_router.config import Config, load

# Real Alertmanager 0.25 bodies (where they come from: tests/fixtures/alertmanager-0.25/README.md).
JSON_TYPE = {"Content-Type": "application/json"}
"""The header a webhook body needs (any other media type is answered 415)."""

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "alertmanager-0.25"

DEFAULT_RULES = """\
rules:
  - name: everything
    match: []
    receivers: [file]
default:
  receivers: [file]
"""


def fixture_bytes(name: str) -> bytes:
    """The raw bytes of a captured webhook body."""
    return (FIXTURES / name).read_bytes()


def fixture_json(name: str) -> dict[str, Any]:
    """A captured webhook body as a dict (to mutate)."""
    return json.loads(fixture_bytes(name))


def write_config(tmp: Path, body: str = "", rules: str = DEFAULT_RULES, runbooks: dict[str, str] | None = None,
                 receivers: str | None = None) -> Path:
    """Write ``alert-router.yaml`` (with a ``file`` receiver by default), rules and runbooks under ``tmp``."""
    (tmp / "rules").mkdir(parents=True, exist_ok=True)
    (tmp / "runbooks").mkdir(parents=True, exist_ok=True)
    (tmp / "rules" / "rules.yaml").write_text(rules)
    for name, text in (runbooks or {}).items():
        (tmp / "runbooks" / name).write_text(text)
    if receivers is None:
        receivers = "receivers:\n  - name: file\n    file: {path: out.jsonl, fsync: false}\n"
    cfg = (
        f"data_dir: {tmp / 'data'}\n"
        "ingest: {poll_interval: 0.2}\n"
        "delivery: {retry_for: 2s, attempt_timeout: 2s}\n"
        f"{receivers}rules: rules/\nrunbooks: runbooks/\n{body}"
    )
    path = tmp / "alert-router.yaml"
    path.write_text(cfg)
    return path


@asynccontextmanager
async def running_app(config: Config | Path, **kwargs: Any) -> AsyncIterator[tuple[TestClient[Any, Any], Runtime]]:
    """Serve the app on loopback; yield an aiohttp test client and the runtime."""
    cfg = load(config, {}) if isinstance(config, Path) else config
    app = build_app(cfg, **kwargs)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client, app[RUNTIME]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records a ``file`` receiver wrote (none when the file does not exist)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


async def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until truthy; fail with a clear message after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


async def settle(rt: Runtime, timeout: float = 10.0) -> None:
    """Wait until the inbox and the notify queue are empty."""

    async def idle() -> bool:
        d = await rt.store.depth(time.time())
        return d.inbox == 0 and not any(d.outbox.values())

    await wait_for(idle, timeout)


async def raw_http(
    port: int,
    method: str,
    target: str,
    headers: list[tuple[bytes, bytes]] | None = None,
    body: bytes = b"",
    *,
    host: str = "127.0.0.1",
) -> tuple[int, dict[str, str], bytes]:
    """Send one HTTP/1.1 request byte for byte (headers and body may hold any bytes); return status, headers, body.

    Clients such as aiohttp refuse to send a header value that is not valid text, but an attacker's socket
    does not: this writes the request as given and reads the answer until the server closes.
    """
    reader, writer = await asyncio.open_connection(host, port)
    try:
        head = [f"{method} {target} HTTP/1.1".encode(), f"Host: {host}:{port}".encode(), b"Connection: close",
                f"Content-Length: {len(body)}".encode()]
        head += [name + b": " + value for name, value in headers or []]
        writer.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), timeout=30)
    finally:
        writer.close()
        await writer.wait_closed()
    top, _, rest = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = top.decode("latin-1").split("\r\n")
    answer_headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    if answer_headers.get("transfer-encoding") == "chunked":
        rest = _unchunk(rest)
    return int(status_line.split()[1]), answer_headers, rest


def _unchunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out, data = out + data[:size], data[size + 2 :]
    return out
