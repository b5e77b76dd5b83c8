"""Hostile and broken peers against the real server: limits hold, nobody else notices."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import socket
import struct
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from conftest import TIMEOUT_S, RawClient, RunningServer, StartServer, expect, wait_for

import chatroom.server as server_module
import chatroom.transports.base as base_module
import chatroom.transports.ndjson as ndjson_module
from chatroom.client import ClientConnection, ConnectionClosed
from chatroom.framing import MAX_FRAME_BYTES, FrameDecoder
from chatroom.protocol import Join, Leave, Members, Message
from chatroom.server import READ_CHUNK_BYTES


def _line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj).encode() + b"\n"


def _hello(name: str) -> bytes:
    return _line({"type": "hello", "protocol": 1, "name": name})


async def _joined_raw(running: RunningServer, name: str) -> RawClient:
    raw = await running.raw()
    await raw.send(_hello(name))
    await raw.expect("welcome")
    await raw.expect("join")
    return raw


class Collector:
    """Reads a client's frames in the background (answering pings), so tests can wait on
    what arrived without the client ever looking idle."""

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        self.frames: list[Any] = []
        self.closed = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        try:
            async for frame in self.conn.events():
                self.frames.append(frame)
        finally:
            self.closed.set()

    def messages(self) -> list[Message]:
        return [f for f in self.frames if isinstance(f, Message)]

    def leaves(self) -> list[Leave]:
        return [f for f in self.frames if isinstance(f, Leave)]

    async def stop(self) -> None:
        await self.conn.close()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


@contextlib.asynccontextmanager
async def collecting(running: RunningServer, name: str) -> AsyncIterator[Collector]:
    collector = Collector(await running.client(name))
    try:
        yield collector
    finally:
        await collector.stop()


# ---------------------------------------------------------------------------- frame limit


async def test_overlong_frame_gets_bad_frame_then_close_without_buffering(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """10 MB without a newline: bad_frame, then the connection is closed; the server's
    decoder never holds more than the limit plus one read, and the server stops reading
    long before the 10 MB are through. Others see leave reason disconnected."""
    peaks: list[int] = []
    fed: list[int] = []

    class WatchedDecoder(FrameDecoder):
        def receive_data(self, data: bytes) -> None:
            super().receive_data(data)
            fed.append(len(data))
            peaks.append(self.buffered_bytes)

    monkeypatch.setattr(ndjson_module, "FrameDecoder", WatchedDecoder)
    running = await start_server(flood_rate=0)
    async with collecting(running, "alice") as alice:
        raw = await _joined_raw(running, "mallory")

        async def flood() -> None:
            with contextlib.suppress(ConnectionError):
                for _ in range(160):
                    raw.writer.write(b"a" * 65536)
                    await raw.writer.drain()

        flooding = asyncio.create_task(flood())
        error = await raw.expect("error")
        assert error["code"] == "bad_frame"
        assert await raw.closed()
        await flooding
        await wait_for(lambda: any(leave.name == "mallory" for leave in alice.leaves()))
        assert alice.leaves()[-1].reason == "disconnected"
    assert max(peaks) <= MAX_FRAME_BYTES + READ_CHUNK_BYTES
    assert sum(fed) < 2 * 1024 * 1024
    raw.close()


async def test_tail_of_an_overlong_line_is_never_a_frame(start_server: StartServer) -> None:
    """A valid-looking frame at the end of an over-long line is never delivered."""
    running = await start_server(flood_rate=0, max_frame_bytes=1024)
    async with collecting(running, "alice") as alice:
        raw = await _joined_raw(running, "mallory")
        smuggled = _line({"type": "say", "text": "smuggled"})
        await raw.send(b"x" * 1500 + smuggled + smuggled)
        assert (await raw.expect("error"))["code"] == "bad_frame"
        assert await raw.closed()
        await wait_for(lambda: bool(alice.leaves()))
        await alice.conn.say("sync")
        await wait_for(lambda: bool(alice.messages()))
        assert [m.text for m in alice.messages()] == ["sync"]
    assert "smuggled" not in running.transcript_path.read_text()


async def test_line_at_exactly_the_limit_is_accepted(start_server: StartServer) -> None:
    """A say frame of exactly max_frame_bytes (newline included) is delivered."""
    running = await start_server(flood_rate=0, max_frame_bytes=1024)
    raw = await _joined_raw(running, "alice")
    head = b'{"type":"say","text":"'
    line = head + b"y" * (1024 - len(head) - 3) + b'"}\n'
    assert len(line) == 1024
    await raw.send(line)
    assert (await raw.expect("message"))["text"] == "y" * (1024 - len(head) - 3)
    raw.close()


@pytest.mark.parametrize(
    ("line", "code"),
    [
        pytest.param(b'{"type":"say","text":"\xc3\x28"}\n', "bad_frame", id="bad-utf8"),
        pytest.param(b'{"type":"say","text":"\xed\xa0\x80"}\n', "bad_frame", id="utf8-surrogate"),
        pytest.param(b'{"type":"say","text":NaN}\n', "bad_frame", id="nan"),
        pytest.param(b'{"type":"say","text":"x","n":1e999}\n', "bad_frame", id="1e999"),
        pytest.param(b'{"type":"say","text":"\\ud800"}\n', "bad_request", id="lone-surrogate"),
        pytest.param(b"[" * 100_000 + b"\n", "bad_frame", id="100k-brackets"),
        pytest.param(b'{"a":' * 50_000 + b"1" + b"}" * 50_000 + b"\n", "bad_frame", id="deep-obj"),
        pytest.param(b'"a string"\n', "bad_frame", id="string"),
        pytest.param(b"12\n", "bad_frame", id="number"),
        pytest.param(b"null\n", "bad_frame", id="null"),
        pytest.param(b"[]\n", "bad_frame", id="array"),
    ],
)
async def test_bad_input_gets_an_error_and_the_connection_stays(
    start_server: StartServer, line: bytes, code: str
) -> None:
    """Bad UTF-8, bad JSON, deep nesting and non-objects each get their error; the same
    connection then chats normally."""
    running = await start_server(flood_rate=0, max_frame_bytes=512 * 1024)
    raw = await _joined_raw(running, "alice")
    await raw.send(line)
    assert (await raw.expect("error"))["code"] == code
    await raw.send(_line({"type": "say", "text": "after"}))
    assert (await raw.expect("message"))["text"] == "after"
    raw.close()


async def test_too_long_text_goes_nowhere(chat_server: RunningServer) -> None:
    """Text over 4,000 characters gets too_long; no one receives it, the transcript does
    not have it; 4,000 exactly is fine."""
    async with collecting(chat_server, "bob") as bob:
        raw = await _joined_raw(chat_server, "alice")
        await raw.send(_line({"type": "say", "text": "z" * 4001}))
        assert (await raw.expect("error"))["code"] == "too_long"
        await raw.send(_line({"type": "say", "text": "k" * 4000}))
        assert (await raw.expect("message"))["text"] == "k" * 4000
        await wait_for(lambda: bool(bob.messages()))
        assert [len(m.text) for m in bob.messages()] == [4000]
        raw.close()
    assert "z" * 100 not in chat_server.transcript_path.read_text()


async def test_garbage_never_disturbs_others(chat_server: RunningServer) -> None:
    """While one connection sends random garbage, three members chat at full speed and
    each receives every message, in the same order."""
    rng = random.Random(1234)
    senders = [await chat_server.client(f"user{i}") for i in range(3)]
    collectors = [Collector(conn) for conn in senders]
    garbage = await _joined_raw(chat_server, "garbage")
    stop = asyncio.Event()

    async def spew() -> int:
        sent = 0
        while not stop.is_set():
            chunk = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 600)))
            if rng.random() < 0.3:
                chunk += b"\n"
            try:
                garbage.writer.write(chunk)
                await garbage.writer.drain()
            except ConnectionError:
                break
            sent += len(chunk)
            # Read what the server answers so our side never stalls on its errors.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(garbage.reader.read(65536), 0.001)
        return sent

    spewing = asyncio.create_task(spew())
    per_sender = 100
    await asyncio.gather(
        *(conn.say(f"{i}:{n}") for i, conn in enumerate(senders) for n in range(per_sender))
    )
    total = per_sender * len(senders)
    await wait_for(lambda: all(len(c.messages()) >= total for c in collectors), TIMEOUT_S * 2)
    stop.set()
    assert await spewing > 0
    streams = [[(m.id, m.text) for m in c.messages()] for c in collectors]
    assert all(stream == streams[0] for stream in streams)
    assert sorted(text for _, text in streams[0]) == sorted(
        f"{i}:{n}" for i in range(3) for n in range(per_sender)
    )
    for collector in collectors:
        await collector.stop()
    garbage.close()


# ---------------------------------------------------------------------------- slow consumer


async def test_slow_consumer_is_dropped_and_memory_stays_bounded(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A member that never reads while others chat at full speed is dropped with
    slow_consumer once its pending output passes the bound; the others receive every
    message, and no connection's buffer ever exceeded the hard bound."""
    max_sendq = 64 * 1024
    peaks: list[int] = []
    real_send = server_module.StreamOutbox.send

    def watched_send(self: Any, payload: bytes) -> None:
        real_send(self, payload)
        peaks.append(self._transport.get_write_buffer_size())

    monkeypatch.setattr(server_module.StreamOutbox, "send", watched_send)
    running = await start_server(
        flood_rate=0, max_sendq_bytes=max_sendq, soft_sendq_bytes=16 * 1024
    )
    senders = [Collector(await running.client(f"fast{i}")) for i in range(3)]
    writer = await _sleeper(running, "sleeper")
    await wait_for(
        lambda: any(isinstance(f, Join) and f.name == "sleeper" for f in senders[0].frames)
    )

    text = "x" * 3900
    sent = 0
    while not any(leave.name == "sleeper" for leave in senders[0].leaves()):
        await asyncio.gather(*(s.conn.say(text) for s in senders))
        sent += len(senders)
        # Let the fast readers keep up: wait until they have what was sent so far.
        await wait_for(lambda sent=sent: all(len(s.messages()) >= sent for s in senders))
        assert sent < 20_000, "the sleeper was never dropped"
    leave = next(leave for leave in senders[0].leaves() if leave.name == "sleeper")
    assert leave.reason == "slow_consumer"
    assert max(peaks) <= max_sendq
    for s in senders:
        assert len(s.messages()) == sent
        await s.stop()
    writer.close()


