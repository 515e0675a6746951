"""Read a whole HTTP body from an aiohttp stream, capped, whoever sent it (a client of ours, or a server).

``StreamReader.read(n)`` returns what has arrived so far, which for any body over a few kilobytes is not
all of it. :func:`read_capped` reads to the end of the body, however it is split in segments or chunks,
and stops as soon as more than ``cap`` bytes came (holding at most the cap and one read's worth).
"""

from __future__ import annotations

import asyncio

import aiohttp

READ_SIZE = 64 * 1024
"""The most one read takes from the stream."""


class BodyTooLarge(Exception):
    """The body is larger than ``limit`` bytes (``size``: the announced length, when there was one)."""

    def __init__(self, limit: int, size: int | None = None) -> None:
        self.limit = limit
        self.size = size
        super().__init__(f"body exceeds the limit of {limit} bytes")


class BodyIncomplete(Exception):
    """The body did not arrive whole: the peer went away, or it was too slow; ``received`` bytes had come."""

    def __init__(self, reason: str, received: int) -> None:
        self.received = received
        super().__init__(reason)


async def read_capped(stream: aiohttp.StreamReader, cap: int, within: float | None = None) -> bytes:
    """The whole body of ``stream`` if it is at most ``cap`` bytes.

    Raises :class:`BodyTooLarge` once more than ``cap`` bytes have come, and :class:`BodyIncomplete` when
    the connection ends before the body does or ``within`` seconds (for the whole body) pass first.
    """
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(within):
            while True:
                chunk = await stream.read(min(READ_SIZE, cap + 1 - size))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
                if size > cap:
                    raise BodyTooLarge(cap)
    except TimeoutError:
        raise BodyIncomplete(f"the body did not arrive within {within:g}s", size) from None
    except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, ConnectionError) as exc:
        raise BodyIncomplete(f"the connection ended before the body did ({type(exc).__name__})", size) from None
    return b"".join(chunks)
