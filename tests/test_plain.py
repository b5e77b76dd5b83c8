"""The --plain line mode against a real server: stdin lines in, event lines out."""

from __future__ import annotations

import asyncio
import io
import os
import pathlib
import socket
import ssl
import sys
from collections.abc import AsyncIterator, Iterable

import pytest
from conftest import TIMEOUT_S, RunningServer, StartServer, expect

from chatroom import protocol
from chatroom.plain import format_event, run_plain
from chatroom.tui_client import main


class WatchedOutput(io.StringIO):
    """A text stream that wakes waiters when a given text has been written."""

    def __init__(self) -> None:
        super().__init__()
        self._waiters: list[tuple[str, asyncio.Event]] = []

    def write(self, text: str) -> int:
        written = super().write(text)
        for needle, event in self._waiters:
            if needle in self.getvalue():
                event.set()
        return written

    async def wait_for(self, needle: str) -> None:
        event = asyncio.Event()
        self._waiters.append((needle, event))
        if needle in self.getvalue():
            event.set()
        async with asyncio.timeout(TIMEOUT_S):
            await event.wait()


async def lines_of(items: Iterable[str]) -> AsyncIterator[str]:
    for item in items:
        yield item


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def received(conn: object, count: int, sender: str) -> list[str]:
    """The texts of the next ``count`` messages from ``sender``."""
    texts = []
    for _ in range(count):
        frame = await expect(conn, protocol.Message, where=lambda m: m.sender == sender)  # type: ignore[arg-type]
        texts.append(frame.text)
    return texts


async def test_lines_are_said_and_blank_ones_skipped(chat_server: RunningServer) -> None:
    """Each non-blank input line reaches the room, in order; the exit status is 0."""
    bob = await chat_server.client("bob")
    out, err = io.StringIO(), io.StringIO()
    status = await run_plain(
        chat_server.host,
        chat_server.port,
        "bot",
        lines=lines_of(["a\n", "\n", "   \n", "b\n"]),
        out=out,
        err=err,
    )
    assert status == 0, err.getvalue()
    assert await received(bob, 2, "bot") == ["a", "b"]
    left = await expect(bob, protocol.Leave, where=lambda f: f.name == "bot")
    assert left.reason == "quit"
    assert "<bot> a" in out.getvalue()
    await bob.close()


async def test_more_lines_than_the_burst_all_arrive(start_server: StartServer) -> None:
    """With the default flood limits (burst 10, then 5/s), 25 lines all arrive in order."""
    running = await start_server()
    bob = await running.client("bob")
    lines = [f"line {number}\n" for number in range(25)]
    err = io.StringIO()
    status = await run_plain(
        running.host,
        running.port,
        "bot",
        lines=lines_of(lines),
        out=io.StringIO(),
        err=err,
    )
    assert status == 0, err.getvalue()
    got = []
    async with asyncio.timeout(TIMEOUT_S):
        got = await received(bob, 25, "bot")
    assert got == [line.strip() for line in lines]
    await bob.close()


async def test_events_are_printed_as_inert_lines(chat_server: RunningServer) -> None:
    """Messages, joins and leaves print as plain lines; escapes and markup stay literal."""
    out = WatchedOutput()
    done = asyncio.Event()

    async def input_until_done() -> AsyncIterator[str]:
        await done.wait()
        yield "bye now"

    client = asyncio.create_task(
        run_plain(
            chat_server.host,
            chat_server.port,
            "bot",
            lines=input_until_done(),
            out=out,
            err=io.StringIO(),
        )
    )
    await out.wait_for("bot joined")
    bob = await chat_server.client("bob")
    await bob.say("\x1b[31mred\x1b[0m [bold]x[/bold]\nsecond line")
    await out.wait_for("<bob>")
    await bob.close()
    await out.wait_for("<-- bob left (quit)")
    done.set()
    async with asyncio.timeout(TIMEOUT_S):
        assert await client == 0
    text = out.getvalue()
    assert "\x1b" not in text
    assert "<bob> \\x1b[31mred\\x1b[0m [bold]x[/bold]\\nsecond line" in text
    assert "--> bob joined" in text
    lines = text.splitlines()
    assert all(line[:2].isdigit() and line[2] == ":" for line in lines)


async def test_unreachable_server_is_one_line_and_status_1() -> None:
    """No server: one line on stderr, exit status 1."""
    err = io.StringIO()
    status = await run_plain(
        "127.0.0.1", free_port(), "bot", lines=lines_of([]), out=io.StringIO(), err=err
    )
    assert status == 1
    assert err.getvalue().count("\n") == 1
    assert "cannot connect" in err.getvalue()


