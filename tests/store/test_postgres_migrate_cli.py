"""``alert-router migrate``: shows pending migrations, applies them once, and works for SQLite too."""

from collections.abc import Callable
from pathlib import Path

import pytest

from alert_router.cli import main
from alert_router.store.migrations import LATEST, MIGRATIONS
from tests.helpers import write_config


def test_migrate_postgres(
    tmp_path: Path, fresh_pg_database: Callable[[], str], capsys: pytest.CaptureFixture[str]
) -> None:
    dsn = fresh_pg_database()
    cfg = write_config(tmp_path, f"store: {dsn}\n")
    assert main(["migrate", "--status", "--config", str(cfg)]) == 3
    out = capsys.readouterr().out
    assert "schema version 0" in out
    assert all(f"pending: {m.version} {m.name}" in out for m in MIGRATIONS)

    assert main(["migrate", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert [line for line in out.splitlines() if line.startswith("applied:")] == [
        f"applied: {m.version} {m.name}" for m in MIGRATIONS
    ]
    assert main(["migrate", "--config", str(cfg)]) == 0
    assert f"schema version {LATEST} (already up to date)" in capsys.readouterr().out
    assert main(["migrate", "--status", "--config", str(cfg)]) == 0
    assert "pending" not in capsys.readouterr().out


def test_migrate_postgres_unreachable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.procs.alertmanager import free_port

    cfg = write_config(tmp_path, f"store: postgresql://postgres@127.0.0.1:{free_port()}/nothing\n"
                       "postgres: {connect_timeout: 2s}\n")
    assert main(["migrate", "--config", str(cfg)]) == 1
    assert "cannot connect" in capsys.readouterr().err


def test_migrate_sqlite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path)
    assert main(["migrate", "--status", "--config", str(cfg)]) == 3
    assert "no database yet" in capsys.readouterr().out
    assert main(["migrate", "--config", str(cfg)]) == 0
    assert main(["migrate", "--status", "--config", str(cfg)]) == 0
