"""What one invocation runs: the workloads, their defaults and limits, and ``Options``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DEFAULT_CONNECT_WINDOW",
    "DEFAULT_DURATION_S",
    "DEFAULT_IDLE_CLIENTS",
    "DEFAULT_IDLE_TIMEOUT_S",
    "DEFAULT_LATENCY_RECEIVERS",
    "DEFAULT_LOAD_PROCS",
    "DEFAULT_MESSAGE_BYTES",
    "DEFAULT_RATE_FRACTION",
    "DEFAULT_RECEIVERS",
    "DEFAULT_RUNS",
    "DEFAULT_SEED",
    "DEFAULT_SENDERS",
    "DEFAULT_STORM_CLIENTS",
    "DEFAULT_STORM_TIMEOUT_S",
    "DEFAULT_WARMUP_S",
    "DEFAULT_WINDOW",
    "DRAIN_TIMEOUT_S",
    "NS_PER_S",
    "SETUP_TIMEOUT_S",
    "TRANSPORTS",
    "WORKLOADS",
    "BenchError",
    "Options",
]

WORKLOADS = ("fanout", "latency", "idle", "join-storm")
# What the members speak: chatroom's JSON lines over TCP, the same over a WebSocket, IRC
# (the gateway, which the bench then starts), or (fanout only) a room of NDJSON and
# WebSocket members, half on each.
TRANSPORTS = ("ndjson", "websocket", "irc", "mixed")
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
DEFAULT_SEED = 1
# Limits on the phases that are not timed, so a broken server cannot hang the bench.
SETUP_TIMEOUT_S = 120.0
DRAIN_TIMEOUT_S = 10.0
DEFAULT_IDLE_TIMEOUT_S = 30.0
DEFAULT_STORM_TIMEOUT_S = 30.0
# Clients in the middle of connect+hello per load process: a trickle the accept backlog
# (asyncio's default is 100) absorbs, so SYN retransmits (1 s each) do not set the pace.
DEFAULT_CONNECT_WINDOW = 32
NS_PER_S = 1_000_000_000


class BenchError(Exception):
    """The benchmark could not run (server failed to start, a load process died...)."""


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
    # Each workload runs once per transport, interleaved run by run; "mixed" is fanout's.
    transports: tuple[str, ...] = ("ndjson",)
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
    # --cluster: node counts, one column each (0 is the single server as without it);
    # every run of a cluster starts its own redis-server and nodes.
    cluster: tuple[int, ...] = ()
    # One more node in each cluster, with no clients: what applying an event costs a
    # node that has nobody to deliver it to.
    observer_node: bool = False
    progress: Callable[[str], None] | None = None
