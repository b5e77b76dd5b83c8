"""The server under test: chatroom, the naive baseline or the floor, started pinned and stopped."""

from __future__ import annotations

import contextlib
import functools
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatroom.bench.host import _pin, _raise_nofile
from chatroom.bench.options import BenchError, Options
from chatroom.hub import FLUSH_PACING

if TYPE_CHECKING:
    from chatroom.bench.cluster import _ClusterProcs

__all__ = ["_Server", "_benchmark_file", "_check_companions", "_run_body", "_with_server"]

SERVER_START_TIMEOUT_S = 15.0
SERVER_STOP_TIMEOUT_S = 10.0


# Runs ``chatroom.cli.server_main`` (what ``chatroom-server`` runs) in a subprocess, with
# two leading arguments of its own: the event loop to use and where to dump a profile.
_SERVER_LAUNCHER = """\
import sys
loop, profile = sys.argv[1], sys.argv[2]
del sys.argv[1:3]
sys.argv[0] = "chatroom-server"
if loop == "uvloop":
    sys.argv += ["--loop", "uvloop"]
from chatroom.cli import server_main
if profile:
    import cProfile
    profiler = cProfile.Profile()
    code = profiler.runcall(server_main)
    profiler.dump_stats(profile)
else:
    code = server_main()
sys.exit(code)
"""


@functools.cache
def _server_help() -> str:
    done = subprocess.run(
        [sys.executable, "-c", _SERVER_LAUNCHER, "auto", "", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout


def _server_accepts(option: str) -> bool:
    """Whether this version of ``chatroom-server`` has ``option``."""
    return option in _server_help()


def _benchmark_file(name: str) -> Path:
    """``benchmarks/NAME`` of the repository: beside the package in a checkout (or an
    editable install), else under the current directory. A plain ``pip install .``
    does not carry the benchmarks, so from there the bench must run in a checkout.
    """
    # This module is two packages deep (chatroom/bench/): parents[2] is the checkout.
    here = Path(__file__).resolve().parents[2] / "benchmarks" / name
    if here.exists():
        return here
    cwd = Path.cwd() / "benchmarks" / name
    if cwd.exists():
        return cwd
    raise BenchError(
        f"benchmarks/{name} is not in the installed package: run chatroom-bench in a "
        "checkout of the repository (or pip install -e it)"
    )


def _floor_binary(workdir: Path) -> Path:
    """benchmarks/floor_server.c, compiled into ``workdir`` once."""
    binary = workdir / "floor_server"
    if binary.exists():
        return binary
    source = _benchmark_file("floor_server.c")
    done = subprocess.run(
        [_c_compiler(), "-O2", "-o", str(binary), str(source)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"--floor: {source.name} did not compile:\n{done.stderr[-2000:]}")
    return binary


def _check_companions(options: Options) -> None:
    """Find the baseline and floor servers before any run, not after the first one."""
    if options.baseline:
        script = options.naive_script or _benchmark_file("naive_server.py")
        if not script.exists():
            raise BenchError(f"the baseline server is missing: {script}")
    if options.floor:
        _benchmark_file("floor_server.c")
        _c_compiler()


def _c_compiler() -> str:
    compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        raise BenchError("--floor needs a C compiler (cc, gcc or clang)")
    return compiler


@dataclass
class _Server:
    """A server under test: where it listens and, when known, its process id."""

    label: str
    host: str
    port: int
    pid: int | None
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    loop: str = ""
    # The IRC gateway's port, when IRC members were asked for.
    irc_port: int | None = None
    # --cluster: the nodes members are spread over (``port`` is the first's) and Redis.
    cluster: _ClusterProcs | None = None

    def port_for(self, transport: str) -> int:
        """Where members speaking ``transport`` connect."""
        if transport != "irc":
            return self.port
        if self.irc_port is None:
            raise BenchError(f"the {self.label} server has no IRC gateway")
        return self.irc_port

    def log_tail(self) -> str:
        if self.log_path is None:
            return ""
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-2000:]
        return ""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _server_preexec(core: int | None) -> Callable[[], None]:
    def preexec() -> None:
        _raise_nofile()
        _pin(core)

    return preexec


def _start_server(
    label: str,
    options: Options,
    workdir: Path,
    core: int | None,
    tag: str,
    extra: Sequence[str] = (),
) -> _Server:
    server = _spawn_server(label, options, workdir, core, tag, extra)
    _wait_listening(server)
    return server


def _spawn_server(
    label: str,
    options: Options,
    workdir: Path,
    core: int | None,
    tag: str,
    extra: Sequence[str] = (),
) -> _Server:
    """Start a server without waiting for it: a cluster's nodes start side by side.

    ``extra`` goes on chatroom's command line (a cluster node's Redis and node id).
    """
    port = _free_port()
    transcript = workdir / f"{label}-{tag}-transcript.log"
    log_path = workdir / f"{label}-{tag}-server.log"
    bind = f"127.0.0.1:{port}"
    loop = ""
    irc_port: int | None = None
    if label == "chatroom":
        profile = ""
        if options.profile_dir is not None:
            options.profile_dir.mkdir(parents=True, exist_ok=True)
            profile = str(options.profile_dir / f"server-{tag}.pstats")
        command = [
            sys.executable,
            "-c",
            _SERVER_LAUNCHER,
            options.server_loop,
            profile,
            "--bind",
            bind,
            "--quiet",
            "--flood-rate",
            "0",
            "--transcript",
            str(transcript),
        ]
        if "irc" in options.transports:
            # The gateway only when asked for: it is off by default, as in production.
            irc_port = _free_port()
            command += ["--irc", f"127.0.0.1:{irc_port}"]
        if _server_accepts("--data-dir"):
            # A fresh history store per run, so no run replays another's events.
            command += ["--data-dir", str(workdir / f"{label}-{tag}-data")]
        command += extra
        loop = options.server_loop
        if loop == "auto":
            loop = "asyncio"  # the server's default
    elif label == "floor":
        # The hub's pacing, and epoll's whole-millisecond timeouts as asyncio's loop has.
        command = [
            str(_floor_binary(workdir)),
            "127.0.0.1",
            str(port),
            str(transcript),
            repr(FLUSH_PACING),
        ]
        loop = "C, epoll"
    else:
        script = options.naive_script or _benchmark_file("naive_server.py")
        command = [
            sys.executable,
            str(script),
            "--bind",
            bind,
            "--transcript",
            str(transcript),
        ]
        loop = "threads"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_server_preexec(core),
        )
    return _Server(label, "127.0.0.1", port, process.pid, process, log_path, loop, irc_port)


def _wait_listening(server: _Server) -> None:
    """Until the server accepts connections; stopped, and an error, if it never does."""
    label, process = server.label, server.process
    assert process is not None
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    ports = [server.port] if server.irc_port is None else [server.port, server.irc_port]
    for listening in ports:
        while True:
            if process.poll() is not None:
                raise BenchError(f"the {label} server exited at start:\n{server.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", listening), timeout=1.0):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    _stop_server(server)
                    raise BenchError(
                        f"the {label} server did not listen on {listening} within "
                        f"{SERVER_START_TIMEOUT_S:g} s:\n{server.log_tail()}"
                    ) from None
                time.sleep(0.02)


