"""A raw-socket HTTP/1.1 client that sends a request body the way a network delivers it: in pieces.

aiohttp's client writes a small body in one go, so a server that reads only what has arrived so far looks
correct in tests and loses bodies in production. :func:`send` splits the body into ``segments`` writes with
``pause`` seconds between them (each one a separate TCP segment on loopback, ``TCP_NODELAY``), optionally as
a chunked body, optionally stopping after ``stop_after`` bytes, and returns the answer.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass, field


@dataclass
class Answer:
    """The status line's code (0 when the server closed without answering), headers and body of an answer."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    sent: int = 0
    """How many body bytes had been written when the answer came (or the connection closed)."""


def pieces(body: bytes, segments: int) -> list[bytes]:
    """``body`` cut into ``segments`` pieces of (nearly) equal size, none empty."""
    segments = max(1, min(segments, len(body)))
    step, extra = divmod(len(body), segments)
    out, at = [], 0
    for i in range(segments):
        size = step + (1 if i < extra else 0)
        out.append(body[at : at + size])
        at += size
    return out


async def _answer(reader: asyncio.StreamReader) -> Answer:
    """Read one answer: the head, then a ``Content-Length`` body (the server may go on reading our body)."""
    try:
        top = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return Answer(0)
    status_line, *header_lines = top[:-4].decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    length = int(headers.get("content-length", "0"))
    try:
        body = await reader.readexactly(length)
    except (asyncio.IncompleteReadError, ConnectionError):
        body = b""
    return Answer(int(status_line.split()[1]), headers, body)


async def send(
    port: int,
    target: str,
    body: bytes,
    *,
    segments: int = 1,
    pause: float = 0.0,
    headers: dict[str, str] | None = None,
    chunked: bool = False,
    stop_after: int | None = None,
    answer_within: float = 30.0,
) -> Answer:
    """POST ``body`` to ``127.0.0.1:port`` in ``segments`` writes ``pause`` seconds apart; return the answer.

    ``chunked``: send it with ``Transfer-Encoding: chunked`` (each piece a chunk) instead of ``Content-Length``.
    ``stop_after``: close the connection once that many body bytes are written (a sender that went away);
    the answer is then whatever came before the close, usually nothing (status 0). Stops writing as soon as the
    server answers (a 413 arrives before the body ends).
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    head = [f"POST {target} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
    head += [f"{k}: {v}" for k, v in {"Content-Type": "application/json", **(headers or {})}.items()]
    head.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {len(body)}")
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
    await writer.drain()
    answer = asyncio.ensure_future(_answer(reader))
    sent = 0
    try:
        for piece in pieces(body, segments):
            if answer.done():
                break
            if stop_after is not None and sent + len(piece) > stop_after:
                piece = piece[: stop_after - sent]
            writer.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n" if chunked and piece else piece)
            try:
                await writer.drain()
            except ConnectionError:
                break
            sent += len(piece)
            if stop_after is not None and sent >= stop_after:
                writer.close()  # what was written is delivered, then FIN: the sender is gone mid-body
                break
            if pause:
                await asyncio.wait({answer}, timeout=pause)
        else:
            if chunked:
                writer.write(b"0\r\n\r\n")
                await writer.drain()
        try:
            got = await asyncio.wait_for(answer, answer_within)
        except (ConnectionError, TimeoutError):
            got = Answer(0)
    finally:
        if not answer.done():
            answer.cancel()
        writer.transport.abort()
    got.sent = sent
    return got
