"""Shared pytest configuration: fixture plugins for stand-ins and real processes, and leak attribution."""

import gc
from collections.abc import Iterator

import pytest

pytest_plugins = [
    "tests.standins.chat_fixtures",
    "tests.standins.infra_fixtures",
    "tests.standins.pager_fixtures",
    "tests.procs.fixtures",
]


@pytest.fixture(autouse=True)
def _collect_garbage_per_test() -> Iterator[None]:
    """Collect garbage after every test, so a leaked socket or transport fails the test that leaked it.

    Without this, the ResourceWarning of an unclosed transport surfaces whenever the collector happens to
    run, often in an unrelated later test.
    """
    yield
    gc.collect()