async def _push_until(sender: Collector, done: Callable[[], bool], text: str) -> int:
    """Send ``text`` in rounds of 20 (waiting for the sender's own copies, so it never
    falls behind itself) until ``done()``; return how many were sent."""
    sent = len(sender.messages())
    while not done():
        await asyncio.gather(*(sender.conn.say(text) for _ in range(20)))
        sent += 20
        await wait_for(lambda sent=sent: len(sender.messages()) >= sent or done())
        assert sent < 20_000, "never happened"
    # All of them, also when done() came true before the last round's copies arrived.
    await wait_for(lambda: len(sender.messages()) >= sent)
    return sent


async def _sleeper(running: RunningServer, name: str) -> asyncio.StreamWriter:
    """A joined connection that never reads, with a small receive buffer so the kernel
    absorbs little of what it is sent."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (running.host, running.port))
    _, writer = await asyncio.open_connection(sock=sock)
    writer.write(_hello(name))
    await writer.drain()
    return writer


async def test_peer_that_never_reads_cannot_hold_a_closed_socket(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A member lets output pile up unread, then says bye: its leave is quit, and the
    socket, closed gracefully, is aborted after CLOSE_DRAIN_S instead of lingering for
    ever outside the connection count."""
    monkeypatch.setattr(base_module, "CLOSE_DRAIN_S", 0.2)
    running = await start_server(flood_rate=0, max_sendq_bytes=64 << 20, soft_sendq_bytes=64 << 20)
    fast = Collector(await running.client("fast"))
    writer = await _sleeper(running, "sleeper")
    await wait_for(lambda: any(isinstance(f, Join) and f.name == "sleeper" for f in fast.frames))
    fds_with_sleeper = _open_fds()
    # White-box: the sleeper's server-side transport says when output is piling up.
    conn = next(
        c
        for c in running.server._connections
        if c.session.member and c.session.member.name == "sleeper"
    )
    await _push_until(fast, lambda: conn.transport.get_write_buffer_size() > 0, "x" * 3900)
    writer.write(b'{"type":"bye"}\n')
    await writer.drain()
    await wait_for(lambda: any(leave.name == "sleeper" for leave in fast.leaves()))
    assert fast.leaves()[-1].reason == "quit"
    await wait_for(lambda: running.server.connection_count == 1)
    await wait_for(lambda: _open_fds() == fds_with_sleeper - 1)
    writer.transport.abort()
    await fast.stop()


