"""Shared pytest configuration: fixture plugins for stand-ins and real processes."""

pytest_plugins = [
    "tests.standins.chat_fixtures",
    "tests.standins.infra_fixtures",
    "tests.procs.fixtures",
]
