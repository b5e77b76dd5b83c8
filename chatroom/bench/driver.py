"""One invocation: every workload, size and server in turn, each run on a fresh server."""

from __future__ import annotations

import contextlib
import functools
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chatroom.bench.cluster import _check_cluster, _with_any_server, cluster_label
from chatroom.bench.host import _pin, _plan_cores, _raise_nofile, machine_info
from chatroom.bench.measure import _wait_quiet
from chatroom.bench.options import Options
from chatroom.bench.report import _Entry, _find, _median, _targets
from chatroom.bench.room import _room_run
from chatroom.bench.server_proc import _check_companions, _Server
from chatroom.bench.silent import _idle_run, _storm_run

__all__ = ["run"]


# One run's body: (run tag, server, transport) to its result.
_Body = Callable[[str, _Server, str], dict[str, Any]]


def _call_with_tag(body: _Body, run_tag: str, transport: str, server: _Server) -> dict[str, Any]:
    return body(run_tag, server, transport)


def _fanout_body(
    options: Options,
    receivers: int,
    load_core: int | None,
    run_tag: str,
    server: _Server,
    transport: str,
) -> dict[str, Any]:
    return _room_run(options, server, "fanout", receivers, 0.0, load_core, run_tag, transport)


def _ours(server: str) -> bool:
    """chatroom, alone or as a cluster: it speaks every transport."""
    return server == "chatroom" or server.startswith("cluster-")


def _columns(servers: list[str], transports: tuple[str, ...]) -> list[tuple[str, str]]:
    """(server, transport) for every run of a round, in order: chatroom (and its
    clusters) over each transport, then the others, which speak NDJSON only."""
    columns = [
        (server, transport) for server in servers if _ours(server) for transport in transports
    ]
    if "ndjson" in transports:
        columns += [(server, "ndjson") for server in servers if not _ours(server)]
    return columns


def _say(options: Options, text: str) -> None:
    if options.progress is not None:
        options.progress(text)


def run(options: Options) -> dict[str, Any]:
    """Run the selected workloads and return everything measured, ready for JSON."""
    _check_companions(options)
    if any(options.cluster):
        _check_cluster(options)
    _raise_nofile()
    server_core, load_core = _plan_cores(options.pin)
    _pin(load_core)  # the bench itself is load, not server
    servers = [cluster_label(nodes) for nodes in options.cluster] or ["chatroom"]
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

        def repeat(workload: str, size: dict[str, Any], body: _Body) -> None:
            transports = options.transports
            if workload != "fanout":
                transports = tuple(kind for kind in transports if kind != "mixed")
            columns = _columns(servers, transports)
            for label, transport in columns:
                entries.append(_Entry(workload, label, dict(size), transport=transport))
            stopped: set[tuple[str, str]] = set()
            for run_number in range(options.runs):
                # Interleaved run by run, so a machine that drifts over the minutes
                # shifts every column alike, not the last one most.
                for label, transport in columns:
                    if (label, transport) in stopped:
                        continue
                    entry = _find(entries, workload, label, transport=transport, **size)
                    assert entry is not None
                    run_tag = tag()
                    waited = _wait_quiet(options.quiet_wait_s) if options.quiet_wait_s else 0.0
                    _say(options, f"{workload} {size} {label} {transport}: run {run_number + 1}")
                    result = _with_any_server(
                        options,
                        label,
                        workdir,
                        server_core,
                        run_tag,
                        functools.partial(_call_with_tag, body, run_tag, transport),
                    )
                    result["transport"] = transport
                    result["quiet_wait_s"] = round(waited, 1)
                    entry.runs.append(result)
                    if result.get("hit_limit"):
                        # Further runs would hit the same limit: one is the answer.
                        stopped.add((label, transport))

        if "fanout" in options.workloads:
            for receivers in options.receivers:
                repeat(
                    "fanout",
                    {"receivers": receivers, "senders": options.senders},
                    functools.partial(_fanout_body, options, receivers, load_core),
                )
        if "latency" in options.workloads:
            rate = options.rate
            # Every transport (and cluster) is offered the same rate: the first one's
            # half maximum.
            first = next(kind for kind in options.transports if kind != "mixed")
            if rate is None:
                measured = _find(
                    entries,
                    "fanout",
                    servers[0],
                    transport=first,
                    receivers=options.latency_receivers,
                )
                if measured is None or not measured.runs:
                    _say(
                        options,
                        f"latency: measuring the maximum at R={options.latency_receivers} first",
                    )
                    calibration = _with_any_server(
                        options,
                        servers[0],
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
                            first,
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
                lambda run_tag, server, transport: _room_run(
                    options,
                    server,
                    "latency",
                    options.latency_receivers,
                    fixed_rate,
                    load_core,
                    run_tag,
                    transport,
                ),
            )
        if "idle" in options.workloads:
            repeat(
                "idle",
                {"clients": options.idle_clients},
                lambda run_tag, server, transport: _idle_run(
                    options, server, load_core, run_tag, transport
                ),
            )
        if "join-storm" in options.workloads:
            repeat(
                "join-storm",
                {"clients": options.storm_clients},
                lambda run_tag, server, transport: _storm_run(
                    options, server, load_core, run_tag, transport
                ),
            )

    return {
        "machine": {
            **machine_info(),
            "server_core": server_core,
            "load_core": load_core,
            # --cluster: every node and redis-server run on the server's core.
            "cluster_core": server_core if any(options.cluster) else None,
        },
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
            "transports": list(options.transports),
            "seed": options.seed,
            "rate_fraction": options.rate_fraction,
            "server_loop": options.server_loop,
            "addr": f"{options.addr[0]}:{options.addr[1]}" if options.addr else None,
            "baseline": options.baseline,
            "floor": options.floor,
            "cluster": list(options.cluster),
            "observer_node": options.observer_node,
        },
        "results": [entry.to_json() for entry in entries],
        "targets": _targets(entries, lazy_members=options.lazy_members),
        "wall_s": round(time.monotonic() - started, 1),
    }