async def test_output_the_kernel_only_partly_takes_arrives_whole_and_in_order(
    start_server: StartServer,
) -> None:
    """The fan-out writes the socket itself while nothing is queued, and hands what the
    kernel does not take to the transport. A peer that stops reading until output is
    queued, then reads, gets every event once, in id order, nothing torn."""
    running = await start_server(flood_rate=0, max_sendq_bytes=64 << 20, soft_sendq_bytes=64 << 20)
    async with collecting(running, "alice") as alice:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (running.host, running.port))
        reader, writer = await asyncio.open_connection(sock=sock)
        writer.write(_hello("pauser"))
        await writer.drain()
        await wait_for(
            lambda: any(isinstance(f, Join) and f.name == "pauser" for f in alice.frames)
        )
        conn = next(
            c
            for c in running.server._connections
            if c.session.member and c.session.member.name == "pauser"
        )
        # White-box: output is queued in the transport, so some sends were split.
        sent = await _push_until(
            alice, lambda: conn.transport.get_write_buffer_size() > 0, "p" * 3900
        )
        decoder = FrameDecoder()
        texts: list[str] = []
        ids: list[int] = []

        async def read_until(count: int) -> None:
            while len(texts) < count:
                decoder.receive_data(await reader.read(65536))
                while (frame := decoder.next_frame()) is not None:
                    if frame["type"] == "message":
                        texts.append(frame["text"])
                        ids.append(frame["id"])

        # Reading now frees the kernel's buffer while the transport still holds output:
        # what is sent meanwhile must go behind what is queued, not past it.
        catching_up = asyncio.create_task(read_until(sent + 200))
        sent = await _push_until(alice, lambda: len(alice.messages()) >= sent + 200, "q" * 3900)
        async with asyncio.timeout(TIMEOUT_S):
            await catching_up
            await read_until(sent)
        assert ids == sorted(set(ids))
        assert texts == [m.text for m in alice.messages()]
        assert conn.transport.get_write_buffer_size() == 0
        writer.close()


