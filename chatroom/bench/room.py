"""fanout and latency: one room of senders and receivers, closed loop or at a fixed rate."""

from __future__ import annotations

import time
from typing import Any

from chatroom.bench.cluster import _cluster_cpu_s, _cluster_figures, _ClusterSample
from chatroom.bench.engine import _LoadSpec
from chatroom.bench.host import _core_busy_pct, _core_times, _proc_cpu_s, _proc_status_kib
from chatroom.bench.load import _LoadGroup, _names, _split
from chatroom.bench.measure import (
    _bottleneck,
    _errors,
    _merge_histograms,
    _other_pct,
    _percentiles,
    _sleep_until,
    _sum,
)
from chatroom.bench.options import DRAIN_TIMEOUT_S, NS_PER_S, SETUP_TIMEOUT_S, Options
from chatroom.bench.server_proc import _Server

__all__ = ["_room_run", "_spread"]

# Receivers that time every message; the others only count them. Parsing stamps was a
# quarter of the load side's time at 100 probes in a room of 500.
MAX_PROBES = 20
# In ``latency`` every member is in one load process, with fewer probes (the reasons are
# at LAZY_SWEEP_S in engine.py).
LATENCY_PROBES = 10


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
    transport: str = "ndjson",
) -> list[_LoadSpec]:
    senders = _names("s", run_tag, options.senders)
    listeners = _names("r", run_tag, receivers)
    # Every receiver counts every message, but only a spread of them (from the first to
    # the last of the room) times each one:
    # parsing stamps is most of the load side's cost per delivery, and a load generator
    # slower than the server measures itself.
    probes = _spread(receivers, LATENCY_PROBES if mode == "latency" else MAX_PROBES)
    # --cluster: members go round-robin over the nodes, senders and receivers alike, so
    # with two nodes half of each probe's messages come from a sender on the other node.
    ports = server.cluster.ports if server.cluster is not None else [server.port_for(transport)]
    clients = [(name, number, False, number % len(ports)) for number, name in enumerate(senders)]
    clients += [
        (name, -1, index in probes, index % len(ports)) for index, name in enumerate(listeners)
    ]
    sender_nodes = (
        tuple(node for _, _, _, node in clients[: len(senders)])
        if server.cluster is not None
        else ()
    )
    total = len(clients)
    procs = 1 if mode == "latency" else min(options.load_procs, total)
    # Senders share processes with receivers: a process that falls behind reading also
    # sees its own sender's acknowledgements late, so it slows that sender down instead
    # of letting unread data pile up in the server.
    if transport == "mixed":
        # Every other sender and receiver on each: the server's flushes then write to
        # both kinds of member in join order, and both kinds have probes.
        halves = (clients[0::2], clients[1::2])
        parts_by = [
            (kind, part)
            for kind, half in zip(("ndjson", "websocket"), halves, strict=True)
            for part in _split(half, max(1, procs // 2))
        ]
    else:
        parts_by = [(transport, part) for part in _split(clients, procs)]
    return [
        _LoadSpec(
            mode=mode,
            host=server.host,
            port=server.port_for(kind),
            names=tuple(name for name, _, _, _ in part),
            sender_ids=tuple(sender for _, sender, _, _ in part),
            probes=tuple(probe for _, _, probe, _ in part),
            total_members=total,
            window=options.window,
            rate_per_sender=rate / max(1, options.senders),
            message_bytes=options.message_bytes,
            seed=options.seed + number,
            connect_window=options.connect_window,
            core=load_core,
            phase_timeout_s=SETUP_TIMEOUT_S,
            transport=kind,
            ports=tuple(ports[node] for _, _, _, node in part) if sender_nodes else (),
            nodes=tuple(node for _, _, _, node in part) if sender_nodes else (),
            sender_nodes=sender_nodes,
        )
        for number, (kind, part) in enumerate(parts_by)
    ]


def _server_cpu_s(server: _Server, cluster: _ClusterSample | None) -> float | None:
    """The server's CPU seconds; a cluster's are those of all its nodes and Redis."""
    if cluster is not None:
        return _cluster_cpu_s(cluster)
    return _proc_cpu_s(server.pid) if server.pid else None


def _peak_rss_kib(server: _Server) -> int | None:
    if server.cluster is not None:
        return server.cluster.peak_rss_kib()
    return _proc_status_kib(server.pid, "VmHWM") if server.pid else None


def _room_run(
    options: Options,
    server: _Server,
    mode: str,
    receivers: int,
    rate: float,
    load_core: int | None,
    run_tag: str,
    transport: str = "ndjson",
) -> dict[str, Any]:
    """One run of ``fanout`` (closed loop) or ``latency`` (open loop at ``rate`` msg/s)."""
    specs = _room_specs(options, server, mode, receivers, rate, load_core, run_tag, transport)
    group = _LoadGroup(specs)
    try:
        group.collect("ready", SETUP_TIMEOUT_S)
        t_start = time.monotonic_ns() + 100_000_000
        t0 = t_start + int(options.warmup_s * NS_PER_S)
        t1 = t0 + int(options.duration_s * NS_PER_S)
        group.send(("go", t_start, t0, t1))
        _sleep_until(t0)
        cluster_before = server.cluster.sample() if server.cluster is not None else None
        server_before = _server_cpu_s(server, cluster_before)
        load_before = group.cpu_s()
        cores_before = _core_times()
        _sleep_until(t1)
        cluster_after = server.cluster.sample() if server.cluster is not None else None
        server_after = _server_cpu_s(server, cluster_after)
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
        "server_peak_rss_kib": _peak_rss_kib(server),
        "bottleneck": _bottleneck(server_pct, load_pct, other_pct),
        "error_samples": _errors(reports),
    }
    if server.cluster is not None and cluster_before is not None and cluster_after is not None:
        result.update(_cluster_figures(cluster_before, cluster_after, deliveries, window_s))
        result["redis_peak_rss_kib"] = _proc_status_kib(server.cluster.redis.pid, "VmHWM")
        for path in ("same", "cross"):
            found = _percentiles(_merge_histograms(reports, f"latency_{path}_us"))
            result[f"p50_{path}_us"] = found["p50_us"]
            result[f"p99_{path}_us"] = found["p99_us"]
            result[f"{path}_samples"] = sum(
                sum(report[f"latency_{path}_us"].values()) for report in reports
            )
    if transport == "mixed":
        for kind in ("ndjson", "websocket"):
            result[f"{kind}_deliveries_per_s"] = (
                sum(
                    report["window_deliveries"]
                    for spec, report in zip(specs, reports, strict=True)
                    if spec.transport == kind
                )
                / window_s
            )
    if mode == "latency":
        result["offered_messages_per_s"] = rate
        result["skipped_sends"] = _sum(reports, "skipped")
    return result
