"""Clocks: the system clock, and a manual one that tests move forward by hand."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    """Wall-clock time in epoch seconds, and a way to wait on it."""

    def now(self) -> float:
        """The current time (epoch seconds)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> float:
        """``time.time()``."""
        return time.time()

    async def sleep(self, seconds: float) -> None:
        """``asyncio.sleep``."""
        await asyncio.sleep(seconds)


class ManualClock:
    """A clock that only moves when told to (:meth:`advance`, :meth:`set`); sleepers wake as it passes them."""

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else start
        self._changed = asyncio.Condition()

    def now(self) -> float:
        """The clock's current time."""
        return self._now

    async def sleep(self, seconds: float) -> None:
        """Return once the clock has been moved ``seconds`` forward (at once for ``seconds <= 0``)."""
        until = self._now + seconds
        async with self._changed:
            await self._changed.wait_for(lambda: self._now >= until)

    async def advance(self, seconds: float) -> float:
        """Move forward by ``seconds`` and wake the sleepers whose time has come; return the new time."""
        return await self.set(self._now + seconds)

    async def set(self, when: float) -> float:
        """Move to ``when`` (never backwards) and wake the sleepers whose time has come."""
        async with self._changed:
            self._now = max(self._now, when)
            self._changed.notify_all()
        await asyncio.sleep(0)
        return self._now
