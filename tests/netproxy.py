"""A TCP fault proxy for tests: put it between a client and a server, then make the network misbehave.

``forward`` passes bytes both ways, as a healthy network does. ``stall`` keeps every socket open (and
accepts new connections) but stops passing bytes in either direction, as a black-holed route or a hung
server does: the client sees no error and no answer, only silence. Bytes sent meanwhile are held, as TCP
retransmissions would deliver them, and go through when ``forward`` is called again. ``cut`` closes every
connection (both sides see the close) and closes each new connection at once, until ``forward``.

    proxy = TcpProxy("127.0.0.1", 5432)
    await proxy.start()            # listens on 127.0.0.1:<ephemeral>, see proxy.port
    dsn = f"postgresql://postgres@127.0.0.1:{proxy.port}/db"
    proxy.stall(); ...; proxy.forward()
    await proxy.close()

The proxy runs on the event loop that started it. Use it as ``async with TcpProxy(...) as proxy``.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Literal

Mode = Literal["forward", "stall", "cut"]
CHUNK = 65536


@dataclass(eq=False)
class _Link:
    """One proxied connection: the client's socket and the upstream socket."""

    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def abort(self) -> None:
        for w in (self.client, self.upstream):
            w.transport.abort()


class TcpProxy:
    """A loopback TCP proxy to ``host:port`` whose network can be stalled and cut; see the module docstring."""

    def __init__(self, host: str, port: int, *, listen_host: str = "127.0.0.1") -> None:
        self.upstream = (host, port)
        self.listen_host = listen_host
        self.mode: Mode = "forward"
        self.connections = 0
        """Connections accepted so far (whatever the mode)."""
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._links: set[_Link] = set()
        self._server: asyncio.Server | None = None
        self._pending: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        """The port the proxy listens on."""
        assert self._server is not None, "start() first"
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> TcpProxy:
        """Listen on an ephemeral loopback port."""
        self._server = await asyncio.start_server(self._accept, self.listen_host, 0)
        return self

    async def __aenter__(self) -> TcpProxy:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def forward(self) -> None:
        """Pass bytes again (held bytes go through first); accept new connections normally."""
        self.mode = "forward"
        self._flowing.set()

    def stall(self) -> None:
        """Keep every socket open but pass no byte in either direction; new connections hang too."""
        self.mode = "stall"
        self._flowing.clear()

    def cut(self) -> None:
        """Close every connection now, and each new one as soon as it is accepted, until :meth:`forward`."""
        self.mode = "cut"
        self._flowing.set()  # pumps wake up and find their sockets closed
        for link in list(self._links):
            link.abort()

    async def close(self) -> None:
        """Stop listening and close every connection."""
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            link.abort()
        self._flowing.set()
        tasks = [t for link in list(self._links) for t in link.tasks] + list(self._pending)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._links.clear()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        if task is not None:
            self._pending.add(task)
        try:
            if self.mode == "cut":
                writer.transport.abort()
                return
            await self._flowing.wait()  # a stalled network does not even let the upstream connection start
            if self.mode == "cut":
                writer.transport.abort()
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            except OSError:
                writer.transport.abort()
                return
            link = _Link(writer, up_writer)
            self._links.add(link)
            link.tasks = [
                asyncio.create_task(self._pump(reader, up_writer, link)),
                asyncio.create_task(self._pump(up_reader, writer, link)),
            ]
        finally:
            if task is not None:
                self._pending.discard(task)

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, link: _Link) -> None:
        try:
            while True:
                data = await src.read(CHUNK)
                await self._flowing.wait()
                if not data or self.mode == "cut":
                    break
                dst.write(data)
                await dst.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            link.abort()
            self._links.discard(link)
            with contextlib.suppress(Exception):
                dst.close()
