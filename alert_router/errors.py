"""The exception tree of alert-router.

::

    AlertRouterError
    ├── ConfigError            a configuration, rule or runbook file is invalid (carries Problems)
    ├── MatcherError           a matcher expression cannot be parsed
    ├── PayloadError           a webhook body is malformed (answered with 400)
    ├── StoreUnavailable       the store cannot be reached (answered with 503, retried by Alertmanager)
    │   ├── StoreRejected      the store refuses this data for good (answered with 400 naming the field)
    │   └── StoreInUse         the embedded store's file belongs to another process (a setup error: exit)
    └── ChannelError           a receiver could not deliver (see alert_router.channels.base)

Failure reasons that end up in metrics and audit records are members of :class:`FailureReason`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class AlertRouterError(Exception):
    """Base class of every error raised on purpose by alert-router."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem found in a file, reported as ``FILE:LINE: message``."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class ConfigError(AlertRouterError):
    """Raised when configuration, rules or runbooks are invalid; holds every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class MatcherError(AlertRouterError, ValueError):
    """Raised when a matcher expression cannot be parsed."""


class PayloadError(AlertRouterError):
    """Raised when a webhook body is malformed; ``field`` names the offending field."""

    def __init__(self, message: str, field: str | None = None) -> None:
        self.field = field
        super().__init__(message)


class StoreUnavailable(AlertRouterError):
    """Raised when the store cannot be reached or a transaction cannot be committed."""


class StoreRejected(StoreUnavailable):
    """Raised when the store refuses the data itself (it would refuse it every time): retrying cannot help.

    A subclass of :class:`StoreUnavailable` so callers that only know that one still stop; those that know
    better answer 400 (the webhook) or set the body aside (ingest). ``field`` names what was refused.
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        self.field = field
        super().__init__(message)


class StoreInUse(StoreUnavailable):
    """Raised when the embedded SQLite store is open in another process: waiting will not help, so the service exits."""


class FailureReason(enum.StrEnum):
    """Why something failed: a small closed set, used as metric labels and in audit records."""

    RATE_LIMITED = "rate_limited"
    SERVER_ERROR = "server_error"
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    AUTH = "auth"
    NOT_FOUND = "not_found"
    REJECTED = "rejected"
    TEMPLATE = "template"
    INVALID = "invalid"
    UNKNOWN = "unknown"
