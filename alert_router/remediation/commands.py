"""The command-line side of remediation: ``alert-router runs`` and ``alert-router audit list|verify``.

They read the store directly. The embedded SQLite store is opened read-only, so they work while the
service runs (the service holds the write lock).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TextIO, TypeVar

from alert_router.audit import format_record, verify
from alert_router.config import Config
from alert_router.errors import ConfigError, StoreUnavailable
from alert_router.remediation.runs import RunRecord
from alert_router.store import create_store
from alert_router.store.base import Store

T = TypeVar("T")


def config_or_exit(load: Callable[[], Config]) -> Config:
    """Load the configuration, or print its problems and exit with status 1."""
    try:
        return load()
    except ConfigError as exc:
        for p in exc.problems:
            print(p, file=sys.stderr)
        raise SystemExit(1) from None


def open_for_reading(url: str) -> Store:
    """A store for ``url`` that the CLI may open next to a running service."""
    if url.startswith("sqlite:///"):
        from alert_router.store.sqlite import SQLiteStore

        return SQLiteStore(Path(url[len("sqlite:///") :]), read_only=True)
    return create_store(url)


def with_store(config: Config, fn: Callable[[Store], Awaitable[T]]) -> T:
    """Open the configured store for reading, run ``fn`` on it, close it; return what ``fn`` returned."""

    async def main() -> T:
        store = open_for_reading(config.store_url)
        await store.open()
        try:
            return await fn(store)
        finally:
            await store.close()

    return asyncio.run(main())


def _time(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def format_runs(runs: list[RunRecord]) -> list[str]:
    """A table of runs, newest first."""
    rows = [("ID", "STATUS", "RUNBOOK", "TARGET", "CREATED (UTC)", "BY", "SUMMARY")]
    for r in runs:
        status = r.status + (" (dry run)" if r.dry_run and r.status != "dry_run" else "")
        summary = r.summary
        if r.status == "pending_approval" and r.approval_expires_at:
            summary = f"awaiting approval until {_time(r.approval_expires_at)} UTC"
        by = r.decided_by or r.requested_by
        rows.append((str(r.id), status, r.runbook, r.target, _time(r.created_at), by, summary))
    widths = [max(len(row[i]) for row in rows) for i in range(6)]
    return ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:6])) + "  " + row[6] for row in rows]


def runs_command(config: Config, *, status: str | None, runbook: str | None, limit: int, as_json: bool,
                 out: TextIO | None = None) -> int:
    """``alert-router runs``."""
    return print_listing(
        config,
        lambda s: s.runs(status=status, runbook=runbook, limit=limit),
        format_runs,
        empty="no runbook runs",
        as_json=as_json,
        out=out,
    )


class _Listed(Protocol):
    def to_json(self) -> dict[str, Any]: ...


L = TypeVar("L", bound=_Listed)


def print_listing(
    config: Config,
    fetch: Callable[[Store], Awaitable[list[L]]],
    lines: Callable[[list[L]], list[str]],
    *,
    empty: str,
    as_json: bool,
    out: TextIO | None = None,
) -> int:
    """Print what ``fetch`` reads from the store: a JSON array, or ``lines`` (``empty`` if none).

    Exit status 2 when the store cannot be read.
    """
    out = out or sys.stdout
    try:
        records = with_store(config, fetch)
    except StoreUnavailable as exc:
        print(f"alert-router: cannot read the store: {exc}", file=sys.stderr)
        return 2
    if as_json:
        print(json.dumps([r.to_json() for r in records], indent=2), file=out)
        return 0
    if not records:
        print(empty, file=out)
        return 0
    for line in lines(records):
        print(line.rstrip(), file=out)
    return 0


def audit_list_command(config: Config, *, since: str | None, runbook: str | None, run_id: int | None,
                       limit: int | None, as_json: bool, out: TextIO | None = None) -> int:
    """``alert-router audit list``."""
    out = out or sys.stdout
    from alert_router.api.runs import parse_since

    try:
        since_ts = parse_since(since) if since else None
    except ValueError as exc:
        print(f"alert-router: {exc}", file=sys.stderr)
        return 2
    try:
        records = with_store(
            config, lambda s: s.audit_records(since=since_ts, runbook=runbook, run_id=run_id, limit=limit)
        )
    except StoreUnavailable as exc:
        print(f"alert-router: cannot read the store: {exc}", file=sys.stderr)
        return 2
    for rec in records:
        print(json.dumps(rec.to_json()) if as_json else format_record(rec), file=out)
    if not records and not as_json:
        print("no audit records", file=out)
    return 0


def audit_verify_command(config: Config, *, out: TextIO | None = None) -> int:
    """``alert-router audit verify``: exit 0 when the chain is intact, 1 when it is not."""
    out = out or sys.stdout
    try:
        chain = with_store(config, lambda s: s.audit_chain())
    except StoreUnavailable as exc:
        print(f"alert-router: cannot read the store: {exc}", file=sys.stderr)
        return 2
    result = verify(chain)
    if result.ok:
        print(f"OK: {result.checked} audit record(s), chain intact; head #{result.head_seq} {result.head_hash}",
              file=out)
        return 0
    for problem in result.problems:
        print(f"TAMPERED: {problem}", file=out)
    print(f"{len(result.problems)} problem(s) in {result.checked} record(s)", file=sys.stderr)
    return 1
