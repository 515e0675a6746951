"""The ``file`` receiver: one JSON line per notification, synced before the send returns."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from alert_router.channels.base import ChannelError
from alert_router.channels.file import FileChannel
from tests.channels.helpers import alert, notification


async def test_concurrent_sends_share_a_sync_and_keep_every_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A storm: lines sent while a write is under way go in the next write, with one fsync for all of them."""
    syncs: list[int] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        syncs.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    ch = FileChannel("file", tmp_path / "out.jsonl", fsync=True)
    sent = [notification([alert(f"A{i}")], receiver="file", group_key=f"g{i}") for i in range(50)]
    for i, n in enumerate(sent):
        n.extra["delivery_id"] = i
    refs = await asyncio.gather(*(ch.send(n, None) for n in sent))
    assert refs == [{"line_id": i} for i in range(50)]
    lines = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [rec["group_key"] for rec in lines] == [f"g{i}" for i in range(50)]  # every line, in send order
    assert 1 <= len(syncs) < 50


async def test_a_failed_write_fails_every_send_that_shared_it(tmp_path: Path) -> None:
    (tmp_path / "out.jsonl").mkdir()  # a directory where the file should be: the write fails
    ch = FileChannel("file", tmp_path / "out.jsonl", fsync=True)
    results = await asyncio.gather(*(ch.send(notification([alert("A")], receiver="file"), None) for _ in range(3)),
                                   return_exceptions=True)
    assert all(isinstance(r, ChannelError) and r.retryable for r in results)
