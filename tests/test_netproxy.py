"""The TCP fault proxy itself: it forwards, a stall passes no byte but keeps the socket open, a cut closes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.netproxy import TcpProxy


@pytest.fixture
async def echo_port() -> AsyncIterator[int]:
    """An echo server on loopback."""

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(1024):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await server.wait_closed()


async def test_forward_stall_and_cut(echo_port: int) -> None:
    async with TcpProxy("127.0.0.1", echo_port) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        try:
            writer.write(b"one")
            assert await asyncio.wait_for(reader.readexactly(3), 5) == b"one"

            proxy.stall()
            writer.write(b"two")
            await writer.drain()
            with pytest.raises(TimeoutError):  # silence, not an error: the socket stays open
                await asyncio.wait_for(reader.readexactly(3), 0.5)
            assert not reader.at_eof()
            proxy.forward()  # what was sent during the stall arrives, as TCP would deliver it
            assert await asyncio.wait_for(reader.readexactly(3), 5) == b"two"

            proxy.cut()
            assert await asyncio.wait_for(reader.read(), 5) == b""
        finally:
            writer.close()
        # While cut, new connections are closed at once; after forward() they work again.
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
        proxy.forward()
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"three")
        assert await asyncio.wait_for(reader.readexactly(5), 5) == b"three"
        writer.close()
        assert proxy.connections == 3


async def test_a_stalled_proxy_holds_new_connections_open(echo_port: int) -> None:
    async with TcpProxy("127.0.0.1", echo_port) as proxy:
        proxy.stall()
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"x")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.readexactly(1), 0.5)
        proxy.forward()
        assert await asyncio.wait_for(reader.readexactly(1), 5) == b"x"
        writer.close()
