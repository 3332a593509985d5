"""TCP fakes for a service (Redis) that fails at the network level, without touching
the shared server itself:

- :class:`Proxy`: forwards to the real server; ``stop`` cuts it (connections refused,
  open ones reset) and ``start`` brings it back on the same port; ``hang`` freezes it
  (as a SIGSTOPped or wedged server: connections are accepted, bytes are held, nothing
  is answered) and ``resume`` delivers what was held, late, as such a server would;
- :class:`HangingServer`: a server that accepts connections and never answers at all.
"""

from __future__ import annotations

import asyncio
import contextlib


class Proxy:
    """Forwards 127.0.0.1:``port`` to ``host:port``; ``stop`` cuts every open connection."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    @property
    def running(self) -> bool:
        return self._server is not None

    def hang(self) -> None:
        """Stop forwarding in both directions (new connections are still accepted);
        whatever arrives meanwhile is held, not lost."""
        self._flowing.clear()

    def resume(self) -> None:
        """Forward again, the held bytes first (replies arrive late, in order)."""
        self._flowing.set()

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for w in list(self._writers):
            w.close()
        self._writers.clear()
        self._flowing.set()  # held pipes see their closed ends and finish
        await self._server.wait_closed()
        self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._target)
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    await self._flowing.wait()
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


class HangingServer:
    """Listens on 127.0.0.1:``port`` (0: any free port), accepts every connection, reads
    and discards what it is sent, and never writes a byte: a Redis that hangs. ``stop``
    closes the listener and every accepted connection."""

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.accepted = 0  # connections accepted so far

    async def start(self) -> HangingServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for w in list(self._writers):
            w.close()
        self._writers.clear()
        await self._server.wait_closed()
        self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._writers.add(writer)
        with contextlib.suppress(Exception):
            while await reader.read(65536):
                pass  # never answer
        self._writers.discard(writer)
        writer.close()
