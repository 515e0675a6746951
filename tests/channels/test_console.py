"""The ``console`` receiver prints the message as a person reads it, and never loses a line to the repeat filter."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest

from alert_router.channels.console import ConsoleChannel
from tests.channels.helpers import alert, notification
from tests.helpers import service_logs


@pytest.fixture
def console_logs() -> Iterator[io.StringIO]:
    """The service's logging in the console format, into a buffer; restored afterwards."""
    with service_logs("console") as buf:
        yield buf


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """The service's logging in the JSON format, into a buffer; restored afterwards."""
    with service_logs("json") as buf:
        yield buf


async def test_console_format_prints_the_plain_text_message(console_logs: io.StringIO) -> None:
    """No dict reprs: the text the email receiver sends, line under line; every firing update gets its line."""
    channel = ConsoleChannel("console", True)
    n = notification([alert(annotations={"summary": "Model service might be down!"})],
                     extra={"escalation": {"rule": "lead", "step": 1, "repeat": 2, "after": 60, "unacked_for": 75}})
    await channel.send(n, None)
    await channel.send(n, None)  # a warning-level repeat inside the interval: still printed
    out = console_logs.getvalue()
    assert "{'status'" not in out and "alerts=" not in out and "extra=" not in out
    assert out.count("notification → slack (firing)") == 2
    assert "    FIRING ModelServiceDown [critical]" in out
    assert "      Summary:     Model service might be down!" in out
    assert "ESCALATION: Escalation 1 of 2: not acknowledged for 1m" in out


async def test_json_format_keeps_the_structure_and_adds_the_text(json_logs: io.StringIO) -> None:
    await ConsoleChannel("console", False).send(notification(), None)
    (line,) = [json.loads(raw) for raw in json_logs.getvalue().splitlines() if '"notification"' in raw]
    assert line["alerts"][0]["alertname"] == "ModelServiceDown" and "summary" not in line["alerts"][0]
    assert line["text"].startswith("[FIRING:1] ModelServiceDown") and "Summary:" not in line["text"]