async def test_taken_name_fails_with_the_reason(chat_server: RunningServer) -> None:
    """A refused name is one line on stderr and status 1."""
    bob = await chat_server.client("bob")
    err = io.StringIO()
    status = await run_plain(
        chat_server.host, chat_server.port, "BOB", lines=lines_of(["x"]), out=io.StringIO(), err=err
    )
    assert status == 1
    assert "taken" in err.getvalue() and err.getvalue().count("\n") == 1
    await bob.close()


async def test_too_long_line_is_reported_and_the_rest_delivered(
    start_server: StartServer,
) -> None:
    """A line the server refuses is reported on stderr; the others arrive; status 1."""
    running = await start_server(flood_rate=0, max_text_chars=5)
    bob = await running.client("bob")
    err = io.StringIO()
    status = await run_plain(
        running.host,
        running.port,
        "bot",
        lines=lines_of(["ok", "much too long", "fine"]),
        out=io.StringIO(),
        err=err,
    )
    assert status == 1
    assert "not sent" in err.getvalue()
    assert await received(bob, 2, "bot") == ["ok", "fine"]
    await bob.close()


async def test_piped_stdin_through_the_command(chat_server: RunningServer) -> None:
    """`printf 'a\\nb\\n' | python -m chatroom.tui_client HOST:PORT --name bot --plain`
    delivers both lines, says bye, and exits 0."""
    bob = await chat_server.client("bob")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "chatroom.tui_client",
        f"127.0.0.1:{chat_server.port}",
        "--name",
        "bot",
        "--plain",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    async with asyncio.timeout(TIMEOUT_S * 2):
        stdout, stderr = await process.communicate(b"a\nb\n")
    assert process.returncode == 0, stderr.decode()
    assert await received(bob, 2, "bot") == ["a", "b"]
    left = await expect(bob, protocol.Leave, where=lambda f: f.name == "bot")
    assert left.reason == "quit"
    assert b"<bot> a" in stdout and b"<bot> b" in stdout
    await bob.close()


async def test_command_prints_escape_sequences_inertly(chat_server: RunningServer) -> None:
    """Through the real command, a stranger's escape sequence never reaches stdout raw."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "chatroom.tui_client",
        f"127.0.0.1:{chat_server.port}",
        "--name",
        "bot",
        "--plain",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None and process.stdin is not None
    seen = b""
    async with asyncio.timeout(TIMEOUT_S * 2):
        while b"bot joined" not in seen:
            seen += await process.stdout.readline()
        bob = await chat_server.client("bob")
        await bob.say("\x1b]0;pwned\x07\x1b[2J hi")
        while b"<bob>" not in seen:
            seen += await process.stdout.readline()
        process.stdin.close()
        rest, _ = await process.communicate()
    seen += rest
    assert process.returncode == 0
    assert b"\x1b" not in seen and b"\x07" not in seen
    assert b"<bob> \\x1b]0;pwned\\x07\\x1b[2J hi" in seen
    await bob.close()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["127.0.0.1:5000", "--plain"], "--plain needs --name"),
        (["127.0.0.1:port", "--name", "x"], "the port must be a number"),
        (["[::1:5000", "--name", "x"], "missing ']'"),
        (["127.0.0.1:0", "--name", "x"], "the port must be a number"),
        (["127.0.0.1:5000", "--name", "  "], "--name must not be empty"),
        (["127.0.0.1:5000,127.0.0.1:port", "--name", "x"], "'127.0.0.1:port': the port"),
        (["127.0.0.1:5000,,[::1]:5000", "--name", "x"], "an empty address (address 2 of 3)"),
        (["[::1]:5000,127.0.0.1:0", "--name", "x"], "'127.0.0.1:0': the port must be"),
    ],
)
def test_bad_arguments_are_one_line_and_status_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bad addresses and option mistakes: one line on stderr, status 2, nothing started."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_event_lines() -> None:
    """Each kind of event has its one-line form."""
    ts = "2026-11-24T02:30:01.123Z"
    assert format_event(protocol.Message(1, ts, "lobby", "alice", "hi")).endswith(" <alice> hi")
    assert format_event(protocol.Join(2, ts, "lobby", "bob")).endswith(" --> bob joined")
    assert format_event(protocol.Leave(3, ts, "lobby", "bob", "quit")).endswith(
        " <-- bob left (quit)"
    )
    assert format_event(protocol.Message(4, ts, "lobby", "a\x1bb", "x\ny")).endswith(
        " <a\\x1bb> x\\ny"
    )


async def _run_command(*argv: str, stdin: bytes = b"") -> tuple[int, bytes, bytes]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "chatroom.tui_client",
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(TIMEOUT_S * 2):
        stdout, stderr = await process.communicate(stdin)
    assert process.returncode is not None
    return process.returncode, stdout, stderr


async def test_tls_options_reach_a_tls_server(
    start_server: StartServer, tmp_path: pathlib.Path
) -> None:
    """--ca trusts a private CA; without it the certificate is refused in one line;
    --insecure skips the check."""
    import trustme

    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    running = await start_server(flood_rate=0, ssl_context=server_context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    where = f"127.0.0.1:{running.port}"

    status, stdout, stderr = await _run_command(
        where, "--name", "bot", "--plain", "--ca", str(ca_file), stdin=b"over tls\n"
    )
    assert status == 0, stderr.decode()
    assert b"<bot> over tls" in stdout

    status, _, stderr = await _run_command(where, "--name", "bot", "--plain", "--tls")
    assert status == 1
    assert b"certificate" in stderr and stderr.count(b"\n") == 1

    status, stdout, stderr = await _run_command(
        where, "--name", "bot", "--plain", "--insecure", stdin=b"unchecked\n"
    )
    assert status == 0, stderr.decode()
    assert b"<bot> unchecked" in stdout


def test_moderation_reads_as_lines() -> None:
    """A kick says who and why; a mod event is a sentence; a server-wide one is marked
    as the server's in the transcript; all inert."""
    from chatroom.transcript import format_event_line

    kicked = protocol.Leave(
        id=1,
        ts="2026-11-26T10:00:00.000Z",
        room="dev",
        name="bob",
        reason="kicked",
        by="alice",
        text="spam\x1b",
    )
    assert format_event(kicked).endswith("<-- bob was kicked by alice: spam\\x1b")
    ban = protocol.Mod(
        id=2,
        ts="2026-11-26T10:00:00.000Z",
        room="",
        by="root",
        action="ban",
        target="bob",
        until="2026-01-01",
    )
    assert format_event(ban).endswith("--- root ban bob until 2026-01-01")
    assert "(server) -!- root ban bob until 2026-01-01" in format_event_line(ban)


