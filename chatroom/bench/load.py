"""The load processes: what each one runs, and the bench's side of their pipes."""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import multiprocessing.connection
import time
import traceback
from collections.abc import Sequence
from typing import Any

from chatroom.bench.engine import _Load, _LoadSpec
from chatroom.bench.host import _pin, _proc_cpu_s, _raise_nofile
from chatroom.bench.irc import _IrcLoad
from chatroom.bench.options import DRAIN_TIMEOUT_S, NS_PER_S, SETUP_TIMEOUT_S, BenchError
from chatroom.bench.websocket import _WebSocketLoad
from chatroom.bench.wire import _JsonLinesLoad

__all__ = ["_LoadGroup", "_names", "_split"]

# What a load process's clients speak, by _LoadSpec.transport.
_LOADS: dict[str, type[_Load]] = {
    "ndjson": _JsonLinesLoad,
    "websocket": _WebSocketLoad,
    "irc": _IrcLoad,
}
# Load processes leave traffic this long after the last event, to count late leaves.
STORM_LINGER_S = 0.3


def _load_main(spec: _LoadSpec, ctrl: multiprocessing.connection.Connection) -> None:
    """Entry point of a load process."""
    _pin(spec.core)
    _raise_nofile()
    # Nothing here makes reference cycles; a collection pass would only add pauses.
    gc.disable()
    load = _LOADS[spec.transport](spec, ctrl)
    try:
        if spec.mode in ("fanout", "latency"):
            deadline = time.monotonic() + spec.phase_timeout_s
            load.join_all(deadline)
            load.settle(deadline)
            load._send(("ready", load.report()))
            _, t_start, t0, t1 = load._wait_ctrl("go", SETUP_TIMEOUT_S)
            load.traffic(t_start, t0, t1)
            load._send(("sent", load.report()))
            _, expected = load._wait_ctrl("expect", SETUP_TIMEOUT_S)
            load.drain(expected, DRAIN_TIMEOUT_S)
            load._send(("result", load.report(expected)))
        elif spec.mode == "idle":
            load._send(("ready", load.report()))
            load._wait_ctrl("go", SETUP_TIMEOUT_S)
            # Connecting and settling share one limit, so a server that cannot take
            # everyone costs the limit once, not twice.
            deadline = time.monotonic() + spec.phase_timeout_s
            load.join_all(deadline)
            load._send(("welcomed", load.report()))
            load.settle(deadline)
            load._send(("settled", load.report()))
            load._wait_ctrl("report", SETUP_TIMEOUT_S)
            load._send(("result", load.report()))
        elif spec.mode == "storm":
            load.join_all(time.monotonic() + SETUP_TIMEOUT_S, hello=False)
            load._send(("ready", load.report()))
            _, t_start = load._wait_ctrl("go", SETUP_TIMEOUT_S)
            while (now := time.monotonic_ns()) < t_start:
                load._pump(min(0.05, (t_start - now) / NS_PER_S))
            load.hello_all()
            deadline = time.monotonic() + spec.phase_timeout_s
            load.wait_welcomed(deadline)
            load.settle(deadline)
            load.linger(STORM_LINGER_S)
            load._send(("result", load.report()))
        else:
            raise ValueError(spec.mode)
        # Nobody closes a socket before every process has counted: the others would see
        # the leave events and report them.
        load._wait_ctrl("stop", SETUP_TIMEOUT_S)
    except SystemExit as exc:
        with contextlib.suppress(OSError):
            ctrl.send(("failed", str(exc)))
    except BaseException:
        with contextlib.suppress(OSError):
            ctrl.send(("failed", traceback.format_exc()))
    finally:
        load.close()


class _LoadGroup:
    """The load processes of one run, and the bench's side of their pipes."""

    def __init__(self, specs: Sequence[_LoadSpec]) -> None:
        context = multiprocessing.get_context("fork")
        self.pipes: list[multiprocessing.connection.Connection] = []
        self.processes: list[multiprocessing.process.BaseProcess] = []
        for spec in specs:
            ours, theirs = context.Pipe()
            process = context.Process(target=_load_main, args=(spec, theirs), daemon=True)
            process.start()
            theirs.close()
            self.pipes.append(ours)
            self.processes.append(process)

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self.processes if process.pid is not None]

    def cpu_s(self) -> float:
        return sum(_proc_cpu_s(pid) or 0.0 for pid in self.pids)

    def send(self, message: tuple[Any, ...]) -> None:
        for pipe in self.pipes:
            pipe.send(message)

    def collect(self, kind: str, timeout_s: float) -> list[dict[str, Any]]:
        """One ``kind`` message from every process, in process order."""
        deadline = time.monotonic() + timeout_s
        got: dict[int, dict[str, Any]] = {}
        while len(got) < len(self.pipes):
            waiting = [pipe for index, pipe in enumerate(self.pipes) if index not in got]
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError(f"load processes sent no {kind!r} within {timeout_s:g} s")
            for ready in multiprocessing.connection.wait(waiting, timeout=min(left, 1.0)):
                index = next(i for i, pipe in enumerate(self.pipes) if pipe is ready)
                try:
                    message = self.pipes[index].recv()
                except EOFError:
                    raise BenchError("a load process died") from None
                if message[0] == "failed":
                    raise BenchError(f"a load process failed: {message[1]}")
                if message[0] != kind:
                    raise BenchError(f"expected {kind!r} from a load process, got {message[0]!r}")
                got[index] = message[1]
        return [got[index] for index in range(len(self.pipes))]

    def close(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(OSError):
                pipe.send(("stop",))
            pipe.close()
        for process in self.processes:
            process.join(5.0)
            if process.is_alive():
                process.kill()
                process.join()


def _split(items: Sequence[Any], parts: int) -> list[list[Any]]:
    """Round-robin: with the server fanning out in join order, each part gets a spread."""
    buckets: list[list[Any]] = [[] for _ in range(max(1, parts))]
    for index, item in enumerate(items):
        buckets[index % len(buckets)].append(item)
    return [bucket for bucket in buckets if bucket]


def _names(role: str, run_tag: str, count: int) -> list[str]:
    return [f"{role}{run_tag}-{index:05d}" for index in range(count)]
