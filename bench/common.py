"""Shared pieces of the benchmarks: realistic bodies, a service subprocess, a load generator, percentiles."""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
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

JSON_TYPE = {"Content-Type": "application/json"}
"""The media type of a webhook body (anything else is answered 415)."""


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
                    async with s.post(url, data=bodies[i % len(bodies)], headers=JSON_TYPE) as r:
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


# -- the shipped configuration, wrk, and watching the file receiver -----------------------------------


class ShippedService(Service):
    """``alert-router serve`` on the repository's own ``alert-router.yaml`` (rules, runbooks, receivers as shipped).

    Only what the shipped file reads from the environment changes: the listen address, the data directory
    and the webhook token.
    """

    def __init__(self, env: dict[str, str] | None = None, token: str = "bench-token") -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="ar-bench-shipped-"))
        self.port = free_port()
        self.token = token
        self.env = {
            **os.environ,
            "ALERT_ROUTER_LISTEN": f"127.0.0.1:{self.port}",
            "ALERT_ROUTER_DATA_DIR": str(self.tmp / "data"),
            "ALERT_ROUTER_TOKEN": token,
            "ALERT_ROUTER_LOG_FORMAT": "json",
            "KUBECONFIG": str(self.tmp / "no-kubeconfig"),  # dry run: nothing would be sent anyway
            **(env or {}),
        }
        self.proc = None
        self.config_path = ROOT / "alert-router.yaml"
        self.notifications = self.tmp / "data" / "notifications.jsonl"

    async def start(self) -> None:
        with (self.tmp / "log").open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "alert_router", "serve", "--config", str(self.config_path)],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        await wait_http(self.url + "/readyz")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def queue_depth(url: str) -> dict[str, float]:
    """``alert_router_queue_depth`` by queue (inbox, notify, runbook)."""
    async with aiohttp.ClientSession() as s, s.get(url + "/metrics") as r:
        text = await r.text()
    return {
        line.split('"')[1]: float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("alert_router_queue_depth{")
    }


async def wait_drained(url: str, timeout: float = 300.0) -> float:
    """Seconds until every queue is empty."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        depth = await queue_depth(url)
        if depth and all(v == 0 for v in depth.values()):
            return time.perf_counter() - start
        await asyncio.sleep(0.05)
    raise RuntimeError(f"queues did not drain within {timeout:.0f}s")


class FileTail:
    """Follows a ``file`` receiver's JSON lines, to time when a group's notification is written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.buffer = b""

    def skip_to_end(self) -> None:
        self.offset = self.path.stat().st_size if self.path.exists() else 0
        self.buffer = b""

    def new_lines(self) -> list[bytes]:
        if not self.path.exists():
            return []
        with self.path.open("rb") as f:
            f.seek(self.offset)
            data = f.read()
        self.offset += len(data)
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        return lines

    async def wait_for(self, needle: bytes, timeout: float = 120.0, since: float | None = None) -> float:
        """Seconds from ``since`` (a ``perf_counter`` time; default now) until a line holding ``needle`` is written.

        Polls every 2 ms.
        """
        start = time.perf_counter() if since is None else since
        while time.perf_counter() - start < timeout:
            if any(needle in line for line in self.new_lines()):
                return time.perf_counter() - start
            await asyncio.sleep(0.002)
        raise RuntimeError(f"{needle!r} not written within {timeout:.0f}s")


def alert_body(
    alertname: str, severity: str, group: str, fingerprints: list[str], *, deployment: str = "model-api"
) -> bytes:
    """A webhook body like ``firing-service-down.json``: one group, one alert per fingerprint (one pod each)."""
    tpl = json.loads((FIXTURES / "firing-service-down.json").read_text())
    first = tpl["alerts"][0]
    labels = {**first["labels"], "alertname": alertname, "severity": severity, "deployment": deployment}
    alerts = [dict(first, fingerprint=fp, labels={**labels, "pod": f"{deployment}-{fp}"}) for fp in fingerprints]
    group_labels = {"alertname": alertname, "group": group}
    return json.dumps(
        {**tpl, "alerts": alerts, "groupKey": f"{{}}:{json.dumps(group_labels)}", "groupLabels": group_labels,
         "commonLabels": labels}
    ).encode()


