#!/usr/bin/env bash
# Install the Debian packages that the real-process tests (tests/procs) need, if their binaries are absent:
#   prometheus-alertmanager  /usr/bin/prometheus-alertmanager, /usr/bin/amtool
#   prometheus               /usr/bin/prometheus, /usr/bin/promtool
#   postgresql               initdb, postgres, pg_ctl, pg_isready under /usr/lib/postgresql/*/bin
#
# Idempotent: with everything present it changes nothing and does not touch the network. It runs
# `apt-get update` once, only when something is missing. It starts no service: while it installs, a
# policy-rc.d that denies service starts is in place (unless the machine already has one), and afterwards
# it checks that no new listener appeared on the daemons' default ports, stopping any that did.
#
# PostgreSQL: the tests use a server answering on 127.0.0.1:5432 when there is one, but the
# `throwaway_postgres` fixture always runs a private server and needs initdb, so the server binaries are
# installed whenever they are missing (the packaged cluster is created but never started).
#
# Optional, for the benchmarks only (the tests never need it), with --bench:
#   wrk                      /usr/bin/wrk (HTTP load generator; bench/shipped.py drives bursts with it)
#
# Usage: sudo scripts/install-system-deps.sh [--bench]        (Debian 12; run as root)
set -euo pipefail

with_bench=0
for arg in "$@"; do
    case "$arg" in
    --bench) with_bench=1 ;;
    *)
        printf 'usage: %s [--bench]\n' "$0" >&2
        exit 2
        ;;
    esac
done

readonly PROG="install-system-deps"
log() { printf '%s: %s\n' "$PROG" "$*"; }
die() {
    printf '%s: ERROR: %s\n' "$PROG" "$*" >&2
    exit 1
}

[ "$(id -u)" -eq 0 ] || die "must run as root (it calls apt-get install); try: sudo $0"
command -v apt-get >/dev/null 2>&1 || die "apt-get not found: this script supports Debian (12) only"

executable_all() {
    local path
    for path in "$@"; do
        [ -x "$path" ] || return 1
    done
}

pg_bindir() {
    local dir
    for dir in /usr/lib/postgresql/*/bin; do
        if executable_all "$dir/initdb" "$dir/postgres" "$dir/pg_ctl" "$dir/pg_isready"; then
            printf '%s\n' "$dir"
            return 0
        fi
    done
    return 1
}

pg_server_answers() {
    command -v pg_isready >/dev/null 2>&1 && pg_isready -q -h 127.0.0.1 -p 5432 -t 3
}

# Is something listening on 127.0.0.1:$1 (TCP)?
listening() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

missing=()
if [ "$with_bench" -eq 1 ]; then
    executable_all /usr/bin/wrk || missing+=(wrk)
fi
executable_all /usr/bin/prometheus-alertmanager /usr/bin/amtool || missing+=(prometheus-alertmanager)
executable_all /usr/bin/prometheus /usr/bin/promtool || missing+=(prometheus)
if ! pg_bindir >/dev/null; then
    missing+=(postgresql)
    if pg_server_answers; then
        log "a PostgreSQL server answers on 127.0.0.1:5432, but initdb is missing (needed by throwaway_postgres)"
    fi
fi

if [ "${#missing[@]}" -eq 0 ]; then
    log "all present: alertmanager, amtool, prometheus, promtool, PostgreSQL binaries in $(pg_bindir)$([ "$with_bench" -eq 1 ] && echo ', wrk')"
    exit 0
fi

log "installing: ${missing[*]}"

# Default ports of the packaged daemons; remember which were already taken before we install.
readonly WATCHED_PORTS=(9090 9093 9094 5432)
declare -A busy_before=()
for port in "${WATCHED_PORTS[@]}"; do
    if listening "$port"; then busy_before[$port]=1; fi
done

# Deny service starts from maintainer scripts while we install (containers usually have this already).
readonly POLICY=/usr/sbin/policy-rc.d
created_policy=0
cleanup() {
    if [ "$created_policy" -eq 1 ]; then rm -f "$POLICY"; fi
    if [ -n "${apt_log:-}" ]; then rm -f "$apt_log"; fi
}
trap cleanup EXIT
if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\n# Written by %s while it installs packages; removed when it ends.\nexit 101\n' "$PROG" >"$POLICY"
    chmod 0755 "$POLICY"
    created_policy=1
fi

apt_log="$(mktemp "/tmp/$PROG.XXXXXX")"
export DEBIAN_FRONTEND=noninteractive
apt_get() {
    if ! apt-get -q -y -o Dpkg::Use-Pty=0 -o Dpkg::Options::=--force-confold "$@" >>"$apt_log" 2>&1; then
        printf '%s: ERROR: apt-get %s failed; its last output:\n' "$PROG" "$*" >&2
        tail -n 40 "$apt_log" >&2
        exit 1
    fi
}

apt_get update
# --reinstall also restores binaries deleted from a package that dpkg still lists as installed.
apt_get install --reinstall --no-install-recommends "${missing[@]}"

# Verify the binaries really arrived.
executable_all /usr/bin/prometheus-alertmanager /usr/bin/amtool || die "prometheus-alertmanager installed but its binaries are missing"
executable_all /usr/bin/prometheus /usr/bin/promtool || die "prometheus installed but its binaries are missing"
pg_bindir >/dev/null || die "postgresql installed but initdb/postgres are missing under /usr/lib/postgresql/*/bin"
if [ "$with_bench" -eq 1 ]; then
    executable_all /usr/bin/wrk || die "wrk installed but /usr/bin/wrk is missing"
fi

# Under systemd, packages enable their units for the next boot: undo that for what we installed
# (each package's unit has the package's name).
if [ -d /run/systemd/system ]; then
    for unit in "${missing[@]}"; do
        if systemctl is-enabled --quiet "$unit" 2>/dev/null; then
            systemctl disable --now --quiet "$unit" >>"$apt_log" 2>&1 || true
        fi
    done
fi

# Nothing we installed may be left running on a default port (it would clash with tests or other work).
for port in "${WATCHED_PORTS[@]}"; do
    if [ -z "${busy_before[$port]:-}" ] && listening "$port"; then
        log "port $port started listening during the install; stopping the services just installed"
        for service in "${missing[@]}"; do
            service "$service" stop >>"$apt_log" 2>&1 || true
        done
        sleep 1
        if listening "$port"; then
            die "something still listens on 127.0.0.1:$port after the install; stop it before running the tests"
        fi
    fi
done

am_version="$(/usr/bin/prometheus-alertmanager --version 2>&1 | awk 'NR == 1 {print $3}')"
prom_version="$(/usr/bin/prometheus --version 2>&1 | awk 'NR == 1 {print $3}')"
log "done: alertmanager $am_version, prometheus $prom_version, PostgreSQL binaries in $(pg_bindir)"
