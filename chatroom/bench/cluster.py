"""``--cluster N``: a private redis-server and N chatroom nodes sharing it, for one run.

Every run gets a fresh Redis (no stream, no names left from the run before) and fresh
nodes, as a single-server run gets a fresh server. Redis is started with nothing on
disk (``--save '' --appendonly no``) in the run's own directory, on a free loopback port.

Where the processes run, with pinning on: the nodes and redis-server all on the
server's core, the bench and its load processes on the other one. On a machine of two
cores there is no third core to give them, and keeping everything the chat runs on one
core keeps the comparison with one server fair (the same CPU for the chat, the same
load generator); it also means a cluster's throughput here cannot exceed one core's,
so what cluster mode costs shows as CPU per event, not as scaling.
"""

from __future__ import annotations

import contextlib
import importlib.util
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatroom.bench.host import _proc_cpu_s, _proc_status_kib
from chatroom.bench.options import BenchError, Options
from chatroom.bench.server_proc import (
    SERVER_STOP_TIMEOUT_S,
    _free_port,
    _run_body,
    _Server,
    _server_preexec,
    _spawn_server,
    _wait_listening,
    _with_server,
)

__all__ = [
    "NEXT_ID_KEY",
    "_ClusterProcs",
    "_ClusterSample",
    "_check_cluster",
    "_cluster_cpu_s",
    "_cluster_figures",
    "_start_cluster",
    "_stop_cluster",
    "_with_any_server",
    "cluster_label",
]

# The last id the cluster's script handed out (chatroom/cluster/scripts.py): its growth
# over the window is the number of events appended to the stream in it.
NEXT_ID_KEY = "chatroom:next_id"
REDIS_START_TIMEOUT_S = 10.0
REDIS_REPLY_TIMEOUT_S = 5.0


def cluster_label(nodes: int) -> str:
    """The column a cluster of ``nodes`` gets in the tables (0: the single server)."""
    return "chatroom" if nodes == 0 else f"cluster-{nodes}"


def _cluster_size(label: str) -> int:
    return int(label.removeprefix("cluster-"))


def _check_cluster(options: Options) -> str:
    """Find redis-server and the server's Redis client before any run; the path."""
    path = shutil.which("redis-server")
    if path is None:
        raise BenchError(
            "--cluster starts its own redis-server, and there is none on PATH "
            "(Debian: apt-get install redis-server)"
        )
    if importlib.util.find_spec("redis") is None:
        raise BenchError(
            "--cluster: the server needs the redis client: pip install 'chatroom[cluster]'"
        )
    return path


class _RespError(Exception):
    pass


