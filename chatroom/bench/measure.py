"""What a run measures on the bench's side: CPU windows, sums of the load reports, latency."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from typing import Any

from chatroom.bench.host import SERVER_CORE, _core_busy_pct, _core_times, _proc_cpu_s
from chatroom.bench.load import _LoadGroup
from chatroom.bench.options import NS_PER_S
from chatroom.bench.server_proc import _Server

__all__ = [
    "OTHER_WARN_PCT",
    "_CpuWindow",
    "_bottleneck",
    "_errors",
    "_merge_histograms",
    "_other_pct",
    "_percentiles",
    "_sleep_until",
    "_sum",
    "_wait_quiet",
]

# A CPU at or above this share of one core during the window is the bottleneck.
SATURATED_PCT = 90.0
# Other processes using this much of the server's core make the throughput figures
# (not the CPU-per-delivery ones) unreliable; the report says so.
OTHER_WARN_PCT = 10.0
# --quiet-wait: a core this busy, with none of ours running, means someone else is busy.
QUIET_PCT = 15.0
QUIET_SAMPLE_S = 0.5


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


def _merge_histograms(reports: Iterable[dict[str, Any]], key: str = "latency_us") -> dict[int, int]:
    merged: Counter[int] = Counter()
    for report in reports:
        merged.update(report[key])
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
