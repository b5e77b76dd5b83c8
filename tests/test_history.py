"""History: the SQLite store, restarts, resume without gaps or duplicates, paging, export."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import TIMEOUT_S, expect

import chatroom.history as history_module
from chatroom.client import ClientConnection
from chatroom.history import (
    CHECKPOINT_EVERY_EVENTS,
    DB_NAME,
    HistoryStore,
    Retention,
    parse_retention,
)
from chatroom.protocol import (
    Error,
    Hello,
    History,
    HistoryRequest,
    Join,
    Leave,
    Message,
    Say,
    Welcome,
    format_ts,
)
from chatroom.server import ChatServer, ServerConfig

StartStored = Callable[..., Awaitable[ChatServer]]


@pytest.fixture
async def stored_server(tmp_path: Path) -> AsyncIterator[StartStored]:
    """Start servers that keep history in ``tmp_path``; all are closed at the end."""
    running: list[tuple[ChatServer, HistoryStore]] = []

    async def start(port: int = 0, **overrides: Any) -> ChatServer:
        store = HistoryStore.in_dir(tmp_path, retention=overrides.pop("retention", None))
        config = ServerConfig(
            host="127.0.0.1", port=port, flood_rate=0, history_store=store, **overrides
        )
        server = ChatServer(config)
        await server.start()
        running.append((server, store))
        return server

    yield start
    for server, store in running:
        await server.close()
        store.close()


async def join(server: ChatServer, name: str, **hello: Any) -> tuple[ClientConnection, Welcome]:
    host, port = server.addresses[0]
    conn = await ClientConnection.connect(host, port)
    await conn.send(Hello(name=name, **hello))
    welcome = await expect(conn, Welcome)
    return conn, welcome


async def stop(server: ChatServer) -> None:
    await server.close()
    assert server.config.history_store is not None
    server.config.history_store.close()


async def test_history_and_ids_survive_a_restart(stored_server: StartStored) -> None:
    """After a restart, a newcomer's welcome holds the earlier messages and ids go on
    from where they stopped."""
    first = await stored_server()
    alice, _ = await join(first, "alice")
    await alice.say("before the restart")
    said = await expect(alice, Message)
    await alice.close()
    await stop(first)

    second = await stored_server()
    bob, welcome = await join(second, "bob")
    texts = [event.text for event in welcome.history if isinstance(event, Message)]
    assert texts == ["before the restart"]
    own_join = await expect(bob, Join)
    assert own_join.id > said.id
    assert own_join.id > max(event.id for event in welcome.history)
    await bob.close()


async def test_resume_replays_exactly_the_missed_events_while_others_talk(
    stored_server: StartStored,
) -> None:
    """A client that lost its connection resumes from its last id: it receives every
    event it missed, in order, once, even while another member keeps talking during the
    replay; its ids then equal the server's sequence with no gap and no duplicate."""
    server = await stored_server()
    talker, _ = await join(server, "talker")
    listener, _ = await join(server, "listener")
    seen: list[int] = [(await expect(listener, Join)).id]

    await talker.say("one")
    seen.append((await expect(listener, Message)).id)
    # Cut the listener's connection without a bye, as a network drop would.
    await listener.close(send_bye=False)

    for number in range(20):
        await talker.say(f"while away {number}")

    resumed, welcome = await join(server, "listener", resume_after=seen[-1])
    assert welcome.resumed is True
    assert welcome.gap is False
    assert welcome.history == ()
    # Keep talking during the replay: these must arrive after it, once each.
    for number in range(20):
        await talker.say(f"during replay {number}")
    await talker.say("last")

    received: list[Any] = []
    async with asyncio.timeout(TIMEOUT_S):
        while not (received and isinstance(received[-1], Message) and received[-1].text == "last"):
            received.append(await resumed.recv())
    ids = seen + [frame.id for frame in received]
    server_ids = [event.id for event in server.config.history_store.export()]  # type: ignore[union-attr]
    first = server_ids.index(seen[0])
    assert ids == server_ids[first : first + len(ids)]
    assert len(ids) == len(set(ids))
    texts = [frame.text for frame in received if isinstance(frame, Message)]
    assert texts[:20] == [f"while away {n}" for n in range(20)]
    assert texts[20:] == [f"during replay {n}" for n in range(20)] + ["last"]
    assert any(isinstance(f, Leave) and f.name == "listener" for f in received[:21])
    await talker.close()
    await resumed.close()


