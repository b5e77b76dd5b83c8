"""ChatServer.close(): everyone is told, the transcript has it, nothing is left behind."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import socket
from typing import Any

import pytest
from conftest import TIMEOUT_S, StartServer, expect, wait_for

import chatroom.server as server_module
from chatroom.client import ClientConnection, ConnectError, ConnectionClosed
from chatroom.protocol import Join, Leave, Message
from chatroom.server import ChatServer, ServerConfig
from chatroom.transcript import Transcript


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def _until_closed(conn: ClientConnection) -> list[Any]:
    """Every frame until the server closes the connection."""
    frames: list[Any] = []
    async with asyncio.timeout(TIMEOUT_S):
        with pytest.raises(ConnectionClosed):
            while True:
                frames.append(await conn.recv())
    return frames


@pytest.mark.filterwarnings("error")
async def test_close_tells_every_member_about_everyone(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Each member receives a shutdown leave for every member, itself included, then a
    clean close; the transcript has the leaves; no task, warning or transport is left."""
    tasks_before = asyncio.all_tasks()
    path = tmp_path / "t.log"
    transcript = Transcript(path)
    server = ChatServer(ServerConfig(host="127.0.0.1", port=0, flood_rate=0, sinks=[transcript]))
    await server.start()
    host, port = server.addresses[0]
    names = ["alice", "bob", "carol"]
    clients = []
    for name in names:
        conn = await ClientConnection.connect(host, port)
        await conn.hello(name)
        clients.append(conn)
    await expect(clients[0], Join, where=lambda j: j.name == "carol")
    with caplog.at_level(logging.WARNING, logger="asyncio"):
        await server.close()
        for conn in clients:
            frames = await _until_closed(conn)
            leaves = [(f.name, f.reason) for f in frames if isinstance(f, Leave)]
            assert leaves[-3:] == [(name, "shutdown") for name in names]
            await conn.close()
        transcript.close()
        assert asyncio.all_tasks() == tasks_before
        gc.collect()
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    lines = path.read_text().splitlines()
    assert [line.split(" ", 2)[2] for line in lines[-3:]] == [
        f"<-- {name} left (shutdown)" for name in names
    ]


async def test_close_with_connections_in_every_state(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Silent, mid-frame, mid-handshake, joined, and joined-but-not-reading connections:
    close() ends them all within its drain deadline and leaves no task or fd."""
    monkeypatch.setattr(server_module, "SHUTDOWN_DRAIN_S", 0.3)
    tasks_before = asyncio.all_tasks()
    running = await start_server(flood_rate=0, max_sendq_bytes=64 << 20, soft_sendq_bytes=64 << 20)
    # A first connection lets the loop create what it creates lazily (uvloop makes a
    # socket pair for its thread pool), so the fd baseline is the server's alone.
    warm_up = await running.client("warm-up")
    await warm_up.close()
    await wait_for(lambda: running.server.connection_count == 0)
    fds_before = _open_fds()
    silent = await running.raw()
    half_hello = await running.raw()
    await half_hello.send(b'{"type":"hello","protocol":1,"na')
    member = await running.client("member")
    mid_frame = await running.raw()
    await mid_frame.send(b'{"type":"hello","protocol":1,"name":"mid"}\n{"type":"say","te')
    # A member that never reads, with output piling up in the server's transport.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (running.host, running.port))
    _, sleeper = await asyncio.open_connection(sock=sock)
    sleeper.write(b'{"type":"hello","protocol":1,"name":"sleeper"}\n')
    await wait_for(lambda: running.server.hub.members() == ["member", "mid", "sleeper"])
    await wait_for(lambda: running.server.connection_count == 5)
    # White-box: push until the sleeper's server-side transport holds unsent output.
    conn = next(
        c
        for c in running.server._connections
        if c.session.member and c.session.member.name == "sleeper"
    )
    sent = 0
    while conn.transport.get_write_buffer_size() == 0:
        await member.say(f"{sent} " + "x" * 3900)
        sent += 1
        await expect(member, Message, where=lambda m, sent=sent: m.text.startswith(f"{sent - 1} "))
        assert sent < 10_000

    loop = asyncio.get_running_loop()
    started = loop.time()
    await running.server.close()
    assert loop.time() - started < 0.3 + 1.0
    assert running.server.connection_count == 0
    for raw in (silent, half_hello, mid_frame):
        assert await raw.closed()
        raw.close()
    await member.close()
    sleeper.transport.abort()
    sock.close()  # uvloop works on a duplicate of the socket it was given
    await wait_for(lambda: asyncio.all_tasks() == tasks_before)
    await wait_for(lambda: _open_fds() <= fds_before)


async def test_close_during_auth_delay(start_server: StartServer) -> None:
    """A connection waiting out its password-failure delay does not hold shutdown up
    beyond that delay."""
    running = await start_server(password="pw", auth_failure_delay_s=0.3)
    raw = await running.raw()
    await raw.send(b'{"type":"hello","protocol":1,"name":"x","password":"no"}\n')
    await wait_for(lambda: running.server.connection_count == 1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await running.server.close()
    assert loop.time() - started < 1.0
    assert await raw.closed()
    raw.close()


async def test_close_is_idempotent_and_refuses_new_connections(start_server: StartServer) -> None:
    """close() twice is fine; afterwards nobody can connect."""
    running = await start_server()
    await running.server.close()
    await running.server.close()
    with pytest.raises(ConnectError):
        await ClientConnection.connect(running.host, running.port, timeout_s=TIMEOUT_S)


async def test_async_context_manager(tmp_path: Any) -> None:
    """``async with ChatServer(...)`` starts and shuts down."""
    async with ChatServer(ServerConfig(host="127.0.0.1", port=0)) as server:
        host, port = server.addresses[0]
        conn = await ClientConnection.connect(host, port)
        await conn.hello("alice")
    frames = await _until_closed(conn)
    assert [(f.name, f.reason) for f in frames if isinstance(f, Leave)] == [("alice", "shutdown")]
    await conn.close()


async def test_close_cancels_stuck_connections_quietly(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection that does not end within the drain deadline (here: inside a long
    password-failure delay) is ended, and that reports no error to the loop."""
    monkeypatch.setattr(server_module, "SHUTDOWN_DRAIN_S", 0.2)
    running = await start_server(password="pw", auth_failure_delay_s=30)
    raw = await running.raw()
    await raw.send(b'{"type":"hello","protocol":1,"name":"x","password":"no"}\n')
    # White-box: the hello has been admitted (it took a rate-limit token), so the
    # connection is inside its delay.
    await wait_for(lambda: any(c.session.bucket.tokens < 10 for c in running.server._connections))
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: reported.append(context))
    try:
        started = loop.time()
        await running.server.close()
        assert loop.time() - started < 1.0
        assert await raw.closed()
        await asyncio.sleep(0.1)  # done-callbacks of the ended task have run
    finally:
        loop.set_exception_handler(None)
    assert [context.get("message") for context in reported] == []
    raw.close()
