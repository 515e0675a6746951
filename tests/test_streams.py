"""Answers read by our HTTP clients (channels, Loki) are read whole, however the network splits them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from alert_router.channels.http import JsonHttp
from alert_router.enrich.loki import LokiClient
from tests.rawhttp import pieces


@asynccontextmanager
async def segmented_server(body: bytes, segments: int, pause: float) -> AsyncIterator[int]:
    """A loopback HTTP server answering every request 200 with ``body`` in ``segments`` writes ``pause`` apart."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            writer.write((head + "Connection: close\r\n\r\n").encode())
            for piece in pieces(body, segments):
                writer.write(piece)
                await writer.drain()
                await asyncio.sleep(pause)
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def test_a_platform_answer_in_pieces_is_parsed_whole() -> None:
    answer = {"ok": True, "ts": "1700000000.000100", "blocks": ["x" * 200] * 200}
    async with segmented_server(json.dumps(answer).encode(), 20, 0.01) as port:
        http = JsonHttp("test", 5.0, list)
        try:
            response = await http.request("POST", f"http://127.0.0.1:{port}/api/chat.postMessage", {"text": "hi"})
        finally:
            await http.aclose()
    assert response.data == answer


async def test_a_loki_answer_in_pieces_is_parsed_whole() -> None:
    values = [[str(1_700_000_000_000_000_000 + i), f"log line {i} " + "y" * 100] for i in range(500)]
    answer = {"status": "success", "data": {"resultType": "streams", "result": [{"stream": {"pod": "a"},
                                                                                  "values": values}]}}
    async with segmented_server(json.dumps(answer).encode(), 20, 0.01) as port:
        loki = LokiClient(f"http://127.0.0.1:{port}", timeout=5.0)
        try:
            (stream,) = await loki.query_range('{pod="a"}', start_ns=0, end_ns=1, limit=500)
        finally:
            await loki.aclose()
    assert len(stream.entries) == 500