WRK_RESULT = "wrk-result:"


def wrk_script(path: Path, *, alerts_per_body: int, alertname: str, severity: str, token: str) -> None:
    """A wrk Lua script posting distinct bodies: each request a new group of ``alerts_per_body`` new alerts.

    The body is the captured Alertmanager template with the group key, fingerprints and pod names filled in
    from the wrk thread, a counter and a per-run nonce (so runs never repeat an alert). At the end it prints
    the request count, non-2xx answers and latency percentiles (microseconds) on one ``wrk-result:`` line.
    """
    marker_fp, marker_group = "FPFPFPFPFPFPFPFP", "GRGRGRGRGRGRGRGR"
    body = alert_body(alertname, severity, marker_group, [marker_fp]).decode()
    data = json.loads(body)
    alert_json = json.dumps(data["alerts"][0])
    data["alerts"] = ["ALERTS"]
    outer = json.dumps(data)
    parts = alert_json.split(marker_fp)

    def lua(s: str) -> str:
        return "[==[" + s + "]==]"

    pieces = []  # the body as a Lua concatenation: literals, the group id, the alerts
    for k, piece in enumerate(re.split(f'({marker_group}|"ALERTS")', outer)):
        if k % 2 == 0:
            pieces.append(lua(piece))
        else:
            pieces.append("id" if piece == marker_group else 'table.concat(alerts, ",")')
    body_expr = " .. ".join(pieces)

    script = f"""
local nonce = string.format("%06x", {random.randrange(1 << 24)})
local n_threads = 0
function setup(thread)
  thread:set("tid", n_threads)
  n_threads = n_threads + 1
end
local counter = 0
local headers = {{["Content-Type"] = "application/json", ["Authorization"] = "Bearer {token}"}}
local alert_parts = {{{", ".join(lua(p) for p in parts)}}}
function request()
  counter = counter + 1
  local id = nonce .. string.format("%02x%08x", tid, counter)
  local alerts = {{}}
  for i = 1, {alerts_per_body} do
    local fp = id .. string.format("%02x", i)
    alerts[i] = table.concat(alert_parts, fp)
  end
  local body = {body_expr}
  return wrk.format("POST", nil, headers, body)
end
function done(summary, latency, requests)
  local bad = summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout
  io.write(string.format("{WRK_RESULT} %d %d %.3f %d %d %d\\n", summary.requests, bad, summary.duration / 1e6,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""
    path.write_text(script)


@dataclass
class WrkResult:
    """What one wrk run measured."""

    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float

    @property
    def rps(self) -> float:
        return (self.requests - self.errors) / self.seconds if self.seconds else 0.0


async def run_wrk(url: str, script: Path, *, seconds: float, connections: int, threads: int = 1) -> WrkResult:
    """Run wrk against ``url`` (loopback only) for ``seconds``; it stops by itself."""
    if not shutil.which("wrk"):
        raise RuntimeError("wrk is not installed: `apt-get install wrk` (or scripts/install-system-deps.sh --bench)")
    proc = await asyncio.create_subprocess_exec(
        "wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds:.0f}s", "--timeout", "10s",
        "-s", str(script), url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=seconds + 60)
    for line in out.decode().splitlines():
        if line.startswith(WRK_RESULT):
            req, bad, secs, p50, p99, mx = line.split()[1:]
            return WrkResult(int(req), int(bad), float(secs), int(p50) / 1000, int(p99) / 1000, int(mx) / 1000)
    raise RuntimeError(f"wrk printed no result:\n{out.decode()}")
