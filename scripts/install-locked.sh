#!/usr/bin/env bash
# Install exactly the pins of a lock file into a virtualenv: pip --require-hashes --no-deps.
#
#   scripts/install-locked.sh VENV LOCK
#
# Every line of LOCK is NAME==VERSION with the sha256 of each file PyPI has for it (written by `scripts/dev.sh lock`).
# pip takes only a file with one of those hashes, so a newer release on the index, or another file under the same
# version, is never installed; --no-deps because the lock already is the whole closure (`pip check` proves it after).
set -euo pipefail
[ $# -eq 2 ] || { sed -n '2,8p' "$0" >&2; exit 2; }
venv=$1
lock=$2
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    --require-hashes --no-deps --only-binary=:all: -r "$lock"
