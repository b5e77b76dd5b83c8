"""``chatroom-bench``'s command line: its arguments, checked and turned into ``Options``."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from chatroom.bench.driver import run
from chatroom.bench.engine import TEXT_HEADER_CHARS
from chatroom.bench.irc import MAX_IRC_MESSAGE_BYTES
from chatroom.bench.options import (
    DEFAULT_CONNECT_WINDOW,
    DEFAULT_DURATION_S,
    DEFAULT_IDLE_CLIENTS,
    DEFAULT_IDLE_TIMEOUT_S,
    DEFAULT_LATENCY_RECEIVERS,
    DEFAULT_LOAD_PROCS,
    DEFAULT_MESSAGE_BYTES,
    DEFAULT_RATE_FRACTION,
    DEFAULT_RECEIVERS,
    DEFAULT_RUNS,
    DEFAULT_SEED,
    DEFAULT_SENDERS,
    DEFAULT_STORM_CLIENTS,
    DEFAULT_STORM_TIMEOUT_S,
    DEFAULT_WARMUP_S,
    DEFAULT_WINDOW,
    TRANSPORTS,
    WORKLOADS,
    BenchError,
    Options,
)
from chatroom.bench.report import print_report

__all__ = ["main"]


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected numbers like 10,100,500") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected positive numbers")
    return values


def _transports(text: str) -> tuple[str, ...]:
    """``ndjson``, ``websocket``, ``irc``, ``mixed``, ``both`` (ndjson,websocket), or a list."""
    kinds: list[str] = []
    for part in text.split(","):
        part = part.strip()
        if part == "both":
            kinds += ["ndjson", "websocket"]
        elif part in TRANSPORTS:
            kinds.append(part)
        else:
            raise argparse.ArgumentTypeError(
                f"{part!r}: expected {', '.join(TRANSPORTS)} or both, or a list of them"
            )
    return tuple(dict.fromkeys(kinds))


def _node_counts(text: str) -> tuple[int, ...]:
    """``2``, or ``0,1,2`` for columns side by side (0: the single server)."""
    try:
        values = tuple(dict.fromkeys(int(part) for part in text.split(",") if part.strip()))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected a node count like 2, or 0,1,2"
        ) from None
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected node counts of 0 or more")
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
    parser.add_argument(
        "--transport",
        type=_transports,
        default=("ndjson",),
        metavar="KIND[,KIND...]",
        help="what the members speak: ndjson (TCP, as chatroom-tui), websocket (the same "
        "frames at /ws, as the web app), irc (the server's IRC gateway, #lobby), both "
        "(ndjson,websocket); a list runs each run once per transport, interleaved, side by "
        "side; mixed (fanout: half the room on ndjson, half on websocket)",
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
    parser.add_argument(
        "--cluster",
        type=_node_counts,
        default=(),
        metavar="N[,N...]",
        help="run chatroom as a cluster of N nodes sharing a redis-server the bench starts "
        "(redis-server must be installed); members are spread round-robin over the nodes. "
        "A list runs each size as a column, interleaved run by run; 0 is the single "
        "server. fanout and latency only",
    )
    parser.add_argument(
        "--observer-node",
        action="store_true",
        help="with --cluster: one more node with no clients, whose CPU per event is what "
        "applying an event costs a node that has nobody to send it to",
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
    clustered = any(args.cluster)
    # A cluster runs the room workloads; idle and join-storm measure one process's memory
    # and accept queue, which a cluster's nodes split between them.
    workloads = tuple(dict.fromkeys(args.workloads)) or (
        ("fanout", "latency") if clustered else WORKLOADS
    )
    if clustered:
        if set(workloads) - {"fanout", "latency"}:
            parser.error("--cluster runs fanout and latency only")
        if args.addr is not None:
            parser.error("--cluster starts its own nodes: drop --addr")
        if "irc" in args.transport:
            parser.error("--cluster: members speak ndjson or websocket (the nodes have no IRC)")
    elif args.observer_node:
        parser.error("--observer-node is a node of a cluster: add --cluster N")
    if args.transport == ("mixed",) and workloads != ("fanout",):
        parser.error("--transport mixed is a fanout variant: add ndjson or websocket")
    if args.addr is not None and "irc" in args.transport:
        parser.error("--transport irc starts the server with its IRC gateway: drop --addr")
    if "irc" in args.transport and args.message_bytes > MAX_IRC_MESSAGE_BYTES:
        parser.error(
            f"--transport irc: --message-bytes must be at most {MAX_IRC_MESSAGE_BYTES} "
            "(an IRC line is 512 bytes with its command and source)"
        )
    if (args.baseline or args.floor) and "ndjson" not in args.transport:
        parser.error("--baseline and --floor speak NDJSON only: use --transport ndjson or both")
    if args.server_loop == "uvloop" and importlib.util.find_spec("uvloop") is None:
        parser.error("--server-loop uvloop: uvloop is not installed (pip install uvloop)")
    options = Options(
        workloads=workloads,
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
        transports=args.transport,
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
        cluster=args.cluster,
        observer_node=args.observer_node,
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
