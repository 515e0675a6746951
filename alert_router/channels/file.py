"""The ``file`` receiver: appends one JSON object per line per notification."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

from alert_router.channels.base import ChannelContext, ChannelError, ChannelType, MessageRef, RateLimit
from alert_router.configbase import ConfigModel
from alert_router.errors import FailureReason
from alert_router.models import Notification


class FileConfig(ConfigModel):
    """``file: {path: notifications.jsonl, fsync: true}``; a relative path is under the data directory."""

    path: str
    fsync: bool = True


class FileChannel:
    """Writes notifications as JSON lines; safe to share between tasks.

    Lines sent while a write is under way are written together next, with one ``fsync``: a storm costs a
    sync per round, not per notification, and each sender still returns only once its line is synced.
    """

    digests = False
    """A record of every notification, never coalesced into storm digests."""

    def __init__(self, receiver: str, path: Path, fsync: bool) -> None:
        self.receiver = receiver
        self.path = path
        self.fsync = fsync
        self._queued: list[tuple[bytes, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    def destination(self) -> str:
        """The file path."""
        return f"file:{self.path}"

    def rate_limit(self) -> RateLimit | None:
        """Files have no rate limit."""
        return None

    def _append(self, line: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(fd, line)
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)

    async def send(self, notification: Notification, previous: MessageRef | None) -> MessageRef | None:
        """Append the notification's record as one line; return once it is written (and synced)."""
        record: dict[str, Any] = notification.record()
        if previous is not None:
            record["follows"] = previous.get("line_id")
        line = (json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n").encode()
        written: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queued.append((line, written))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_queued(), name=f"file-receiver-{self.receiver}")
        try:
            await asyncio.shield(written)
        except OSError as exc:
            raise ChannelError(FailureReason.UNKNOWN, f"cannot write {self.path}: {exc}", retryable=True) from exc
        return {"line_id": notification.extra.get("delivery_id")}

    async def _write_queued(self) -> None:
        """Write what is queued, in order, one write and one fsync per round (lines sent meanwhile share one)."""
        while self._queued:
            batch, self._queued = self._queued, []
            try:
                await asyncio.to_thread(self._append, b"".join(line for line, _ in batch))
            except OSError as exc:
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
            else:
                for _, fut in batch:
                    if not fut.done():
                        fut.set_result(None)

    async def aclose(self) -> None:
        """Nothing to release."""


def _build(receiver: str, cfg: Any, ctx: ChannelContext) -> FileChannel:
    assert isinstance(cfg, FileConfig)
    path = Path(cfg.path)
    if not path.is_absolute():
        path = ctx.data_dir / path
    return FileChannel(receiver, path, cfg.fsync)


TYPE = ChannelType("file", FileConfig, _build)
