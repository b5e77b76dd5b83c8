"""``chatroom-bench``: load a real server over loopback and report what each delivery costs.

Workloads:

``fanout``
    One room, R receivers and S senders. Each sender keeps a bounded window of messages
    it has sent but not yet seen come back (its own copy is the acknowledgement), so the
    server runs as fast as it can. Reports deliveries per second, latency from send to
    receive, lost messages, server CPU per delivery and peak RSS.
``latency``
    The same room at a fixed offered rate (by default half the measured maximum).
``idle``
    C clients connect, join and stay silent: server RSS per connection, time to connect.
``join-storm``
    C connected clients send ``hello`` at the same instant: time until all are welcomed.

The server runs in a subprocess pinned to core 0; clients are plain non-blocking sockets
driven by epoll in load processes pinned to core 1, so the Python client library's cost
does not limit the figures. Both CPU figures are printed side by side: when the load
processes are the ones at 100 %, the result says so instead of passing for the server's.
Every text carries its send time (CLOCK_MONOTONIC, shared by all processes on the host).

    chatroom-bench                     # every workload, medians of 3 runs
    chatroom-bench fanout --receivers 500 --baseline
    chatroom-bench --json > results.json
"""

from __future__ import annotations

import argparse
import array
import contextlib
import errno
import functools
import gc
import importlib.util
import json
import multiprocessing
import multiprocessing.connection
import os
import platform
import random
import re
import resource
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatroom.hub import FLUSH_PACING

__all__ = ["BenchError", "Options", "main", "run"]

WORKLOADS = ("fanout", "latency", "idle", "join-storm")
DEFAULT_RECEIVERS = (10, 100, 500, 1000)
DEFAULT_SENDERS = 4
# Unacknowledged messages per sender: enough to keep a server busy across a loop
# iteration, few enough that latency still means something (16 x 4 senders = 64 in flight).
DEFAULT_WINDOW = 16
DEFAULT_MESSAGE_BYTES = 80
DEFAULT_LATENCY_RECEIVERS = 100
DEFAULT_RATE_FRACTION = 0.5
DEFAULT_IDLE_CLIENTS = 10_000
DEFAULT_STORM_CLIENTS = 1_000
DEFAULT_RUNS = 3
DEFAULT_WARMUP_S = 1.0
DEFAULT_DURATION_S = 3.0
DEFAULT_LOAD_PROCS = 4
# Receivers that time every message; the others only count them. Parsing stamps was a
# quarter of the load side's time at 100 probes in a room of 500.
MAX_PROBES = 20
# Probes and senders are read the moment data arrives; every other receiver is read in
# a sweep every LAZY_SWEEP_S, a slice at a time so a probe never waits for a whole sweep.
# One load core cannot read 100 sockets per message the moment each is written without
# queueing behind itself: it then measures its own backlog. The server's work is the
# same either way (a write per member per flush), and what arrives between sweeps is
# far from filling a loopback socket buffer. In ``latency`` all of it runs in one load
# process (probes in several processes on one core wait for each other's turn on it),
# with fewer probes.
LATENCY_PROBES = 10
LAZY_SWEEP_S = 0.005
LAZY_SLICES = 10
DEFAULT_SEED = 1
SERVER_CORE = 0
LOAD_CORE = 1
# A send stamp is 19 digits, a sender number 4, a sequence number 9, with a space after
# each: the shortest text that still carries all three.
TEXT_HEADER_CHARS = 35
# One read takes what the kernel has queued, up to the default loopback socket buffer.
RECV_BYTES = 256 * 1024
CONNECT_TIMEOUT_S = 10.0
SERVER_START_TIMEOUT_S = 15.0
SERVER_STOP_TIMEOUT_S = 10.0
# Limits on the phases that are not timed, so a broken server cannot hang the bench.
SETUP_TIMEOUT_S = 120.0
DRAIN_TIMEOUT_S = 10.0
DEFAULT_IDLE_TIMEOUT_S = 30.0
DEFAULT_STORM_TIMEOUT_S = 30.0
# Clients in the middle of connect+hello per load process: a trickle the accept backlog
# (asyncio's default is 100) absorbs, so SYN retransmits (1 s each) do not set the pace.
DEFAULT_CONNECT_WINDOW = 32
# An open-loop sender never lets more than this many messages go unacknowledged: past it
# the offered rate is not being served, which the result reports as skipped sends.
LATENCY_MAX_UNACKED = 1000
# Load processes leave traffic this long after the last event, to count late leaves.
STORM_LINGER_S = 0.3
# A CPU at or above this share of one core during the window is the bottleneck.
SATURATED_PCT = 90.0
# Other processes using this much of the server's core make the throughput figures
# (not the CPU-per-delivery ones) unreliable; the report says so.
OTHER_WARN_PCT = 10.0
# --quiet-wait: a core this busy, with none of ours running, means someone else is busy.
QUIET_PCT = 15.0
QUIET_SAMPLE_S = 0.5
TICKS_PER_S = os.sysconf("SC_CLK_TCK")
NS_PER_S = 1_000_000_000

_MESSAGE = b'"type":"message"'
# One per frame: a quote inside a string value is escaped, so this cannot occur in one,
# and only welcome and joined nest events (their history), which are read apart. A
# multi-byte search skips ahead; counting b"\n" looks at every byte.
_FRAME = b'"type":"'
_JOIN = b'"type":"join"'
_LEAVE = b'"type":"leave"'
_ERROR = b'"type":"error"'
_WELCOME = b'{"type":"welcome"'
_LAZY_ABOVE = b'"lazy_members_above":'
_MEMBERS = b'"members":['
_STAMP = re.compile(rb'"text":"(\d{19}) ')
_SAY_PREFIX = b'{"type":"say","text":"'
_SAY_SUFFIX = b'"}\n'

# The targets the hub is to meet (README and docs/performance.md quote these).
TARGET_US_PER_DELIVERY = 0.5
TARGET_FANOUT_RECEIVERS = 500
TARGET_BASELINE_RATIO = 2.5
TARGET_LATENCY_RECEIVERS = 100
TARGET_P99_US = 2000.0
TARGET_IDLE_CLIENTS = 10_000
TARGET_RSS_PER_CONN_KIB = 8.0
TARGET_CONNECT_S = 5.0
TARGET_STORM_CLIENTS = 1_000
TARGET_STORM_S = 1.0


class BenchError(Exception):
    """The benchmark could not run (server failed to start, a load process died...)."""


# ---------------------------------------------------------------------------- options


@dataclass
class Options:
    """Everything one invocation needs; the CLI fills it from its arguments."""

    workloads: tuple[str, ...] = WORKLOADS
    receivers: tuple[int, ...] = DEFAULT_RECEIVERS
    senders: int = DEFAULT_SENDERS
    window: int = DEFAULT_WINDOW
    message_bytes: int = DEFAULT_MESSAGE_BYTES
    warmup_s: float = DEFAULT_WARMUP_S
    duration_s: float = DEFAULT_DURATION_S
    latency_receivers: int = DEFAULT_LATENCY_RECEIVERS
    rate: float | None = None
    rate_fraction: float = DEFAULT_RATE_FRACTION
    idle_clients: int = DEFAULT_IDLE_CLIENTS
    storm_clients: int = DEFAULT_STORM_CLIENTS
    idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S
    storm_timeout_s: float = DEFAULT_STORM_TIMEOUT_S
    runs: int = DEFAULT_RUNS
    load_procs: int = DEFAULT_LOAD_PROCS
    connect_window: int = DEFAULT_CONNECT_WINDOW
    # idle and join-storm clients say hello.lazy_members, as chatroom-tui does.
    lazy_members: bool = True
    seed: int = DEFAULT_SEED
    baseline: bool = False
    # Also benchmarks/floor_server.c: the hub's batching and pacing in C, with no limits,
    # history or checks: how much of a figure is this machine's kernel.
    floor: bool = False
    addr: tuple[str, int] | None = None
    server_pid: int | None = None
    server_loop: str = "auto"
    profile_dir: Path | None = None
    naive_script: Path | None = None
    pin: bool = True
    quiet_wait_s: float = 0.0
    workdir: Path | None = None
    progress: Callable[[str], None] | None = None


# ---------------------------------------------------------------------------- /proc


def _proc_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a process (all its threads), or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: fields start after the last ')'.
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_S


def _proc_status_kib(pid: int, key: str) -> int | None:
    """A ``kB`` figure from /proc/PID/status (VmRSS, VmHWM), or None."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _core_times() -> dict[int, tuple[int, int, int]]:
    """Per core: (busy, steal, total) jiffies since boot, from /proc/stat."""
    cores: dict[int, tuple[int, int, int]] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("cpu") and line[3:4].isdigit():
                name, *values = line.split()
                # user nice system idle iowait irq softirq steal; guest time is already
                # inside user, so the columns after steal are left out of the total.
                numbers = [int(value) for value in values[:8]] + [0] * (8 - len(values[:8]))
                user, nice, system, idle, iowait, irq, softirq, steal = numbers
                busy = user + nice + system + irq + softirq
                cores[int(name[3:])] = (busy, steal, busy + idle + iowait + steal)
    return cores


def _core_busy_pct(
    before: dict[int, tuple[int, int, int]], after: dict[int, tuple[int, int, int]]
) -> dict[str, float]:
    """Share of each core's time spent running anything (steal is not ours: left out)."""
    busy: dict[str, float] = {}
    for core, (busy_after, _, total_after) in after.items():
        busy_before, _, total_before = before.get(core, (0, 0, 0))
        total = total_after - total_before
        if total > 0:
            busy[str(core)] = round(100.0 * (busy_after - busy_before) / total, 1)
    return busy


