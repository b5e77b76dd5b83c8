"""History: the SQLite store, restarts, resume without gaps or duplicates, paging, export."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import TIMEOUT_S, expect
from test_hub import CostlyClock, CostlyOutbox

import chatroom.history as history_module
import chatroom.hub as hub_module
from chatroom.client import ClientConnection
from chatroom.history import (
    DB_NAME,
    HistoryStore,
    Retention,
    parse_retention,
)
from chatroom.hub import Hub
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


def _messages(first_id: int, count: int, text: str = "x" * 200) -> list[Message]:
    return [
        Message(id=first_id + n, ts="2026-11-26T12:00:00.000Z", room="lobby", sender="a", text=text)
        for n in range(count)
    ]


class _GatedWriter:
    """Holds the store's writer thread before each commit until ``gate`` is set."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.gate = threading.Event()
        self.entered = threading.Event()
        store_rows = history_module._Writer._store

        def gated(writer: Any, events: list[Any]) -> None:
            self.entered.set()
            self.gate.wait(TIMEOUT_S * 4)
            store_rows(writer, events)

        monkeypatch.setattr(history_module._Writer, "_store", gated)


def _journal_bytes(data_dir: Path) -> list[int]:
    return [(data_dir / name).stat().st_size for name in history_module.JOURNAL_NAMES]


def test_the_wal_stays_bounded_under_sustained_appends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer checkpoints inside its own commits, where the checkpoint always reaches
    the end, so the WAL is reused instead of growing for as long as the load lasts."""
    pages = 256
    monkeypatch.setattr(history_module, "WAL_AUTOCHECKPOINT_PAGES", pages)
    store = HistoryStore.in_dir(tmp_path)
    wal = tmp_path / (DB_NAME + "-wal")
    page_size = store._db.execute("PRAGMA page_size").fetchone()[0]
    next_id = 1
    peak = 0
    # 20,000 events of 200 characters: over 5 MB, twenty times the WAL's bound.
    for _ in range(400):
        store.append(_messages(next_id, 50))
        next_id += 50
        store.settle()
        peak = max(peak, wal.stat().st_size)
    assert peak <= 2 * pages * (page_size + 24)
    assert len(list(store.export())) == next_id - 1
    store.close()


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="SCHED_IDLE is Linux's")
def test_the_writer_runs_at_idle_priority(tmp_path: Path) -> None:
    """The writer thread yields the core to the loop: it runs under SCHED_IDLE."""
    store = HistoryStore.in_dir(tmp_path)
    store.append(_messages(1, 10))
    store.settle()
    writer = store._writer
    assert writer is not None
    native_id = writer._thread.native_id
    assert native_id is not None
    assert os.sched_getscheduler(native_id) == os.SCHED_IDLE
    store.close()


def test_queries_see_events_the_writer_has_not_committed_yet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A query waits for the writer, so it never misses an event appended before it."""
    gated = _GatedWriter(monkeypatch)
    store = HistoryStore.in_dir(tmp_path)
    store.append(_messages(1, 5, text="early"))
    assert gated.entered.wait(TIMEOUT_S)
    threading.Timer(0.05, gated.gate.set).start()
    assert [e.id for e in store.recent("lobby", 10)] == [1, 2, 3, 4, 5]
    assert store.last_id() == 5
    store.close()


def test_a_store_that_died_before_its_writer_caught_up_replays_its_journal(
    tmp_path: Path,
) -> None:
    """A server killed with events still on their way to SQLite loses none of them:
    they are in the journal, which the next start replays, then empties."""
    script = f"""
import os, sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from pathlib import Path
import chatroom.history as h
from test_history import _messages
h._Writer._store = lambda writer, events: None  # a writer that never gets to commit
store = h.HistoryStore.in_dir(Path({str(tmp_path)!r}))
for first in range(1, 301, 50):
    store.append(_messages(first, 50))
os._exit(0)  # no close(): as abrupt as a SIGKILL for what is on disk
"""
    completed = subprocess.run([sys.executable, "-c", script], timeout=TIMEOUT_S * 4, check=False)
    assert completed.returncode == 0
    assert sum(_journal_bytes(tmp_path)) > 0
    # A reader beside the (dead) server sees the events, and leaves the journal alone.
    reader = HistoryStore.in_dir(tmp_path, writer=False)
    assert [e.id for e in reader.export()] == list(range(1, 301))
    reader.close()
    assert sum(_journal_bytes(tmp_path)) > 0
    store = HistoryStore.in_dir(tmp_path)
    assert store.last_id() == 300
    assert [e.id for e in store.export()] == list(range(1, 301))
    assert _journal_bytes(tmp_path) == [0, 0]
    store.close()


