"""Where drawn pictures live: PNG files under ``<data_dir>/graphs/``, named by a random 128-bit id.

The graph stage writes each picture once; channels read it back to upload it (Slack, Telegram, email) and
``GET /graphs/<id>.png`` serves it, so webhook and file payloads and PagerDuty can link to it when
``graph.public_url`` is set. The id is random, not derived from anything guessable: knowing a link is what
allows reading the picture, as with a chat attachment. Files older than ``graph.retention`` are removed.

With several replicas, a link resolves on the replica that drew the picture unless ``<data_dir>/graphs``
is a volume they share.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["PNG_SIGNATURE", "GraphFiles", "load_pictures", "new_pictures", "posted_keys", "read_png"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
NAME = re.compile(r"[0-9a-f]{32}\.png")
MAX_PNG_BYTES = 5 * 1024 * 1024


class GraphFiles:
    """The picture directory: save, find, link and prune."""

    def __init__(self, directory: Path, *, public_url: str = "", retention: float = 7 * 86400.0) -> None:
        self.directory = directory
        self.public_url = public_url.rstrip("/")
        self.retention = retention
        self._last_prune = 0.0

    def save(self, png: bytes) -> tuple[str, Path]:
        """Write ``png`` atomically under a new id; return the id and the path (blocking: call off the loop)."""
        if not png.startswith(PNG_SIGNATURE):
            raise ValueError("not a PNG")
        self.directory.mkdir(parents=True, exist_ok=True)
        graph_id = secrets.token_hex(16)
        path = self.directory / f"{graph_id}.png"
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".png")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(png)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self.maybe_prune()
        return graph_id, path

    def path_of(self, name: str) -> Path | None:
        """The file for ``<id>.png``, or ``None`` for any other name or a missing file."""
        if not NAME.fullmatch(name):
            return None
        path = self.directory / name
        return path if path.is_file() else None

    def url(self, graph_id: str) -> str:
        """The public link of a picture (empty without ``graph.public_url``)."""
        return f"{self.public_url}/graphs/{graph_id}.png" if self.public_url else ""

    def maybe_prune(self, now: float | None = None) -> int:
        """Remove pictures older than the retention, at most once an hour; return how many went."""
        now = time.time() if now is None else now
        if now - self._last_prune < min(3600.0, self.retention):
            return 0
        self._last_prune = now
        return self.prune(now)

    def prune(self, now: float | None = None) -> int:
        """Remove pictures (and abandoned temporary files) older than the retention."""
        now = time.time() if now is None else now
        removed = 0
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            return 0
        for entry in entries:
            if not entry.name.endswith(".png"):
                continue
            with contextlib.suppress(OSError):
                if now - entry.stat().st_mtime > self.retention:
                    os.unlink(entry.path)
                    removed += 1
        return removed


def read_png(entry: Mapping[str, Any]) -> bytes | None:
    """The PNG bytes of an ``extra["graphs"]`` entry, or ``None`` when it is not an available picture."""
    if entry.get("status") != "ok" or not entry.get("path"):
        return None
    try:
        with open(str(entry["path"]), "rb") as f:
            data = f.read(MAX_PNG_BYTES + 1)
    except OSError:
        return None
    if len(data) > MAX_PNG_BYTES or not data.startswith(PNG_SIGNATURE):
        return None
    return data


def new_pictures(extra: Mapping[str, Any], previous: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    """The available pictures of a notification (its ``extra``) not yet posted with ``previous``'s message.

    Channels that keep a living message record the ``key`` of each picture they posted under ``"graphs"`` in
    their message reference, so a picture goes once per group state change, whatever re-renders the message
    (an ack, a runbook result, a retry).
    """
    posted = set((previous or {}).get("graphs") or [])
    return [
        g
        for g in extra.get("graphs") or []
        if isinstance(g, Mapping) and g.get("status") == "ok" and g.get("key") not in posted
    ]


async def load_pictures(pictures: Sequence[Mapping[str, Any]]) -> list[tuple[Mapping[str, Any], bytes]]:
    """Read the PNGs of ``pictures`` off the event loop; those whose file is gone are left out."""
    out = []
    for g in pictures:
        png = await asyncio.to_thread(read_png, g)
        if png is not None:
            out.append((g, png))
    return out


def posted_keys(
    previous: Mapping[str, Any] | None, same_message: bool, added: Sequence[Mapping[str, Any]]
) -> list[str]:
    """The ``"graphs"`` to keep in a message reference after posting ``added`` (the last 20)."""
    before = list((previous or {}).get("graphs") or []) if same_message else []
    return [*before, *(str(g.get("key")) for g in added)][-20:]
