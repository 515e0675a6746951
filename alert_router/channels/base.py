"""The channel interface: how a receiver type delivers a notification.

A channel does one attempt and reports the outcome. It never retries or sleeps: it raises
:class:`ChannelError` saying whether the failure is retryable and, for rate limits, after how long.
The delivery stage (:mod:`alert_router.pipeline.deliver`) alone owns backoff, fallbacks and records.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from alert_router.configbase import ConfigModel
from alert_router.errors import AlertRouterError, FailureReason
from alert_router.models import Notification
from alert_router.scrub import scrub

MessageRef = dict[str, Any]
"""What a channel needs to edit or thread onto a message it sent earlier (e.g. Slack channel and ``ts``)."""


class ChannelError(AlertRouterError):
    """A delivery attempt failed.

    ``retryable`` says whether trying again can help (5xx, timeouts, 429); ``retry_after`` is the wait the
    platform asked for, in seconds, when it said so. The message is scrubbed (:func:`alert_router.scrub.scrub`):
    it may quote the platform, and it reaches audit records, logs and fallback notices.
    """

    def __init__(
        self,
        reason: FailureReason,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
    ) -> None:
        self.reason = reason
        self.retryable = retryable
        self.retry_after = retry_after
        super().__init__(scrub(message))


@dataclass(frozen=True)
class RateLimit:
    """A token bucket: ``rate`` tokens per second, up to ``burst`` at once."""

    rate: float
    burst: float = 1.0


@runtime_checkable
class Channel(Protocol):
    """One configured receiver of one type."""

    receiver: str

    def destination(self) -> str:
        """A stable key for the place messages land (one rate-limit bucket per destination)."""
        ...

    def rate_limit(self) -> RateLimit | None:
        """The platform's published limit for this destination, or ``None`` for no limit."""
        ...

    async def send(self, notification: Notification, previous: MessageRef | None) -> MessageRef | None:
        """Deliver ``notification``; edit or thread onto ``previous`` when given. Return a reference or ``None``."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


@dataclass
class ChannelContext:
    """What channels may use from the running service."""

    data_dir: Path
    base_dir: Path
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ChannelType:
    """A receiver type: its YAML key, its configuration model and how to build it."""

    key: str
    config: type[ConfigModel]
    build: Callable[[str, Any, ChannelContext], Channel]
    secret_free: bool = True
