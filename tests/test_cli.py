"""chatroom-server as a real process: options, errors, signals, and SIGKILL durability."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from conftest import TIMEOUT_S

from chatroom import __version__
from chatroom.client import ClientConnection, ConnectionClosed
from chatroom.protocol import Leave, Message

SERVER = str(Path(sys.executable).parent / "chatroom-server")
BANNER_ADDRESS = re.compile(r"chatroom-tui 127\.0\.0\.1:(\d+)")


def _run(*args: str, timeout: float = TIMEOUT_S * 2) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SERVER, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def test_version() -> None:
    """--version prints the version and exits 0."""
    result = _run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"chatroom {__version__}"


def test_help() -> None:
    """--help describes the options and exits 0."""
    result = _run("--help")
    assert result.returncode == 0
    for option in ("--bind", "--transcript", "--tls-cert", "--password", "--flood-rate"):
        assert option in result.stdout


def _assert_one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("chatroom-server: ")
    for word in words:
        assert word in lines[0]


def test_taken_port_is_a_one_line_error(tmp_path: Path) -> None:
    """A port in use: one line on stderr saying so, exit code 2, no traceback."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = _run(
            "--bind",
            f"127.0.0.1:{port}",
            "--transcript",
            str(tmp_path / "t.log"),
            "--data-dir",
            str(tmp_path),
            "--quiet",
        )
    _assert_one_line_error(result, f"127.0.0.1:{port}", "in use")


@pytest.mark.parametrize(
    "bind", ["127.0.0.1:abc", "127.0.0.1:70000", "[::1", "[::1]x", "127.0.0.1:-1"]
)
def test_bad_bind_is_a_one_line_error(tmp_path: Path, bind: str) -> None:
    """A --bind that is not HOST:PORT: one line, exit code 2."""
    result = _run("--bind", bind, "--transcript", str(tmp_path / "t.log"))
    _assert_one_line_error(result, "--bind")


@pytest.mark.parametrize(
    ("args", "word"),
    [
        (["--max-frame-bytes", "10"], "--max-frame-bytes"),
        (["--history", "-1"], "--history"),
        (["--handshake-timeout", "0"], "--handshake-timeout"),
        (["--ping-interval", "-5"], "--ping-interval"),
        (["--ping-timeout", "nan"], "--ping-timeout"),
        (["--sendq", "0"], "--sendq"),
        (["--tls-cert", "cert.pem"], "--tls-key"),
        (["--tls-cert", "missing.pem", "--tls-key", "missing.pem"], "TLS"),
    ],
)
def test_bad_options_are_one_line_errors(tmp_path: Path, args: list[str], word: str) -> None:
    """Out-of-range limits and unusable TLS files: one line, exit code 2."""
    result = _run(*args, "--transcript", str(tmp_path / "t.log"), "--bind", "127.0.0.1:0")
    _assert_one_line_error(result, word)


def test_unopenable_transcript_is_a_one_line_error(tmp_path: Path) -> None:
    """A transcript path under a regular file cannot be opened: one line, exit 2."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = _run("--transcript", str(blocker / "t.log"), "--bind", "127.0.0.1:0")
    _assert_one_line_error(result, "transcript")


# ---------------------------------------------------------------------------- live process


class ServerProcess:
    """A chatroom-server subprocess on 127.0.0.1 with a free port."""

    def __init__(self, process: asyncio.subprocess.Process, port: int, transcript: Path) -> None:
        self.process = process
        self.port = port
        self.transcript = transcript

    async def client(self, name: str, **kwargs: Any) -> ClientConnection:
        conn = await ClientConnection.connect("127.0.0.1", self.port, **kwargs)
        await conn.hello(name)
        return conn

    async def wait(self) -> int:
        async with asyncio.timeout(TIMEOUT_S * 2):
            return await self.process.wait()


@contextlib.asynccontextmanager
async def server_process(tmp_path: Path, *extra: str) -> AsyncIterator[ServerProcess]:
    transcript = tmp_path / "transcript.log"
    process = await asyncio.create_subprocess_exec(
        SERVER,
        "--bind",
        "127.0.0.1:0",
        "--transcript",
        str(transcript),
        "--quiet",
        "--data-dir",
        str(tmp_path / "data"),
        "--flood-rate",
        "0",
        *extra,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        port = None
        async with asyncio.timeout(TIMEOUT_S * 2):
            while port is None:
                line = (await process.stdout.readline()).decode()
                assert line, "the server exited before listening"
                if found := BANNER_ADDRESS.search(line):
                    port = int(found.group(1))
        yield ServerProcess(process, port, transcript)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_signal_stops_cleanly_with_transcript_flushed(
    tmp_path: Path, signum: signal.Signals
) -> None:
    """SIGTERM or SIGINT: members get shutdown leaves, the process exits 0 with no
    traceback, and the transcript holds everything, shutdown leaves included."""
    async with server_process(tmp_path) as server:
        alice = await server.client("alice")
        await alice.say("before the signal")
        async with asyncio.timeout(TIMEOUT_S):
            while not isinstance(frame := await alice.recv(), Message):
                pass
        assert frame.text == "before the signal"
        server.process.send_signal(signum)
        leaves = []
        async with asyncio.timeout(TIMEOUT_S):
            with contextlib.suppress(ConnectionClosed):
                while True:
                    frame = await alice.recv()
                    if isinstance(frame, Leave):
                        leaves.append((frame.name, frame.reason))
        assert leaves == [("alice", "shutdown")]
        assert await server.wait() == 0
        assert server.process.stderr is not None
        stderr = (await server.process.stderr.read()).decode()
        assert "Traceback" not in stderr
        await alice.close()
    lines = server.transcript.read_text().splitlines()
    assert lines[-2].endswith("<alice> before the signal")
    assert lines[-1].endswith("<-- alice left (shutdown)")


async def test_tls_options_serve_tls(tmp_path: Path) -> None:
    """--tls-cert/--tls-key: the process serves TLS that a client trusting the CA joins."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    context = ssl.create_default_context()
    ca.configure_trust(context)
    async with server_process(
        tmp_path, "--tls-cert", str(cert_path), "--tls-key", str(key_path)
    ) as server:
        conn = await server.client("alice", ssl_context=context)
        assert conn.welcome is not None and conn.welcome.name == "alice"
        await conn.close()