def machine_info() -> dict[str, Any]:
    """What the figures were measured on."""
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "kernel": platform.release(),
        "uvloop_installed": importlib.util.find_spec("uvloop") is not None,
    }


# ---------------------------------------------------------------------------- processes


def _pin(core: int | None) -> None:
    if core is not None:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {core})


def _raise_nofile() -> None:
    """Lift the soft open-file limit to the hard one: 10,000 sockets need it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def _cores_available() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except OSError:
        return set(range(os.cpu_count() or 1))


def _plan_cores(pin: bool) -> tuple[int | None, int | None]:
    """(server core, load core), or Nones when there are not two cores to split."""
    cores = _cores_available()
    if not pin or not {SERVER_CORE, LOAD_CORE} <= cores:
        return None, None
    return SERVER_CORE, LOAD_CORE


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
    here = Path(__file__).resolve().parent.parent / "benchmarks" / name
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
    label: str, options: Options, workdir: Path, core: int | None, tag: str
) -> _Server:
    port = _free_port()
    transcript = workdir / f"{label}-{tag}-transcript.log"
    log_path = workdir / f"{label}-{tag}-server.log"
    bind = f"127.0.0.1:{port}"
    loop = ""
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
        if _server_accepts("--data-dir"):
            # A fresh history store per run, so no run replays another's events.
            command += ["--data-dir", str(workdir / f"{label}-{tag}-data")]
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
        command = [sys.executable, str(script), "--bind", bind, "--transcript", str(transcript)]
        loop = "threads"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_server_preexec(core),
        )
    server = _Server(label, "127.0.0.1", port, process.pid, process, log_path, loop)
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise BenchError(f"the {label} server exited at start:\n{server.log_tail()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                break
        except OSError:
            if time.monotonic() > deadline:
                _stop_server(server)
                raise BenchError(
                    f"the {label} server did not listen within "
                    f"{SERVER_START_TIMEOUT_S:g} s:\n{server.log_tail()}"
                ) from None
            time.sleep(0.02)
    return server


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


# ---------------------------------------------------------------------------- load side


@dataclass(frozen=True)
class _LoadSpec:
    """What one load process does: its clients, the workload, the server's address."""

    mode: str  # fanout | latency | idle | storm
    host: str
    port: int
    names: tuple[str, ...]
    # For each name: its sender number, or -1 for a receiver.
    sender_ids: tuple[int, ...]
    # For each name: whether it times every message it receives.
    probes: tuple[bool, ...]
    total_members: int
    window: int
    rate_per_sender: float
    message_bytes: int
    seed: int
    connect_window: int
    core: int | None
    phase_timeout_s: float
    lazy_members: bool = False


class _Client:
    """One connection on the load side: a socket and counters, nothing parsed per event."""

    __slots__ = (
        "closed",
        "connecting",
        "expected_joins",
        "fd",
        "joins",
        "marker",
        "messages",
        "name",
        "next_at",
        "pad",
        "probe",
        "resolved",
        "sender_id",
        "sent",
        "seq",
        "settled",
        "sock",
        "tail",
        "unacked",
        "welcomed",
        "welcomed_at",
    )

    def __init__(self, name: str, sender_id: int, probe: bool, pad: bytes) -> None:
        self.name = name
        self.sender_id = sender_id
        self.probe = probe
        self.marker = b'"from":"' + name.encode() + b'",'
        self.pad = pad
        self.sock: socket.socket | None = None
        self.fd = -1
        self.tail = b""
        self.welcomed = False
        self.welcomed_at = 0
        self.settled = False
        self.expected_joins = 0
        self.joins = 0
        self.messages = 0
        self.unacked = 0
        self.sent = 0
        self.seq = 0
        self.next_at = 0
        self.closed = False
        self.connecting = False
        self.resolved = False


def _hello_frame(name: str, lazy_members: bool = False) -> bytes:
    hello: dict[str, Any] = {"type": "hello", "protocol": 1, "name": name}
    if lazy_members:
        hello["lazy_members"] = True
    return (json.dumps(hello, separators=(",", ":")) + "\n").encode()