async def test_resume_across_a_server_restart(stored_server: StartStored) -> None:
    """Resuming after the server restarted replays what was said before it went down and
    after it came back, with ids continuing the same sequence."""
    first = await stored_server()
    port = first.addresses[0][1]
    alice, _ = await join(first, "alice")
    last_seen = (await expect(alice, Join)).id
    bob, _ = await join(first, "bob")
    await bob.say("said before the shutdown")
    await expect(bob, Message)
    await bob.close()
    await stop(first)
    await alice.close(send_bye=False)

    second = await stored_server(port=port)
    bob2, _ = await join(second, "bob")
    await bob2.say("said after the restart")
    await expect(bob2, Message)
    alice2, welcome = await join(second, "alice", resume_after=last_seen)
    assert welcome.resumed and not welcome.gap
    frames: list[Any] = []
    async with asyncio.timeout(TIMEOUT_S):
        while not (frames and isinstance(frames[-1], Join) and frames[-1].name == "alice"):
            frames.append(await alice2.recv())
    texts = [f.text for f in frames if isinstance(f, Message)]
    assert texts == ["said before the shutdown", "said after the restart"]
    ids = [f.id for f in frames]
    assert ids == sorted(set(ids))
    await alice2.close()
    await bob2.close()


async def test_history_pages_back_to_the_beginning(stored_server: StartStored) -> None:
    """history requests page backwards through the room, oldest first in each page, with
    ``more`` false once the first event is reached."""
    server = await stored_server()
    alice, _ = await join(server, "alice")
    for number in range(25):
        await alice.say(f"m{number}")
    last = await expect(alice, Message, where=lambda m: m.text == "m24")

    collected: list[str] = []
    before: int | None = last.id + 1
    more = True
    while more:
        await alice.send(HistoryRequest(room="lobby", before=before, limit=10))
        page = await expect(alice, History)
        assert [e.id for e in page.events] == sorted(e.id for e in page.events)
        collected[:0] = [e.text for e in page.events if isinstance(e, Message)]
        more = page.more
        if page.events:
            before = page.events[0].id
    assert collected == [f"m{n}" for n in range(25)]
    await alice.close()


async def test_history_request_before_joining_is_refused(stored_server: StartStored) -> None:
    """A history request before hello gets not_joined."""
    server = await stored_server()
    host, port = server.addresses[0]
    conn = await ClientConnection.connect(host, port)
    await conn.send(HistoryRequest())
    error = await expect(conn, Error)
    assert error.code == "not_joined"
    await conn.close()


async def test_nonce_is_echoed_and_limited(stored_server: StartStored) -> None:
    """A say nonce comes back in the message event; an over-long one is a bad request."""
    server = await stored_server()
    alice, _ = await join(server, "alice")
    await alice.send(Say(text="hi", nonce="n-1"))
    message = await expect(alice, Message)
    assert (message.text, message.nonce) == ("hi", "n-1")
    await alice.send(Say(text="x", nonce="n" * 65))
    error = await expect(alice, Error)
    assert error.code == "bad_request"
    await alice.close()


async def test_retention_prunes_and_resume_reports_the_gap(stored_server: StartStored) -> None:
    """With a count retention, old events are deleted in steps and a resume from before
    them says ``gap``, while the ids never go back."""
    server = await stored_server(retention=Retention(max_events=10))
    store = server.config.history_store
    assert store is not None
    alice, _ = await join(server, "alice")
    first_id = (await expect(alice, Join)).id
    for number in range(30):
        await alice.say(f"m{number}")
    await expect(alice, Message, where=lambda m: m.text == "m29")
    store.prune_step()
    kept = list(store.export())
    assert len(kept) == 10
    assert store.pruned_through() >= first_id
    bob, welcome = await join(server, "bob", resume_after=first_id)
    assert welcome.resumed and welcome.gap
    await alice.close()
    await bob.close()


