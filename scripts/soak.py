#!/usr/bin/env python3
"""Soak test: normal clients and hostile ones against one chatroom-server, on loopback.

Starts ``chatroom-server`` as a subprocess on 127.0.0.1 (a free port, a temporary
transcript and data directory), then for ``--seconds`` runs together:

- normal members chatting at a steady pace, each checking it receives every message of
  every other normal member (it must: 100%);
- hostile clients: random garbage, malformed frames, over-long lines, floods past the
  rate limit, members that never read, members that never answer pings, half-open
  handshakes, and connect/disconnect churn at every stage.

Then it stops the hostile load, waits for the normal members to receive everything,
stops the server with SIGTERM and prints what was thrown, what survived, the server's
peak RSS and fd count, and any errors. Everything is bounded in time and stays on
127.0.0.1. Exit status 0 when every normal message was delivered and nothing failed.

    python scripts/soak.py --seconds 60
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import re
import signal
import socket
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from chatroom.client import ClientConnection, ConnectionClosed, ServerError
from chatroom.protocol import Message

HOST = "127.0.0.1"
SERVER = str(Path(sys.executable).parent / "chatroom-server")
# Server limits for the soak: tight enough that every defence fires within seconds
# (a non-reader is dropped after a few MB, a silent peer after 5 s, a half-open
# handshake after 2 s), loose enough that the normal members never trip them.
SERVER_ARGS = [
    "--flood-rate",
    "40",
    "--flood-burst",
    "80",
    "--sendq",
    str(256 * 1024),
    "--handshake-timeout",
    "2",
    "--ping-interval",
    "3",
    "--ping-timeout",
    "2",
]
# Normal members stay well under the flood rate above.
NORMAL_RATE_PER_S = 15.0
DRAIN_TIMEOUT_S = 30.0


@dataclass
class Tally:
    """What the hostile side threw and what the server answered."""

    thrown: Counter[str] = field(default_factory=Counter)
    answers: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)


def _line(obj: object) -> bytes:
    return json.dumps(obj).encode() + b"\n"


def _hello(name: str) -> bytes:
    return _line({"type": "hello", "protocol": 1, "name": name})


PORT = 0  # the server's, once it listens


async def _open(rcvbuf: int | None = None) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    sock = socket.socket()
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (HOST, PORT))
    return await asyncio.open_connection(sock=sock)


async def _close(writer: asyncio.StreamWriter, *, abort: bool = False) -> None:
    if abort:
        writer.transport.abort()
        return
    writer.close()
    with contextlib.suppress(Exception):
        async with asyncio.timeout(2):
            await writer.wait_closed()


async def _read_until_eof(reader: asyncio.StreamReader, tally: Tally, timeout_s: float) -> bool:
    """Read (counting error codes) until the server closes; False on timeout."""
    buffer = b""
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                data = await reader.read(65536)
                if not data:
                    return True
                buffer += data
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    with contextlib.suppress(ValueError):
                        obj = json.loads(line)
                        if obj.get("type") == "error":
                            tally.answers[obj.get("code", "?")] += 1
    except TimeoutError:
        return False
    except (ConnectionError, OSError):
        return True


# ---------------------------------------------------------------------------- normal members


@dataclass
class Normal:
    name: str
    conn: ClientConnection
    sent: list[str] = field(default_factory=list)
    received: set[str] = field(default_factory=set)
    closed: str | None = None
    # Set on every message received or on close, so waiting for delivery needs no polling.
    progress: asyncio.Event = field(default_factory=asyncio.Event)


async def normal_reader(member: Normal) -> None:
    try:
        while True:
            frame = await member.conn.recv()
            if isinstance(frame, Message) and frame.text.startswith("normal|"):
                member.received.add(frame.text)
                member.progress.set()
    except ConnectionClosed as exc:
        member.closed = str(exc)
        member.progress.set()


async def normal_writer(member: Normal, text_bytes: int, stop: asyncio.Event) -> None:
    rng = random.Random(member.name)
    n = 0
    interval = 1.0 / NORMAL_RATE_PER_S
    loop = asyncio.get_running_loop()
    next_at = loop.time()
    while not stop.is_set() and member.closed is None:
        text = f"normal|{member.name}|{n}|" + "x" * rng.randint(0, text_bytes)
        try:
            await member.conn.say(text)
        except ConnectionClosed as exc:
            member.closed = str(exc)
            return
        member.sent.append(text)
        n += 1
        next_at += interval
        # Pacing, not waiting for anything: a steady rate under the flood limit.
        await asyncio.sleep(max(0.0, next_at - loop.time()))


# ---------------------------------------------------------------------------- hostile kinds

MALFORMED = [
    b"not json\n",
    b'{"type":"say","text":NaN}\n',
    b'{"type":"say","text":"x","n":1e999}\n',
    b'{"type":"say","text":"\\ud800"}\n',
    b"[" * 60_000 + b"\n",
    b'{"type":"say","text":"\xff\xfe"}\n',
    b'"just a string"\n',
    b"[1,2,3]\n",
    b'{"text":"no type"}\n',
    b'{"type":"shout"}\n',
    b'{"type":"say","text":12}\n',
    b'{"type":"hello","protocol":1,"name":"again"}\n',
    b'{"type":"say","text":"' + b"z" * 5000 + b'"}\n',
    b'{"type":"say","text":"\\u001b]52;c;cm0gLXJm\\u0007\\u202eevil\\n\\r"}\n',
    b"   \r\n\n",
]


async def hostile_garbage(i: int, stop: asyncio.Event, tally: Tally) -> None:
    rng = random.Random(f"garbage{i}")
    while not stop.is_set():
        reader, writer = await _open()
        tally.thrown["garbage connections"] += 1
        if rng.random() < 0.5:
            writer.write(_hello(f"garbage{i}"))
        drain = asyncio.create_task(_read_until_eof(reader, tally, 30))
        try:
            for _ in range(rng.randint(10, 200)):
                chunk = rng.randbytes(rng.randint(1, 2000))
                if rng.random() < 0.3:
                    chunk += b"\n"
                writer.write(chunk)
                tally.thrown["garbage bytes"] += len(chunk)
                await writer.drain()
                await asyncio.sleep(0.005)
                if stop.is_set() or drain.done():
                    break
        except (ConnectionError, OSError):
            pass
        await _close(writer, abort=rng.random() < 0.5)
        drain.cancel()


async def hostile_malformed(i: int, stop: asyncio.Event, tally: Tally) -> None:
    rng = random.Random(f"malformed{i}")
    while not stop.is_set():
        reader, writer = await _open()
        tally.thrown["malformed connections"] += 1
        writer.write(_hello(f"malformed{i}"))
        drain = asyncio.create_task(_read_until_eof(reader, tally, 60))
        try:
            for _ in range(50):
                frame = rng.choice(MALFORMED)
                writer.write(frame)
                tally.thrown["malformed frames"] += 1
                await writer.drain()
                await asyncio.sleep(0.05)  # under the rate limit: errors, not a kick
                if stop.is_set() or drain.done():
                    break
        except (ConnectionError, OSError):
            pass
        await _close(writer)
        drain.cancel()


async def hostile_oversize(i: int, stop: asyncio.Event, tally: Tally) -> None:
    rng = random.Random(f"oversize{i}")
    while not stop.is_set():
        reader, writer = await _open()
        tally.thrown["oversize lines"] += 1
        if rng.random() < 0.5:
            writer.write(_hello(f"oversize{i}"))
        drain = asyncio.create_task(_read_until_eof(reader, tally, 10))
        try:
            for _ in range(rng.randint(2, 40)):
                writer.write(b"A" * 65536)
                await writer.drain()
                tally.thrown["oversize bytes"] += 65536
        except (ConnectionError, OSError):
            pass
        if await drain:
            tally.answers["closed after over-long line"] += 1
        await _close(writer)
        await asyncio.sleep(0.2)


async def hostile_flood(i: int, stop: asyncio.Event, tally: Tally) -> None:
    while not stop.is_set():
        reader, writer = await _open()
        tally.thrown["flood connections"] += 1
        writer.write(_hello(f"flood{i}"))
        drain = asyncio.create_task(_read_until_eof(reader, tally, 10))
        try:
            for n in range(2000):
                writer.write(_line({"type": "say", "text": f"flood {n}"}))
                tally.thrown["flood frames"] += 1
                if n % 50 == 0:
                    await writer.drain()
                if drain.done():
                    break
        except (ConnectionError, OSError):
            pass
        if await drain:
            tally.answers["flooder closed"] += 1
        await _close(writer)
        await asyncio.sleep(0.5)


async def hostile_nonreader(i: int, stop: asyncio.Event, tally: Tally) -> None:
    while not stop.is_set():
        _, writer = await _open(rcvbuf=4096)
        tally.thrown["non-readers"] += 1
        writer.write(_hello(f"sleeper{i}"))
        # Never read. Poke the socket now and then: once the server has dropped us,
        # a write fails.
        dropped = False
        while not stop.is_set():
            await asyncio.sleep(0.5)
            try:
                writer.write(b"\n")
                await writer.drain()
            except (ConnectionError, OSError):
                dropped = True
                break
        if dropped:
            tally.answers["non-reader dropped"] += 1
        await _close(writer, abort=True)


async def hostile_mute(i: int, stop: asyncio.Event, tally: Tally) -> None:
    """Joins, reads everything, answers no ping: dropped with reason timeout."""
    while not stop.is_set():
        reader, writer = await _open()
        tally.thrown["mute members"] += 1
        writer.write(_hello(f"mute{i}"))
        if await _read_until_eof(reader, tally, 30):
            tally.answers["mute member dropped"] += 1
        await _close(writer)


async def hostile_halfopen(i: int, stop: asyncio.Event, tally: Tally) -> None:
    rng = random.Random(f"half{i}")
    while not stop.is_set():
        reader, writer = await _open()
        tally.thrown["half-open handshakes"] += 1
        writer.write(b'{"type":"hello","protocol":1,"name":"half'[: rng.randint(0, 40)])
        if await _read_until_eof(reader, tally, 30):
            tally.answers["half-open closed by server"] += 1
        await _close(writer)


async def hostile_churn(i: int, stop: asyncio.Event, tally: Tally) -> None:
    rng = random.Random(f"churn{i}")
    n = 0
    while not stop.is_set():
        n += 1
        try:
            reader, writer = await _open()
        except OSError as exc:
            tally.errors.append(f"churn connect failed: {exc}")
            await asyncio.sleep(0.1)
            continue
        tally.thrown["churn connections"] += 1
        stage = rng.randrange(6)
        try:
            if stage >= 1:
                writer.write(b'{"type":"hello","protocol":1,"na')
            if stage >= 2:
                writer.write(b'me":"churn%d_%d"}\n' % (i, n))
            if stage == 3:
                writer.write(b'{"type":"say","text":"cut off')
            if stage == 4:
                writer.write(b'{"type":"bye"}\n')
            if stage == 5:
                writer.write(_line({"type": "who"}))
            await writer.drain()
            if stage >= 2 and rng.random() < 0.5:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1):
                        await reader.read(65536)
        except (ConnectionError, OSError):
            pass
        await _close(writer, abort=rng.random() < 0.5)


HOSTILE = {
    "garbage": (hostile_garbage, 2),
    "malformed": (hostile_malformed, 2),
    "oversize": (hostile_oversize, 1),
    "flood": (hostile_flood, 2),
    "nonreader": (hostile_nonreader, 2),
    "mute": (hostile_mute, 1),
    "halfopen": (hostile_halfopen, 3),
    "churn": (hostile_churn, 3),
}


# ---------------------------------------------------------------------------- the server


def _proc_stats(pid: int) -> tuple[int, int, int]:
    """(RSS kB, peak RSS kB, open fds) of a process, from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    hwm = int(re.search(r"VmHWM:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    return rss, hwm, len(os.listdir(f"/proc/{pid}/fd"))


async def start_server(workdir: Path) -> tuple[asyncio.subprocess.Process, int]:
    # The log goes to a file: a pipe nobody reads would fill up and stall the server.
    with (workdir / "server.log").open("wb") as log_file:
        process = await asyncio.create_subprocess_exec(
            SERVER,
            "--bind",
            f"{HOST}:0",
            "--quiet",
            "--transcript",
            str(workdir / "transcript.log"),
            "--data-dir",
            str(workdir / "data"),
            *SERVER_ARGS,
            stdout=asyncio.subprocess.PIPE,
            stderr=log_file,
        )
    assert process.stdout is not None
    async with asyncio.timeout(10):
        while True:
            line = (await process.stdout.readline()).decode()
            if not line:
                raise SystemExit("the server exited before listening")
            if found := re.search(rf"chatroom-tui {re.escape(HOST)}:(\d+)", line):
                break
    # Keep reading its stdout for the same reason.
    _background.add(asyncio.create_task(_discard(process.stdout)))
    return process, int(found.group(1))


_background: set[asyncio.Task[None]] = set()


async def _discard(stream: asyncio.StreamReader) -> None:
    while await stream.read(65536):
        pass


def _read_transcripts(workdir: Path) -> str:
    """The transcript and its rotated backups (it rotates at 10 MiB by default)."""
    return "".join(path.read_text(errors="replace") for path in workdir.glob("transcript.log*"))


async def soak(seconds: float, normal_count: int, text_bytes: int) -> int:
    global PORT
    # Hostile clients keep writing into sockets the server has closed, on purpose; asyncio
    # would warn about each such write.
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    workdir = Path(tempfile.mkdtemp(prefix="chatroom-soak-"))
    process, PORT = await start_server(workdir)
    pid = process.pid
    base_rss, _, base_fds = _proc_stats(pid)
    tally = Tally()
    peak_rss = peak_fds = 0

    members = []
    for i in range(normal_count):
        conn = await ClientConnection.connect(HOST, PORT)
        await conn.hello(f"normal{i}")
        members.append(Normal(f"normal{i}", conn))
    readers = [asyncio.create_task(normal_reader(m)) for m in members]

    stop = asyncio.Event()
    writers = [asyncio.create_task(normal_writer(m, text_bytes, stop)) for m in members]
    hostile = [
        asyncio.create_task(kind(i, stop, tally))
        for kind, count in HOSTILE.values()
        for i in range(count)
    ]

    async def sample() -> None:
        nonlocal peak_rss, peak_fds
        while True:
            with contextlib.suppress(OSError):
                _, hwm, fds = _proc_stats(pid)
                peak_rss, peak_fds = max(peak_rss, hwm), max(peak_fds, fds)
            await asyncio.sleep(0.2)

    sampler = asyncio.create_task(sample())
    started = time.monotonic()
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.gather(*writers)
    for task in hostile:
        task.cancel()
    results = await asyncio.gather(*hostile, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
            tally.errors.append(f"hostile client crashed: {result!r}")
    elapsed = time.monotonic() - started

    # Every normal message must reach every normal member.
    everything = {text for m in members for text in m.sent}
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(DRAIN_TIMEOUT_S):
            for member in members:
                while not everything <= member.received and member.closed is None:
                    member.progress.clear()
                    await member.progress.wait()
    delivered = sum(len(everything & m.received) for m in members)
    expected = len(everything) * len(members)

    # Connections the hostile side left must all be gone again.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(15):
            # /proc cannot be awaited: poll it.
            while _proc_stats(pid)[2] > base_fds + normal_count:  # noqa: ASYNC110
                await asyncio.sleep(0.2)
    end_rss, _, end_fds = _proc_stats(pid)
    sampler.cancel()
    dropped_normals = [f"{m.name}: {m.closed}" for m in members if m.closed]

    for member in members:
        with contextlib.suppress(ConnectionClosed, ServerError):
            await member.conn.close()
    for task in readers:
        task.cancel()
    process.send_signal(signal.SIGTERM)
    async with asyncio.timeout(15):
        exit_code = await process.wait()
    server_log = (workdir / "server.log").read_text(errors="replace").splitlines()
    server_errors = [
        line
        for line in server_log
        if "ERROR" in line or "WARNING" in line or "Traceback" in line or "Exception" in line
    ]
    recorded = {
        line.split("> ", 1)[1] for line in _read_transcripts(workdir).splitlines() if "> " in line
    }
    in_transcript = len(everything & recorded)

    failures = []
    if delivered != expected:
        failures.append(f"normal delivery {delivered}/{expected}")
    if dropped_normals:
        failures.append(f"normal members dropped: {dropped_normals}")
    if in_transcript != len(everything):
        failures.append(f"transcript has {in_transcript}/{len(everything)} normal messages")
    if exit_code != 0:
        failures.append(f"server exit code {exit_code}")
    if server_errors:
        failures.append(f"{len(server_errors)} warning or error lines from the server")
    if end_fds > base_fds + normal_count:
        failures.append(f"server fds did not come back: {end_fds} (baseline {base_fds})")
    failures += tally.errors

    print(f"chatroom soak: {elapsed:.0f} s against chatroom-server pid {pid} on {HOST}:{PORT}")
    print("thrown:")
    for kind, count in sorted(tally.thrown.items()):
        print(f"  {kind:28} {count:>12,}")
    print("server answers seen by hostile clients:")
    for kind, count in sorted(tally.answers.items()):
        print(f"  {kind:28} {count:>12,}")
    print("survived:")
    print(f"  normal members               {normal_count} (dropped: {len(dropped_normals)})")
    print(f"  normal messages sent         {len(everything):,}")
    print(
        f"  delivered to normal members  {delivered:,} / {expected:,} "
        f"({100.0 * delivered / max(expected, 1):.2f}%)"
    )
    print(f"  in the transcript            {in_transcript:,} / {len(everything):,}")
    print("server:")
    print(
        f"  RSS at start / peak / end    {base_rss / 1024:.1f} / {peak_rss / 1024:.1f} / "
        f"{end_rss / 1024:.1f} MiB"
    )
    print(
        f"  fds at start / peak / end    {base_fds} / {peak_fds} / {end_fds}"
        f" (end includes {normal_count} normal members)"
    )
    print(f"  exit code after SIGTERM      {exit_code}")
    print(f"  log lines (warnings/errors)  {len(server_log)} ({len(server_errors)})")
    print(f"errors: {len(failures)}")
    for failure in failures:
        print(f"  {failure}")
    for line in server_errors[:10]:
        print(f"  server: {line}")
    return 0 if not failures else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="how long to run the load")
    parser.add_argument("--normal", type=int, default=8, help="normal members chatting")
    parser.add_argument(
        "--text-bytes", type=int, default=1500, help="longest normal message padding"
    )
    args = parser.parse_args()
    if args.seconds <= 0 or args.seconds > 3600:
        parser.error("--seconds must be between 0 and 3600")
    return asyncio.run(soak(args.seconds, args.normal, args.text_bytes))


if __name__ == "__main__":
    sys.exit(main())