async def test_long_history_does_not_make_the_room_unjoinable(start_server: StartServer) -> None:
    """A welcome whose history alone is bigger than the hard SendQ bound is a burst to a
    peer that has read nothing yet, not a backlog: the newcomer joins and chats."""
    running = await start_server(flood_rate=0, max_sendq_bytes=32 * 1024, soft_sendq_bytes=8 * 1024)
    async with collecting(running, "alice") as alice:
        for n in range(30):
            await alice.conn.say(f"{n} " + "\u6f22" * 3990)
        await wait_for(lambda: len(alice.messages()) == 30)
        bob = await running.client("bob")
        assert bob.welcome is not None
        assert len([e for e in bob.welcome.history if isinstance(e, Message)]) == 30
        await bob.say("made it")
        assert (await expect(bob, Message)).text == "made it"
        await wait_for(lambda: alice.messages()[-1].text == "made it")
        assert alice.leaves() == []
        await bob.close()


async def test_one_busy_iteration_drops_nobody(start_server: StartServer) -> None:
    """One loop iteration's batch bigger than the hard bound (many long messages read in
    one go) reaches every member that keeps up; nobody is dropped."""
    running = await start_server(flood_rate=0, max_sendq_bytes=32 * 1024, soft_sendq_bytes=8 * 1024)
    async with collecting(running, "bob") as bob, collecting(running, "carol") as carol:
        raw = await _joined_raw(running, "alice")
        burst = b"".join(_line({"type": "say", "text": f"{n} " + "y" * 3990}) for n in range(15))
        assert 32 * 1024 < len(burst) < READ_CHUNK_BYTES
        await raw.send(burst)
        for member in (bob, carol):
            await wait_for(lambda member=member: len(member.messages()) == 15)
            assert member.leaves() == []
        assert running.server.hub.members() == ["bob", "carol", "alice"]
        raw.close()