def test_journal_files_take_turns_and_stay_small(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the writer has committed a journal file's rows, that file is emptied and
    reused: the journal stays about JOURNAL_SWITCH_BYTES however much is written."""
    switch = 8192
    monkeypatch.setattr(history_module, "JOURNAL_SWITCH_BYTES", switch)
    store = HistoryStore.in_dir(tmp_path)
    batch_bytes = 0
    for first in range(1, 2001, 20):
        batch = _messages(first, 20)
        batch_bytes = max(batch_bytes, sum(len(json.dumps(e.to_wire())) + 1 for e in batch))
        store.append(batch)
        store.settle()
        assert max(_journal_bytes(tmp_path)) <= switch + batch_bytes
    assert [e.id for e in store.export()] == list(range(1, 2001))
    store.close()
    # Everything was committed, so a clean stop leaves no journal behind.
    assert not any((tmp_path / name).exists() for name in history_module.JOURNAL_NAMES)


def test_a_writer_far_behind_holds_the_appender_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past PENDING_ROWS_MAX rows waiting for SQLite, append waits for the writer
    instead of letting the backlog (and the memory it holds) grow without bound."""
    monkeypatch.setattr(history_module, "PENDING_ROWS_MAX", 100)
    gated = _GatedWriter(monkeypatch)
    store = HistoryStore.in_dir(tmp_path)
    done = threading.Event()

    def append_all() -> None:
        for first in range(1, 301, 50):
            store.append(_messages(first, 50))
        done.set()

    appender = threading.Thread(target=append_all)
    appender.start()
    assert gated.entered.wait(TIMEOUT_S)
    # 300 rows would be appended in milliseconds; held back, none of them can finish.
    assert not done.wait(0.3)
    gated.gate.set()
    assert done.wait(TIMEOUT_S)
    appender.join(TIMEOUT_S)
    assert [e.id for e in store.export()] == list(range(1, 301))
    store.close()


async def test_the_flush_waits_longer_while_the_writer_is_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer runs while the loop is idle, which under load is mostly the wait
    between flushes: FLUSH_STRETCH_ROWS rows behind, that wait is twice as long."""
    gated = _GatedWriter(monkeypatch)
    waits, stores = [], []
    for stretch_rows in (10**9, 3):
        monkeypatch.setattr(hub_module, "FLUSH_STRETCH_ROWS", stretch_rows)
        store = HistoryStore.in_dir(tmp_path / str(stretch_rows))
        stores.append(store)
        clock = CostlyClock(per_send=0.002)
        hub = Hub(server_name="chatroom/test", clock=clock, store=store)
        alice, *_ = [hub.join(name, CostlyOutbox(clock)) for name in "abc"]
        hub.flush()  # the three joins: the writer holds them, three rows behind
        assert gated.entered.wait(TIMEOUT_S)
        assert store.backlog == 3
        hub.say(alice, "paced")
        timer = hub._flush_handle
        assert isinstance(timer, asyncio.TimerHandle)  # not flushed at once: it waits
        timer.cancel()
        waits.append(hub._next_flush_at - clock.now)  # the hub's clock does not move by itself
        gated.entered.clear()
    gated.gate.set()
    for store in stores:
        store.close()
    unstretched, stretched = waits
    assert unstretched > 0
    assert stretched == pytest.approx(2 * unstretched)


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
