"""A real redis-server subprocess on a free loopback port, for cluster tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any, cast

import redis.asyncio as aioredis
from conftest import TIMEOUT_S

__all__ = [
    "EVENTS_STREAM",
    "REDIS_SERVER",
    "RedisServer",
    "free_port",
    "redis_available",
]

REDIS_SERVER = shutil.which("redis-server")
# Where cluster nodes append every event: fields id (decimal), event (the event frame as
# clients receive it, JSON without the newline) and node (the node id that appended it).
EVENTS_STREAM = "chatroom:events"
# Between readiness probes: short enough that a test barely waits, long enough not to
# spin on a process that is still loading its AOF.
_PROBE_INTERVAL_S = 0.01
# XRANGE page size: big enough for any test in a handful of round trips.
_STREAM_PAGE = 1000


def redis_available() -> bool:
    return REDIS_SERVER is not None


def free_port() -> int:
    """A loopback port nobody listens on right now (the caller binds it soon after)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def ping(host: str, port: int, timeout_s: float) -> bool:
    """True when a fresh connection to host:port answers PING with PONG in time."""
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                writer.write(b"PING\r\n")
                await writer.drain()
                return (await reader.readline()) == b"+PONG\r\n"
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
    except (OSError, TimeoutError):
        return False


class RedisServer:
    """One redis-server process with its own directory; the port stays across restarts.

    ``aof``: append-only file with ``appendfsync always``, so a SIGKILL loses nothing
    that was acknowledged. Without it the data lives in memory only, except that
    :meth:`stop` saves a snapshot first (``SHUTDOWN SAVE``), so a stop and start keeps
    the data while a kill loses it, as for a real Redis with persistence turned off.
    """

    def __init__(self, directory: Path, *, aof: bool = False) -> None:
        self.directory = directory
        self.aof = aof
        self.host = "127.0.0.1"
        self.port = 0
        self.process: asyncio.subprocess.Process | None = None
        self.frozen = False
        self._clients: list[aioredis.Redis] = []

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    @property
    def log_path(self) -> Path:
        return self.directory / "redis.log"

    @property
    def stderr_path(self) -> Path:
        return self.directory / "redis.stderr"

    async def start(self) -> None:
        """Start on a free port (the first time) or on the same port, and wait for PING.

        Raises:
            RuntimeError: redis-server exited or did not answer in time; the message
                has the end of its log.
        """
        assert REDIS_SERVER is not None, "redis-server is not installed"
        assert not self.running, "already running"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # A free port can be taken between the probe and the bind: try a few.
        attempts = 1 if self.port else 3
        for _ in range(attempts):
            port = self.port or free_port()
            args = [
                REDIS_SERVER,
                "--port",
                str(port),
                "--bind",
                self.host,
                "--dir",
                str(self.data_dir),
                "--save",
                "",
                "--appendonly",
                "yes" if self.aof else "no",
                "--logfile",
                str(self.log_path),
                # Tests give nodes 127.0.0.1 without a password; keep it that way.
                "--protected-mode",
                "no",
            ]
            if self.aof:
                args += ["--appendfsync", "always"]
            # Option errors go to stderr before the log file is open.
            with self.stderr_path.open("ab") as stderr:
                self.process = await asyncio.create_subprocess_exec(
                    *args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr
                )
            self.frozen = False
            if await self._wait_ready(port):
                self.port = port
                return
            await self._reap()
        raise RuntimeError(f"redis-server did not start:\n{self._log_tail()}")

    async def _wait_ready(self, port: int) -> bool:
        """Probe until PING answers (True) or the process exits or time runs out."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TIMEOUT_S * 2
        assert self.process is not None
        while loop.time() < deadline:
            if self.process.returncode is not None:
                return False
            if await ping(self.host, port, timeout_s=TIMEOUT_S / 10):
                return True
            # Polling on purpose: nothing signals "listening" but the socket itself.
            await asyncio.sleep(_PROBE_INTERVAL_S)
        return False

    def _log_tail(self) -> str:
        lines: list[str] = []
        for path in (self.stderr_path, self.log_path):
            with contextlib.suppress(OSError):
                lines += path.read_text(errors="replace").splitlines()[-20:]
        return "\n".join(lines) or "(no log)"

    async def _reap(self) -> None:
        process = self.process
        if process is None:
            return
        if process.returncode is None:
            process.kill()
        async with asyncio.timeout(TIMEOUT_S):
            await process.wait()
        self.frozen = False

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def kill(self) -> None:
        """SIGKILL: whatever was not written to the AOF is gone."""
        await self._reap()

    async def stop(self) -> None:
        """Shut down cleanly, saving a snapshot (see the class docstring)."""
        if not self.running:
            return
        self.thaw()
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(TIMEOUT_S):
                reader, writer = await asyncio.open_connection(self.host, self.port)
                writer.write(b"SHUTDOWN SAVE\r\n")
                await writer.drain()
                # Redis closes the connection once it has saved and is exiting.
                await reader.read()
                writer.close()
        assert self.process is not None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(TIMEOUT_S):
                await self.process.wait()
        await self._reap()

    async def restart(self, *, empty: bool = False) -> None:
        """Stop (cleanly, if running) and start again on the same port.

        ``empty``: delete everything Redis had on disk first: the data loss of a Redis
        that lost its volume, or of one without persistence that crashed. The stream
        goes too: a test keeps ``stream()`` from before and checks against the two
        concatenated, so ids handed out again after the loss show up as repeats.
        """
        await self.stop()
        if empty:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        await self.start()

    def freeze(self) -> None:
        """SIGSTOP: connections stay open and nothing is answered, like a long GC pause."""
        assert self.process is not None and self.running
        os.kill(self.process.pid, signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        if self.frozen and self.running:
            assert self.process is not None
            os.kill(self.process.pid, signal.SIGCONT)
        self.frozen = False

    def client(self, **options: Any) -> aioredis.Redis:
        """A redis.asyncio client, closed when the server is cleaned up."""
        client = aioredis.Redis(host=self.host, port=self.port, db=0, **options)
        self._clients.append(client)
        return client

    async def stream(self) -> list[dict[str, Any]]:
        """Every event of ``chatroom:events``, oldest first, as
        ``{"entry": "<stream id>", "id": int, "event": dict, "node": str}``.

        An entry whose fields are missing or not as specified raises ``ValueError``:
        a malformed stream is a failure of the node that wrote it, not of the test.
        """
        client = self.client(socket_timeout=TIMEOUT_S)
        try:
            entries: list[dict[str, Any]] = []
            start = "-"
            while True:
                raw = await client.xrange(EVENTS_STREAM, min=start, max="+", count=_STREAM_PAGE)
                # redis-py types entries loosely; these are (id, fields) pairs.
                page = cast(list[tuple[bytes, dict[bytes, bytes]]], raw or [])
                for entry_id, fields in page:
                    # An empty event with id 0 is the end of a session: a note for the
                    # nodes (the name is free again), not an event anyone is sent.
                    if fields.get(b"event") == b"" and fields.get(b"id") == b"0":
                        continue
                    entries.append(parse_entry(entry_id, fields))
                if len(page) < _STREAM_PAGE:
                    return entries
                start = "(" + _text(page[-1][0])
        finally:
            await client.aclose()
            self._clients.remove(client)

    async def cleanup(self) -> None:
        for client in self._clients:
            with contextlib.suppress(Exception):
                await client.aclose()
        self._clients.clear()
        await self._reap()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def parse_entry(entry_id: bytes | str, fields: dict[Any, Any]) -> dict[str, Any]:
    """One stream entry as the dict :meth:`RedisServer.stream` returns.

    Raises:
        ValueError: a field is missing, ``event`` is not a JSON object, or ``id`` is
            not the event's own id.
    """
    text = {_text(key): _text(value) for key, value in fields.items()}
    where = f"stream entry {_text(entry_id)}"
    missing = {"id", "event", "node"} - text.keys()
    if missing:
        raise ValueError(f"{where}: no field {', '.join(sorted(missing))}")
    event = json.loads(text["event"])
    if not isinstance(event, dict):
        raise ValueError(f"{where}: event is not a JSON object")
    event_id = int(text["id"])
    if event.get("id") != event_id:
        raise ValueError(f"{where}: field id {event_id} but the event has {event.get('id')!r}")
    return {"entry": _text(entry_id), "id": event_id, "event": event, "node": text["node"]}