def test_age_retention_deletes_only_old_events(tmp_path: Path) -> None:
    """An age retention deletes events older than the age and keeps the rest."""
    store = HistoryStore.in_dir(tmp_path, retention=Retention(max_age=timedelta(days=1)))
    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    old = Message(id=1, ts=format_ts(now - timedelta(days=2)), room="lobby", sender="a", text="x")
    new = Message(id=2, ts=format_ts(now - timedelta(hours=1)), room="lobby", sender="a", text="y")
    store.append([old, new])
    assert store.prune_step(now=now) == 1
    assert [e.id for e in store.export()] == [2]
    assert store.last_id() == 2
    store.close()


def test_checkpoints_keep_the_wal_small_without_the_writer_running_them(tmp_path: Path) -> None:
    """The writer never checkpoints (that stalls a flush); the store's own thread does,
    so the WAL is reused instead of growing with every event ever written."""
    store = HistoryStore.in_dir(tmp_path)
    # Only a backstop far above what the thread lets the WAL reach.
    assert (
        store._db.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        == history_module.WAL_AUTOCHECKPOINT_PAGES
    )
    checkpointer = store._checkpointer
    assert checkpointer is not None
    wal = tmp_path / (DB_NAME + "-wal")
    text = "x" * 200
    next_id = 1
    sizes = []
    for _ in range(8):
        checkpointer.done.clear()
        for _ in range(CHECKPOINT_EVERY_EVENTS // 50):
            batch = [
                Message(
                    id=next_id + n,
                    ts="2026-11-26T12:00:00.000Z",
                    room="lobby",
                    sender="a",
                    text=text,
                )
                for n in range(50)
            ]
            next_id += 50
            store.append(batch)
        assert checkpointer.done.wait(TIMEOUT_S)
        sizes.append(wal.stat().st_size)
    # Without checkpoints the WAL would hold all 16,000 events (over 4 MB) by now.
    assert sizes[-1] <= 2 * sizes[0]
    assert store.last_id() == next_id - 1
    assert len(list(store.export())) == next_id - 1
    store.close()


def _append_rounds(store: HistoryStore, rounds: int, first_id: int) -> int:
    """Append ``rounds`` x CHECKPOINT_EVERY_EVENTS long messages; return the next id."""
    next_id = first_id
    for _ in range(rounds * history_module.CHECKPOINT_EVERY_EVENTS // 50):
        store.append(
            [
                Message(id=next_id + n, ts="2026-11-26T12:00:00.000Z", room="lobby", sender="a",
                        text="x" * 200)
                for n in range(50)
            ]
        )  # fmt: skip
        next_id += 50
    return next_id


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="SCHED_IDLE is Linux's")
def test_checkpoints_run_at_idle_priority(tmp_path: Path) -> None:
    """The checkpoint thread yields the core to the loop: it runs under SCHED_IDLE."""
    store = HistoryStore.in_dir(tmp_path)
    checkpointer = store._checkpointer
    assert checkpointer is not None
    checkpointer.done.clear()
    _append_rounds(store, 1, 1)
    assert checkpointer.done.wait(TIMEOUT_S)
    native_id = checkpointer._thread.native_id
    assert native_id is not None
    assert os.sched_getscheduler(native_id) == os.SCHED_IDLE
    store.close()


def test_a_starved_checkpoint_thread_leaves_the_wal_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the thread's checkpoints never catch up (a core never free, a load that
    never pauses), the writer's own checkpoint past WAL_AUTOCHECKPOINT_PAGES keeps the
    WAL bounded instead of growing for as long as the load lasts."""
    pages = 256
    monkeypatch.setattr(history_module, "WAL_AUTOCHECKPOINT_PAGES", pages)
    # A thread that never gets to run: it checkpoints nothing.
    monkeypatch.setattr(history_module._Checkpointer, "_run", lambda self: None)
    store = HistoryStore.in_dir(tmp_path)
    checkpointer = store._checkpointer
    assert checkpointer is not None
    checkpointer.done.clear()
    wal = tmp_path / (DB_NAME + "-wal")
    page_size = store._db.execute("PRAGMA page_size").fetchone()[0]
    next_id = _append_rounds(store, 10, 1)
    assert not checkpointer.done.is_set()  # the writer did it, not the thread
    # Ten rounds are 20,000 events, over 5 MB; the WAL holds about the backstop's pages.
    assert wal.stat().st_size <= 2 * pages * (page_size + 24)
    assert len(list(store.export())) == next_id - 1
    store.close()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("forever", Retention()),
        ("100000", Retention(max_events=100000)),
        ("30d", Retention(max_age=timedelta(days=30))),
        ("12h,500", Retention(max_events=500, max_age=timedelta(hours=12))),
    ],
)
def test_parse_retention(text: str, expected: Retention) -> None:
    """Retention specs parse to the counts and ages they say."""
    assert parse_retention(text) == expected


def test_parse_retention_rejects_nonsense() -> None:
    """A retention spec that is neither a count nor an age is refused with a reason."""
    with pytest.raises(ValueError, match="30x"):
        parse_retention("30x")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _server_command(port: int, data_dir: Path, transcript: Path) -> list[str]:
    return [
        sys.executable,
        "-c",
        "import sys; from chatroom.cli import server_main; sys.exit(server_main())",
        "--bind",
        f"127.0.0.1:{port}",
        "--data-dir",
        str(data_dir),
        "--transcript",
        str(transcript),
        "--quiet",
        "--flood-rate",
        "0",
    ]


async def _wait_until_listening(process: asyncio.subprocess.Process) -> None:
    """Read the server's banner until it says it is listening."""
    assert process.stdout is not None
    async with asyncio.timeout(TIMEOUT_S * 2):
        while b"listening" not in await process.stdout.readline():
            pass


