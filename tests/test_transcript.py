"""The transcript and the console: one inert line per event, rotation, failures that never
stop the chat."""

from __future__ import annotations

import io
import logging
import re
import threading
from pathlib import Path

import pytest
from conftest import TIMEOUT_S, RunningServer, StartServer, expect, wait_for
from rich.console import Console

from chatroom.console import CONSOLE_QUEUE_EVENTS, ConsoleSink, event_text
from chatroom.protocol import Join, Leave, Message
from chatroom.transcript import Transcript, format_event_line

LINE = re.compile(r"^(?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) #(?P<room>\S+) (?P<body>.*)$")

# Everything a terminal (or `tail -f`) must never get raw from a stranger's message.
HOSTILE_TEXT = (
    "line1\nFAKE 2026-01-01T00:00:00.000Z #lobby <admin> forged"
    "\r\x1b[2K\x1b[31mred\x1b[0m"
    "\x1b]8;;https://evil.example/\x07link\x1b]8;;\x07"
    "\x1b]52;c;cm0gLXJmIH4=\x07"
    "\x1b]0;title\x07"
    "\x9b31m\x9d0;t\x9c\x85"
    "\u202eevil\u202c\u2066\u2028\u2029\x00\x07\x08\x7f"
)
FORBIDDEN_RAW = [
    "\x1b",
    "\r",
    "\x07",
    "\x00",
    "\x08",
    "\x7f",
    "\x9b",
    "\x9d",
    "\x9c",
    "\x85",
    "\u202e",
    "\u202c",
    "\u2066",
    "\u2028",
    "\u2029",
]


def _lines(path: Path) -> list[str]:
    data = path.read_bytes().decode("utf-8")
    assert data.endswith("\n")
    # split on "\n" only: splitlines() would also split on characters the file must
    # not hold raw anyway, and we want to see them if they are there.
    return data[:-1].split("\n")


async def _say_and_wait(conn: object, text: str) -> Message:
    await conn.say(text)  # type: ignore[attr-defined]
    return await expect(conn, Message, where=lambda m: m.text == text)  # type: ignore[arg-type]


async def test_one_line_per_event(chat_server: RunningServer) -> None:
    """Each event is one line: UTC ts, room, name, text; in id order; on disk before the
    clients have it."""
    alice = await chat_server.client("alice")
    bob = await chat_server.client("bob")
    said = await _say_and_wait(alice, "hello, room")
    # The sender's copy arrived, so the line is already in the file: no waiting.
    lines = _lines(chat_server.transcript_path)
    assert len(lines) == 3
    parsed = [LINE.match(line) for line in lines]
    assert all(parsed), lines
    assert [m["body"] for m in parsed if m] == [
        "--> alice joined",
        "--> bob joined",
        "<alice> hello, room",
    ]
    assert all(m["room"] == "lobby" for m in parsed if m)
    assert parsed[2]["ts"] == said.ts  # type: ignore[index]
    await bob.close()
    leave = await expect(alice, Leave)
    assert _lines(chat_server.transcript_path)[-1] == f"{leave.ts} #lobby <-- bob left (quit)"
    await alice.close()


async def test_hostile_text_never_reaches_the_file_raw(chat_server: RunningServer) -> None:
    """Newlines, CR, CSI/OSC (8, 52, title) sequences, C1 controls and bidi overrides are
    escaped: the message is one line and nothing can forge another."""
    alice = await chat_server.client("alice")
    await _say_and_wait(alice, HOSTILE_TEXT)
    content = chat_server.transcript_path.read_text("utf-8")
    for char in FORBIDDEN_RAW:
        assert char not in content, f"raw {char!r} in the transcript"
    lines = _lines(chat_server.transcript_path)
    assert len(lines) == 2
    assert lines[1].endswith("<alice> " + format_event_line_text(HOSTILE_TEXT))
    assert "\\nFAKE 2026" in lines[1] and "\\x1b]52;" in lines[1] and "\\u202e" in lines[1]
    await alice.close()


def format_event_line_text(text: str) -> str:
    line = format_event_line(Message(id=1, ts="T", room="lobby", sender="a", text=text))
    return line[len("T #lobby <a> ") : -1]


