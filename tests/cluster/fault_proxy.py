"""A TCP proxy that injects network faults between a cluster node and Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from conftest import TIMEOUT_S

__all__ = ["FaultProxy"]

_CHUNK_BYTES = 64 * 1024


class _Link:
    """One proxied connection: the client's socket and its upstream socket."""

    def __init__(
        self,
        client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    ) -> None:
        self.client = client
        self.upstream = upstream
        self.tasks: list[asyncio.Task[None]] = []
        self.closed = asyncio.Event()

    def abort(self) -> None:
        # An abort (RST) rather than a FIN: a cut link fails at once on both ends, as
        # when a peer or a middlebox dies, instead of looking like a polite close.
        for _, writer in (self.client, self.upstream):
            writer.transport.abort()
        current = asyncio.current_task()
        for task in self.tasks:
            if task is not current:
                task.cancel()
        self.closed.set()


class FaultProxy:
    """Listens on 127.0.0.1 (a free port, kept across :meth:`cut`) and forwards every
    connection to ``target``.

    Modes, switched at any time and applied to connections already open:

    - pass: forward as is (the initial mode, and what :meth:`heal` restores);
    - :meth:`delay`: each chunk is delivered ``seconds`` after it was read, both ways;
    - :meth:`blackhole`: nothing is forwarded, connections stay open and new ones are
      accepted: a partition. Bytes are held, not dropped (TCP would retransmit them),
      and flow again after :meth:`heal` unless the link was cut meanwhile;
    - :meth:`cut`: every connection is reset and new ones are refused (nothing listens)
      until :meth:`heal`.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.host = "127.0.0.1"
        self.port = 0
        self.delay_s = 0.0
        self.links: set[_Link] = set()
        #: Connections accepted so far (a test can wait for a node to reconnect).
        self.accepted = 0
        self._server: asyncio.Server | None = None
        # Cleared while blackholed, per direction: to the target, back to the client.
        self._flowing_up = asyncio.Event()
        self._flowing_down = asyncio.Event()
        self._flowing_up.set()
        self._flowing_down.set()
        self._changed = asyncio.Event()
        self._handlers: set[asyncio.Task[object]] = set()

    @property
    def url(self) -> str:
        """The Redis URL a node is given to go through this proxy."""
        return f"redis://{self.host}:{self.port}/0"

    async def start(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    # ------------------------------------------------------------------ modes

    def delay(self, seconds: float) -> None:
        """Add ``seconds`` of latency to every chunk, in both directions."""
        self.delay_s = seconds

    def blackhole(self, *, to_target: bool = True, to_client: bool = True) -> None:
        """Stop forwarding (both ways by default; one way for an asymmetric partition)."""
        if to_target:
            self._flowing_up.clear()
        if to_client:
            self._flowing_down.clear()

    def cut(self) -> None:
        """Reset every connection and refuse new ones until :meth:`heal`."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for link in list(self.links):
            link.abort()
        self.links.clear()

    async def heal(self) -> None:
        """Back to pass: no delay, forwarding again, listening again on the same port."""
        self.delay_s = 0.0
        self._flowing_up.set()
        self._flowing_down.set()
        if self._server is None:
            self._server = await asyncio.start_server(self._accept, self.host, self.port)

    async def close(self) -> None:
        """Cut everything and wait for the connection handlers to finish."""
        self.cut()
        if self._handlers:
            await asyncio.wait(list(self._handlers), timeout=TIMEOUT_S)

    # ------------------------------------------------------------------ forwarding

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        self.accepted += 1
        self._notify()
        try:
            try:
                upstream = await asyncio.open_connection(*self.target)
            except OSError:
                # The target is down: the client sees its connection reset, as it would.
                writer.transport.abort()
                return
            if self._server is None:
                # Cut while connecting.
                writer.transport.abort()
                upstream[1].transport.abort()
                return
            link = _Link((reader, writer), upstream)
            self.links.add(link)
            self._notify()
            link.tasks = [
                asyncio.create_task(self._pump(link, reader, upstream[1], self._flowing_up)),
                asyncio.create_task(self._pump(link, upstream[0], writer, self._flowing_down)),
            ]
            await asyncio.gather(*link.tasks, return_exceptions=True)
            for _, side in (link.client, link.upstream):
                side.close()
            self.links.discard(link)
        finally:
            self._handlers.discard(handler)
            self._notify()

    async def _pump(
        self,
        link: _Link,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        flowing: asyncio.Event,
    ) -> None:
        """Copy one direction until EOF. Reading and delivering are apart so that a
        delay adds latency without limiting throughput to one chunk per delay."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, chunk = await queue.get()
                # Sleeping is the fault being injected here: latency on the wire.
                if (wait_s := due - loop.time()) > 0:
                    await asyncio.sleep(wait_s)
                await flowing.wait()
                if not chunk:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(chunk)
                await writer.drain()

        deliverer = asyncio.create_task(deliver())
        try:
            while True:
                # Not read while blackholed: it stays in the kernel's buffers and, once
                # they fill, the sender blocks, as across a real partition.
                await flowing.wait()
                chunk = await reader.read(_CHUNK_BYTES)
                queue.put_nowait((loop.time() + self.delay_s, chunk))
                if not chunk:
                    break
            await deliverer
        except OSError:
            # A reset on one side resets the other, as a dead peer would.
            link.abort()
        finally:
            deliverer.cancel()

    # ------------------------------------------------------------------ waiting

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_until(self, condition: Callable[[], bool], timeout_s: float) -> None:
        """Wait for ``condition()`` to hold after some connection came or went."""
        async with asyncio.timeout(timeout_s):
            while not condition():
                await self._changed.wait()