async def test_reset_peers_over_tls_do_not_flood_the_log(tmp_path: Path) -> None:
    """TLS peers that send a chunk of garbage lines and reset: the server's log stays
    quiet (asyncio would warn once per error reply it can no longer send)."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    context = ssl.create_default_context()
    ca.configure_trust(context)
    async with server_process(
        tmp_path, "--tls-cert", str(cert_path), "--tls-key", str(key_path)
    ) as server:
        for n in range(3):
            _, writer = await asyncio.open_connection("127.0.0.1", server.port, ssl=context)
            writer.write(b'{"type":"hello","protocol":1,"name":"g%d"}\n' % n + b"junk\n" * 3000)
            await writer.drain()
            writer.transport.abort()
        member = await server.client("member", ssl_context=context)
        await member.say("sync")
        async with asyncio.timeout(TIMEOUT_S):
            while not isinstance(await member.recv(), Message):
                pass
        await member.close()
        server.process.send_signal(signal.SIGTERM)
        assert await server.wait() == 0
        assert server.process.stderr is not None
        log = (await server.process.stderr.read()).decode()
    assert "WARNING" not in log and "ERROR" not in log, log[:2000]


async def test_sigkill_loses_no_acknowledged_message(tmp_path: Path) -> None:
    """Clients chat flat out; the server is SIGKILLed mid-stream. Every message any client
    received (the sender's copy is its acknowledgement) is in the transcript file."""
    async with server_process(tmp_path) as server:
        clients = [await server.client(f"user{i}") for i in range(4)]
        received: list[list[Message]] = [[] for _ in clients]
        enough = asyncio.Event()

        async def chat(index: int) -> None:
            conn = clients[index]

            async def read() -> None:
                with contextlib.suppress(ConnectionClosed):
                    while True:
                        frame = await conn.recv()
                        if isinstance(frame, Message):
                            received[index].append(frame)
                            if len(received[index]) >= 2000:
                                enough.set()

            reading = asyncio.create_task(read())
            with contextlib.suppress(ConnectionClosed):
                n = 0
                while not reading.done():
                    await conn.say(f"user{index} message {n}")
                    n += 1
                    if n % 20 == 0:
                        await asyncio.sleep(0)  # let the reader keep up
            await reading

        chatting = [asyncio.create_task(chat(i)) for i in range(len(clients))]
        async with asyncio.timeout(TIMEOUT_S * 2):
            await enough.wait()
        server.process.kill()
        assert await server.wait() == -signal.SIGKILL
        async with asyncio.timeout(TIMEOUT_S):
            await asyncio.gather(*chatting)
        for conn in clients:
            await conn.close(send_bye=False)

    recorded = set(server.transcript.read_text().splitlines())
    seen = {message.id: message for stream in received for message in stream}
    assert len(seen) >= 2000
    missing = [
        m for m in seen.values() if f"{m.ts} #{m.room} <{m.sender}> {m.text}" not in recorded
    ]
    assert missing == []


async def test_a_second_server_on_the_same_data_directory_is_refused(tmp_path: Path) -> None:
    """Two servers appending to one history would interleave their journal writes:
    the second is told to use its own --data-dir, and the first goes on."""
    async with server_process(tmp_path) as first:
        second = await asyncio.create_subprocess_exec(
            SERVER,
            "--bind",
            "127.0.0.1:0",
            "--quiet",
            "--transcript",
            str(tmp_path / "second.log"),
            "--data-dir",
            str(tmp_path / "data"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        async with asyncio.timeout(TIMEOUT_S * 2):
            output, _ = await second.communicate()
        assert second.returncode != 0
        assert b"in use by another running chatroom-server" in output
        assert b"Traceback" not in output
        assert first.process.returncode is None