def test_event_line_formats() -> None:
    """The three event kinds, exactly."""
    ts = "2026-11-24T02:30:01.123Z"
    assert format_event_line(Join(id=1, ts=ts, room="lobby", name="bob")) == (
        f"{ts} #lobby --> bob joined\n"
    )
    assert (
        format_event_line(Leave(id=2, ts=ts, room="lobby", name="bob", reason="slow_consumer"))
        == f"{ts} #lobby <-- bob left (slow_consumer)\n"
    )
    assert (
        format_event_line(Message(id=3, ts=ts, room="lobby", sender="bob", text="a\\b\nc"))
        == f"{ts} #lobby <bob> a\\\\b\\nc\n"
    )


def _message(i: int, text: str = "x" * 50) -> Message:
    return Message(id=i, ts="2026-11-24T02:30:01.123Z", room="lobby", sender="a", text=text)


def test_rotation_keeps_n_backups_of_whole_lines(tmp_path: Path) -> None:
    """Past max_bytes the file rotates to .1, .1 to .2...; only N backups are kept; no
    file exceeds the limit and no line is split across files."""
    path = tmp_path / "t.log"
    line_bytes = len(format_event_line(_message(1)).encode())
    transcript = Transcript(path, max_bytes=10 * line_bytes, backups=2)
    for i in range(1, 61):
        transcript.append([_message(i)])
    transcript.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["t.log", "t.log.1", "t.log.2"]
    for name in files:
        size = (tmp_path / name).stat().st_size
        assert 0 < size <= 10 * line_bytes
        assert size % line_bytes == 0
    assert (tmp_path / "t.log").read_text().count("\n") == 10
    # The newest events are in the live file, the next older ones in .1.
    newest = _lines(path)[-1]
    assert newest == format_event_line(_message(60))[:-1]
    assert _lines(tmp_path / "t.log.1")[-1] == format_event_line(_message(50))[:-1]


def test_rotation_without_backups_starts_over(tmp_path: Path) -> None:
    """backups=0: the file is simply started afresh."""
    path = tmp_path / "t.log"
    line_bytes = len(format_event_line(_message(1)).encode())
    transcript = Transcript(path, max_bytes=3 * line_bytes, backups=0)
    for i in range(1, 8):
        transcript.append([_message(i)])
    transcript.close()
    assert [p.name for p in tmp_path.iterdir()] == ["t.log"]
    assert _lines(path) == [format_event_line(_message(7))[:-1]]


def test_transcript_appends_across_restarts(tmp_path: Path) -> None:
    """A second Transcript on the same path appends and counts the existing size."""
    path = tmp_path / "t.log"
    first = Transcript(path)
    first.append([_message(1)])
    first.close()
    second = Transcript(path)
    second.append([_message(2)])
    second.close()
    assert len(_lines(path)) == 2


def test_path_under_a_regular_file_fails_at_open(tmp_path: Path) -> None:
    """A transcript path that cannot exist (under a regular file) fails loudly at start."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OSError):
        Transcript(blocker / "t.log")


async def test_full_disk_is_reported_and_chat_goes_on(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A transcript on a full disk (/dev/full) logs one error; members still chat."""
    full = Transcript(Path("/dev/full"))
    running = await start_server(flood_rate=0, sinks=[full])
    with caplog.at_level(logging.WARNING):
        alice = await running.client("alice")
        bob = await running.client("bob")
        for n in range(3):
            await _say_and_wait(alice, f"message {n}")
            assert (await expect(bob, Message)).text == f"message {n}"
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "NOT being recorded" in errors[0].getMessage()
    # The other transcript got everything: one failing sink does not starve another.
    assert len(_lines(running.transcript_path)) == 5
    await alice.close()
    await bob.close()
    full.close()


