"""PostgreSQL for tests: the machine's shared server when one answers, else a private throwaway cluster.

Tests never touch pre-existing data: every test session works in its own ``ar_test_<random>`` database,
dropped at the end. :class:`PostgresServer` is a private cluster (``initdb`` into a temp dir, ``postgres``
as a child process on a free loopback port, trust auth) that a test may stop, kill and restart.

The pytest fixtures built on this module live in :mod:`tests.procs.fixtures`.
"""

from __future__ import annotations

import asyncio
import getpass
import glob
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from tests.procs.alertmanager import INSTALL_HINT, ManagedProcess, ProcessStartError, free_port

T = TypeVar("T")

SHARED_HOST = "127.0.0.1"
SHARED_PORT = 5432
ADMIN_DSN_ENV = "AR_TEST_PG_ADMIN_DSN"
DB_PREFIX = "ar_test_"

ShutdownMode = Literal["smart", "fast", "immediate"]
_SHUTDOWN_SIGNALS: dict[str, int] = {
    "smart": signal.SIGTERM,
    "fast": signal.SIGINT,
    "immediate": signal.SIGQUIT,
}


def run_sync(factory: Callable[[], Awaitable[T]]) -> T:
    """Run the coroutine made by ``factory`` to completion on a private event loop in a worker thread.

    Sync fixtures use this for asyncpg calls, so they never touch the event loop of the test itself.
    """

    async def runner() -> T:
        return await factory()

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pg-admin") as pool:
        return pool.submit(asyncio.run, runner()).result()


def dsn_with_database(dsn: str, database: str) -> str:
    """Return ``dsn`` with its database (the URL path) replaced by ``database``."""
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


def database_of(dsn: str) -> str:
    """Return the database name of a ``postgresql://`` DSN."""
    return urlsplit(dsn).path.lstrip("/")


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def _can_create_databases(dsn: str) -> bool:
    timeout = 3.0
    try:
        conn = await asyncpg.connect(dsn, timeout=timeout)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    try:
        allowed = await conn.fetchval(
            "SELECT rolsuper OR rolcreatedb FROM pg_roles WHERE rolname = current_user", timeout=timeout
        )
        return bool(allowed)
    finally:
        await conn.close(timeout=timeout)


def find_shared_server(host: str = SHARED_HOST, port: int = SHARED_PORT) -> str | None:
    """Return an admin DSN for a PostgreSQL already answering on ``host:port``, or None.

    ``$AR_TEST_PG_ADMIN_DSN`` wins when set. Otherwise, if ``pg_isready`` says the server accepts
    connections, the users ``postgres``, ``root`` and the current user are tried (against the databases
    ``postgres``, ``test`` and ``template1``) until one may create databases.
    """
    from_env = os.environ.get(ADMIN_DSN_ENV)
    if from_env:
        return from_env
    pg_isready = shutil.which("pg_isready")
    if pg_isready is not None:
        probe = subprocess.run([pg_isready, "-q", "-h", host, "-p", str(port), "-t", "2"], check=False, timeout=10)
        if probe.returncode != 0:
            return None
    users = list(dict.fromkeys(["postgres", "root", getpass.getuser()]))
    for user in users:
        for database in ("postgres", "test", "template1"):
            dsn = f"postgresql://{user}@{host}:{port}/{database}"
            if run_sync(lambda dsn=dsn: _can_create_databases(dsn)):  # type: ignore[misc]
                return dsn
    return None


async def acreate_database(admin_dsn: str, name: str | None = None) -> str:
    """Create an empty database (``ar_test_<random>`` unless ``name``) and return a DSN for it."""
    name = name or f"{DB_PREFIX}{secrets.token_hex(6)}"
    conn = await asyncpg.connect(admin_dsn, timeout=10)
    try:
        await conn.execute(f"CREATE DATABASE {_quote_ident(name)}")
    finally:
        await conn.close()
    return dsn_with_database(admin_dsn, name)


async def adrop_database(admin_dsn: str, name: str) -> None:
    """Drop database ``name``, disconnecting its sessions first (``WITH (FORCE)``)."""
    conn = await asyncpg.connect(admin_dsn, timeout=10)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {_quote_ident(name)} WITH (FORCE)")
    finally:
        await conn.close()


def create_database(admin_dsn: str, name: str | None = None) -> str:
    """Blocking form of :func:`acreate_database`, safe to call from sync fixtures."""
    return run_sync(lambda: acreate_database(admin_dsn, name))


