"""The shared HTTP plumbing of the JSON receivers: one request, classified, secrets kept out of errors."""

from __future__ import annotations

import email.utils
import time

import pytest

from alert_router.channels.base import ChannelError
from alert_router.channels.http import JsonHttp, retry_after_seconds, status_error
from alert_router.errors import FailureReason


@pytest.mark.parametrize(
    ("status", "reason", "retryable"),
    [(429, FailureReason.RATE_LIMITED, True), (500, FailureReason.SERVER_ERROR, True),
     (503, FailureReason.SERVER_ERROR, True), (408, FailureReason.SERVER_ERROR, True),
     (401, FailureReason.AUTH, False), (403, FailureReason.AUTH, False), (404, FailureReason.NOT_FOUND, False),
     (410, FailureReason.NOT_FOUND, False), (400, FailureReason.INVALID, False), (413, FailureReason.INVALID, False),
     (422, FailureReason.INVALID, False), (402, FailureReason.REJECTED, False), (302, FailureReason.REJECTED, False)],
)
def test_status_table(status: int, reason: FailureReason, retryable: bool) -> None:
    err = status_error("x", status, "detail", retry_after=2.0 if retryable else None)
    assert (err.reason, err.retryable) == (reason, retryable)
    assert str(err) == f"x: HTTP {status}: detail"


def test_retry_after_seconds() -> None:
    assert retry_after_seconds("7") == 7.0 and retry_after_seconds("1.5") == 1.5
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= (retry_after_seconds(later) or 0) <= 31


async def test_transport_errors_are_retryable_and_redacted() -> None:
    http = JsonHttp("x", 2, lambda: ["TOPSECRET"])
    try:
        for url in ("http://127.0.0.1:9/hook/TOPSECRET", "http://127.0.0.1:99999/hook/TOPSECRET", "nope://TOPSECRET"):
            with pytest.raises(ChannelError) as err:
                await http.request("POST", url, {"a": 1})
            assert err.value.retryable and err.value.reason is FailureReason.CONNECTION
            assert "TOPSECRET" not in str(err.value)
    finally:
        await http.aclose()
