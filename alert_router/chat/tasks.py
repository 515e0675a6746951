"""Background work that outlives a chat request (Slack wants an answer within 3 s; the work may take longer)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import structlog

log = structlog.get_logger("alert_router.chat")

T = TypeVar("T")


class Background:
    """Keeps references to spawned tasks, logs their failures, and cancels the rest on close."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, T], name: str = "chat") -> asyncio.Task[T]:
        """Start ``coro`` as a task that is kept until it finishes."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("chat background task failed", task=task.get_name(), error=repr(task.exception()))

    @property
    def pending(self) -> int:
        """Tasks still running."""
        return len(self._tasks)

    async def drain(self, limit: float = 10.0) -> None:
        """Wait until every task (including ones spawned meanwhile) has finished, at most ``limit`` seconds."""
        async with asyncio.timeout(limit):
            while self._tasks:
                await asyncio.wait(set(self._tasks))

    async def close(self) -> None:
        """Cancel what is still running and wait for it."""
        tasks = set(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
