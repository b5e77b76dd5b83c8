"""idle and join-storm: members that join and say nothing, in a trickle or all at once."""

from __future__ import annotations

import time
from typing import Any

from chatroom.bench.engine import _LoadSpec
from chatroom.bench.host import _proc_status_kib
from chatroom.bench.load import _LoadGroup, _names, _split
from chatroom.bench.measure import _CpuWindow, _errors, _sleep_until, _sum
from chatroom.bench.options import NS_PER_S, SETUP_TIMEOUT_S, Options
from chatroom.bench.server_proc import _Server

__all__ = ["_idle_run", "_storm_run"]


def _silent_members(
    options: Options,
    server: _Server,
    load_core: int | None,
    mode: str,
    names: list[str],
    timeout_s: float,
    transport: str,
) -> _LoadGroup:
    """Load processes whose members join and say nothing (idle and join-storm)."""
    specs = [
        _LoadSpec(
            mode=mode,
            host=server.host,
            port=server.port_for(transport),
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
            transport=transport,
        )
        for number, part in enumerate(_split(names, options.load_procs))
    ]
    return _LoadGroup(specs)


def _idle_run(
    options: Options, server: _Server, load_core: int | None, run_tag: str, transport: str
) -> dict[str, Any]:
    clients = options.idle_clients
    names = _names("w", run_tag, clients)
    group = _silent_members(
        options, server, load_core, "idle", names, options.idle_timeout_s, transport
    )
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
    options: Options, server: _Server, load_core: int | None, run_tag: str, transport: str
) -> dict[str, Any]:
    clients = options.storm_clients
    names = _names("j", run_tag, clients)
    group = _silent_members(
        options, server, load_core, "storm", names, options.storm_timeout_s, transport
    )
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
