"""Where pictures are drawn: never on the event loop.

``renderer: thread`` (the default) draws in a pool of ``workers`` threads; with one worker (the default)
every matplotlib call of the process happens on that one thread, so matplotlib's lack of thread safety
never matters. ``renderer: process`` draws in ``workers`` processes (started with ``spawn``: the service has
threads of its own, which ``fork`` would copy half-way); the spec and the PNG cross by pickling.
``bench/graph.py`` measures both. :meth:`RenderPool.warm_up` imports matplotlib (and builds its font cache)
in every worker at startup, so the first page does not pay for it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing
from concurrent.futures import Executor
from typing import Literal

from alert_router.graph.render import PlotSpec, Rendered, render_png

__all__ = ["RenderPool"]


def _warm() -> float:
    """Import the drawing code and draw a tiny picture (font cache, Agg); return how long it took."""
    spec = PlotSpec(title="warm-up", subtitle="", width=300, height=200, unit="none", start=0.0, end=60.0)
    return render_png(spec).seconds


class RenderPool:
    """An executor for :func:`~alert_router.graph.render.render_png` with an async face."""

    def __init__(self, mode: Literal["thread", "process"] = "thread", workers: int = 1) -> None:
        self.mode = mode
        self.workers = workers
        self._executor: Executor | None = None

    def _get(self) -> Executor:
        if self._executor is None:
            if self.mode == "process":
                self._executor = concurrent.futures.ProcessPoolExecutor(
                    max_workers=self.workers, mp_context=multiprocessing.get_context("spawn")
                )
            else:
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    max_workers=self.workers, thread_name_prefix="graph-render"
                )
        return self._executor

    async def render(self, spec: PlotSpec) -> Rendered:
        """Draw ``spec`` in a worker and return the picture."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._get(), render_png, spec)

    async def warm_up(self) -> None:
        """Get every worker ready to draw (imports, font cache)."""
        loop = asyncio.get_running_loop()
        executor = self._get()
        await asyncio.gather(*(loop.run_in_executor(executor, _warm) for _ in range(self.workers)))

    async def aclose(self) -> None:
        """Stop the workers; a drawing in progress is abandoned."""
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.to_thread(executor.shutdown, wait=True, cancel_futures=True)