@dataclass
class _Redis:
    """The run's redis-server, and just enough of its protocol to read a counter."""

    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def command(self, *words: str) -> Any:
        """One command, its reply: a string, an int, or None (a missing key)."""
        request = f"*{len(words)}\r\n".encode() + b"".join(
            b"$%d\r\n%s\r\n" % (len(word.encode()), word.encode()) for word in words
        )
        with socket.create_connection(
            ("127.0.0.1", self.port), timeout=REDIS_REPLY_TIMEOUT_S
        ) as sock:
            sock.sendall(request)
            reply = b""
            while not _complete(reply):
                chunk = sock.recv(65536)
                if not chunk:
                    raise _RespError("redis-server closed the connection")
                reply += chunk
        kind, rest = reply[:1], reply[1:].split(b"\r\n", 1)[0]
        if kind == b"-":
            raise _RespError(rest.decode(errors="replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            if int(rest) < 0:
                return None
            return reply.split(b"\r\n", 2)[1].decode()
        return rest.decode()

    def next_id(self) -> int:
        value = self.command("GET", NEXT_ID_KEY)
        return int(value) if value is not None else 0

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-2000:]
        return ""


def _complete(reply: bytes) -> bool:
    """Whether ``reply`` is one whole RESP reply (simple, error, integer or bulk)."""
    head, sep, rest = reply.partition(b"\r\n")
    if not sep:
        return False
    if head[:1] != b"$" or int(head[1:]) < 0:
        return True
    return len(rest) >= int(head[1:]) + 2


def _start_redis(path: str, workdir: Path, tag: str, core: int | None) -> _Redis:
    port = _free_port()
    home = workdir / f"redis-{tag}"
    home.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"redis-{tag}.log"
    command = [
        path,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(home),
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
        "--logfile",
        "",
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_server_preexec(core),
        )
    redis = _Redis(port, process, log_path)
    deadline = time.monotonic() + REDIS_START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise BenchError(f"redis-server exited at start:\n{redis.log_tail()}")
        try:
            if redis.command("PING") == "PONG":
                return redis
        except (OSError, _RespError):
            pass
        if time.monotonic() > deadline:
            _stop_redis(redis)
            raise BenchError(
                f"redis-server did not answer on {port} within "
                f"{REDIS_START_TIMEOUT_S:g} s:\n{redis.log_tail()}"
            )
        time.sleep(0.02)


def _stop_redis(redis: _Redis) -> None:
    process = redis.process
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(SERVER_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass
class _ClusterSample:
    """CPU seconds of every process of the cluster, and the stream's last id, at once."""

    nodes: list[float | None]
    observer: float | None
    redis: float | None
    next_id: int


@dataclass
class _ClusterProcs:
    """One run's cluster: its Redis, the nodes members connect to, the idle node."""

    redis: _Redis
    nodes: list[_Server] = field(default_factory=list)
    # --observer-node: one more node, with no clients, that still applies every event.
    observer: _Server | None = None

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    def sample(self) -> _ClusterSample:
        return _ClusterSample(
            nodes=[_proc_cpu_s(node.pid) if node.pid else None for node in self.nodes],
            observer=(
                _proc_cpu_s(self.observer.pid)
                if self.observer is not None and self.observer.pid
                else None
            ),
            redis=_proc_cpu_s(self.redis.pid),
            next_id=self.redis.next_id(),
        )

    def peak_rss_kib(self) -> int | None:
        """The largest node's peak RSS (every node holds the same room state)."""
        peaks = [_proc_status_kib(node.pid, "VmHWM") for node in self.nodes if node.pid]
        known = [peak for peak in peaks if peak is not None]
        return max(known) if known else None

    def log_tail(self) -> str:
        parts = [f"--- redis-server ---\n{self.redis.log_tail()}"]
        for node in [*self.nodes, *([self.observer] if self.observer else [])]:
            parts.append(f"--- node {node.label} ---\n{node.log_tail()}")
        return "\n".join(parts)


def _start_cluster(
    label: str, options: Options, workdir: Path, core: int | None, tag: str
) -> _ClusterProcs:
    """Redis, then the nodes side by side (each joins through Redis before listening)."""
    count = _cluster_size(label)
    redis = _start_redis(_check_cluster(options), workdir, tag, core)
    cluster = _ClusterProcs(redis)
    url = f"redis://127.0.0.1:{redis.port}/0"
    try:
        names = [f"bench{number + 1}" for number in range(count)]
        if options.observer_node:
            names.append("bench-idle")
        started = []
        for name in names:
            node = _spawn_server(
                "chatroom",
                options,
                workdir,
                core,
                f"{tag}-{name}",
                ["--cluster", url, "--node-id", name],
            )
            node.label = name
            started.append(node)
            if name == "bench-idle":
                cluster.observer = node
            else:
                cluster.nodes.append(node)
        for node in started:
            _wait_listening(node)
    except BaseException:
        _stop_cluster(cluster)
        raise
    return cluster


def _stop_cluster(cluster: _ClusterProcs) -> str:
    """Every node, then Redis; the worst way a node ended (term, killed...).

    All nodes are told at once: a node that does not stop costs the grace period once
    per run, not once per node. Redis goes last, so the nodes can propose their members'
    leaves on the way out, as they do in production.
    """
    processes = [
        node.process
        for node in [*cluster.nodes, *([cluster.observer] if cluster.observer else [])]
        if node.process is not None
    ]
    ends = ["exited" if process.poll() is not None else "term" for process in processes]
    for process, end in zip(processes, ends, strict=True):
        if end == "term":
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + SERVER_STOP_TIMEOUT_S
    for number, process in enumerate(processes):
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            ends[number] = "killed"
    _stop_redis(cluster.redis)
    for worst in ("killed", "exited", "term"):
        if worst in ends:
            return worst
    return "exited"


def _delta(before: float | None, after: float | None) -> float | None:
    return after - before if before is not None and after is not None else None


def _cluster_figures(
    before: _ClusterSample, after: _ClusterSample, deliveries: int, window_s: float
) -> dict[str, Any]:
    """What the cluster cost over the measured window: per node, per delivery, per event.

    Events appended are the stream's id counter's growth: each is applied by every node
    (history, transcript, fan-out to its own members, if it has any).
    """
    node_cpu = [_delta(b, a) for b, a in zip(before.nodes, after.nodes, strict=True)]
    known = [cpu for cpu in node_cpu if cpu is not None]
    node_total = sum(known) if len(known) == len(node_cpu) else None
    redis_cpu = _delta(before.redis, after.redis)
    observer_cpu = _delta(before.observer, after.observer)
    events = after.next_id - before.next_id
    return {
        "cluster_nodes": len(node_cpu),
        "node_cpu_s": node_cpu,
        "node_cpu_s_total": node_total,
        "node_us_per_delivery": (
            1e6 * node_total / deliveries if node_total is not None and deliveries else None
        ),
        "events_appended": events,
        "events_per_s": events / window_s if window_s else None,
        "redis_cpu_s": redis_cpu,
        "redis_cpu_pct": 100.0 * redis_cpu / window_s if redis_cpu is not None else None,
        "redis_us_per_event": 1e6 * redis_cpu / events
        if redis_cpu is not None and events
        else None,
        "idle_node_cpu_s": observer_cpu,
        "node_us_per_applied_event": (
            1e6 * observer_cpu / events if observer_cpu is not None and events else None
        ),
    }


def _cluster_cpu_s(sample: _ClusterSample) -> float | None:
    """Everything the cluster ran: nodes, the idle node, Redis."""
    parts = [*sample.nodes, sample.redis]
    if any(part is None for part in parts):
        return None
    return sum(part for part in parts if part is not None) + (sample.observer or 0.0)


def _with_any_server(
    options: Options,
    label: str,
    workdir: Path,
    server_core: int | None,
    tag: str,
    body: Callable[[_Server], dict[str, Any]],
) -> dict[str, Any]:
    """``_with_server``, or for a ``cluster-N`` label a fresh cluster for the run."""
    if not label.startswith("cluster-"):
        return _with_server(options, label, workdir, server_core, tag, body)
    cluster = _start_cluster(label, options, workdir, server_core, tag)
    first = cluster.nodes[0]
    server = _Server(label, first.host, first.port, None, loop=first.loop, cluster=cluster)
    return _run_body(server, body, label, cluster.log_tail, lambda: _stop_cluster(cluster))
