"""The ``file`` receiver survives crashes mid-write: no torn line, no record glued onto a fragment."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from alert_router.channels.file import TORN_SUFFIX, FileChannel
from tests.channels.helpers import alert, notification

ROOT = Path(__file__).resolve().parents[2]

WRITER = """
import asyncio, sys
from pathlib import Path
from alert_router.channels.file import FileChannel
from tests.channels.helpers import alert, notification

async def main() -> None:
    ch = FileChannel("file", Path(sys.argv[1]), fsync=False)
    big = notification([alert("Big", annotations={"description": "x" * (48 * 1024 * 1024)})], receiver="file")
    print("ready", flush=True)
    while True:
        await ch.send(big, None)

asyncio.run(main())
"""


def lines_of(path: Path) -> list[dict[str, object]]:
    """Every line of ``path`` parsed as JSON (fails on a torn or glued line)."""
    return [json.loads(line) for line in path.read_bytes().split(b"\n") if line]


async def test_a_partial_last_line_is_moved_aside_before_the_next_record(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_bytes(b'{"whole": 1}\n{"torn": "half a rec')  # what a kill mid-write leaves
    ch = FileChannel("file", out, fsync=True)
    await ch.send(notification([alert("After")], receiver="file", group_key="after"), None)
    recs = lines_of(out)
    assert recs[0] == {"whole": 1} and recs[1]["group_key"] == "after" and len(recs) == 2
    assert (tmp_path / ("out.jsonl" + TORN_SUFFIX)).read_bytes() == b'{"torn": "half a rec\n'


async def test_short_writes_are_finished(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``os.write`` may write less than asked (a signal, a full pipe of a FUSE file system): the rest follows."""
    real_write = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: real_write(fd, bytes(data[:7])))
    out = tmp_path / "out.jsonl"
    ch = FileChannel("file", out, fsync=False)
    await asyncio.gather(*(ch.send(notification([alert(f"A{i}")], receiver="file", group_key=f"g{i}"), None)
                           for i in range(5)))
    assert [rec["group_key"] for rec in lines_of(out)] == [f"g{i}" for i in range(5)]


async def test_kills_in_the_middle_of_writes_leave_every_line_readable(tmp_path: Path) -> None:
    """SIGKILL a writer of 48 MB lines while a write is under way; a restarted receiver writes clean lines."""
    out = tmp_path / "out.jsonl"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    torn_kills = 0
    for _ in range(8):
        start = out.stat().st_size if out.exists() else 0
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(out)], env=env, stdout=subprocess.PIPE, cwd=ROOT)
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
            deadline = time.monotonic() + 30
            while (out.stat().st_size if out.exists() else 0) == start:  # the first write has begun
                assert time.monotonic() < deadline, "the writer never wrote"
                time.sleep(0.0005)
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        data = out.read_bytes()
        if not data.endswith(b"\n"):
            torn_kills += 1
            # A restarted receiver: its first record must not be glued onto the fragment.
            await FileChannel("file", out, fsync=True).send(
                notification([alert("AfterKill")], receiver="file", group_key="after-kill"), None
            )
        if torn_kills >= 2:
            break
    assert torn_kills >= 1, "no kill landed mid-write: the test proved nothing"
    recs = lines_of(out)
    assert sum(1 for r in recs if r["group_key"] == "after-kill") == torn_kills
    assert (tmp_path / ("out.jsonl" + TORN_SUFFIX)).exists()