def drop_database(admin_dsn: str, name: str) -> None:
    """Blocking form of :func:`adrop_database`, safe to call from sync fixtures."""
    run_sync(lambda: adrop_database(admin_dsn, name))


def find_pg_bindir() -> Path:
    """Return the directory holding ``initdb`` and ``postgres`` (newest ``/usr/lib/postgresql/*/bin`` first)."""
    override = os.environ.get("AR_TEST_PG_BINDIR")
    candidates = [override] if override else []
    versioned = glob.glob("/usr/lib/postgresql/*/bin")
    versioned.sort(key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0, reverse=True)
    candidates += versioned
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(str(Path(on_path).parent))
    for candidate in candidates:
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "postgres").exists():
            return Path(candidate)
    raise FileNotFoundError(f"PostgreSQL server binaries (initdb, postgres) not found: {INSTALL_HINT}")


def _unprivileged_user() -> str | None:
    """The user to run the server as: None when we are not root, else ``postgres`` (or ``nobody``)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise RuntimeError("running as root, but neither user 'postgres' nor 'nobody' exists to run initdb")


class PostgresServer:
    """A private PostgreSQL cluster in a temp dir, run as a child process on a free loopback port.

    Trust authentication, superuser ``postgres``, ``listen_addresses=127.0.0.1``, socket in the work dir and
    ``fsync=off`` (a process crash loses nothing committed; only an OS crash would). The port stays the
    same across :meth:`restart`, so DSNs handed out stay valid. As root, the server runs as user
    ``postgres`` (or ``nobody``), because PostgreSQL refuses to run as root.
    """

    def __init__(self, *, settings: Mapping[str, str] | None = None, bindir: Path | None = None) -> None:
        self.bindir = bindir or find_pg_bindir()
        self.settings = dict(settings or {})
        self.run_as = _unprivileged_user()
        self.workdir = Path(tempfile.mkdtemp(prefix="ar-pg-"))
        self.data_dir = self.workdir / "data"
        self.port = 0
        self.host = "127.0.0.1"
        self.user = "postgres"
        self.start_timeout = 30.0
        self._proc: ManagedProcess | None = None
        self._initialized = False
        if self.run_as is not None:
            entry = pwd.getpwnam(self.run_as)
            os.chown(self.workdir, entry.pw_uid, entry.pw_gid)

    @property
    def name(self) -> str:
        """A short label for logs and failure reports."""
        return f"postgres@{self.port}"

    @property
    def admin_dsn(self) -> str:
        """DSN of the ``postgres`` maintenance database, as superuser."""
        return self.dsn("postgres")

    def dsn(self, database: str) -> str:
        """DSN of ``database`` on this server, as superuser ``postgres`` over TCP."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    @property
    def running(self) -> bool:
        """True while the postmaster runs."""
        return self._proc is not None and self._proc.running

    @property
    def process(self) -> ManagedProcess | None:
        """The managed postmaster process, once started."""
        return self._proc

    def _run_tool(self, *args: str) -> subprocess.CompletedProcess[str]:
        uid: int | None = None
        gid: int | None = None
        groups: list[int] | None = None
        if self.run_as is not None:
            entry = pwd.getpwnam(self.run_as)
            uid, gid, groups = entry.pw_uid, entry.pw_gid, []
        return subprocess.run(
            list(args),
            cwd=self.workdir,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
            env={**os.environ, "LC_ALL": "C", "LANG": "C"},
            user=uid,
            group=gid,
            extra_groups=groups,
        )

    def init(self) -> None:
        """Run ``initdb`` (trust auth, UTF8, C locale) unless the cluster already exists."""
        if self._initialized:
            return
        result = self._run_tool(
            str(self.bindir / "initdb"),
            "-D", str(self.data_dir),
            "-U", self.user,
            "-A", "trust",
            "-E", "UTF8",
            "--locale=C",
            "--no-sync",
        )  # fmt: skip
        if result.returncode != 0:
            raise ProcessStartError(f"initdb failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        self._initialized = True

    def _argv(self) -> list[str]:
        settings = {
            "listen_addresses": self.host,
            "fsync": "off",
            "full_page_writes": "off",
            "max_connections": "200",
            "shared_buffers": "32MB",
            **self.settings,
        }
        argv = [str(self.bindir / "postgres"), "-D", str(self.data_dir), "-p", str(self.port)]
        argv += ["-k", str(self.workdir)]
        for key, value in settings.items():
            argv += ["-c", f"{key}={value}"]
        return argv

    def _launch(self) -> None:
        if self.running:
            raise RuntimeError(f"{self.name} is already running")
        self.init()
        if not self.port:
            self.port = free_port()
        self._proc = ManagedProcess(
            self.name, self._argv(), log_path=self.workdir / "postgres.log", cwd=self.workdir, user=self.run_as
        )
        self._proc.start()

    def _ready(self) -> bool:
        probe = subprocess.run(
            [str(self.bindir / "pg_isready"), "-q", "-h", self.host, "-p", str(self.port), "-U", self.user, "-t", "1"],
            check=False,
            timeout=10,
        )
        return probe.returncode == 0

    def _wait_until_ready(self) -> None:
        """Block until the server accepts connections; raise with its log if it exits or takes too long."""
        assert self._proc is not None
        deadline = time.monotonic() + self.start_timeout
        while self._proc.running and time.monotonic() < deadline:
            if self._ready():
                return
            time.sleep(0.05)
        state = "exited" if not self._proc.running else f"not accepting connections after {self.start_timeout}s"
        raise ProcessStartError(f"{self.name} {state}; log:\n{self._proc.log_text()}")

    def _retry_on_new_port(self, first_start: bool) -> bool:
        """After a failed start: stop leftovers; True if a first start lost its port and may retry."""
        assert self._proc is not None
        self._proc.stop(sig=signal.SIGQUIT, grace=5)
        self._proc.send_signal(signal.SIGKILL, group=True)
        if first_start and "already in use" in self._proc.log_text(30):
            self.port = 0
            return True
        return False

    def start(self) -> None:
        """Start the server (``initdb`` first if needed); wait up to ``start_timeout`` s for connections."""
        first_start = not self.port
        self._launch()
        try:
            self._wait_until_ready()
        except ProcessStartError:
            if self._retry_on_new_port(first_start):
                self.start()
                return
            raise

    async def astart(self) -> None:
        """Like :meth:`start`, but waits in a worker thread, so the event loop keeps running."""
        first_start = not self.port
        self._launch()  # from the calling thread, so the parent-death signal follows this thread
        try:
            await asyncio.to_thread(self._wait_until_ready)
        except ProcessStartError:
            if self._retry_on_new_port(first_start):
                await self.astart()
                return
            raise

    def stop(self, mode: ShutdownMode = "fast", *, grace: float = 30.0) -> None:
        """Shut the server down: ``smart`` waits for clients, ``fast`` disconnects them, ``immediate`` aborts.

        Whatever the mode, the whole process group is SIGKILLed after ``grace`` seconds.
        """
        if self._proc is None:
            return
        self._proc.stop(sig=_SHUTDOWN_SIGNALS[mode], grace=grace)
        self._proc.send_signal(signal.SIGKILL, group=True)

    async def astop(self, mode: ShutdownMode = "fast", *, grace: float = 30.0) -> None:
        """Like :meth:`stop`, but waits in a worker thread, so the event loop keeps running."""
        await asyncio.to_thread(self.stop, mode, grace=grace)

    def kill(self) -> None:
        """SIGKILL the postmaster and all its backends at once, as a machine crash would."""
        if self._proc is None:
            return
        self._proc.send_signal(signal.SIGKILL, group=True)
        self._proc.stop(sig=signal.SIGKILL)

    def restart(self, mode: ShutdownMode = "fast", *, down_for: float = 0.0) -> None:
        """Stop the server (``mode``), stay down ``down_for`` seconds, start it again on the same port."""
        self.stop(mode)
        if down_for:
            time.sleep(down_for)
        self.start()

    async def arestart(self, mode: ShutdownMode = "fast", *, down_for: float = 0.0) -> None:
        """Like :meth:`restart`, without blocking the event loop (traffic keeps flowing meanwhile)."""
        await self.astop(mode)
        if down_for:
            await asyncio.sleep(down_for)
        await self.astart()

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database on this server and return its DSN (blocking)."""
        return create_database(self.admin_dsn, name)

    async def acreate_database(self, name: str | None = None) -> str:
        """Create an empty database on this server and return its DSN."""
        return await acreate_database(self.admin_dsn, name)

    def cleanup(self) -> None:
        """Stop the server (fast, then kill) and delete its data directory."""
        self.stop("fast", grace=10)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def log_text(self, tail_lines: int = 200) -> str:
        """The tail of the server log (all starts appended)."""
        return self._proc.log_text(tail_lines) if self._proc is not None else ""

    def __enter__(self) -> PostgresServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()