def _stop_server(server: _Server) -> str:
    """SIGTERM, then SIGKILL after a grace period; says which one ended it."""
    process = server.process
    if process is None or process.poll() is not None:
        return "exited"
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(SERVER_STOP_TIMEOUT_S)
        return "term"
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return "killed"


def _with_server(
    options: Options,
    label: str,
    workdir: Path,
    server_core: int | None,
    tag: str,
    body: Callable[[_Server], dict[str, Any]],
) -> dict[str, Any]:
    if options.addr is not None and label == "chatroom":
        host, port = options.addr
        external = _Server("chatroom", host, port, options.server_pid, loop="external")
        result = body(external)
        result["server_loop"] = external.loop
        return result
    server = _start_server(label, options, workdir, server_core, tag)
    return _run_body(server, body, f"{label} server", server.log_tail, lambda: _stop_server(server))


def _run_body(
    server: _Server,
    body: Callable[[_Server], dict[str, Any]],
    what: str,
    log_tail: Callable[[], str],
    stop: Callable[[], str],
) -> dict[str, Any]:
    """Run ``body`` on a started server (or cluster), stop it whatever happens, and add
    how it ran and ended to the result; a failure carries the end of its output."""
    try:
        result = body(server)
    except BenchError as exc:
        raise BenchError(f"{exc}\n--- {what} output ---\n{log_tail()}") from exc
    finally:
        ended = stop()
    result["server_loop"] = server.loop
    result["server_exit"] = ended
    return result
