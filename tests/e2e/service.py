"""Run ``alert-router serve`` as a real subprocess (for tests that kill it)."""

from __future__ import annotations

import asyncio
import os
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from tests.procs.alertmanager import free_port


class ServiceProcess:
    """``python -m alert_router serve --config PATH --listen 127.0.0.1:PORT``, stdout/stderr to a log file."""

    def __init__(self, config: Path, port: int | None = None, env: dict[str, str] | None = None,
                 client_ssl: ssl.SSLContext | None = None) -> None:
        self.config = config
        self.client_ssl = client_ssl
        """How this test talks to a service that serves HTTPS (``tls:`` in its config): trust and client cert."""
        self.port = port or free_port()
        self.env = {**os.environ, **(env or {})}
        self.log = config.parent / f"service-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL."""
        return f"{'https' if self.client_ssl else 'http'}://127.0.0.1:{self.port}"

    async def start(self, timeout: float = 30.0) -> None:
        """Start and wait for ``/readyz``."""
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "alert_router",
                    "serve",
                    "--config",
                    str(self.config),
                    "--listen",
                    f"127.0.0.1:{self.port}",
                ],
                env=self.env,
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as s:
            while True:
                if self.proc.poll() is not None:
                    raise AssertionError(f"service exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
                try:
                    async with s.get(self.url + "/readyz", ssl=self.client_ssl or True) as r:
                        if r.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(f"service not ready:\n{self.log.read_text()[-3000:]}")
                await asyncio.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    async def metric(self, name: str) -> float:
        """The sum of a metric's samples whose line starts with ``name`` (labels included in ``name``)."""
        async with aiohttp.ClientSession() as s, s.get(self.url + "/metrics", ssl=self.client_ssl or True) as r:
            text = await r.text()
        return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))