async def test_first_address_refused_the_second_is_joined(chat_server: RunningServer) -> None:
    """DEAD,LIVE: one line says the first refused and which is tried next; the lines
    reach the room through the second; the exit status is 0."""
    dead = free_port()
    bob = await chat_server.client("bob")
    err = io.StringIO()
    status = await run_plain(
        "127.0.0.1",
        dead,
        "bot",
        lines=lines_of(["via the second"]),
        out=io.StringIO(),
        err=err,
        more_addresses=[("127.0.0.1", chat_server.port)],
    )
    assert status == 0, err.getvalue()
    assert await received(bob, 1, "bot") == ["via the second"]
    assert err.getvalue().splitlines() == [
        f"chatroom-tui: cannot connect: nothing is listening at 127.0.0.1:{dead} "
        f"(is the server running, and is the port right?); trying 127.0.0.1:{chat_server.port}…"
    ]
    await bob.close()


async def test_no_address_answers_each_is_said_and_status_1() -> None:
    """Every server refused: one line each, in the order given, and status 1."""
    ports = [free_port(), free_port()]
    err = io.StringIO()
    status = await run_plain(
        "127.0.0.1",
        ports[0],
        "bot",
        lines=lines_of(["x"]),
        out=io.StringIO(),
        err=err,
        more_addresses=[("127.0.0.1", ports[1])],
    )
    assert status == 1
    lines = err.getvalue().splitlines()
    assert len(lines) == 2
    assert f"127.0.0.1:{ports[0]}" in lines[0] and f"trying 127.0.0.1:{ports[1]}" in lines[0]
    assert f"127.0.0.1:{ports[1]}" in lines[1] and "trying" not in lines[1]


async def test_a_refused_name_does_not_move_on(chat_server: RunningServer) -> None:
    """A server that answers with a refusal speaks for the cluster: no other is tried."""
    bob = await chat_server.client("bob")
    err = io.StringIO()
    status = await run_plain(
        chat_server.host,
        chat_server.port,
        "BOB",
        lines=lines_of(["x"]),
        out=io.StringIO(),
        err=err,
        more_addresses=[("127.0.0.1", free_port())],
    )
    assert status == 1
    assert "taken" in err.getvalue() and err.getvalue().count("\n") == 1
    await bob.close()


async def test_address_list_through_the_command(chat_server: RunningServer) -> None:
    """`chatroom-tui DEAD,LIVE --plain` joins the live server and delivers the line."""
    bob = await chat_server.client("bob")
    status, stdout, stderr = await _run_command(
        f"127.0.0.1:{free_port()},127.0.0.1:{chat_server.port}",
        "--name",
        "bot",
        "--plain",
        stdin=b"through the list\n",
    )
    assert status == 0, stderr.decode()
    assert await received(bob, 1, "bot") == ["through the list"]
    assert b"<bot> through the list" in stdout
    assert f"trying 127.0.0.1:{chat_server.port}".encode() in stderr
    await bob.close()
