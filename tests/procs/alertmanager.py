"""A real Prometheus Alertmanager (Debian's ``prometheus-alertmanager`` 0.25) on loopback, for tests.

This module also holds the small process helpers shared by :mod:`tests.procs.prometheus` and
:mod:`tests.procs.postgres`: :func:`free_port` and :class:`ManagedProcess`.

Typical use, through the ``alertmanager_factory`` fixture of :mod:`tests.procs.fixtures`::

    [am] = await alertmanager_factory([Webhook(url, bearer_token="s3cret")])
    await am.push_alerts([{"labels": {"alertname": "Down", "severity": "page"}}])
    await am.resolve({"alertname": "Down", "severity": "page"})
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import yaml

ALERTMANAGER_BIN = os.environ.get("AR_TEST_ALERTMANAGER_BIN", "/usr/bin/prometheus-alertmanager")
INSTALL_HINT = "run `sudo scripts/install-system-deps.sh` (Debian) to install it"

# Ports handed out by this process; never hand out the same one twice in a test run.
_handed_out: set[int] = set()
_handed_out_lock = threading.Lock()


class ProcessStartError(RuntimeError):
    """A test process did not come up; the message carries the tail of its log."""


def free_port(*, udp_too: bool = False) -> int:
    """Return a loopback TCP port that is free right now (and, with ``udp_too``, free for UDP as well).

    The port is found by binding to 127.0.0.1:0 and closing the socket, so another process may take it in the
    meantime; callers that start a server retry with a new port when the bind fails.
    """
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port: int = tcp.getsockname()[1]
        if udp_too:
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                    udp.bind(("127.0.0.1", port))
            except OSError:
                continue
        with _handed_out_lock:
            if port in _handed_out:
                continue
            _handed_out.add(port)
        return port
    raise RuntimeError("could not find a free loopback port")


def require_binary(path: str, what: str) -> str:
    """Return ``path`` if it is an executable file, else raise with a hint to install the Debian package."""
    resolved = path if os.path.isabs(path) else shutil.which(path)
    if not resolved or not os.access(resolved, os.X_OK):
        raise FileNotFoundError(f"{what} binary {path!r} not found: {INSTALL_HINT}")
    return resolved


def _set_parent_death_signal() -> None:  # pragma: no cover - runs in the forked child
    """Ask the kernel to SIGKILL this child when its parent dies, so no daemon outlives a crashed pytest."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)


