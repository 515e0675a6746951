"""``alert-router migrate`` and ``alert-router inbox failed``: the store, looked after from the command line.

``migrate`` applies (or shows) the store's schema migrations explicitly.
The service applies missing migrations itself when it opens the store (for PostgreSQL, under an
advisory lock, so replicas starting together are safe). Run this before a rollout instead when
``postgres.migrate`` is off, or to see which version a database is at.

``inbox failed`` lists the webhook bodies ingest set aside (unparseable, refused by the store, or out of
``ingest.max_attempts``), with their errors; they are kept until ``retention.done`` prunes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import asyncpg  # type: ignore[import-untyped]  # no stubs or py.typed

from alert_router.config import Config
from alert_router.errors import StoreUnavailable
from alert_router.store.base import FailedInbox
from alert_router.store.pgcommon import CONNECTION_ERRORS


def _redact(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    return f"{scheme}{sep}{rest.rsplit('@', 1)[-1]}" if sep else url


async def _postgres(url: str, config: Config, status_only: bool) -> int:
    from alert_router.store.migrations import LATEST, MIGRATIONS
    from alert_router.store.postgres import migrate, schema_version

    pg = config.settings.postgres
    try:
        conn = await asyncpg.connect(url, timeout=pg.connect_timeout, command_timeout=pg.command_timeout)
    except (*CONNECTION_ERRORS, asyncpg.PostgresError) as exc:
        print(f"alert-router: cannot connect to {_redact(url)}: {exc}", file=sys.stderr)
        return 1
    try:
        before = await schema_version(conn)
        if status_only:
            pending = [m for m in MIGRATIONS if m.version > before]
            print(f"{_redact(url)}: schema version {before} (this alert-router: {LATEST})")
            for m in pending:
                print(f"pending: {m.version} {m.name}")
            return 0 if not pending else 3
        applied = await migrate(conn, wait=pg.migrate_timeout)
        for version in applied:
            m = next(m for m in MIGRATIONS if m.version == version)
            print(f"applied: {m.version} {m.name}")
        after = await schema_version(conn)
        print(f"{_redact(url)}: schema version {after}" + ("" if applied else " (already up to date)"))
        return 0
    except (StoreUnavailable, *CONNECTION_ERRORS, asyncpg.PostgresError) as exc:
        print(f"alert-router: migration failed: {exc}", file=sys.stderr)
        return 1
    finally:
        await conn.close()


def _sqlite_status(path: Path) -> int:
    from alert_router.store.sqlite import SCHEMA

    latest = len(SCHEMA)
    if not path.exists():
        print(f"{path}: no database yet (this alert-router: {latest})")
        return 3
    with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as conn:
        try:
            version = int(conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0)
        except sqlite3.OperationalError:
            version = 0
    print(f"{path}: schema version {version} (this alert-router: {latest})")
    return 0 if version >= latest else 3


async def _sqlite(path: Path) -> int:
    from alert_router.store.sqlite import SCHEMA, SQLiteStore

    store = SQLiteStore(path)
    try:
        await store.open()
    except StoreUnavailable as exc:
        print(f"alert-router: {exc}", file=sys.stderr)
        return 1
    await store.close()
    print(f"{path}: schema version {len(SCHEMA)}")
    return 0


def migrate_command(config: Config, *, status_only: bool = False) -> int:
    """Apply missing migrations to the configured store (or, with ``status_only``, list them; exit 3 if any)."""
    url = config.store_url
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///") :])
        return _sqlite_status(path) if status_only else asyncio.run(_sqlite(path))
    return asyncio.run(_postgres(url, config, status_only))


def inbox_failed_command(config: Config, *, limit: int = 50, as_json: bool = False, out: TextIO | None = None) -> int:
    """``alert-router inbox failed``: the webhook bodies set aside at ingest, newest first (exit 2: no store)."""
    from alert_router.remediation.commands import print_listing

    return print_listing(
        config, lambda s: s.failed_inbox(limit), _failed_lines, empty="no webhook bodies set aside",
        as_json=as_json, out=out,
    )


def _failed_lines(failed: list[FailedInbox]) -> list[str]:
    lines = []
    for f in failed:
        when = datetime.fromtimestamp(f.received_at, UTC).strftime("%Y-%m-%d %H:%M:%S")
        head = f"#{f.id}  received {when} UTC  {f.size} bytes  {f.attempts} attempt(s)"
        lines.append(f"{head}  group {f.group_key[:120]}")
        lines.append(f"    {f.error[:500]}")
    return lines
