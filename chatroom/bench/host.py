"""This host: CPU and memory figures from /proc, the machine's description, core pinning."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import platform
import resource
from pathlib import Path
from typing import Any

__all__ = [
    "LOAD_CORE",
    "SERVER_CORE",
    "_core_busy_pct",
    "_core_times",
    "_pin",
    "_plan_cores",
    "_proc_cpu_s",
    "_proc_status_kib",
    "_raise_nofile",
    "machine_info",
]

SERVER_CORE = 0
LOAD_CORE = 1
TICKS_PER_S = os.sysconf("SC_CLK_TCK")


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