async def test_sigkill_loses_no_received_event(tmp_path: Path) -> None:
    """SIGKILL the server mid-stream: every event any client received is in the store,
    and the export command prints it."""
    port = _free_port()
    data_dir = tmp_path / "data"
    command = _server_command(port, data_dir, tmp_path / "t.log")
    process = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE)
    try:
        await _wait_until_listening(process)
        sender = await ClientConnection.connect("127.0.0.1", port)
        await sender.hello("sender")
        receiver = await ClientConnection.connect("127.0.0.1", port)
        await receiver.hello("receiver")
        received: list[int] = []

        async def pump() -> None:
            for number in range(100_000):
                await sender.say(f"message {number}")
                if number % 50 == 0:
                    await asyncio.sleep(0)

        pumping = asyncio.create_task(pump())
        async with asyncio.timeout(TIMEOUT_S):
            while len(received) < 300:
                frame = await receiver.recv()
                if isinstance(frame, Message):
                    received.append(frame.id)
        os.kill(process.pid, signal.SIGKILL)
        async with asyncio.timeout(TIMEOUT_S):
            await process.wait()
        async with asyncio.timeout(TIMEOUT_S):
            async for frame in receiver.events():
                if isinstance(frame, Message):
                    received.append(frame.id)
        pumping.cancel()
        await asyncio.gather(pumping, return_exceptions=True)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    export = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import sys; from chatroom.cli import server_main; sys.exit(server_main())",
        "export",
        "--data-dir",
        str(data_dir),
        "--format",
        "jsonl",
        stdout=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(TIMEOUT_S * 4):
        stdout, _ = await export.communicate()
    assert export.returncode == 0
    stored = {json.loads(line)["id"] for line in stdout.splitlines()}
    assert received
    assert set(received) <= stored
    transcript_lines = (tmp_path / "t.log").read_text().splitlines()
    assert len([line for line in transcript_lines if "<sender>" in line]) >= len(received)
