"""The store contract suite runs against every backend: add a backend to ``BACKENDS``."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from alert_router.store import create_store
from alert_router.store.base import Store

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
    elif request.param == "postgresql":  # a new empty database per test (tests/procs/fixtures.py)
        url = request.getfixturevalue("fresh_pg_database")()
    else:  # pragma: no cover
        raise AssertionError(request.param)
    s = create_store(url)
    await s.open()
    try:
        yield s
    finally:
        await s.close()