def rfc3339(moment: datetime) -> str:
    """Format an aware datetime as RFC 3339 in UTC with a ``Z`` suffix, as Alertmanager and Prometheus write it."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class ManagedProcess:
    """One child process whose output goes to a log file, stopped with SIGTERM then SIGKILL.

    The child is started with a parent-death signal (when started from the main thread), so it dies with the
    test run even if pytest itself is killed.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        user: str | int | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.cwd = cwd
        self.env = dict(env) if env is not None else None
        self.user = user
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The pid of the running child, or None before start."""
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        """True while the child has been started and has not exited."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        """The exit status once the child has exited, else None."""
        return self._proc.poll() if self._proc is not None else None

    def start(self) -> None:
        """Start the child, appending its stdout and stderr to ``log_path``."""
        if self.running:
            raise RuntimeError(f"{self.name} is already running")
        in_main_thread = threading.current_thread() is threading.main_thread()
        group: int | None = None
        extra_groups: list[int] | None = None
        if self.user is not None and os.geteuid() == 0:
            entry = pwd.getpwnam(self.user) if isinstance(self.user, str) else pwd.getpwuid(self.user)
            group, extra_groups = entry.pw_gid, []
        with self.log_path.open("ab") as log:
            log.write(f"==> {datetime.now(UTC).isoformat()} starting: {' '.join(self.argv)}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.cwd,
                env=self.env,
                user=self.user,
                group=group,
                extra_groups=extra_groups,
                start_new_session=True,
                preexec_fn=_set_parent_death_signal if in_main_thread else None,
            )

    def send_signal(self, sig: int, *, group: bool = False) -> None:
        """Send ``sig`` to the child if it still runs; with ``group``, to every process left in its group."""
        if self._proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if group:
                # The child leads its own session, so its pid is the group id; members may outlive it.
                os.killpg(self._proc.pid, sig)
            elif self._proc.poll() is None:
                self._proc.send_signal(sig)

    def stop(self, *, sig: int = signal.SIGTERM, grace: float = 10.0) -> int | None:
        """Send ``sig``, wait up to ``grace`` seconds, then SIGKILL; return the exit status."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            self.send_signal(sig)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        return proc.returncode

    async def astop(self, *, sig: int = signal.SIGTERM, grace: float = 10.0) -> int | None:
        """Like :meth:`stop`, but waits in a worker thread, so the event loop keeps running."""
        return await asyncio.to_thread(self.stop, sig=sig, grace=grace)

    def log_text(self, tail_lines: int = 200) -> str:
        """Return the last ``tail_lines`` lines of the child's log (empty if there is none)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        lines = text.splitlines()
        return "\n".join(lines[-tail_lines:])


class ReadinessProbe:
    """Polls an HTTP URL of a child process until it answers 200 (and ``check(json)`` holds, when given).

    :meth:`wait` has no time limit of its own: wrap it in ``asyncio.timeout`` and, on expiry, report
    :attr:`last_error`. It fails fast with :class:`ProcessStartError` if the process exits.
    """

    def __init__(self, url: str, proc: ManagedProcess, check: Callable[[Any], bool] | None = None) -> None:
        self.url = url
        self.proc = proc
        self.check = check
        self.last_error = "no answer yet"

    async def wait(self) -> None:
        """Return once the URL answers as expected."""
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            while True:
                if not self.proc.running:
                    raise ProcessStartError(
                        f"{self.proc.name} exited with status {self.proc.returncode} before it was ready; "
                        f"log:\n{self.proc.log_text()}"
                    )
                if await self._answers(session):
                    return
                await asyncio.sleep(0.05)

    async def _answers(self, session: aiohttp.ClientSession) -> bool:
        try:
            async with session.get(self.url) as response:
                if response.status != 200:
                    self.last_error = f"HTTP {response.status}"
                    return False
                if self.check is None:
                    return True
                body = await response.json(content_type=None)
                if self.check(body):
                    return True
                self.last_error = f"not yet: {body!r:.300}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.last_error = repr(exc)
        return False


async def wait_ready(
    url: str, proc: ManagedProcess, budget_s: float, check: Callable[[Any], bool] | None = None
) -> None:
    """Wait at most ``budget_s`` seconds for :class:`ReadinessProbe`; raise :class:`ProcessStartError` with the log."""
    probe = ReadinessProbe(url, proc, check)
    try:
        async with asyncio.timeout(budget_s):
            await probe.wait()
    except TimeoutError:
        raise ProcessStartError(
            f"{proc.name} not ready at {url} within {budget_s}s ({probe.last_error}); log:\n{proc.log_text()}"
        ) from None


def _address_in_use(proc: ManagedProcess) -> bool:
    return "address already in use" in proc.log_text(50).lower()


# --------------------------------------------------------------------------------------------------------------
# Alertmanager
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Webhook:
    """One ``webhook_configs`` entry of the Alertmanager receiver.

    Give at most one of ``bearer_token`` (sent as ``Authorization: Bearer <token>``) and ``basic_auth``
    (a ``(username, password)`` pair).
    """

    url: str
    send_resolved: bool = True
    max_alerts: int = 0
    bearer_token: str | None = None
    basic_auth: tuple[str, str] | None = None
    tls_config: Mapping[str, Any] | None = None
    """``http_config.tls_config``: ``ca_file``, ``cert_file``, ``key_file``, ``server_name``…"""

    def to_config(self) -> dict[str, Any]:
        """Return the YAML-ready mapping Alertmanager expects for this webhook."""
        if self.bearer_token is not None and self.basic_auth is not None:
            raise ValueError("a webhook takes bearer_token or basic_auth, not both")
        config: dict[str, Any] = {
            "url": self.url,
            "send_resolved": self.send_resolved,
            "max_alerts": self.max_alerts,
        }
        if self.bearer_token is not None:
            config["http_config"] = {"authorization": {"type": "Bearer", "credentials": self.bearer_token}}
        elif self.basic_auth is not None:
            username, password = self.basic_auth
            config["http_config"] = {"basic_auth": {"username": username, "password": password}}
        if self.tls_config is not None:
            config.setdefault("http_config", {})["tls_config"] = dict(self.tls_config)
        return config


@dataclass
class ClusterSettings:
    """Gossip settings for a clustered Alertmanager; the defaults make a loopback pair converge in ~2 s."""

    listen_port: int
    peers: Sequence[str] = ()
    gossip_interval: str = "50ms"
    pushpull_interval: str = "1s"
    peer_timeout: str = "2s"
    expected_peers: int = 1


def _escape_matcher_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels_key(labels: Mapping[str, str]) -> frozenset[tuple[str, str]]:
    return frozenset(labels.items())


@dataclass
class Alertmanager:
    """A real Alertmanager process with one webhook receiver, plus async helpers for its API v2.

    The routing tree is a single route to receiver ``receiver_name`` grouped by ``group_by``. Call
    :meth:`start` (async), then :meth:`stop`; the ``alertmanager_factory`` fixture does both.
    """

    webhooks: Sequence[Webhook | str]
    group_by: Sequence[str] = ("alertname",)
    group_wait: str = "1s"
    group_interval: str = "1s"
    repeat_interval: str = "1h"
    resolve_timeout: str = "5m"
    receiver_name: str = "alert-router"
    cluster: ClusterSettings | None = None
    extra_args: Sequence[str] = ()
    start_timeout: float = 20.0
    binary: str = ALERTMANAGER_BIN
    port: int = 0
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="ar-am-")))
    _proc: ManagedProcess | None = field(default=None, init=False, repr=False)
    _starts: dict[frozenset[tuple[str, str]], str] = field(default_factory=dict, init=False, repr=False)

    @property
    def name(self) -> str:
        """A short label for logs and failure reports."""
        return f"alertmanager@{self.port}"

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:40123``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def api(self) -> str:
        """The API v2 base URL."""
        return f"{self.url}/api/v2"

    @property
    def config_path(self) -> Path:
        """Where the generated ``alertmanager.yml`` lives."""
        return self.workdir / "alertmanager.yml"

    @property
    def process(self) -> ManagedProcess | None:
        """The managed process, once started."""
        return self._proc

    def config(self) -> dict[str, Any]:
        """Return the configuration this instance runs with, as a mapping."""
        hooks = [h if isinstance(h, Webhook) else Webhook(h) for h in self.webhooks]
        return {
            "global": {"resolve_timeout": self.resolve_timeout},
            "route": {
                "receiver": self.receiver_name,
                "group_by": list(self.group_by),
                "group_wait": self.group_wait,
                "group_interval": self.group_interval,
                "repeat_interval": self.repeat_interval,
            },
            "receivers": [{"name": self.receiver_name, "webhook_configs": [h.to_config() for h in hooks]}],
        }

    def write_config(self) -> Path:
        """Write :meth:`config` to :attr:`config_path` and return the path."""
        self.config_path.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        return self.config_path

    def argv(self) -> list[str]:
        """The command line for the current port and cluster settings."""
        argv = [
            self.binary,
            f"--config.file={self.config_path}",
            f"--storage.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            f"--web.external-url={self.url}",
        ]
        if self.cluster is None:
            argv.append("--cluster.listen-address=")
        else:
            c = self.cluster
            argv += [
                f"--cluster.listen-address=127.0.0.1:{c.listen_port}",
                f"--cluster.advertise-address=127.0.0.1:{c.listen_port}",
                f"--cluster.gossip-interval={c.gossip_interval}",
                f"--cluster.pushpull-interval={c.pushpull_interval}",
                f"--cluster.peer-timeout={c.peer_timeout}",
                "--cluster.probe-interval=200ms",
                "--cluster.reconnect-interval=1s",
                *(f"--cluster.peer={peer}" for peer in c.peers),
            ]
        return [*argv, *self.extra_args]

    async def start(self, *, wait_settled: bool = True) -> None:
        """Write the config, start the process and wait (``start_timeout``) until ``/-/ready`` answers.

        For a clustered instance with ``wait_settled``, also wait until ``/api/v2/status`` reports the cluster
        ``ready`` with the expected number of peers. A web port lost to a race is retried with a new one.
        """
        require_binary(self.binary, "Alertmanager")
        (self.workdir / "data").mkdir(parents=True, exist_ok=True)
        self.write_config()
        for attempt in range(3):
            if not self.port or attempt:
                self.port = free_port()
            self._proc = ManagedProcess(self.name, self.argv(), log_path=self.workdir / "alertmanager.log")
            self._proc.start()
            try:
                await wait_ready(f"{self.url}/-/ready", self._proc, self.start_timeout)
                break
            except ProcessStartError:
                if attempt < 2 and not self._proc.running and _address_in_use(self._proc):
                    continue
                self._proc.stop()
                raise
        if self.cluster is not None and wait_settled:
            await self.wait_cluster_ready(self.cluster.expected_peers + 1)

    async def wait_cluster_ready(self, members: int) -> None:
        """Wait (``start_timeout``) until the cluster is ``ready`` and lists ``members`` members, this one included."""
        assert self._proc is not None

        def settled(body: Any) -> bool:
            cluster = body.get("cluster") or {}
            return cluster.get("status") == "ready" and len(cluster.get("peers") or []) >= members

        await wait_ready(f"{self.api}/status", self._proc, self.start_timeout, settled)

    async def reload(self) -> None:
        """Rewrite the config from the current attributes and ask the process to reload it."""
        self.write_config()
        async with aiohttp.ClientSession() as session, session.post(f"{self.url}/-/reload") as response:
            if response.status != 200:
                raise RuntimeError(f"reload failed: HTTP {response.status}: {await response.text()}")

    def stop(self, *, grace: float = 10.0) -> None:
        """Stop the process (SIGTERM, then SIGKILL after ``grace`` s); the work dir stays for :meth:`cleanup`."""
        if self._proc is not None:
            self._proc.stop(grace=grace)

    def kill(self) -> None:
        """Kill the process with SIGKILL, as a crash would."""
        if self._proc is not None:
            self._proc.stop(sig=signal.SIGKILL)

    def cleanup(self) -> None:
        """Stop the process and remove the temporary work directory."""
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def log_text(self, tail_lines: int = 200) -> str:
        """The tail of the process log."""
        return self._proc.log_text(tail_lines) if self._proc is not None else ""

    # ---- API v2 helpers ------------------------------------------------------------------------------------

    async def _request(self, method: str, path: str, *, json: Any = None, params: Any = None) -> Any:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
            session.request(method, f"{self.api}{path}", json=json, params=params) as response,
        ):
            text = await response.text()
            if response.status >= 300:
                raise RuntimeError(f"{method} {path} -> HTTP {response.status}: {text}")
            if not text:
                return None
            return await response.json(content_type=None)

    async def push_alerts(self, alerts: Sequence[Mapping[str, Any]]) -> None:
        """POST alerts to ``/api/v2/alerts``.

        Each item has ``labels`` and optionally ``annotations``, ``startsAt``, ``endsAt`` (datetime or RFC 3339
        string) and ``generatorURL``. A missing ``startsAt`` is set to now and remembered, so :meth:`resolve`
        can re-post the same start time.
        """
        body = []
        for alert in alerts:
            labels = dict(alert["labels"])
            item: dict[str, Any] = {"labels": labels, "annotations": dict(alert.get("annotations") or {})}
            starts_at = alert.get("startsAt") or self._starts.get(_labels_key(labels)) or datetime.now(UTC)
            item["startsAt"] = rfc3339(starts_at) if isinstance(starts_at, datetime) else starts_at
            self._starts[_labels_key(labels)] = item["startsAt"]
            if alert.get("endsAt") is not None:
                ends_at = alert["endsAt"]
                item["endsAt"] = rfc3339(ends_at) if isinstance(ends_at, datetime) else ends_at
            if alert.get("generatorURL"):
                item["generatorURL"] = alert["generatorURL"]
            body.append(item)
        await self._request("POST", "/alerts", json=body)

    async def resolve(self, labels: Mapping[str, str], *, annotations: Mapping[str, str] | None = None) -> None:
        """Resolve the alert with exactly these ``labels`` by re-posting it with ``endsAt`` in the past."""
        ends_at = datetime.now(UTC) - timedelta(milliseconds=100)
        starts_at = self._starts.get(_labels_key(labels))
        if starts_at is None or datetime.fromisoformat(starts_at.replace("Z", "+00:00")) > ends_at:
            starts_at = rfc3339(ends_at - timedelta(seconds=1))
        await self.push_alerts(
            [{"labels": labels, "annotations": annotations or {}, "startsAt": starts_at, "endsAt": ends_at}]
        )
        # A later push of the same labels is a new firing, with a new start time.
        self._starts.pop(_labels_key(labels), None)

    async def alerts(
        self,
        *,
        filter: Sequence[str] | Mapping[str, str] = (),
        silenced: bool | None = None,
        inhibited: bool | None = None,
        active: bool | None = None,
        receiver: str | None = None,
    ) -> list[dict[str, Any]]:
        """GET ``/api/v2/alerts``; ``filter`` is matcher strings (``'alertname="X"'``) or a label mapping."""
        if isinstance(filter, Mapping):
            matchers = [f'{k}="{_escape_matcher_value(v)}"' for k, v in filter.items()]
        else:
            matchers = list(filter)
        params: list[tuple[str, str]] = [("filter", m) for m in matchers]
        for key, value in (("silenced", silenced), ("inhibited", inhibited), ("active", active)):
            if value is not None:
                params.append((key, "true" if value else "false"))
        if receiver is not None:
            params.append(("receiver", receiver))
        result: list[dict[str, Any]] = await self._request("GET", "/alerts", params=params)
        return result

    async def silences(self) -> list[dict[str, Any]]:
        """GET ``/api/v2/silences`` (all states: active, pending and expired)."""
        result: list[dict[str, Any]] = await self._request("GET", "/silences")
        return result

    async def create_silence(
        self,
        matchers: Mapping[str, str] | Sequence[Mapping[str, Any]],
        *,
        duration: timedelta = timedelta(hours=1),
        starts_at: datetime | None = None,
        comment: str = "created by alert-router tests",
        created_by: str = "alert-router-tests",
    ) -> str:
        """POST ``/api/v2/silences`` and return the new silence id.

        ``matchers`` is either a label mapping (equality matchers) or API matcher objects
        (``{name, value, isRegex, isEqual}``).
        """
        if isinstance(matchers, Mapping):
            api_matchers: list[dict[str, Any]] = [
                {"name": k, "value": v, "isRegex": False, "isEqual": True} for k, v in matchers.items()
            ]
        else:
            api_matchers = [{"isRegex": False, "isEqual": True, **m} for m in matchers]
        start = starts_at or datetime.now(UTC)
        body = {
            "matchers": api_matchers,
            "startsAt": rfc3339(start),
            "endsAt": rfc3339(start + duration),
            "createdBy": created_by,
            "comment": comment,
        }
        result = await self._request("POST", "/silences", json=body)
        silence_id: str = result["silenceID"]
        return silence_id

    async def expire_silence(self, silence_id: str) -> None:
        """DELETE ``/api/v2/silence/{id}`` (note the singular path)."""
        await self._request("DELETE", f"/silence/{silence_id}")

    async def status(self) -> dict[str, Any]:
        """GET ``/api/v2/status`` (cluster, config, version)."""
        result: dict[str, Any] = await self._request("GET", "/status")
        return result
