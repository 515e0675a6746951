"""What an action is: typed parameters, a coroutine that runs one step, and what it needs to know.

An action module defines ``Params`` (a :class:`ActionParams` with ``action: Literal["<key>"]``) and
``async def run(ctx: StepContext, params: Params) -> StepResult``, and is listed once in the registry
dict of :mod:`alert_router.remediation.actions`. Actions never retry on their own: Kubernetes calls
retry inside :class:`~alert_router.remediation.kube.KubeClient`, HTTP calls inside the ``http`` action
through the same policy. A step fails by raising :class:`StepFailed`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from alert_router.configbase import ConfigModel
from alert_router.durations import Duration, format_duration
from alert_router.errors import AlertRouterError, FailureReason
from alert_router.remediation.kube import KubeError, KubeSession
from alert_router.remediation.settings import RetryConfig
from alert_router.scrub import scrub

if TYPE_CHECKING:
    from alert_router.store.base import NewOutboxItem, Store


class ActionParams(ConfigModel):
    """Parameters every step has: ``action``, an optional ``name`` and an optional ``timeout``.

    ``TEMPLATED`` names the fields rendered from the alert at run time (checked at load time).
    """

    TEMPLATED: ClassVar[tuple[str, ...]] = ()

    action: str
    name: str = ""
    timeout: Duration | None = Field(default=None, gt=0)

    @property
    def title(self) -> str:
        """The step's name, or its action."""
        return self.name or self.action


@dataclass(frozen=True, slots=True)
class Target:
    """The object a run acts on, rendered from the alert and validated."""

    kind: str
    namespace: str
    name: str

    @property
    def key(self) -> str:
        """``Kind/namespace/name``: the lock key and the target shown in runs and audit records."""
        return f"{self.kind}/{self.namespace}/{self.name}"

    def as_dict(self) -> dict[str, str]:
        """Template variables."""
        return {"kind": self.kind, "namespace": self.namespace, "name": self.name}


class StepFailed(AlertRouterError):
    """A step did not do what it should; ``reason`` is a :class:`FailureReason`.

    The message may quote an upstream (an http step's receiver) and is audited and posted: it is scrubbed.
    """

    def __init__(self, reason: FailureReason, message: str, result: Mapping[str, Any] | None = None) -> None:
        super().__init__(scrub(message))
        self.reason = reason
        self.result = dict(result or {})

    @classmethod
    def from_kube(cls, exc: KubeError, doing: str) -> StepFailed:
        """Wrap a Kubernetes error, saying what was being done."""
        return cls(exc.reason, f"{doing}: {exc}", {"status": exc.status} if exc.status else None)


@dataclass
class StepResult:
    """A step that succeeded: a one-line summary, details, and any outbox items it produces."""

    summary: str
    result: dict[str, Any] = field(default_factory=dict)
    follow_ups: list[NewOutboxItem] = field(default_factory=list)


NotificationFactory = Callable[[str, dict[str, Any]], "NewOutboxItem"]
"""``(receiver, extra) -> NewOutboxItem``: a notify item for the alert's group with ``extra`` added."""


@dataclass
class StepContext:
    """Everything a step may use. Built by the engine for each step."""

    run_id: int
    runbook: str
    index: int
    target: Target | None
    alert: dict[str, Any]
    dry_run: bool
    kube: KubeSession
    store: Store
    variables: dict[str, Any]
    deadline: float
    poll_interval: float
    retry: RetryConfig
    resolved: asyncio.Event
    receivers: list[str]
    notification: NotificationFactory

    def remaining(self) -> float:
        """Seconds left before the step's deadline."""
        return self.deadline - time.monotonic()

    def require_target(self, *kinds: str) -> Target:
        """The target, which must be of one of ``kinds`` (checked at load time; asserted here)."""
        if self.target is None or self.target.kind not in kinds:
            raise StepFailed(FailureReason.INVALID, f"this action needs a {' or '.join(kinds)} target")
        return self.target

    async def sleep(self, seconds: float | None = None) -> None:
        """Sleep for the poll interval (or ``seconds``), never past the deadline."""
        await asyncio.sleep(max(0.0, min(seconds or self.poll_interval, self.remaining())))


RunFn = Callable[[StepContext, Any], Awaitable[StepResult]]


async def run_step(run: RunFn, ctx: StepContext, params: ActionParams, limit: float) -> StepResult | StepFailed:
    """Run one step within ``limit`` seconds (and one of grace); every failure comes back as :class:`StepFailed`."""
    try:
        async with asyncio.timeout(limit + 1.0):
            return await run(ctx, params)
    except StepFailed as exc:
        return exc
    except KubeError as exc:
        return StepFailed.from_kube(exc, params.action)
    except TimeoutError:
        return StepFailed(FailureReason.TIMEOUT, f"timed out after {format_duration(limit)}")


@dataclass(frozen=True)
class ActionType:
    """One registry entry.

    ``target_kinds``: the target kinds the action works on (``None``: no target needed).
    ``mutating``: whether it changes something outside alert-router (dry runs only plan it).
    ``waits``: whether it waits on something (its ``timeout`` is a wait limit, skipped in dry runs).
    """

    key: str
    params: type[ActionParams]
    run: RunFn
    description: str
    target_kinds: frozenset[str] | None = None
    mutating: bool = False
    waits: bool = False