class _Load:
    """The load process: all its clients in one epoll loop, steered over a pipe."""

    def __init__(self, spec: _LoadSpec, ctrl: multiprocessing.connection.Connection) -> None:
        self.spec = spec
        self.ctrl = ctrl
        self.epoll = select.epoll()
        self.ctrl_fd = ctrl.fileno()
        self.epoll.register(self.ctrl_fd, select.EPOLLIN)
        self.inbox: deque[tuple[Any, ...]] = deque()
        rng = random.Random(spec.seed)
        pad_chars = max(0, spec.message_bytes - TEXT_HEADER_CHARS)
        letters = "abcdefghijklmnopqrstuvwxyz"
        self.clients = [
            _Client(
                name,
                sender_id,
                probe,
                "".join(rng.choice(letters) for _ in range(pad_chars)).encode()
                if sender_id >= 0
                else b"",
            )
            for name, sender_id, probe in zip(spec.names, spec.sender_ids, spec.probes, strict=True)
        ]
        self.senders = [client for client in self.clients if client.sender_id >= 0]
        self.phase_offsets = [rng.random() for _ in self.senders]
        self.by_fd: dict[int, _Client] = {}
        self.t0 = 1 << 62  # the measured window; nothing is in it until "go"
        self.t1 = 1 << 62
        self.sending = False
        self.window_deliveries = 0
        self.sends = array.array("q")
        self.marks = array.array("q")
        self.mark_counts = array.array("q")
        self.started = 0
        self.connected = 0
        self.hello_on_connect = True
        self.resolved = 0
        self.welcomed = 0
        self.settled = 0
        self.errors = 0
        self.error_samples: list[str] = []
        self.leaves = 0
        self.disconnects = 0
        self.connect_failures = 0
        self.skipped = 0
        self.last_welcome = 0
        self.last_settle = 0

    # ---------------------------------------------------------------- control

    def _read_ctrl(self) -> None:
        try:
            while self.ctrl.poll():
                self.inbox.append(self.ctrl.recv())
        except (EOFError, OSError):
            raise SystemExit("the bench went away") from None

    def _wait_ctrl(self, kind: str, timeout_s: float) -> tuple[Any, ...]:
        """Keep serving sockets until the bench sends ``kind``."""
        deadline = time.monotonic() + timeout_s
        while True:
            for index, message in enumerate(self.inbox):
                if message[0] == kind:
                    del self.inbox[index]
                    return message
            if time.monotonic() > deadline:
                raise SystemExit(f"no {kind!r} from the bench within {timeout_s:g} s")
            self._pump(0.05)

    def _send(self, message: tuple[Any, ...]) -> None:
        self.ctrl.send(message)

    # ---------------------------------------------------------------- sockets

    def _connect(self, client: _Client) -> None:
        """Start a non-blocking connect: a blocking one that waits out a SYN retransmit
        (1 s when the accept queue is full) would stop this whole process reading."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.started += 1
        error = sock.connect_ex((self.spec.host, self.spec.port))
        if error not in (0, errno.EINPROGRESS):
            sock.close()
            self._connect_failed(client, os.strerror(error))
            return
        client.sock = sock
        client.fd = sock.fileno()
        client.connecting = True
        self.by_fd[client.fd] = client
        self.epoll.register(client.fd, select.EPOLLOUT)

    def _connected(self, client: _Client) -> None:
        assert client.sock is not None
        error = client.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if error:
            self.epoll.unregister(client.fd)
            self.by_fd.pop(client.fd, None)
            client.sock.close()
            client.sock = None
            self._connect_failed(client, os.strerror(error))
            return
        client.connecting = False
        self.connected += 1
        self.epoll.modify(client.fd, select.EPOLLIN)
        if self.hello_on_connect:
            self._write(client, _hello_frame(client.name, self.spec.lazy_members))
        else:
            self._resolve(client)

    def _resolve(self, client: _Client) -> None:
        """This client's current phase is over for it (welcomed, connected, or failed)."""
        if not client.resolved:
            client.resolved = True
            self.resolved += 1

    def _connect_failed(self, client: _Client, reason: str) -> None:
        client.closed = True
        self.connect_failures += 1
        self._resolve(client)
        self._note_error(f"{client.name}: connect: {reason}")

    def _write(self, client: _Client, data: bytes) -> None:
        sock = client.sock
        if sock is None or client.closed:
            return
        try:
            sent = sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            self._lost(client)
            return
        if sent < len(data):
            # The server is not reading this socket fast enough: rare, so wait for it
            # here, bounded, rather than keep an output queue per client.
            sock.settimeout(CONNECT_TIMEOUT_S)
            try:
                sock.sendall(data[sent:])
            except OSError:
                self._lost(client)
            finally:
                if not client.closed:
                    sock.setblocking(False)

    def _lost(self, client: _Client) -> None:
        if client.closed:
            return
        client.closed = True
        self.disconnects += 1
        self._resolve(client)
        if client.sock is not None:
            with contextlib.suppress(OSError, ValueError):
                self.epoll.unregister(client.fd)
            self.by_fd.pop(client.fd, None)
            client.sock.close()

    def _note_error(self, text: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(text[:200])

    def _pump(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` for input, then take everything that is ready."""
        events = self.epoll.poll(timeout_s)
        by_fd = self.by_fd
        for fd, _ in events:
            client = by_fd.get(fd)
            if client is None:
                if fd == self.ctrl_fd:
                    self._read_ctrl()
                continue
            if client.connecting:
                self._connected(client)
                continue
            self._receive(client)

    def _receive(self, client: _Client) -> int:
        """Read one chunk and account for it; return its size (0: nothing, or gone)."""
        try:
            data = client.sock.recv(RECV_BYTES)  # type: ignore[union-attr]
        except BlockingIOError:
            return 0
        except OSError:
            data = b""
        if data:
            # One clock read per socket, not per poll: with hundreds of sockets ready,
            # the last is read milliseconds after the first, and its latency says so.
            self._feed(client, data, time.monotonic_ns())
        else:
            self._lost(client)
        return len(data)

    # ---------------------------------------------------------------- input

    def _feed(self, client: _Client, data: bytes, now: int) -> None:
        """Account for one chunk: only whole lines, counted with byte searches.

        Searches take bounds instead of slices: a chunk is up to 256 KiB, and copying it
        to drop a partial last line (or to prepend the previous one) costs as much as
        counting it.
        """
        start = 0
        if client.tail:
            first_end = data.find(b"\n") + 1
            if not first_end:
                client.tail += data
                return
            head, client.tail = client.tail + data[:first_end], b""
            self._count(client, head, 0, len(head), now)
            start = first_end
        end = data.rfind(b"\n", start) + 1
        if end < len(data):
            client.tail = data[max(start, end) :]
        if end > start:
            self._count(client, data, start, end, now)

    def _count(self, client: _Client, data: bytes, start: int, end: int, now: int) -> None:
        """Account for the whole lines in ``data[start:end]``."""
        if not client.welcomed:
            data = self._welcome(client, data[start:end], now)
            start, end = 0, len(data)
            if not data:
                return
        frames = data.count(_FRAME, start, end)
        count = data.count(_MESSAGE, start, end)
        if count:
            client.messages += count
            if self.t0 <= now < self.t1:
                self.window_deliveries += count
                if client.probe:
                    stamps = _STAMP.findall(data, start, end)
                    self.sends.extend(map(int, stamps))
                    self.marks.append(now)
                    self.mark_counts.append(len(stamps))
            if client.sender_id >= 0:
                acks = data.count(client.marker, start, end)
                if acks:
                    client.unacked -= acks
                    if self.sending and self.spec.mode == "fanout":
                        self._top_up(client, now)
        other = frames - count
        if other:
            joins = data.count(_JOIN, start, end)
            if joins:
                client.joins += joins
                if not client.settled and client.joins >= client.expected_joins:
                    client.settled = True
                    self.settled += 1
                    self.last_settle = now
                other -= joins
            if other:
                leaves = data.count(_LEAVE, start, end)
                self.leaves += leaves
                if other - leaves:
                    self._odd_lines(client, data[start:end])

    def _welcome(self, client: _Client, data: bytes, now: int) -> bytes:
        """Find the welcome; return what follows it (join events of this member on)."""
        start = data.find(_WELCOME)
        if start < 0:
            if self._odd_lines(client, data) and not client.closed:
                # A refused hello (name taken, server full...): this client is done.
                self._resolve(client)
                client.closed = True
                self.epoll.unregister(client.fd)
                self.by_fd.pop(client.fd, None)
                client.sock.close()  # type: ignore[union-attr]
            return b""
        if start:
            self._odd_lines(client, data[:start])
        end = data.index(b"\n", start)
        members_at = data.find(_MEMBERS, start, end)
        members = 0
        if members_at >= 0:
            members_at += len(_MEMBERS)
            members_end = data.index(b"]", members_at)
            if members_end > members_at:
                members = data.count(b'","', members_at, members_end) + 1
        client.welcomed = True
        client.welcomed_at = now
        # It is sent its own join and every later one: a settled room has sent them all.
        # A lazy member of a big room is owed its own join only (the server says it
        # took the request by telling the threshold).
        if data.find(_LAZY_ABOVE, start, end) >= 0:
            client.expected_joins = 1
        else:
            client.expected_joins = self.spec.total_members - members + 1
        self.welcomed += 1
        self._resolve(client)
        self.last_welcome = max(self.last_welcome, now)
        return data[end + 1 :]

    def _odd_lines(self, client: _Client, data: bytes) -> int:
        """The rare frames: errors are counted (and returned), pings answered."""
        errors = 0
        for line in data.split(b"\n"):
            if _ERROR in line:
                errors += 1
                self._note_error(f"{client.name}: {line[:160].decode(errors='replace')}")
            elif line.startswith(b'{"type":"ping"'):
                with contextlib.suppress(ValueError):
                    token = json.loads(line).get("token", "")
                    pong = {"type": "pong", "token": token}
                    self._write(client, (json.dumps(pong, separators=(",", ":")) + "\n").encode())
        return errors

    # ---------------------------------------------------------------- output

    def _frames(self, client: _Client, count: int, now: int) -> bytes:
        head = _SAY_PREFIX + b"%019d %04d " % (now, client.sender_id)
        tail = b" " + client.pad + _SAY_SUFFIX
        first = client.seq
        client.seq += count
        return b"".join([head + b"%09d" % seq + tail for seq in range(first, first + count)])

    def _top_up(self, client: _Client, now: int) -> None:
        room = self.spec.window - client.unacked
        if room > 0 and not client.closed:
            self._write(client, self._frames(client, room, now))
            client.unacked += room
            client.sent += room

    def _paced_sends(self, now: int, interval_ns: int) -> int:
        """Send what the schedule says is due; return ns until the next send is due."""
        next_due = now + NS_PER_S
        for client in self.senders:
            if client.closed:
                continue
            if client.next_at <= now:
                due = (now - client.next_at) // interval_ns + 1
                client.next_at += due * interval_ns
                room = LATENCY_MAX_UNACKED - client.unacked
                if due > room:
                    self.skipped += due - max(room, 0)
                    due = max(room, 0)
                if due:
                    self._write(client, self._frames(client, due, now))
                    client.unacked += due
                    client.sent += due
            next_due = min(next_due, client.next_at)
        return max(0, next_due - now)

    # ---------------------------------------------------------------- phases

    def join_all(self, deadline: float, *, hello: bool = True) -> None:
        """Connect (and say hello) with a bounded number in flight, until all resolve.

        Without ``hello`` a client is resolved once connected.
        """
        self.hello_on_connect = hello
        pending = deque(self.clients)
        window = self.spec.connect_window
        total = len(self.clients)
        while self.resolved < total:
            while pending and self.started - self.resolved < window:
                self._connect(pending.popleft())
            if time.monotonic() > deadline:
                return
            self._pump(0.05)

    def hello_all(self) -> None:
        """Every connected client says hello now; the welcomes start a new phase."""
        self.resolved = 0
        for client in self.clients:
            client.resolved = client.closed or client.sock is None
            self.resolved += client.resolved
        for client in self.clients:
            if not client.resolved:
                self._write(client, _hello_frame(client.name, self.spec.lazy_members))

    def wait_welcomed(self, deadline: float) -> None:
        total = len(self.clients)
        while self.resolved < total and time.monotonic() < deadline:
            self._pump(0.05)

    def settle(self, deadline: float) -> bool:
        """Read until every welcomed client has every join event it is owed."""
        while self.settled < self.welcomed:
            if time.monotonic() > deadline:
                return False
            self._pump(0.05)
        return True

    def linger(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self._pump(min(left, 0.05))

    def traffic(self, t_start: int, t0: int, t1: int) -> None:
        """Send from ``t_start`` until ``t1``, then wait for the senders' own copies."""
        self.t0, self.t1 = t0, t1
        clock = time.monotonic_ns
        while (now := clock()) < t_start:
            self._pump(min(0.05, (t_start - now) / NS_PER_S))
        paced = self.spec.mode == "latency"
        interval_ns = int(NS_PER_S / self.spec.rate_per_sender) if paced else 0
        self.sending = bool(self.senders)
        now = clock()
        for client, offset in zip(self.senders, self.phase_offsets, strict=True):
            if paced:
                client.next_at = now + int(offset * interval_ns)
            else:
                self._top_up(client, now)
        lazy = self._go_lazy()
        sweep_ns = int(LAZY_SWEEP_S * NS_PER_S / LAZY_SLICES)
        slice_size = -(-len(lazy) // LAZY_SLICES)
        slice_at = 0
        next_sweep = now + sweep_ns
        drain_deadline = t1 + int(DRAIN_TIMEOUT_S * NS_PER_S)
        while True:
            now = clock()
            if lazy and now >= next_sweep:
                self._sweep(lazy[slice_at : slice_at + slice_size])
                slice_at = (slice_at + slice_size) % len(lazy)
                next_sweep = now + sweep_ns
                now = clock()  # a send stamped before the sweep would count it as latency
            if self.sending and now >= t1:
                self.sending = False
            if not self.sending:
                if now > drain_deadline or not any(
                    client.unacked > 0 and not client.closed for client in self.senders
                ):
                    break
                self._pump(sweep_ns / NS_PER_S if lazy else 0.05)
                continue
            wait_ns = min(t1 - now, 50_000_000)
            if paced:
                wait_ns = min(wait_ns, self._paced_sends(now, interval_ns))
            if lazy:
                wait_ns = min(wait_ns, max(0, next_sweep - now))
            self._pump(wait_ns / NS_PER_S)
        self._sweep(lazy)
        for client in lazy:
            if not client.closed:
                self.epoll.modify(client.fd, select.EPOLLIN)

    def _go_lazy(self) -> list[_Client]:
        """Stop watching every receiver that is not a probe; ``_sweep`` reads them.

        Senders stay watched: in ``fanout`` their own copies pace them.
        """
        lazy = [
            client
            for client in self.clients
            if not client.probe and client.sender_id < 0 and not client.closed
        ]
        for client in lazy:
            self.epoll.modify(client.fd, 0)
        return lazy

    def _sweep(self, clients: list[_Client]) -> None:
        """Read whatever is queued on each of ``clients``, without waiting."""
        for client in clients:
            while not client.closed and self._receive(client) == RECV_BYTES:
                pass

    def drain(self, expected: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(client.messages >= expected for client in self.clients if not client.closed):
                return
            self._pump(0.05)

    # ---------------------------------------------------------------- report

    def latency_histogram(self) -> dict[int, int]:
        """Send-to-receive latencies in whole microseconds: {µs: count}."""
        values: list[int] = []
        sends = self.sends
        index = 0
        for now, count in zip(self.marks, self.mark_counts, strict=True):
            values.extend([(now - sent) // 1000 for sent in sends[index : index + count]])
            index += count
        return dict(Counter(values))

    def report(self, expected: int | None = None) -> dict[str, Any]:
        lost = extra = 0
        if expected is not None:
            for client in self.clients:
                if client.sock is None and not client.welcomed:
                    continue
                lost += max(0, expected - client.messages)
                extra += max(0, client.messages - expected)
        return {
            "clients": len(self.clients),
            "welcomed": self.welcomed,
            "settled": self.settled,
            "window_deliveries": self.window_deliveries,
            "latency_us": self.latency_histogram(),
            "sent": sum(client.sent for client in self.senders),
            "lost": lost,
            "extra": extra,
            "errors": self.errors,
            "error_samples": self.error_samples,
            "leaves": self.leaves,
            "disconnects": self.disconnects,
            "connect_failures": self.connect_failures,
            "skipped": self.skipped,
            "last_welcome": self.last_welcome,
            "last_settle": self.last_settle,
        }

    def close(self) -> None:
        for client in self.clients:
            if client.sock is not None:
                with contextlib.suppress(OSError):
                    client.sock.close()
        self.epoll.close()


def _load_main(spec: _LoadSpec, ctrl: multiprocessing.connection.Connection) -> None:
    """Entry point of a load process."""
    _pin(spec.core)
    _raise_nofile()
    # Nothing here makes reference cycles; a collection pass would only add pauses.
    gc.disable()
    load = _Load(spec, ctrl)
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


class _CpuWindow:
    """CPU used by the server, the load processes and each core between two samples."""

    def __init__(self, server: _Server, group: _LoadGroup) -> None:
        self.server = server
        self.group = group
        self.started_ns = time.monotonic_ns()
        self.server_before = _proc_cpu_s(server.pid) if server.pid else None
        self.load_before = group.cpu_s()
        self.cores_before = _core_times()

    def stop(self) -> dict[str, Any]:
        seconds = (time.monotonic_ns() - self.started_ns) / NS_PER_S
        server_after = _proc_cpu_s(self.server.pid) if self.server.pid else None
        load_cpu = self.group.cpu_s() - self.load_before
        cores = _core_busy_pct(self.cores_before, _core_times())
        server_cpu = (
            server_after - self.server_before
            if server_after is not None and self.server_before is not None
            else None
        )
        server_pct = 100.0 * server_cpu / seconds if server_cpu is not None and seconds else None
        load_pct = 100.0 * load_cpu / seconds if seconds else 0.0
        other_pct = _other_pct(cores, server_pct)
        return {
            "server_cpu_s": server_cpu,
            "server_cpu_pct": server_pct,
            "load_cpu_pct": load_pct,
            "core_busy_pct": cores,
            "server_core_other_pct": other_pct,
            "bottleneck": _bottleneck(server_pct, load_pct, other_pct),
        }


def _split(items: Sequence[Any], parts: int) -> list[list[Any]]:
    """Round-robin: with the server fanning out in join order, each part gets a spread."""
    buckets: list[list[Any]] = [[] for _ in range(max(1, parts))]
    for index, item in enumerate(items):
        buckets[index % len(buckets)].append(item)
    return [bucket for bucket in buckets if bucket]


def _sleep_until(deadline_ns: int) -> None:
    while (left := deadline_ns - time.monotonic_ns()) > 0:
        time.sleep(left / NS_PER_S)


def _sum(reports: Iterable[dict[str, Any]], key: str) -> int:
    return sum(int(report[key]) for report in reports)


def _errors(reports: Iterable[dict[str, Any]]) -> list[str]:
    return [sample for report in reports for sample in report["error_samples"]][:5]


def _percentiles(histogram: dict[int, int]) -> dict[str, float | None]:
    """p50, p99 and max (nearest rank) of a {µs: count} histogram."""
    total = sum(histogram.values())
    if not total:
        return {"p50_us": None, "p99_us": None, "max_us": None}
    result: dict[str, float | None] = {}
    ranks = {"p50_us": 0.50, "p99_us": 0.99}
    seen = 0
    keys = sorted(histogram)
    wanted = sorted((max(1, int(total * share + 0.999999)), name) for name, share in ranks.items())
    position = 0
    for key in keys:
        seen += histogram[key]
        while position < len(wanted) and seen >= wanted[position][0]:
            result[wanted[position][1]] = float(key)
            position += 1
    result["max_us"] = float(keys[-1])
    return result


def _merge_histograms(reports: Iterable[dict[str, Any]]) -> dict[int, int]:
    merged: Counter[int] = Counter()
    for report in reports:
        merged.update(report["latency_us"])
    return dict(merged)


def _other_pct(cores: dict[str, float], server_pct: float | None) -> float | None:
    """CPU share of the server's core used by anything but the server."""
    if server_pct is None or str(SERVER_CORE) not in cores:
        return None
    return max(0.0, cores[str(SERVER_CORE)] - server_pct)


def _bottleneck(server_pct: float | None, load_pct: float, other_pct: float | None) -> str:
    """Which side held the throughput down, judged from CPU shares in the window."""
    server_busy = server_pct is not None and server_pct >= SATURATED_PCT
    if server_busy and load_pct >= SATURATED_PCT:
        # Both at their limit: the figures are the pair's, not the server's alone.
        return "both (server and load generator)"
    if server_busy:
        return "server"
    if load_pct >= SATURATED_PCT:
        return "load generator"
    if other_pct is not None and other_pct >= OTHER_WARN_PCT:
        return "server core shared with other processes"
    return "neither (window or latency bound)"


# ---------------------------------------------------------------------------- workloads


def _names(role: str, run_tag: str, count: int) -> list[str]:
    return [f"{role}{run_tag}-{index:05d}" for index in range(count)]


def _spread(count: int, chosen: int) -> frozenset[int]:
    """``chosen`` indices of ``range(count)``, evenly spaced, the first and last included."""
    if chosen >= count:
        return frozenset(range(count))
    if chosen <= 1:
        return frozenset(range(min(chosen, count)))
    return frozenset(round(step * (count - 1) / (chosen - 1)) for step in range(chosen))


def _room_specs(
    options: Options,
    server: _Server,
    mode: str,
    receivers: int,
    rate: float,
    load_core: int | None,
    run_tag: str,
) -> list[_LoadSpec]:
    senders = _names("s", run_tag, options.senders)
    listeners = _names("r", run_tag, receivers)
    # Every receiver counts every message, but only a spread of them (from the first to
    # the last of the room) times each one:
    # parsing stamps is most of the load side's cost per delivery, and a load generator
    # slower than the server measures itself.
    probes = _spread(receivers, LATENCY_PROBES if mode == "latency" else MAX_PROBES)
    clients = [(name, number, False) for number, name in enumerate(senders)] + [
        (name, -1, index in probes) for index, name in enumerate(listeners)
    ]
    total = len(clients)
    procs = 1 if mode == "latency" else min(options.load_procs, total)
    # Senders share processes with receivers: a process that falls behind reading also
    # sees its own sender's acknowledgements late, so it slows that sender down instead
    # of letting unread data pile up in the server.
    parts = _split(clients, procs)
    return [
        _LoadSpec(
            mode=mode,
            host=server.host,
            port=server.port,
            names=tuple(name for name, _, _ in part),
            sender_ids=tuple(sender for _, sender, _ in part),
            probes=tuple(probe for _, _, probe in part),
            total_members=total,
            window=options.window,
            rate_per_sender=rate / max(1, options.senders),
            message_bytes=options.message_bytes,
            seed=options.seed + number,
            connect_window=options.connect_window,
            core=load_core,
            phase_timeout_s=SETUP_TIMEOUT_S,
        )
        for number, part in enumerate(parts)
    ]


def _room_run(
    options: Options,
    server: _Server,
    mode: str,
    receivers: int,
    rate: float,
    load_core: int | None,
    run_tag: str,
) -> dict[str, Any]:
    """One run of ``fanout`` (closed loop) or ``latency`` (open loop at ``rate`` msg/s)."""
    specs = _room_specs(options, server, mode, receivers, rate, load_core, run_tag)
    group = _LoadGroup(specs)
    try:
        group.collect("ready", SETUP_TIMEOUT_S)
        t_start = time.monotonic_ns() + 100_000_000
        t0 = t_start + int(options.warmup_s * NS_PER_S)
        t1 = t0 + int(options.duration_s * NS_PER_S)
        group.send(("go", t_start, t0, t1))
        _sleep_until(t0)
        server_before = _proc_cpu_s(server.pid) if server.pid else None
        load_before = group.cpu_s()
        cores_before = _core_times()
        _sleep_until(t1)
        server_after = _proc_cpu_s(server.pid) if server.pid else None
        load_after = group.cpu_s()
        cores_after = _core_times()
        sent_reports = group.collect("sent", options.duration_s + SETUP_TIMEOUT_S)
        expected = _sum(sent_reports, "sent")
        group.send(("expect", expected))
        reports = group.collect("result", DRAIN_TIMEOUT_S + SETUP_TIMEOUT_S)
    finally:
        group.close()
    window_s = (t1 - t0) / NS_PER_S
    deliveries = _sum(reports, "window_deliveries")
    members = receivers + options.senders
    server_cpu = (
        server_after - server_before
        if server_after is not None and server_before is not None
        else None
    )
    server_pct = 100.0 * server_cpu / window_s if server_cpu is not None else None
    load_pct = 100.0 * (load_after - load_before) / window_s
    cores = _core_busy_pct(cores_before, cores_after)
    other_pct = _other_pct(cores, server_pct)
    result: dict[str, Any] = {
        "members": members,
        "sent": expected,
        "deliveries_per_s": deliveries / window_s,
        "messages_per_s": deliveries / window_s / members,
        **_percentiles(_merge_histograms(reports)),
        "lost": _sum(reports, "lost"),
        "extra": _sum(reports, "extra"),
        "disconnects": _sum(reports, "disconnects"),
        "errors": _sum(reports, "errors"),
        "server_cpu_s": server_cpu,
        "server_cpu_pct": server_pct,
        "server_us_per_delivery": (
            1e6 * server_cpu / deliveries if server_cpu is not None and deliveries else None
        ),
        "load_cpu_pct": load_pct,
        "core_busy_pct": cores,
        "server_core_other_pct": other_pct,
        "server_peak_rss_kib": _proc_status_kib(server.pid, "VmHWM") if server.pid else None,
        "bottleneck": _bottleneck(server_pct, load_pct, other_pct),
        "error_samples": _errors(reports),
    }
    if mode == "latency":
        result["offered_messages_per_s"] = rate
        result["skipped_sends"] = _sum(reports, "skipped")
    return result


def _silent_members(
    options: Options,
    server: _Server,
    load_core: int | None,
    mode: str,
    names: list[str],
    timeout_s: float,
) -> _LoadGroup:
    """Load processes whose members join and say nothing (idle and join-storm)."""
    specs = [
        _LoadSpec(
            mode=mode,
            host=server.host,
            port=server.port,
            names=tuple(part),
            sender_ids=(-1,) * len(part),
            probes=(False,) * len(part),
            total_members=len(names),
            window=0,
            rate_per_sender=0.0,
            message_bytes=options.message_bytes,
            seed=options.seed + number,
            connect_window=options.connect_window,
            core=load_core,
            phase_timeout_s=timeout_s,
            lazy_members=options.lazy_members,
        )
        for number, part in enumerate(_split(names, options.load_procs))
    ]
    return _LoadGroup(specs)


def _idle_run(
    options: Options, server: _Server, load_core: int | None, run_tag: str
) -> dict[str, Any]:
    clients = options.idle_clients
    names = _names("w", run_tag, clients)
    group = _silent_members(options, server, load_core, "idle", names, options.idle_timeout_s)
    try:
        group.collect("ready", SETUP_TIMEOUT_S)
        rss_before = _proc_status_kib(server.pid, "VmRSS") if server.pid else None
        cpu = _CpuWindow(server, group)
        t_go = time.monotonic_ns()
        group.send(("go",))
        welcomed = group.collect("welcomed", options.idle_timeout_s + SETUP_TIMEOUT_S)
        connect_cpu = cpu.stop()
        settled = group.collect("settled", options.idle_timeout_s + SETUP_TIMEOUT_S)
        t_settled_seen = time.monotonic_ns()
        rss_after = _proc_status_kib(server.pid, "VmRSS") if server.pid else None
        group.send(("report",))
        reports = group.collect("result", SETUP_TIMEOUT_S)
    finally:
        group.close()
    connected = _sum(welcomed, "welcomed")
    all_in = connected == clients
    last_welcome = max(report["last_welcome"] for report in welcomed)
    settled_count = _sum(settled, "settled")
    last_settle = max(report["last_settle"] for report in settled)
    per_conn = (
        (rss_after - rss_before) / connected
        if rss_after is not None and rss_before is not None and connected
        else None
    )
    return {
        "clients": clients,
        "connected": connected,
        "connect_s": (last_welcome - t_go) / NS_PER_S if all_in else None,
        "settled": settled_count,
        "settle_s": (
            (last_settle - t_go) / NS_PER_S if settled_count == clients and last_settle else None
        ),
        "rss_before_kib": rss_before,
        "rss_after_kib": rss_after,
        "rss_per_conn_kib": per_conn,
        "server_peak_rss_kib": _proc_status_kib(server.pid, "VmHWM") if server.pid else None,
        **connect_cpu,
        "errors": _sum(reports, "errors"),
        "connect_failures": _sum(reports, "connect_failures"),
        "leaves": _sum(reports, "leaves"),
        "disconnects": _sum(reports, "disconnects"),
        "hit_limit": not all_in or settled_count < clients,
        "observed_s": (t_settled_seen - t_go) / NS_PER_S,
        "error_samples": _errors(reports),
    }


def _storm_run(
    options: Options, server: _Server, load_core: int | None, run_tag: str
) -> dict[str, Any]:
    clients = options.storm_clients
    names = _names("j", run_tag, clients)
    group = _silent_members(options, server, load_core, "storm", names, options.storm_timeout_s)
    try:
        ready = group.collect("ready", SETUP_TIMEOUT_S)
        t_go = time.monotonic_ns() + 100_000_000
        group.send(("go", t_go))
        _sleep_until(t_go)
        cpu = _CpuWindow(server, group)
        reports = group.collect("result", 2 * options.storm_timeout_s + SETUP_TIMEOUT_S)
        storm_cpu = cpu.stop()
    finally:
        group.close()
    welcomed = _sum(reports, "welcomed")
    settled = _sum(reports, "settled")
    last_welcome = max(report["last_welcome"] for report in reports)
    last_settle = max(report["last_settle"] for report in reports)
    return {
        "clients": clients,
        "connect_failures": _sum(ready, "connect_failures"),
        "welcomed": welcomed,
        "welcome_s": (last_welcome - t_go) / NS_PER_S if welcomed == clients else None,
        "settle_s": (last_settle - t_go) / NS_PER_S if settled == clients else None,
        "errors": _sum(reports, "errors"),
        "leaves": _sum(reports, "leaves"),
        "disconnects": _sum(reports, "disconnects"),
        **storm_cpu,
        "server_peak_rss_kib": _proc_status_kib(server.pid, "VmHWM") if server.pid else None,
        "hit_limit": welcomed < clients or settled < clients,
        "error_samples": _errors(reports),
    }


# ---------------------------------------------------------------------------- aggregation

# Counts that must be zero: summed over runs, so one bad run is never hidden by a median.
_SUMMED = frozenset(
    {
        "lost",
        "extra",
        "disconnects",
        "errors",
        "connect_failures",
        "leaves",
        "skipped_sends",
    }
)


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for key in runs[0]:
        values = [run.get(key) for run in runs]
        if key in _SUMMED:
            summary[key] = sum(value or 0 for value in values)
        elif all(isinstance(value, bool) for value in values):
            summary[key] = any(values)
        elif all(
            isinstance(value, int | float) and not isinstance(value, bool) for value in values
        ):
            summary[key] = statistics.median(values)  # type: ignore[type-var]
        elif all(isinstance(value, str) for value in values):
            summary[key] = Counter(values).most_common(1)[0][0]
        elif key == "error_samples":
            summary[key] = [sample for value in values for sample in value or []][:5]
        elif key == "core_busy_pct":
            cores = {core for value in values for core in (value or {})}
            summary[key] = {
                core: statistics.median([value.get(core, 0.0) for value in values if value])
                for core in sorted(cores)
            }
        else:
            # Some run lacked it (a timeout): the median of the runs that have it.
            numbers = [value for value in values if isinstance(value, int | float)]
            summary[key] = statistics.median(numbers) if numbers else None
    return summary


@dataclass
class _Entry:
    workload: str
    server: str
    size: dict[str, Any]
    runs: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "workload": self.workload,
            "server": self.server,
            "size": self.size,
            "median": _median(self.runs) if self.runs else {},
            "runs": self.runs,
        }


def _find(entries: list[_Entry], workload: str, server: str, **size: Any) -> _Entry | None:
    for entry in entries:
        if (
            entry.workload == workload
            and entry.server == server
            and all(entry.size.get(key) == value for key, value in size.items())
        ):
            return entry
    return None


def _targets(entries: list[_Entry], *, lazy_members: bool = False) -> list[dict[str, Any]]:
    """Each target with the measured value, or a note saying what would measure it."""
    targets: list[dict[str, Any]] = []

    def median(workload: str, server: str, key: str, **size: Any) -> Any:
        entry = _find(entries, workload, server, **size)
        return _median(entry.runs).get(key) if entry and entry.runs else None

    def add(name: str, limit: str, value: Any, met: bool | None, how: str = "") -> None:
        targets.append(
            {
                "target": name,
                "limit": limit,
                "value": value,
                "met": met,
                "note": "" if value is not None else how,
            }
        )

    size = {"receivers": TARGET_FANOUT_RECEIVERS}
    value = median("fanout", "chatroom", "server_us_per_delivery", **size)
    add(
        "fanout R=500: server CPU per delivery",
        f"<= {TARGET_US_PER_DELIVERY} µs",
        value,
        None if value is None else value <= TARGET_US_PER_DELIVERY,
        "run fanout R=500",
    )
    lost = median("fanout", "chatroom", "lost", **size)
    add(
        "fanout R=500: messages lost",
        "0",
        lost,
        None if lost is None else lost == 0,
        "run fanout R=500",
    )
    ours = median("fanout", "chatroom", "deliveries_per_s", **size)
    naive = median("fanout", "naive", "deliveries_per_s", **size)
    ratio = ours / naive if ours and naive else None
    add(
        "fanout R=500: deliveries/s vs naive",
        f">= {TARGET_BASELINE_RATIO}x",
        ratio,
        None if ratio is None else ratio >= TARGET_BASELINE_RATIO,
        "run fanout R=500 with --baseline",
    )
    value = median("latency", "chatroom", "p99_us", receivers=TARGET_LATENCY_RECEIVERS)
    add(
        "latency R=100 at 50% of max: p99",
        f"< {TARGET_P99_US:g} µs",
        value,
        None if value is None else value < TARGET_P99_US,
        "run latency R=100",
    )
    value = median("idle", "chatroom", "rss_per_conn_kib", clients=TARGET_IDLE_CLIENTS)
    add(
        "idle C=10,000: server RSS per connection",
        f"<= {TARGET_RSS_PER_CONN_KIB:g} KiB",
        value,
        None if value is None else value <= TARGET_RSS_PER_CONN_KIB,
        "run idle C=10,000",
    )
    value = median("idle", "chatroom", "connect_s", clients=TARGET_IDLE_CLIENTS)
    entry = _find(entries, "idle", "chatroom", clients=TARGET_IDLE_CLIENTS)
    add(
        "idle C=10,000: all connected" + (" (lazy members)" if lazy_members else " (every join)"),
        f"< {TARGET_CONNECT_S:g} s",
        value,
        None if entry is None else value is not None and value < TARGET_CONNECT_S,
        "run idle C=10,000" if entry is None else "not all connected within the limit",
    )
    value = median("join-storm", "chatroom", "welcome_s", clients=TARGET_STORM_CLIENTS)
    errors = median("join-storm", "chatroom", "errors", clients=TARGET_STORM_CLIENTS)
    entry = _find(entries, "join-storm", "chatroom", clients=TARGET_STORM_CLIENTS)
    add(
        "join-storm 1,000: all welcomed, no errors",
        f"<= {TARGET_STORM_S:g} s, 0 errors",
        value,
        None if entry is None else value is not None and value <= TARGET_STORM_S and errors == 0,
        "run join-storm 1,000" if entry is None else "not all welcomed within the limit",
    )
    return targets


# ---------------------------------------------------------------------------- driver


def _wait_quiet(limit_s: float) -> float:
    """Wait (up to ``limit_s``) until no core is busier than QUIET_PCT; return the wait.

    Other people's test runs on a shared machine are the commonest way to get figures
    that are wrong without looking wrong.
    """
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        before = _core_times()
        time.sleep(QUIET_SAMPLE_S)
        busy = _core_busy_pct(before, _core_times())
        if not busy or max(busy.values()) < QUIET_PCT:
            break
    return time.monotonic() - started


def _call_with_tag(
    body: Callable[[str, _Server], dict[str, Any]], run_tag: str, server: _Server
) -> dict[str, Any]:
    return body(run_tag, server)


def _fanout_body(
    options: Options, receivers: int, load_core: int | None, run_tag: str, server: _Server
) -> dict[str, Any]:
    return _room_run(options, server, "fanout", receivers, 0.0, load_core, run_tag)


def _say(options: Options, text: str) -> None:
    if options.progress is not None:
        options.progress(text)


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
    try:
        result = body(server)
    except BenchError as exc:
        raise BenchError(f"{exc}\n--- {label} server output ---\n{server.log_tail()}") from exc
    finally:
        ended = _stop_server(server)
    result["server_loop"] = server.loop
    result["server_exit"] = ended
    return result


def run(options: Options) -> dict[str, Any]:
    """Run the selected workloads and return everything measured, ready for JSON."""
    _check_companions(options)
    _raise_nofile()
    server_core, load_core = _plan_cores(options.pin)
    _pin(load_core)  # the bench itself is load, not server
    servers = ["chatroom"]
    if options.baseline:
        servers.append("naive")
    if options.floor:
        servers.append("floor")
    entries: list[_Entry] = []
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        if options.workdir is not None:
            workdir = options.workdir
            workdir.mkdir(parents=True, exist_ok=True)
        else:
            workdir = Path(
                stack.enter_context(tempfile.TemporaryDirectory(prefix="chatroom-bench-"))
            )
        counter = 0

        def tag() -> str:
            nonlocal counter
            counter += 1
            return f"{counter:03d}"

        def repeat(
            workload: str, size: dict[str, Any], body: Callable[[str, _Server], dict[str, Any]]
        ) -> None:
            for label in servers:
                entries.append(_Entry(workload, label, dict(size)))
            stopped: set[str] = set()
            for run_number in range(options.runs):
                for label in servers:
                    if label in stopped:
                        continue
                    entry = _find(entries, workload, label, **size)
                    assert entry is not None
                    run_tag = tag()
                    waited = _wait_quiet(options.quiet_wait_s) if options.quiet_wait_s else 0.0
                    _say(options, f"{workload} {size} {label}: run {run_number + 1}")
                    result = _with_server(
                        options,
                        label,
                        workdir,
                        server_core,
                        run_tag,
                        functools.partial(_call_with_tag, body, run_tag),
                    )
                    result["quiet_wait_s"] = round(waited, 1)
                    entry.runs.append(result)
                    if result.get("hit_limit"):
                        # Further runs would hit the same limit: one is the answer.
                        stopped.add(label)

        if "fanout" in options.workloads:
            for receivers in options.receivers:
                repeat(
                    "fanout",
                    {"receivers": receivers, "senders": options.senders},
                    functools.partial(_fanout_body, options, receivers, load_core),
                )
        if "latency" in options.workloads:
            rate = options.rate
            if rate is None:
                measured = _find(entries, "fanout", "chatroom", receivers=options.latency_receivers)
                if measured is None or not measured.runs:
                    _say(
                        options,
                        f"latency: measuring the maximum at R={options.latency_receivers} first",
                    )
                    calibration = _with_server(
                        options,
                        "chatroom",
                        workdir,
                        server_core,
                        tag(),
                        lambda server: _room_run(
                            options,
                            server,
                            "fanout",
                            options.latency_receivers,
                            0.0,
                            load_core,
                            "c",
                        ),
                    )
                    maximum = calibration["messages_per_s"]
                else:
                    maximum = _median(measured.runs)["messages_per_s"]
                rate = options.rate_fraction * maximum
            fixed_rate = rate
            repeat(
                "latency",
                {
                    "receivers": options.latency_receivers,
                    "senders": options.senders,
                    "rate": round(fixed_rate, 1),
                },
                lambda run_tag, server: _room_run(
                    options,
                    server,
                    "latency",
                    options.latency_receivers,
                    fixed_rate,
                    load_core,
                    run_tag,
                ),
            )
        if "idle" in options.workloads:
            repeat(
                "idle",
                {"clients": options.idle_clients},
                lambda run_tag, server: _idle_run(options, server, load_core, run_tag),
            )
        if "join-storm" in options.workloads:
            repeat(
                "join-storm",
                {"clients": options.storm_clients},
                lambda run_tag, server: _storm_run(options, server, load_core, run_tag),
            )

    return {
        "machine": {**machine_info(), "server_core": server_core, "load_core": load_core},
        "config": {
            "runs": options.runs,
            "senders": options.senders,
            "window": options.window,
            "message_bytes": options.message_bytes,
            "warmup_s": options.warmup_s,
            "duration_s": options.duration_s,
            "load_procs": options.load_procs,
            "connect_window": options.connect_window,
            "lazy_members": options.lazy_members,
            "seed": options.seed,
            "rate_fraction": options.rate_fraction,
            "server_loop": options.server_loop,
            "addr": f"{options.addr[0]}:{options.addr[1]}" if options.addr else None,
            "baseline": options.baseline,
            "floor": options.floor,
        },
        "results": [entry.to_json() for entry in entries],
        "targets": _targets(entries, lazy_members=options.lazy_members),
        "wall_s": round(time.monotonic() - started, 1),
    }


# ---------------------------------------------------------------------------- output

# (key, heading, format) per workload, in table order.
_COLUMNS: dict[str, list[tuple[str, str, str]]] = {
    "fanout": [
        ("deliveries_per_s", "deliveries/s ↑", ",.0f"),
        ("messages_per_s", "messages/s ↑", ",.0f"),
        ("p50_us", "p50 µs ↓", ",.0f"),
        ("p99_us", "p99 µs ↓", ",.0f"),
        ("max_us", "max µs ↓", ",.0f"),
        ("lost", "lost", ",d"),
        ("server_us_per_delivery", "server CPU µs/delivery ↓", ".2f"),
        ("server_cpu_pct", "server CPU %", ".0f"),
        ("load_cpu_pct", "load CPU %", ".0f"),
        ("server_peak_rss_kib", "server peak RSS MiB ↓", "mib"),
        ("bottleneck", "bottleneck", "s"),
    ],
    "latency": [
        ("offered_messages_per_s", "offered msg/s", ",.0f"),
        ("messages_per_s", "delivered msg/s", ",.0f"),
        ("p50_us", "p50 µs ↓", ",.0f"),
        ("p99_us", "p99 µs ↓", ",.0f"),
        ("max_us", "max µs ↓", ",.0f"),
        ("lost", "lost", ",d"),
        ("skipped_sends", "sends skipped", ",d"),
        ("server_us_per_delivery", "server CPU µs/delivery ↓", ".2f"),
        ("server_cpu_pct", "server CPU %", ".0f"),
        ("load_cpu_pct", "load CPU %", ".0f"),
    ],
    "idle": [
        ("connected", "connected", ",.0f"),
        ("connect_s", "all connected s ↓", ".2f"),
        ("settle_s", "all joins delivered s ↓", ".2f"),
        ("rss_per_conn_kib", "RSS/connection KiB ↓", ".2f"),
        ("rss_after_kib", "RSS after MiB ↓", "mib"),
        ("server_peak_rss_kib", "peak RSS MiB ↓", "mib"),
        ("server_cpu_s", "server CPU s to connect ↓", ".2f"),
        ("server_cpu_pct", "server CPU %", ".0f"),
        ("load_cpu_pct", "load CPU %", ".0f"),
        ("bottleneck", "bottleneck", "s"),
        ("errors", "errors", ",d"),
        ("leaves", "leaves", ",d"),
    ],
    "join-storm": [
        ("welcomed", "welcomed", ",.0f"),
        ("welcome_s", "all welcomed s ↓", ".3f"),
        ("settle_s", "all joins delivered s ↓", ".3f"),
        ("server_cpu_s", "server CPU s ↓", ".2f"),
        ("server_cpu_pct", "server CPU %", ".0f"),
        ("load_cpu_pct", "load CPU %", ".0f"),
        ("errors", "errors", ",d"),
        ("leaves", "leaves", ",d"),
        ("connect_failures", "connect failures", ",d"),
    ],
}
_LOWER_IS_BETTER = frozenset(
    {
        "p50_us",
        "p99_us",
        "max_us",
        "server_us_per_delivery",
        "server_peak_rss_kib",
        "connect_s",
        "settle_s",
        "rss_per_conn_kib",
        "rss_after_kib",
        "welcome_s",
        "server_cpu_s",
    }
)


def _format(value: Any, spec: str) -> str:
    if value is None:
        return "—"
    if spec == "s":
        return str(value)
    if spec == "mib":
        return f"{value / 1024:,.1f}"
    if spec.endswith("d"):
        return format(int(value), spec)
    return format(float(value), spec)


def _size_text(size: dict[str, Any]) -> str:
    short = {"receivers": "R", "senders": "S", "clients": "C", "rate": "msg/s"}
    return " ".join(
        f"{short.get(key, key)}={value:,}"
        if isinstance(value, int)
        else f"{short.get(key, key)}={value:,.0f}"
        for key, value in size.items()
    )


def print_report(report: dict[str, Any]) -> None:
    """The human-readable tables: one per workload, then the targets."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        # Piped into a file or a pager: do not squeeze the columns into 80 characters.
        console = Console(width=140)
    machine = report["machine"]
    config = report["config"]
    pinned = (
        f"server on core {machine['server_core']}, load on core {machine['load_core']}"
        if machine["server_core"] is not None
        else "not pinned (fewer than 2 cores)"
    )
    console.print(
        f"[bold]chatroom-bench[/] on {machine['nproc']} x {machine['cpu_model']}, "
        f"Python {machine['python']}, {pinned}",
        highlight=False,
    )
    console.print(
        f"medians of {config['runs']} runs; {config['senders']} senders, window "
        f"{config['window']}, text {config['message_bytes']} bytes, warm-up "
        f"{config['warmup_s']:g} s, measured {config['duration_s']:g} s, seed {config['seed']}; "
        f"idle and join-storm clients "
        f"{'ask for lazy members' if config.get('lazy_members') else 'take every join'}; "
        f"wall time {report['wall_s']:g} s",
        highlight=False,
        style="dim",
    )
    results = report["results"]
    for workload in WORKLOADS:
        entries = [entry for entry in results if entry["workload"] == workload]
        if not entries:
            continue
        servers = list(dict.fromkeys(entry["server"] for entry in entries))
        loops = {
            entry["server"]: entry["runs"][0].get("server_loop", "")
            for entry in entries
            if entry["runs"]
        }
        table = Table(title=workload, title_justify="left", title_style="bold")
        table.add_column("size")
        table.add_column("metric")
        for server in servers:
            table.add_column(f"{server} ({loops.get(server, '')})", justify="right")
        # Ratios are against the naive baseline when it ran, else against the other one.
        versus = "naive" if "naive" in servers[1:] else (servers[1] if len(servers) > 1 else None)
        if versus is not None:
            table.add_column(f"{servers[0]} ÷ {versus}", justify="right")
        sizes: list[dict[str, Any]] = []
        for entry in entries:
            if entry["size"] not in sizes:
                sizes.append(entry["size"])
        for size in sizes:
            by_server = {
                entry["server"]: entry["median"] for entry in entries if entry["size"] == size
            }
            for number, (key, heading, spec) in enumerate(_COLUMNS[workload]):
                cells = [_format(by_server.get(server, {}).get(key), spec) for server in servers]
                if versus is not None:
                    first, second = (
                        by_server.get(server, {}).get(key) for server in (servers[0], versus)
                    )
                    ratio = "—"
                    if (
                        isinstance(first, int | float)
                        and isinstance(second, int | float)
                        and not isinstance(first, bool)
                        and second
                        and key not in _SUMMED
                        and spec != "s"
                    ):
                        ratio = f"{first / second:.2f}x"
                    cells.append(ratio)
                table.add_row(
                    _size_text(size) if number == 0 else "",
                    heading,
                    *cells,
                    end_section=number == len(_COLUMNS[workload]) - 1,
                )
        console.print(table)
        for entry in entries:
            median = entry["median"]
            bottleneck = median.get("bottleneck")
            if bottleneck in ("load generator", "both (server and load generator)"):
                verdict = (
                    "this measures the load generator, not the server"
                    if bottleneck == "load generator"
                    else "both at their limit: throughput is a lower bound for the server"
                )
                console.print(
                    f"  note: {entry['server']} {_size_text(entry['size'])}: the load generator "
                    f"was at {median.get('load_cpu_pct', 0):.0f} % of its core and the server "
                    f"at {median.get('server_cpu_pct') or 0:.0f} %: {verdict}",
                    style="yellow",
                    highlight=False,
                )
            if (median.get("server_core_other_pct") or 0) >= OTHER_WARN_PCT:
                console.print(
                    f"  note: {entry['server']} {_size_text(entry['size'])}: other processes used "
                    f"{median['server_core_other_pct']:.0f} % of the server's core; throughput "
                    "and latency are understated (CPU per delivery is not affected)",
                    style="yellow",
                    highlight=False,
                )
            if median.get("hit_limit"):
                console.print(
                    f"  note: {entry['server']} {_size_text(entry['size'])} hit the "
                    "workload's time limit; later runs were skipped",
                    style="yellow",
                    highlight=False,
                )
            for sample in median.get("error_samples") or []:
                console.print(
                    f"  {entry['server']} error: {sample}",
                    style="red",
                    highlight=False,
                    markup=False,
                )
    targets = Table(title="targets", title_justify="left", title_style="bold")
    for heading in ("target", "limit", "chatroom", "met"):
        targets.add_column(heading)
    for target in report["targets"]:
        value = target["value"]
        shown = (
            target["note"]
            if value is None
            else (f"{value:,.2f}" if isinstance(value, float) else f"{value:,}")
        )
        met = {True: "[green]yes[/]", False: "[red]no[/]", None: "—"}[target["met"]]
        targets.add_row(target["target"], target["limit"], shown, met)
    console.print(targets)


# ---------------------------------------------------------------------------- CLI


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected numbers like 10,100,500") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected positive numbers")
    return values


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not port.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: expected HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chatroom-bench",
        description="Measure a chatroom server over loopback: fan-out throughput and "
        "latency, memory per idle connection, a join storm. Starts its own server unless "
        "--addr is given.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    # No ``choices``: argparse checks the empty default list against them and fails.
    parser.add_argument(
        "workloads",
        nargs="*",
        metavar="WORKLOAD",
        help=f"any of {', '.join(WORKLOADS)} (default: all)",
    )
    parser.add_argument(
        "--receivers",
        type=_int_list,
        default=DEFAULT_RECEIVERS,
        metavar="R[,R...]",
        help="fanout: receivers per run",
    )
    parser.add_argument("--senders", type=int, default=DEFAULT_SENDERS, metavar="S")
    parser.add_argument(
        "--window",
        type=int,
        default=DEFAULT_WINDOW,
        metavar="N",
        help="fanout: unacknowledged messages per sender",
    )
    parser.add_argument(
        "--message-bytes",
        type=int,
        default=DEFAULT_MESSAGE_BYTES,
        metavar="N",
        help=f"message text length (at least {TEXT_HEADER_CHARS})",
    )
    parser.add_argument("--warmup", type=float, default=DEFAULT_WARMUP_S, metavar="S")
    parser.add_argument(
        "--duration",
        type=float,
        default=DEFAULT_DURATION_S,
        metavar="S",
        help="measured seconds per fanout/latency run",
    )
    parser.add_argument(
        "--latency-receivers", type=int, default=DEFAULT_LATENCY_RECEIVERS, metavar="R"
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        metavar="MSG_PER_S",
        help="latency: offered messages/s (default: --rate-fraction of the "
        "measured fanout maximum at --latency-receivers)",
    )
    parser.add_argument("--rate-fraction", type=float, default=DEFAULT_RATE_FRACTION, metavar="F")
    parser.add_argument(
        "--clients", type=int, default=DEFAULT_IDLE_CLIENTS, metavar="C", help="idle: connections"
    )
    parser.add_argument(
        "--storm-clients",
        type=int,
        default=DEFAULT_STORM_CLIENTS,
        metavar="C",
        help="join-storm: connections",
    )
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=DEFAULT_IDLE_TIMEOUT_S,
        metavar="S",
        help="idle: give up connecting after this long",
    )
    parser.add_argument("--storm-timeout", type=float, default=DEFAULT_STORM_TIMEOUT_S, metavar="S")
    parser.add_argument(
        "--runs",
        type=int,
        default=DEFAULT_RUNS,
        metavar="N",
        help="runs per workload and size; tables show medians",
    )
    parser.add_argument(
        "--procs",
        type=int,
        default=DEFAULT_LOAD_PROCS,
        metavar="N",
        help="load processes (all on the load core)",
    )
    parser.add_argument(
        "--connect-window",
        type=int,
        default=DEFAULT_CONNECT_WINDOW,
        metavar="N",
        help="connect+hello in flight per load process",
    )
    parser.add_argument(
        "--every-join",
        action="store_true",
        help="idle and join-storm clients do not ask for lazy members (chatroom-tui does): "
        "every client is sent every join, as a protocol v1 client",
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument(
        "--baseline", action="store_true", help="also run benchmarks/naive_server.py, side by side"
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also run benchmarks/floor_server.c (compiled with cc): the same batching "
        "and pacing in C with no history, limits or checks, the least this machine allows",
    )
    parser.add_argument(
        "--naive-script",
        type=Path,
        default=None,
        metavar="PATH",
        help="the baseline server (default: benchmarks/naive_server.py)",
    )
    parser.add_argument(
        "--addr",
        type=_address,
        default=None,
        metavar="HOST:PORT",
        help="measure a running server instead of starting one (it must "
        "run with --flood-rate 0 and have nobody else in it)",
    )
    parser.add_argument(
        "--server-pid",
        type=int,
        default=None,
        metavar="PID",
        help="with --addr: its process, for CPU and RSS figures",
    )
    parser.add_argument(
        "--server-loop",
        choices=("auto", "asyncio", "uvloop"),
        default="auto",
        help="event loop of the started server (auto: the server's default, asyncio)",
    )
    parser.add_argument(
        "--profile-server",
        type=Path,
        default=None,
        metavar="DIR",
        help="run the started server under cProfile; one .pstats per run",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=0.0,
        metavar="S",
        help="before each run, wait up to S seconds for the cores to be idle "
        "(other processes on a shared machine skew throughput figures)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        metavar="DIR",
        help="keep server logs, transcripts and data here (default: a temporary directory)",
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to cores")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument(
        "--output", type=Path, default=None, metavar="PATH", help="also write the JSON report here"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``chatroom-bench``: run, print tables (or JSON), exit 0; 1 when a run failed."""
    parser = _parser()
    args = parser.parse_args(argv)
    for workload in args.workloads:
        if workload not in WORKLOADS:
            parser.error(f"unknown workload {workload!r}; choose from {', '.join(WORKLOADS)}")
    for name in (
        "senders",
        "window",
        "runs",
        "procs",
        "connect_window",
        "clients",
        "storm_clients",
        "latency_receivers",
    ):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.message_bytes < TEXT_HEADER_CHARS:
        parser.error(f"--message-bytes must be at least {TEXT_HEADER_CHARS}")
    if args.duration <= 0 or args.warmup < 0:
        parser.error("--duration must be positive and --warmup not negative")
    if args.server_loop == "uvloop" and importlib.util.find_spec("uvloop") is None:
        parser.error("--server-loop uvloop: uvloop is not installed (pip install uvloop)")
    options = Options(
        workloads=tuple(dict.fromkeys(args.workloads)) or WORKLOADS,
        receivers=args.receivers,
        senders=args.senders,
        window=args.window,
        message_bytes=args.message_bytes,
        warmup_s=args.warmup,
        duration_s=args.duration,
        latency_receivers=args.latency_receivers,
        rate=args.rate,
        rate_fraction=args.rate_fraction,
        idle_clients=args.clients,
        storm_clients=args.storm_clients,
        idle_timeout_s=args.idle_timeout,
        storm_timeout_s=args.storm_timeout,
        runs=args.runs,
        load_procs=args.procs,
        connect_window=args.connect_window,
        lazy_members=not args.every_join,
        seed=args.seed,
        baseline=args.baseline,
        floor=args.floor,
        addr=args.addr,
        server_pid=args.server_pid,
        server_loop=args.server_loop,
        profile_dir=args.profile_server,
        naive_script=args.naive_script,
        pin=not args.no_pin,
        quiet_wait_s=args.quiet_wait,
        workdir=args.workdir,
        progress=None if args.json else lambda text: print(f"… {text}", file=sys.stderr),
    )
    try:
        report = run(options)
    except BenchError as exc:
        print(f"chatroom-bench: {exc}", file=sys.stderr)
        return 1
    if args.output is not None:
        args.output.write_text(json.dumps(report, indent=2) + "\n")
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