def test_write_failure_then_recovery(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """ENOSPC on write is reported once, never raised; when writes work again the
    transcript says so and goes on."""
    import chatroom.transcript as module

    path = tmp_path / "t.log"
    transcript = Transcript(path)
    real_write = module.os.write

    def full(fd: int, data: bytes) -> int:
        raise OSError(28, "No space left on device")

    with caplog.at_level(logging.WARNING, logger="chatroom.transcript"):
        monkeypatch.setattr(module.os, "write", full)
        transcript.append([_message(1)])
        transcript.append([_message(2)])
        monkeypatch.setattr(module.os, "write", real_write)
        transcript.append([_message(3)])
    transcript.close()
    messages = [r.getMessage() for r in caplog.records]
    assert sum("NOT being recorded" in m for m in messages) == 1
    assert any("written again" in m for m in messages)
    assert _lines(path) == [format_event_line(_message(3))[:-1]]


async def test_transcript_replaced_by_a_directory_mid_run(
    start_server: StartServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Rotation into a path that became a directory fails loudly; the chat goes on."""
    path = tmp_path / "rot" / "t.log"
    transcript = Transcript(path, max_bytes=200, backups=1)
    running = await start_server(flood_rate=0, sinks=[transcript])
    (tmp_path / "rot" / "t.log.1").mkdir()
    (tmp_path / "rot" / "t.log.1" / "occupied").write_text("")
    alice = await running.client("alice")
    with caplog.at_level(logging.ERROR):
        for n in range(6):
            await _say_and_wait(alice, f"padding the transcript past its limit {n}")
    assert any("NOT being recorded" in r.getMessage() for r in caplog.records)
    await wait_for(lambda: len(_lines(running.transcript_path)) == 7)
    await alice.close()
    transcript.close()


# ---------------------------------------------------------------------------- console


def _render(console_width: int = 200) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    console = Console(file=out, record=True, width=console_width, force_terminal=True)
    return console, out


def test_console_shows_hostile_text_inert_and_markup_literal() -> None:
    """The console line has no raw escapes from the message, and markup in a name or
    text is shown literally, never interpreted."""
    console, out = _render()
    sink = ConsoleSink(console)
    sink.append(
        [
            Join(id=1, ts="2026-11-24T02:30:01.123Z", room="lobby", name="[red]mallory[/red]"),
            Message(
                id=2,
                ts="2026-11-24T02:30:02.000Z",
                room="lobby",
                sender="[bold]mallory",
                text=HOSTILE_TEXT + " [link=https://evil.example]click[/link] :smile:",
            ),
            Leave(id=3, ts="2026-11-24T02:30:03.000Z", room="lobby", name="mallory", reason="quit"),
        ]
    )
    sink.close()
    text = console.export_text()
    for char in FORBIDDEN_RAW:
        assert char not in text, f"raw {char!r} on the console"
    assert "[red]mallory[/red]" in text
    assert "[bold]mallory: " in text
    assert "[link=https://evil.example]click[/link] :smile:" in text
    assert "\\x1b]52;" in text and "\\u202e" in text
    assert text.count("\n") == 3  # one line per event
    # The only escape sequences in the terminal output are Rich's own styling (SGR).
    raw = out.getvalue()
    assert "https://evil.example/\x07" not in raw
    assert re.findall(r"\x1b[^\[]", raw) == []
    assert all(seq.endswith("m") for seq in re.findall(r"\x1b\[[0-9;]*[A-Za-z]", raw))


def test_console_event_text_shapes() -> None:
    """event_text: clock, room, who and what."""
    message = Message(id=1, ts="2026-11-24T02:30:01.123Z", room="lobby", sender="bob", text="hi")
    assert event_text(message).plain == "02:30:01 #lobby bob: hi"
    join = Join(id=2, ts="2026-11-24T02:30:01.123Z", room="lobby", name="bob")
    assert event_text(join).plain == "02:30:01 #lobby → bob joined"
    leave = Leave(id=3, ts="2026-11-24T02:30:01.123Z", room="lobby", name="bob", reason="timeout")
    assert event_text(leave).plain == "02:30:01 #lobby ← bob left (timeout)"


class _BlockedFile(io.StringIO):
    """A console file whose writes wait until released, like a terminal paused by Ctrl-S."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def write(self, text: str) -> int:
        self.release.wait(TIMEOUT_S)
        return super().write(text)


def test_a_stuck_console_never_blocks_the_hub() -> None:
    """While the console cannot print, append() still returns at once; events past the
    queue are counted, and the console says how many it skipped once it can print."""
    out = _BlockedFile()
    sink = ConsoleSink(Console(file=out, width=200, force_terminal=False))
    total = CONSOLE_QUEUE_EVENTS + 50
    events = [
        Message(id=n, ts="2026-11-24T02:30:01.123Z", room="lobby", sender="a", text=f"m{n}")
        for n in range(1, total + 1)
    ]
    sink.append(events)  # returns although nothing can be printed yet
    out.release.set()
    sink.close(timeout_s=TIMEOUT_S)
    printed = out.getvalue()
    assert "events not shown" in printed
    shown = printed.count("a: m")
    assert CONSOLE_QUEUE_EVENTS <= shown < total
