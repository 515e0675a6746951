"""Shared pieces of the benchmarks: realistic bodies, a service subprocess, a load generator, percentiles."""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
# Real Alertmanager 0.25 bodies (see tests/fixtures/alertmanager-0.25/README.md), used as templates.
FIXTURES = ROOT / "tests" / "fixtures" / "alertmanager-0.25"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def body_template() -> dict[str, Any]:
    return json.loads((FIXTURES / "firing-latency-truncated.json").read_text())  # type: ignore[no-any-return]


class Bodies:
    """Distinct, realistic webhook bodies: ``alerts_per_body`` alerts each, unique fingerprints."""

    def __init__(self, alerts_per_body: int = 10, groups: int = 200) -> None:
        self.tpl = body_template()
        self.alert_tpl = self.tpl["alerts"][0]
        self.n = 0
        self.alerts_per_body = alerts_per_body
        self.groups = groups

    def next(self) -> bytes:
        self.n += 1
        g = self.n % self.groups
        alerts = []
        for i in range(self.alerts_per_body):
            a = json.loads(json.dumps(self.alert_tpl))
            a["labels"] = {**a["labels"], "pod": f"model-api-{self.n}-{i}", "group": str(g)}
            a["fingerprint"] = f"{self.n:010x}{i:06x}"
            alerts.append(a)
        body = {
            **self.tpl,
            "alerts": alerts,
            "groupKey": f'{{}}:{{alertname="HighModelLatency", group="{g}"}}',
            "groupLabels": {"alertname": "HighModelLatency", "group": str(g)},
        }
        return json.dumps(body).encode()


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))
    return s[k]


@dataclass
class LoadResult:
    requests: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def row(self) -> tuple[float, float, float]:
        return self.rps, percentile(self.latencies, 50) * 1000, percentile(self.latencies, 99) * 1000


async def drive(
    url: str,
    bodies: list[bytes],
    *,
    connections: int,
    seconds: float,
    headers: dict[str, str],
    rate: float | None = None,
    max_requests: int | None = None,
) -> LoadResult:
    """POST bodies round-robin from ``connections`` workers for ``seconds`` (optionally at ``rate`` req/s in total)."""
    res = LoadResult()
    deadline = time.perf_counter() + seconds
    counter = 0
    start = time.perf_counter()
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector, headers={"Content-Type": "application/json", **headers}) as s:

        async def worker(w: int) -> None:
            nonlocal counter
            while True:
                now = time.perf_counter()
                if now >= deadline or (max_requests is not None and counter >= max_requests):
                    return
                i = counter
                counter += 1
                if rate:
                    due = start + i / rate
                    if due > now:
                        await asyncio.sleep(due - now)
                t = time.perf_counter()
                try:
                    async with s.post(url, data=bodies[i % len(bodies)]) as r:
                        await r.read()
                        res.statuses[r.status] = res.statuses.get(r.status, 0) + 1
                        if r.status != 200:
                            res.errors += 1
                except aiohttp.ClientError:
                    res.errors += 1
                    continue
                res.latencies.append(time.perf_counter() - t)
                res.requests += 1

        await asyncio.gather(*(worker(w) for w in range(connections)))
    res.seconds = time.perf_counter() - start
    return res


class Service:
    """``alert-router serve`` in a subprocess on loopback, with a throwaway config and data dir."""

    def __init__(
        self,
        extra_config: str = "",
        receivers: str | None = None,
        env: dict[str, str] | None = None,
        token: str = "bench-token",
    ) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="ar-bench-"))
        self.port = free_port()
        self.token = token
        (self.tmp / "rules").mkdir()
        (self.tmp / "runbooks").mkdir()
        (self.tmp / "rules" / "r.yaml").write_text(
            "rules:\n  - name: all\n    match: []\n    receivers: [file]\ndefault: {receivers: [file]}\n"
        )
        receivers = receivers or "receivers:\n  - name: file\n    file: {path: out.jsonl}\n"
        (self.tmp / "alert-router.yaml").write_text(
            f"listen: 127.0.0.1:{self.port}\ndata_dir: {self.tmp / 'data'}\nauth: {{bearer_token: {token}}}\n"
            f"log: {{level: warning}}\n{receivers}rules: rules/\nrunbooks: runbooks/\n{extra_config}"
        )
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        with (self.tmp / "log").open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "alert_router", "serve", "--config", str(self.tmp / "alert-router.yaml")],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        await wait_http(self.url + "/readyz")

    def rss_mb(self) -> float:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        """Stop the service and remove its directory (a 10 s ingest run leaves gigabytes of store behind)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if os.environ.get("BENCH_KEEP"):
            print(f"kept {self.tmp}", file=sys.stderr)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


async def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as s:
        while True:
            try:
                async with s.get(url) as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} not ready after {timeout}s")
            await asyncio.sleep(0.1)


def table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [[f"{c:.1f}" if isinstance(c, float) else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def seed() -> None:
    random.seed(1)
