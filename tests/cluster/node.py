"""A chatroom-server subprocess: a cluster node, or a plain server without ``redis_url``."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import sys
from collections import deque
from pathlib import Path

from conftest import TIMEOUT_S

__all__ = ["BANNER_ADDRESS", "SERVER", "Node"]

# The console script next to this interpreter, as tests/test_cli.py runs it.
SERVER = str(Path(sys.executable).parent / "chatroom-server")
BANNER_ADDRESS = re.compile(r"chatroom-tui 127\.0\.0\.1:(\d+)")
# Enough of a node's output to explain a failure, without growing without bound.
_OUTPUT_LINES = 200


class Node:
    """One ``chatroom-server`` process on 127.0.0.1 with a port of its own.

    The data directory and transcript stay across :meth:`restart`; the port may change.
    stdout and stderr are read all the time, so the node never blocks on a full pipe;
    their last lines are in :attr:`output` for failure messages.

    Args:
        directory: the node's own directory (created).
        node_id: ``--node-id`` (only passed with ``redis_url``).
        redis_url: ``--cluster URL``; None runs a plain single server.
        extra: more command-line options.
    """

    def __init__(
        self,
        directory: Path,
        node_id: str,
        *,
        redis_url: str | None = None,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.directory = directory
        self.node_id = node_id
        self.redis_url = redis_url
        self.extra = extra
        self.port = 0
        self.process: asyncio.subprocess.Process | None = None
        self.frozen = False
        self.output: deque[str] = deque(maxlen=_OUTPUT_LINES)
        self._readers: list[asyncio.Task[None]] = []
        self.starts = 0

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    @property
    def transcript(self) -> Path:
        return self.directory / "transcript.log"

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def args(self) -> list[str]:
        args = [
            "--bind",
            "127.0.0.1:0",
            "--transcript",
            str(self.transcript),
            "--quiet",
            "--data-dir",
            str(self.data_dir),
            "--flood-rate",
            "0",
        ]
        if self.redis_url is not None:
            args += ["--cluster", self.redis_url, "--node-id", self.node_id]
        return [*args, *self.extra]

    async def start(self) -> None:
        """Start the process and wait for the port in its banner.

        Raises:
            RuntimeError: it exited or printed no address in time; with its output.
        """
        assert not self.running, "already running"
        self.directory.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        self.process = await asyncio.create_subprocess_exec(
            SERVER,
            *self.args(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        self.frozen = False
        assert self.process.stdout is not None and self.process.stderr is not None
        port: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._readers = [
            asyncio.create_task(self._read(self.process.stdout, "", port)),
            asyncio.create_task(self._read(self.process.stderr, "stderr: ", None)),
        ]
        try:
            async with asyncio.timeout(TIMEOUT_S * 2):
                self.port = await port
        except (TimeoutError, EOFError) as exc:
            await self.kill()
            raise RuntimeError(
                f"node {self.node_id} did not start:\n" + "\n".join(self.output)
            ) from exc

    async def _read(
        self, stream: asyncio.StreamReader, prefix: str, port: asyncio.Future[int] | None
    ) -> None:
        """Keep one pipe drained; the first banner address settles ``port``."""
        while line := await stream.readline():
            text = line.decode(errors="replace").rstrip("\n")
            self.output.append(prefix + text)
            if port is not None and not port.done() and (found := BANNER_ADDRESS.search(text)):
                port.set_result(int(found.group(1)))
        if port is not None and not port.done():
            port.set_exception(EOFError("the node exited before listening"))

    async def wait(self, timeout_s: float = TIMEOUT_S * 2) -> int:
        """Wait for the process to exit; its exit code (negative: the signal)."""
        if self.process is None:
            return 0
        async with asyncio.timeout(timeout_s):
            code = await self.process.wait()
            # The rest of its output, for whoever reads :attr:`output` next.
            await asyncio.gather(*self._readers, return_exceptions=True)
        return code

    async def kill(self) -> int:
        """SIGKILL: a crash; nothing is flushed or said goodbye."""
        if self.running:
            assert self.process is not None
            self.process.kill()
        return await self.wait()

    async def terminate(self) -> int:
        """SIGTERM: a clean stop (members get ``shutdown`` leaves); its exit code."""
        if self.running:
            assert self.process is not None
            self.thaw()
            self.process.terminate()
        return await self.wait()

    def freeze(self) -> None:
        """SIGSTOP: its sockets stay open and nothing answers, like a stalled machine."""
        assert self.process is not None and self.running
        self.process.send_signal(signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        if self.frozen and self.running:
            assert self.process is not None
            self.process.send_signal(signal.SIGCONT)
        self.frozen = False

    async def restart(self) -> None:
        """Stop the process if it runs (SIGTERM) and start it again: same node id, same
        data directory, a new port."""
        if self.running:
            await self.terminate()
        await self.start()

    async def cleanup(self) -> None:
        with contextlib.suppress(TimeoutError, ProcessLookupError):
            await self.kill()
        for reader in self._readers:
            reader.cancel()

    def describe(self) -> str:
        """The node and the end of its output, for an assertion message."""
        state = "running" if self.running else f"exited {self.process and self.process.returncode}"
        return f"node {self.node_id} ({state}):\n" + "\n".join(list(self.output)[-30:])
