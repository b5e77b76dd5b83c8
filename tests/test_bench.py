"""chatroom-bench smoke tests: every workload at a tiny size, against real servers on loopback.

These check that the benchmark runs and reports what it promises (and that nothing is
lost), never how fast anything is: timings on a shared CI machine mean nothing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import chatroom.bench as bench_module
import chatroom.bench.server_proc as server_proc_module
from chatroom.bench import BenchError, Options
from chatroom.bench.measure import _percentiles
from chatroom.bench.room import _spread
from chatroom.bench.server_proc import _benchmark_file

# Small enough to finish in seconds, big enough that fan-out, batching and the
# sender window all take part.
TINY = [
    "--runs", "1",
    "--receivers", "3",
    "--latency-receivers", "3",
    "--senders", "2",
    "--window", "4",
    "--warmup", "0.1",
    "--duration", "0.3",
    "--rate", "200",
    "--clients", "20",
    "--storm-clients", "20",
    "--procs", "2",
]  # fmt: skip
BENCH_TIMEOUT_S = 90.0


def _bench(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "chatroom.bench", "--json", *TINY, *args],
        capture_output=True,
        text=True,
        timeout=BENCH_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def _medians(report: dict[str, Any], workload: str) -> dict[str, dict[str, Any]]:
    """{server: median} for one workload; each server has exactly one run."""
    found = {}
    for entry in report["results"]:
        if entry["workload"] == workload:
            assert len(entry["runs"]) == 1
            found[entry["server"]] = entry["median"]
    return found


@pytest.mark.timeout(BENCH_TIMEOUT_S + 30)
@pytest.mark.parametrize("workload", ["fanout", "latency"])
def test_room_workloads_deliver_every_message_to_everyone(workload: str) -> None:
    """fanout and latency, against chatroom and the naive baseline: messages flow, every
    member gets every one of them, and the report carries throughput, latency and CPU."""
    report = _bench(workload, "--baseline")
    medians = _medians(report, workload)
    assert set(medians) == {"chatroom", "naive"}
    for server, median in medians.items():
        assert median["sent"] > 0, server
        assert median["lost"] == 0, server
        assert median["extra"] == 0, server
        assert median["disconnects"] == 0, server
        assert median["errors"] == 0, server
        assert median["deliveries_per_s"] > 0, server
        assert median["p50_us"] is not None, server
        assert median["p50_us"] <= median["p99_us"] <= median["max_us"], server
        assert median["server_cpu_s"] is not None, server
        assert median["server_peak_rss_kib"] > 0, server
        assert median["server_exit"] in ("term", "exited"), server
    assert medians["chatroom"]["members"] == 3 + 2
    if workload == "latency":
        assert medians["chatroom"]["offered_messages_per_s"] == 200
    assert report["machine"]["nproc"] >= 1
    assert {target["target"] for target in report["targets"]}


@pytest.mark.timeout(BENCH_TIMEOUT_S + 30)
@pytest.mark.parametrize("joins", ["lazy", "every"])
def test_idle_and_join_storm_welcome_everyone(joins: str) -> None:
    """idle and join-storm: every client is welcomed, without errors or leaves, and the
    idle run measures memory per connection; with --every-join each client is also
    sent every later join (settled), as a protocol v1 client."""
    report = _bench("idle", "join-storm", *(["--every-join"] if joins == "every" else []))
    assert report["config"]["lazy_members"] is (joins == "lazy")
    idle = _medians(report, "idle")["chatroom"]
    assert idle["connected"] == idle["settled"] == 20
    assert idle["connect_s"] > 0
    assert idle["rss_per_conn_kib"] is not None
    assert idle["errors"] == idle["leaves"] == idle["disconnects"] == 0
    storm = _medians(report, "join-storm")["chatroom"]
    assert storm["welcomed"] == 20
    assert storm["welcome_s"] > 0
    assert storm["errors"] == storm["leaves"] == storm["connect_failures"] == 0


@pytest.mark.timeout(BENCH_TIMEOUT_S + 30)
@pytest.mark.skipif(
    not any(shutil.which(cc) for cc in ("cc", "gcc", "clang")), reason="needs a C compiler"
)
def test_floor_server_runs_side_by_side() -> None:
    """--floor compiles benchmarks/floor_server.c and measures it like the others: it
    delivers every message and welcomes every idle client."""
    report = _bench("fanout", "latency", "idle", "--floor")
    assert report["config"]["floor"] is True
    for workload in ("fanout", "latency"):
        medians = _medians(report, workload)
        assert set(medians) == {"chatroom", "floor"}
        floor = medians["floor"]
        assert floor["sent"] > 0
        assert floor["lost"] == floor["extra"] == floor["errors"] == 0
        assert floor["server_loop"] == "C, epoll"
        assert floor["server_cpu_s"] is not None
    idle = _medians(report, "idle")["floor"]
    assert idle["connected"] == idle["settled"] == 20
    assert idle["errors"] == idle["leaves"] == 0


def test_companion_servers_are_found_from_a_checkout_or_named_up_front(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plain `pip install .` carries no benchmarks/: the bench then finds them under
    the current directory (a checkout), and otherwise says so before running anything."""
    checkout = Path(__file__).resolve().parent.parent
    installed = tmp_path / "site-packages" / "chatroom" / "bench" / "server_proc.py"
    monkeypatch.setattr(server_proc_module, "__file__", str(installed))
    monkeypatch.chdir(checkout)
    assert _benchmark_file("naive_server.py") == checkout / "benchmarks" / "naive_server.py"
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BenchError, match="checkout"):
        _benchmark_file("floor_server.c")
    with pytest.raises(BenchError, match=r"naive_server\.py"):
        bench_module.run(Options(workloads=("join-storm",), baseline=True, storm_clients=1))


def test_percentiles_use_the_nearest_rank() -> None:
    """p50/p99/max of a latency histogram are nearest-rank values, never interpolated."""
    histogram = {value: 1 for value in range(1, 101)}
    assert _percentiles(histogram) == {"p50_us": 50.0, "p99_us": 99.0, "max_us": 100.0}
    assert _percentiles({7: 3}) == {"p50_us": 7.0, "p99_us": 7.0, "max_us": 7.0}
    assert _percentiles({}) == {"p50_us": None, "p99_us": None, "max_us": None}


def test_probes_are_spread_from_the_first_member_to_the_last() -> None:
    assert _spread(100, 10) == frozenset({0, 11, 22, 33, 44, 55, 66, 77, 88, 99})
    assert _spread(3, 10) == frozenset({0, 1, 2})
    assert _spread(5, 1) == frozenset({0})
    assert _spread(5, 0) == frozenset()
