"""Shared fixtures: a real server on 127.0.0.1 port 0, real clients, bounded waits."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from chatroom.client import ClientConnection
from chatroom.eventloop import new_event_loop
from chatroom.framing import FrameDecoder
from chatroom.protocol import ServerFrame
from chatroom.server import ChatServer, ServerConfig
from chatroom.transcript import Transcript

# One timeout unit for every bounded wait; a slow CI machine scales it up.
TIMEOUT_S = 5.0 * float(os.environ.get("CHATROOM_TEST_TIMEOUT_SCALE", "1"))

# chatroom-server runs on uvloop with --loop uvloop, and uvloop's transports differ from
# asyncio's where it matters (a write to a reset peer raises instead of logging), so the
# server's own test modules also run on uvloop wherever it is installed.
_BOTH_LOOPS_MODULES = frozenset(
    {
        "test_server",
        "test_hardening",
        "test_shutdown",
        "test_tls_auth",
        "test_transcript",
        "test_fuzz_server",
    }
)


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    # chatroom-server's own asyncio loop (exact short waits), as the server runs on it.
    factories: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {"asyncio": new_event_loop}
    module = getattr(item, "module", None)
    if module is not None and module.__name__ in _BOTH_LOOPS_MODULES:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            factories["uvloop"] = uvloop.new_event_loop
    # One factory only: the test keeps its plain id.
    return factories


@dataclass
class RunningServer:
    """A started server and where to reach it."""

    server: ChatServer
    host: str
    port: int
    transcript: Transcript
    transcript_path: Path

    async def client(self, name: str | None = None) -> ClientConnection:
        """A connected client, joined as ``name`` when given (its welcome is consumed)."""
        conn = await ClientConnection.connect(self.host, self.port)
        if name is not None:
            async with asyncio.timeout(TIMEOUT_S):
                await conn.hello(name)
        return conn

    async def raw(self) -> RawClient:
        """A raw socket client for sending arbitrary bytes."""
        reader, writer = await asyncio.open_connection(self.host, self.port)
        return RawClient(reader, writer)


class RawClient:
    """Bytes out, decoded JSON objects in: for tests that break the protocol on purpose."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.decoder = FrameDecoder(16 * 1024 * 1024)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def recv(self, timeout_s: float = TIMEOUT_S) -> dict[str, Any] | None:
        """The next object from the server, or None at EOF."""
        async with asyncio.timeout(timeout_s):
            while True:
                obj = self.decoder.next_frame()
                if obj is not None:
                    return obj
                data = await self.reader.read(65536)
                if not data:
                    return None
                self.decoder.receive_data(data)

    async def expect(self, type_: str, timeout_s: float = TIMEOUT_S) -> dict[str, Any]:
        """Read until an object of ``type_`` arrives (others are skipped)."""
        async with asyncio.timeout(timeout_s):
            while True:
                obj = await self.recv(timeout_s)
                assert obj is not None, f"connection closed while waiting for {type_}"
                if obj.get("type") == type_:
                    return obj

    async def closed(self, timeout_s: float = TIMEOUT_S) -> bool:
        """True once the server has closed the connection (anything sent first is read)."""
        async with asyncio.timeout(timeout_s):
            while True:
                try:
                    data = await self.reader.read(65536)
                except ConnectionError:
                    return True
                if not data:
                    return True

    def close(self) -> None:
        self.writer.close()


async def expect(
    conn: ClientConnection,
    kind: type[Any],
    timeout_s: float = TIMEOUT_S,
    where: Callable[[Any], bool] = lambda frame: True,
) -> Any:
    """Read frames from ``conn`` until one of class ``kind`` matching ``where`` arrives."""
    async with asyncio.timeout(timeout_s):
        while True:
            frame: ServerFrame = await conn.recv()
            if isinstance(frame, kind) and where(frame):
                return frame


async def wait_for(condition: Callable[[], bool], timeout_s: float = TIMEOUT_S) -> None:
    """Yield to the loop until ``condition()`` holds, failing after ``timeout_s``."""
    async with asyncio.timeout(timeout_s):
        # Polling on purpose: conditions on server state (counts, fds) have no event.
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.005)


StartServer = Callable[..., Awaitable[RunningServer]]


@pytest.fixture
async def start_server(tmp_path: Path) -> AsyncIterator[StartServer]:
    """Start real servers on 127.0.0.1 port 0 with the given config fields; all are
    closed at the end of the test."""
    started: list[RunningServer] = []

    async def start(**overrides: Any) -> RunningServer:
        path = tmp_path / f"transcript-{len(started)}.log"
        transcript = Transcript(path)
        # Extra sinks come after the test transcript, which is always recorded.
        sinks = [transcript, *overrides.pop("sinks", [])]
        config = ServerConfig(host="127.0.0.1", port=0, sinks=sinks, **overrides)
        server = ChatServer(config)
        await server.start()
        host, port = server.addresses[0]
        running = RunningServer(server, host, port, transcript, path)
        started.append(running)
        return running

    yield start
    for running in started:
        await running.server.close()
        running.transcript.close()


@pytest.fixture
async def chat_server(start_server: StartServer) -> RunningServer:
    """One real server with default limits but no flood control (tests send fast)."""
    return await start_server(flood_rate=0)
