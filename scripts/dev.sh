#!/usr/bin/env bash
# One entry point for newcomers and CI.
#
#   scripts/dev.sh serve   set up the virtualenv and run the service on its embedded defaults
#                          (SQLite under ./data, notifications to the console and data/notifications.jsonl,
#                          remediation in dry run) on http://127.0.0.1:8080
#   scripts/dev.sh test    set up everything the tests need (Debian packages included) and run
#                          ruff, mypy (strict) and the whole pytest suite
#   scripts/dev.sh setup   only create/refresh .venv
#
# Extra arguments after `test` go to pytest (e.g. scripts/dev.sh test -k webhook).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=.venv

setup() {
    local extra=$1
    if [ ! -x "$VENV/bin/python" ]; then
        "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
            || { echo "alert-router needs Python >= 3.11 (found $("$PYTHON" --version 2>&1))" >&2; exit 1; }
        "$PYTHON" -m venv "$VENV"
    fi
    # Reinstall only when pyproject.toml changed since the last successful install.
    local stamp="$VENV/.installed-$extra"
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[$extra]"
        touch "$stamp"
    fi
}

cmd=${1:-}
shift || true
case "$cmd" in
    setup)
        setup test
        ;;
    serve)
        setup test
        export ALERT_ROUTER_LISTEN=${ALERT_ROUTER_LISTEN:-127.0.0.1:8080}
        exec "$VENV/bin/alert-router" serve --config alert-router.yaml --log-format console "$@"
        ;;
    test)
        if [ "$(id -u)" -eq 0 ]; then
            bash scripts/install-system-deps.sh
        else
            sudo -n bash scripts/install-system-deps.sh || echo "warning: could not install Debian packages (not root)" >&2
        fi
        setup test
        echo "== ruff"
        "$VENV/bin/ruff" check .
        echo "== mypy (strict)"
        "$VENV/bin/mypy" alert_router
        echo "== alert-router check (shipped config)"
        "$VENV/bin/alert-router" check --config alert-router.yaml
        echo "== pytest"
        exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider "$@"
        ;;
    *)
        sed -n '2,12p' "$0" >&2
        exit 2
        ;;
esac
