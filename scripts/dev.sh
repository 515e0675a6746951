#!/usr/bin/env bash
# One entry point for newcomers and CI.
#
#   scripts/dev.sh serve   set up the virtualenv and run the service on its embedded defaults
#                          (SQLite under ./data, notifications to the console and data/notifications.jsonl,
#                          remediation in dry run) on http://127.0.0.1:8080
#   scripts/dev.sh test    set up everything the tests need (Debian packages included) and run
#                          ruff, mypy (strict) and the whole pytest suite
#   scripts/dev.sh setup   only create/refresh .venv
#   scripts/dev.sh lock    re-resolve requirements.lock and requirements-dev.lock (the one way to change versions;
#                          `lock --upgrade` takes the newest allowed releases, `lock --upgrade-package NAME`
#                          one package), then rebuild .venv from them
#
# Extra arguments after `test` go to pytest (e.g. scripts/dev.sh test -k webhook); the suite runs on two worker
# processes (pytest-xdist), PYTEST_WORKERS=N sets how many, 0 runs it in one process.
#
# The venv is built only from requirements-dev.lock (exact versions with hashes, pip --require-hashes) and is
# rebuilt from scratch whenever that lock, pyproject.toml or the interpreter changes, so what runs the tests is
# exactly what the locks say, whatever the package index published since.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=.venv

DEV_LOCK=requirements-dev.lock
RUNTIME_LOCK=requirements.lock

# What the venv was built from: the dev lock, pyproject.toml and the interpreter.
fingerprint() {
    { "$PYTHON" -c 'import sys; print(sys.version)'; cat "$DEV_LOCK" pyproject.toml; } | sha256sum | cut -d' ' -f1
}

setup() {
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || { echo "alert-router needs Python >= 3.11 (found $("$PYTHON" --version 2>&1))" >&2; exit 1; }
    local want stamp="$VENV/.lock-fingerprint"
    want=$(fingerprint)
    if [ -x "$VENV/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
        return 0
    fi
    echo "== building $VENV from $DEV_LOCK" >&2
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    bash scripts/install-locked.sh "$VENV" "$DEV_LOCK"
    # The project itself, editable, with the locked setuptools and no dependency resolution of its own.
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
    "$VENV/bin/python" -m pip check >/dev/null
    echo "$want" >"$stamp"
}

# A uv at the version the dev lock pins: the venv's, else one installed (with its hashes) into a scratch venv.
# Not `setup`: after a dependency was added to pyproject.toml, the venv cannot be built until the locks are.
locked_uv() {
    if [ -x "$VENV/bin/uv" ]; then
        echo "$VENV/bin/uv"
        return 0
    fi
    local tools
    tools=${TMPDIR:-/tmp}/alert-router-$(grep -m1 -o '^uv==[^ ]*' "$DEV_LOCK")
    if [ ! -x "$tools/bin/uv" ]; then
        "$PYTHON" -m venv "$tools" >&2
        awk '/^uv==/ {p = 1} p {print} p && !/\\$/ {exit}' "$DEV_LOCK" >"$tools/uv.lock"
        bash scripts/install-locked.sh "$tools" "$tools/uv.lock" >&2
    fi
    echo "$tools/bin/uv"
}

lock() {
    local uv
    uv=$(locked_uv)
    # --universal: one lock for every platform the image or a developer may use (markers where they differ);
    # without --upgrade the current pins are kept as preferences, so only what must move moves.
    local common=(--quiet --universal --python-version 3.11 --generate-hashes --custom-compile-command "scripts/dev.sh lock")
    "$uv" pip compile "${common[@]}" "$@" pyproject.toml -o "$RUNTIME_LOCK"
    # The dev lock is constrained to the runtime lock, so the tests run exactly what the image ships.
    "$uv" pip compile "${common[@]}" "$@" --extra test -c "$RUNTIME_LOCK" pyproject.toml -o "$DEV_LOCK"
    setup
    git --no-pager diff --stat -- "$RUNTIME_LOCK" "$DEV_LOCK" 2>/dev/null || true
}

cmd=${1:-}
shift || true
case "$cmd" in
    setup)
        setup
        ;;
    lock)
        lock "$@"
        ;;
    serve)
        setup
        export ALERT_ROUTER_LISTEN=${ALERT_ROUTER_LISTEN:-127.0.0.1:8080}
        exec "$VENV/bin/alert-router" serve --config alert-router.yaml --log-format console "$@"
        ;;
    test)
        if [ "$(id -u)" -eq 0 ]; then
            bash scripts/install-system-deps.sh
        else
            sudo -n bash scripts/install-system-deps.sh || echo "warning: could not install Debian packages (not root)" >&2
        fi
        setup
        echo "== ruff"
        "$VENV/bin/ruff" check .
        echo "== mypy (strict)"
        "$VENV/bin/mypy" alert_router
        echo "== alert-router check (shipped config)"
        "$VENV/bin/alert-router" check --config alert-router.yaml
        # Two worker processes (pytest-xdist): most of a test's time is spent waiting on real processes and
        # sockets, so two workers take the suite from about 11 to under 5 minutes on 2 cores.
        # PYTEST_WORKERS=0 runs it in one process (for -x, --pdb or a debugger).
        echo "== pytest (${PYTEST_WORKERS:-2} workers)"
        exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider -n "${PYTEST_WORKERS:-2}" "$@"
        ;;
    *)
        sed -n '2,19p' "$0" >&2
        exit 2
        ;;
esac