async def test_non_reader_after_a_burst_is_still_dropped(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A newcomer that takes a big welcome and then never reads is dropped once output
    piles up beyond the burst; its buffer never exceeded burst plus the hard bound."""
    hard = 32 * 1024
    peaks: list[int] = []
    real_send = server_module.StreamOutbox.send

    def watched_send(self: Any, payload: bytes) -> None:
        real_send(self, payload)
        peaks.append(self._transport.get_write_buffer_size())

    monkeypatch.setattr(server_module.StreamOutbox, "send", watched_send)
    running = await start_server(flood_rate=0, max_sendq_bytes=hard, soft_sendq_bytes=8 * 1024)
    async with collecting(running, "alice") as alice:
        for n in range(40):
            await alice.conn.say(f"{n} " + "h" * 3990)
        await wait_for(lambda: len(alice.messages()) == 40)
        writer = await _sleeper(running, "sleeper")
        await wait_for(
            lambda: any(isinstance(f, Join) and f.name == "sleeper" for f in alice.frames)
        )
        welcome_bytes = 40 * 4100 + 1000
        await _push_until(
            alice, lambda: any(leave.name == "sleeper" for leave in alice.leaves()), "z" * 3900
        )
        assert next(x for x in alice.leaves() if x.name == "sleeper").reason == "slow_consumer"
        assert max(peaks) <= welcome_bytes + hard + 4096
        writer.transport.abort()


async def test_over_the_soft_bound_too_long_is_dropped(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Output held above the soft bound for longer than the grace period drops the
    member (slow_consumer), even far below the hard bound."""
    running = await start_server(
        flood_rate=0,
        max_sendq_bytes=64 << 20,
        soft_sendq_bytes=8 * 1024,
        soft_sendq_grace_s=0.2,
    )
    async with collecting(running, "alice") as alice:
        writer = await _sleeper(running, "sleeper")
        await wait_for(
            lambda: any(isinstance(f, Join) and f.name == "sleeper" for f in alice.frames)
        )
        await _push_until(
            alice, lambda: any(leave.name == "sleeper" for leave in alice.leaves()), "s" * 3900
        )
        assert next(x for x in alice.leaves() if x.name == "sleeper").reason == "slow_consumer"
        writer.transport.abort()


async def test_replies_to_a_peer_that_reset_log_nothing(
    chat_server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Peers that send thousands of bad lines and reset at once: the server does not
    log a warning for every error reply it can no longer send, and members chat on."""
    async with collecting(chat_server, "alice") as alice, collecting(chat_server, "bob") as bob:
        with caplog.at_level(logging.WARNING):
            for n in range(5):
                _, writer = await asyncio.open_connection(chat_server.host, chat_server.port)
                writer.write(_hello(f"garbage{n}") + b"garbage\n" * 3000)
                await writer.drain()
                writer.transport.abort()
            await wait_for(lambda: chat_server.server.connection_count == 2)
            await alice.conn.say("after")
            await wait_for(lambda: any(m.text == "after" for m in bob.messages()))
        assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_fan_out_skips_a_peer_that_reset(
    chat_server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A member whose peer reset is skipped by fan-out until its read loop drops it: no
    exception (uvloop raises on a write to the dead transport, which aborted the rest of
    the fan-out), no warning per write (asyncio), and the others get everything."""
    async with collecting(chat_server, "alice") as alice, collecting(chat_server, "carol") as carol:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (chat_server.host, chat_server.port))
        await asyncio.get_running_loop().sock_sendall(sock, _hello("bob"))
        await wait_for(lambda: "bob" in chat_server.server.hub.members())
        hub = chat_server.server.hub
        sender = next(m for m in hub.all_members() if m.name == "alice")
        with caplog.at_level(logging.WARNING):
            sock.close()  # SO_LINGER 0: a reset, which the server has not read yet
            # White-box: fan out at once, before bob's read loop can run, and again
            # after the loop has turned (uvloop has closed the transport by then).
            for n in range(10):
                hub.say(sender, f"m{n}")
                hub.flush()
                if n % 3 == 0:
                    await asyncio.sleep(0)
            await wait_for(lambda: len(carol.messages()) == 10)
            await wait_for(lambda: any(leave.name == "bob" for leave in carol.leaves()))
        assert [m.text for m in alice.messages()] == [f"m{n}" for n in range(10)]
        assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


# ---------------------------------------------------------------------------- rate limit


async def test_rate_limit_burst_then_rate(start_server: StartServer) -> None:
    """A burst passes, the rest get rate_limited and are not delivered; tokens come back
    at the configured rate; the connection stays."""
    burst, rate = 5, 40.0
    running = await start_server(flood_burst=burst, flood_rate=rate)
    async with collecting(running, "observer") as observer:
        raw = await _joined_raw(running, "alice")
        await raw.send(b"".join(_line({"type": "say", "text": f"b{n}"}) for n in range(12)))
        answers = [await raw.recv() for _ in range(12)]
        # The hello took one token of the burst. Errors are immediate replies, messages
        # go out with the hub's next batch, so only the counts are compared.
        kinds = sorted(a["type"] for a in answers if a)
        assert kinds == ["error"] * (12 - burst + 1) + ["message"] * (burst - 1)
        assert {a["code"] for a in answers if a and a["type"] == "error"} == {"rate_limited"}
        # Then send at twice the rate for a while: about half gets through. (The sleep
        # paces the sender; it waits for nothing.)
        loop = asyncio.get_running_loop()
        start = loop.time()
        accepted = 0
        while loop.time() - start < 0.5:
            await raw.send(_line({"type": "say", "text": "paced"}))
            answer = await raw.recv()
            assert answer is not None, "closed while sending at twice the rate"
            accepted += answer["type"] == "message"
            await asyncio.sleep(0.5 / rate)
        elapsed = loop.time() - start
        assert rate * elapsed / 3 <= accepted <= rate * elapsed + 2
        total = burst - 1 + accepted
        await wait_for(lambda: len(observer.messages()) == total)
        assert [m.text for m in observer.messages() if m.text != "paced"] == [
            f"b{n}" for n in range(burst - 1)
        ]
        raw.close()


async def test_persistent_flooder_is_dropped(start_server: StartServer) -> None:
    """A connection that keeps flooding past the limit is dropped (leave reason kicked)."""
    running = await start_server(flood_burst=3, flood_rate=1.0)
    async with collecting(running, "observer") as observer:
        raw = await _joined_raw(running, "flooder")
        with contextlib.suppress(ConnectionError):
            await raw.send(b'{"type":"ping"}\n' * 200)
        assert await raw.closed()
        await wait_for(lambda: bool(observer.leaves()))
        assert (observer.leaves()[0].name, observer.leaves()[0].reason) == ("flooder", "kicked")
        raw.close()


async def test_garbage_counts_against_the_rate_limit(start_server: StartServer) -> None:
    """Broken lines cost tokens like frames: past the burst they get rate_limited, and a
    connection that keeps sending them is dropped as a flooder (leave reason kicked)."""
    running = await start_server(flood_burst=5, flood_rate=1.0)
    async with collecting(running, "observer") as observer:
        raw = await _joined_raw(running, "garbler")
        codes = []
        with contextlib.suppress(ConnectionError):
            await raw.send(b"not json\n" * 200)
        # Closing with unread input may reset the connection: read what arrives.
        with contextlib.suppress(ConnectionError):
            while (answer := await raw.recv()) is not None:
                codes.append(answer.get("code"))
        # The hello took one token of the five.
        assert codes[:4] == ["bad_frame"] * 4
        assert set(codes[4:]) == {"rate_limited"}
        await wait_for(lambda: bool(observer.leaves()))
        assert (observer.leaves()[0].name, observer.leaves()[0].reason) == ("garbler", "kicked")
        raw.close()


# ---------------------------------------------------------------------------- timers


async def test_handshake_deadline_closes_silent_connections(start_server: StartServer) -> None:
    """A connection with no valid hello in time is told handshake_timeout and closed,
    whether it says nothing, half a frame, or only bad hellos; members are unaffected."""
    running = await start_server(flood_rate=0, handshake_timeout_s=0.2)
    async with collecting(running, "member") as member:
        silent = await running.raw()
        partial = await running.raw()
        await partial.send(b'{"type":"hel')
        refused = await running.raw()
        await refused.send(_hello(""))
        for raw in (silent, partial, refused):
            assert await raw.closed(timeout_s=TIMEOUT_S)
            raw.close()
        await wait_for(lambda: running.server.connection_count == 1)
        await member.conn.who()
        await wait_for(lambda: any(isinstance(f, Members) for f in member.frames))


async def test_handshake_timeout_error_is_sent(start_server: StartServer) -> None:
    """The silent connection is told why before it is closed."""
    running = await start_server(flood_rate=0, handshake_timeout_s=0.1)
    raw = await running.raw()
    answer = await raw.recv()
    assert answer is not None and answer["code"] == "handshake_timeout"
    assert await raw.closed()
    raw.close()


async def test_quiet_peer_is_pinged_then_dropped_with_timeout(start_server: StartServer) -> None:
    """A member quiet for the ping interval gets a ping; not answering within the ping
    timeout drops it with leave reason timeout."""
    running = await start_server(flood_rate=0, ping_interval_s=0.2, ping_timeout_s=0.2)
    async with collecting(running, "observer") as observer:
        raw = await _joined_raw(running, "quiet")
        ping = await raw.expect("ping")
        assert isinstance(ping["token"], str) and ping["token"]
        assert await raw.closed()
        await wait_for(lambda: bool(observer.leaves()))
        assert (observer.leaves()[0].name, observer.leaves()[0].reason) == ("quiet", "timeout")
        raw.close()


async def test_peer_that_answers_pings_stays(start_server: StartServer) -> None:
    """A quiet member that answers each ping with its token is never dropped."""
    running = await start_server(flood_rate=0, ping_interval_s=0.1, ping_timeout_s=0.2)
    raw = await _joined_raw(running, "awake")
    tokens = []
    for _ in range(4):
        ping = await raw.expect("ping")
        tokens.append(ping["token"])
        await raw.send(_line({"type": "pong", "token": ping["token"]}))
    assert len(set(tokens)) == 4
    await raw.send(b'{"type":"who"}\n')
    assert (await raw.expect("members"))["members"] == ["awake"]
    raw.close()


async def test_client_connection_answers_pings_by_itself(start_server: StartServer) -> None:
    """ClientConnection answers server pings while the caller only reads events."""
    running = await start_server(flood_rate=0, ping_interval_s=0.1, ping_timeout_s=0.15)
    async with collecting(running, "reader") as reader:
        raw = await _joined_raw(running, "counter")
        for _ in range(3):
            ping = await raw.expect("ping")
            await raw.send(_line({"type": "pong", "token": ping["token"]}))
        assert reader.leaves() == [] and not reader.closed.is_set()
        raw.close()


# ---------------------------------------------------------------------------- limits


async def test_connection_limit(start_server: StartServer) -> None:
    """Past max_connections a new connection gets server_full and is closed; once one
    leaves, a new one is admitted."""
    running = await start_server(flood_rate=0, max_connections=3)
    held = [await running.raw() for _ in range(3)]
    await wait_for(lambda: running.server.connection_count == 3)
    extra = await running.raw()
    answer = await extra.recv()
    assert answer is not None and answer["code"] == "server_full"
    assert await extra.closed()
    held[0].close()
    await wait_for(lambda: running.server.connection_count == 2)
    again = await running.raw()
    await again.send(_hello("late"))
    assert (await again.expect("welcome"))["name"] == "late"
    for raw in (*held, extra, again):
        raw.close()


async def test_per_address_limit(start_server: StartServer) -> None:
    """Past max_per_ip connections from one address a new one gets too_many_connections
    and is closed (loopback exemption switched off for the test)."""
    running = await start_server(flood_rate=0, max_per_ip=2, exempt_loopback=False)
    held = [await running.raw() for _ in range(2)]
    await wait_for(lambda: running.server.connection_count == 2)
    extra = await running.raw()
    answer = await extra.recv()
    assert answer is not None and answer["code"] == "too_many_connections"
    assert await extra.closed()
    held[1].close()
    await wait_for(lambda: running.server.connection_count == 1)
    again = await running.raw()
    await again.send(_hello("ok"))
    assert (await again.expect("welcome"))["name"] == "ok"
    for raw in (*held, extra, again):
        raw.close()


async def test_loopback_is_exempt_by_default(start_server: StartServer) -> None:
    """With the default exemption, loopback peers are not held to max_per_ip."""
    running = await start_server(flood_rate=0, max_per_ip=1)
    held = [await running.raw() for _ in range(3)]
    await wait_for(lambda: running.server.connection_count == 3)
    for raw in held:
        raw.close()


# ---------------------------------------------------------------------------- churn


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_connect_disconnect_churn_leaves_nothing_behind(chat_server: RunningServer) -> None:
    """2,000 connections that close at every stage (before hello, mid-handshake, joined,
    mid-frame, by bye, by RST) leave no connection, task or fd behind."""
    member = Collector(await chat_server.client("member"))
    await wait_for(lambda: bool(member.frames))
    tasks_before = len(asyncio.all_tasks())
    fds_before = _open_fds()
    rng = random.Random(7)

    async def one(i: int) -> None:
        reader, writer = await asyncio.open_connection(chat_server.host, chat_server.port)
        stage = i % 6
        try:
            if stage >= 1:
                writer.write(b'{"type":"hello","proto')
            if stage >= 2:
                writer.write(b'col":1,"name":"c%d"}\n' % i)
            if stage == 3:
                writer.write(b'{"type":"say","text":"half')
            if stage == 4:
                writer.write(b'{"type":"bye"}\n')
            if stage == 5:
                writer.write(_line({"type": "say", "text": f"hi {i}"}))
            await writer.drain()
            if stage >= 4 or (stage >= 2 and rng.random() < 0.5):
                # Read until the server has answered (or closed).
                with contextlib.suppress(ConnectionError, TimeoutError):
                    async with asyncio.timeout(TIMEOUT_S):
                        await reader.read(65536)
        except ConnectionError:
            pass
        finally:
            if rng.random() < 0.5:
                writer.transport.abort()
            else:
                writer.close()
                with contextlib.suppress(ConnectionError):
                    await writer.wait_closed()

    for start in range(0, 2000, 100):
        await asyncio.gather(*(one(i) for i in range(start, start + 100)))
    await wait_for(lambda: chat_server.server.connection_count == 1, TIMEOUT_S * 2)
    await wait_for(lambda: len(asyncio.all_tasks()) <= tasks_before, TIMEOUT_S)
    await wait_for(lambda: _open_fds() <= fds_before, TIMEOUT_S)
    assert chat_server.server.hub.members() == ["member"]
    assert not member.closed.is_set()
    await member.stop()
    await wait_for(lambda: chat_server.server.connection_count == 0)
    with pytest.raises(ConnectionClosed):
        await member.conn.recv()
