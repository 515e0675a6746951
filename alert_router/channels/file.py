"""The ``file`` receiver: appends one JSON object per line per notification, and never leaves a torn line.

A process killed in the middle of a large write leaves a partial last line (a fatal signal stops a write
at a page boundary). Before its first write, and after any write that failed, the receiver checks the
file's end: a partial last line is moved to ``<file>.torn`` (appended there, with a newline, and synced
first) and cut from the file, so the next record starts on a line of its own and every line of the file
stays readable JSON. Writes loop until every byte is written (``os.write`` may write less than asked).
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import structlog

from alert_router.channels.base import ChannelContext, ChannelError, ChannelType, MessageRef, RateLimit
from alert_router.configbase import ConfigModel
from alert_router.errors import FailureReason
from alert_router.models import Notification

log = structlog.get_logger("alert_router.channels.file")


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
        self._whole = False
        """Whether the file is known to end with a whole line (not until it was checked, after a start)."""
        self._writer: asyncio.Task[None] | None = None

    def destination(self) -> str:
        """The file path."""
        return f"file:{self.path}"

    def rate_limit(self) -> RateLimit | None:
        """Files have no rate limit."""
        return None

    def _append(self, lines: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            if not self._whole:
                quarantine_torn_line(fd, self.path)
            self._whole = False  # until this write is complete: a failure midway leaves a partial line
            append_all(fd, lines)
            if self.fsync:
                os.fsync(fd)
            self._whole = True
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


TORN_SUFFIX = ".torn"
"""Partial last lines are moved to the file's name with this suffix."""

_SCAN = 64 * 1024


def append_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd``, however many writes it takes."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def quarantine_torn_line(fd: int, path: Path) -> int:
    """Move a partial last line of the file open on ``fd`` (read and write) to ``<path>.torn``; return its size.

    The piece is appended to the ``.torn`` file and synced before the main file is cut, so a crash in
    between leaves the piece in both places, never in neither.
    """
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return 0
    end = size
    start = 0
    while end > 0:  # find the last newline, reading backwards
        begin = max(0, end - _SCAN)
        block = os.pread(fd, end - begin, begin)
        nl = block.rfind(b"\n")
        if nl >= 0:
            start = begin + nl + 1
            break
        end = begin
    torn = path.with_name(path.name + TORN_SUFFIX)
    tfd = os.open(torn, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        at = start
        while at < size:
            chunk = os.pread(fd, min(_SCAN, size - at), at)
            append_all(tfd, chunk)
            at += len(chunk)
        append_all(tfd, b"\n")
        os.fsync(tfd)
    finally:
        os.close(tfd)
    os.ftruncate(fd, start)
    os.fsync(fd)
    log.error(
        "file receiver: a partial last line (a crash mid-write) was moved aside",
        path=str(path),
        torn_file=str(torn),
        bytes=size - start,
    )
    return size - start


def _build(receiver: str, cfg: Any, ctx: ChannelContext) -> FileChannel:
    assert isinstance(cfg, FileConfig)
    path = Path(cfg.path)
    if not path.is_absolute():
        path = ctx.data_dir / path
    return FileChannel(receiver, path, cfg.fsync)


TYPE = ChannelType("file", FileConfig, _build)
