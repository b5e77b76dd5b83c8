"""What a run comes to: medians of the runs, the targets met or not, the tables printed."""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from chatroom.bench.measure import OTHER_WARN_PCT
from chatroom.bench.options import WORKLOADS

__all__ = ["_Entry", "_find", "_median", "_targets", "print_report"]

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
# A WebSocket member may cost the server this much more than an NDJSON one, per delivery
# (and its deliveries/s may be this much lower), in the same invocation.
TARGET_WEBSOCKET_RATIO = 1.3
# Issue #17: IRC members cost the server at most this much CPU per delivery as NDJSON ones.
TARGET_IRC_RATIO = 1.5


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
        elif all(isinstance(value, list) for value in values) and key != "error_samples":
            # One figure per node: each node's median over the runs.
            summary[key] = [
                statistics.median(numbers) if numbers else None
                for numbers in (
                    [value for value in column if isinstance(value, int | float)]
                    for column in zip(*values, strict=True)
                )
            ]
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
    transport: str = "ndjson"

    def to_json(self) -> dict[str, Any]:
        return {
            "workload": self.workload,
            "server": self.server,
            "transport": self.transport,
            "size": self.size,
            "median": _median(self.runs) if self.runs else {},
            "runs": self.runs,
        }


def _find(
    entries: list[_Entry], workload: str, server: str, transport: str = "ndjson", **size: Any
) -> _Entry | None:
    for entry in entries:
        if (
            entry.workload == workload
            and entry.server == server
            and entry.transport == transport
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

    def median_over(transport: str, workload: str, key: str, **size: Any) -> Any:
        entry = _find(entries, workload, "chatroom", transport, **size)
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
    ndjson = median_over("ndjson", "fanout", "server_us_per_delivery", **size)
    websocket = median_over("websocket", "fanout", "server_us_per_delivery", **size)
    ratio = websocket / ndjson if websocket and ndjson else None
    add(
        "fanout R=500: WebSocket vs NDJSON server CPU per delivery",
        f"<= {TARGET_WEBSOCKET_RATIO}x",
        ratio,
        None if ratio is None else ratio <= TARGET_WEBSOCKET_RATIO,
        "run fanout R=500 with --transport both",
    )
    irc = median_over("irc", "fanout", "server_us_per_delivery", **size)
    ratio = irc / ndjson if irc and ndjson else None
    add(
        "fanout R=500: IRC vs NDJSON server CPU per delivery",
        f"<= {TARGET_IRC_RATIO}x",
        ratio,
        None if ratio is None else ratio <= TARGET_IRC_RATIO,
        "run fanout R=500 with --transport ndjson,irc",
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
# Beside the others when a cluster ran (fanout and latency): latency by whether sender
# and receiver were on one node, and what the cluster's processes cost.
_CLUSTER_COLUMNS: list[tuple[str, str, str]] = [
    ("p50_same_us", "p50 same-node µs ↓", ",.0f"),
    ("p99_same_us", "p99 same-node µs ↓", ",.0f"),
    ("p50_cross_us", "p50 cross-node µs ↓", ",.0f"),
    ("p99_cross_us", "p99 cross-node µs ↓", ",.0f"),
    ("events_per_s", "events appended/s", ",.0f"),
    ("node_cpu_s", "node CPU s, each", "list"),
    ("node_us_per_delivery", "node CPU µs/delivery (sum of nodes) ↓", ".2f"),
    ("node_us_per_applied_event", "idle node CPU µs/applied event ↓", ".1f"),
    ("redis_us_per_event", "Redis CPU µs/appended event ↓", ".1f"),
    ("redis_cpu_pct", "Redis CPU %", ".0f"),
]
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
    if spec == "list":
        return " / ".join("—" if item is None else f"{item:.2f}" for item in value)
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


def _column(entry: dict[str, Any]) -> tuple[str, str]:
    return entry["server"], entry.get("transport", "ndjson")


def _ratio(first: Any, second: Any, key: str, spec: str, *, goal: float | None) -> str:
    """``first ÷ second``; with a ``goal`` (the WebSocket's 1.3, IRC's 1.5), marked
    against it where it applies (deliveries/s at least 1/goal of NDJSON's, CPU per
    delivery at most goal times)."""
    if (
        spec == "list"
        or not isinstance(first, int | float)
        or not isinstance(second, int | float)
        or isinstance(first, bool)
        or not second
        or key in _SUMMED
        or spec == "s"
    ):
        return "—"
    ratio = first / second
    text = f"{ratio:.2f}x"
    if goal and key == "deliveries_per_s":
        text += " ✓" if ratio >= 1 / goal else " ✗"
    elif goal and key == "server_us_per_delivery":
        text += " ✓" if ratio <= goal else " ✗"
    return text


def _cluster_notes(console: Any, report: dict[str, Any]) -> None:
    """Where a cluster's processes ran, and what its figures mean."""
    machine, config = report["machine"], report["config"]
    if machine.get("cluster_core") is not None:
        where = (
            f"cluster: every node and redis-server share core {machine['cluster_core']} (the "
            f"server's core), the load generator has core {machine['load_core']}: with "
            f"{machine['nproc']} cores there is none to give each node, so a cluster's "
            "throughput here is at most one core's; its cost shows per event"
        )
    else:
        where = "cluster: not pinned; nodes, redis-server and the load generator share the cores"
    lines = [
        where,
        "members go round-robin over the nodes (senders too): with 2 nodes half of the "
        "messages a receiver gets come from a sender on the other node (cross-node)",
        "server CPU is the whole cluster's: every node, redis-server"
        + (" and the idle node" if config.get("observer_node") else ""),
        "node CPU µs/delivery: the nodes members are on, summed, over deliveries",
        "Redis CPU µs/appended event: redis-server's CPU over the events the script "
        "appended (the growth of chatroom:next_id in the window); it includes serving "
        "each node's stream reads",
    ]
    if config.get("observer_node"):
        lines.append(
            "idle node CPU µs/applied event: one more node with no clients (--observer-node) "
            "over the events appended: what every node pays per event, receivers or not "
            "(reading the stream, the history store, the transcript)"
        )
    else:
        lines.append(
            "idle node CPU per applied event: add --observer-node (one more node with no "
            "clients, on the same core, so it takes CPU from the others)"
        )
    for line in lines:
        console.print(f"  {line}", style="dim", highlight=False)


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
    if machine.get("cluster_core") is not None or any(config.get("cluster") or ()):
        _cluster_notes(console, report)
    results = report["results"]
    several = len({entry.get("transport", "ndjson") for entry in results}) > 1
    for workload in WORKLOADS:
        entries = [entry for entry in results if entry["workload"] == workload]
        if not entries:
            continue
        columns = list(dict.fromkeys(_column(entry) for entry in entries))
        servers = list(dict.fromkeys(server for server, _ in columns))
        loops = {
            entry["server"]: entry["runs"][0].get("server_loop", "")
            for entry in entries
            if entry["runs"]
        }
        table = Table(title=workload, title_justify="left", title_style="bold")
        table.add_column("size")
        table.add_column("metric")
        for server, transport in columns:
            shown = f"{server} {transport}" if several else server
            table.add_column(f"{shown} ({loops.get(server, '')})", justify="right")
        # Ratios are against the naive baseline when it ran, else against the other one,
        # both over NDJSON (all they speak); and WebSocket members against NDJSON ones.
        versus = "naive" if "naive" in servers[1:] else (servers[1] if len(servers) > 1 else None)
        # Each ratio with the goal its cells are marked against (fanout's only).
        ratios: list[tuple[tuple[str, str], tuple[str, str], float | None]] = []
        if versus is not None:
            ratios.append(((servers[0], "ndjson"), (versus, "ndjson"), None))
            table.add_column(f"{servers[0]} ÷ {versus}", justify="right")
        ndjson = ("chatroom", "ndjson")
        for kind, target in (("websocket", TARGET_WEBSOCKET_RATIO), ("irc", TARGET_IRC_RATIO)):
            if ("chatroom", kind) in columns and ndjson in columns:
                goal = target if workload == "fanout" else None
                ratios.append((("chatroom", kind), ndjson, goal))
                shown = f" (goal: within {target:g}x)" if goal else ""
                table.add_column(f"{kind} ÷ ndjson{shown}", justify="right")
        sizes: list[dict[str, Any]] = []
        for entry in entries:
            if entry["size"] not in sizes:
                sizes.append(entry["size"])
        for size in sizes:
            by_column = {
                _column(entry): entry["median"] for entry in entries if entry["size"] == size
            }
            rows = _COLUMNS[workload]
            if any(median.get("cluster_nodes") for median in by_column.values()):
                rows = rows + _CLUSTER_COLUMNS
            for number, (key, heading, spec) in enumerate(rows):
                cells = [_format(by_column.get(column, {}).get(key), spec) for column in columns]
                for first, second, goal in ratios:
                    cells.append(
                        _ratio(
                            by_column.get(first, {}).get(key),
                            by_column.get(second, {}).get(key),
                            key,
                            spec,
                            goal=goal,
                        )
                    )
                table.add_row(
                    _size_text(size) if number == 0 else "",
                    heading,
                    *cells,
                    end_section=number == len(rows) - 1,
                )
        console.print(table)
        for entry in entries:
            median = entry["median"]
            who = " ".join(_column(entry)) if several else entry["server"]
            bottleneck = median.get("bottleneck")
            if bottleneck in ("load generator", "both (server and load generator)"):
                verdict = (
                    "this measures the load generator, not the server"
                    if bottleneck == "load generator"
                    else "both at their limit: throughput is a lower bound for the server"
                )
                console.print(
                    f"  note: {who} {_size_text(entry['size'])}: the load generator "
                    f"was at {median.get('load_cpu_pct', 0):.0f} % of its core and the server "
                    f"at {median.get('server_cpu_pct') or 0:.0f} %: {verdict}",
                    style="yellow",
                    highlight=False,
                )
            if (median.get("server_core_other_pct") or 0) >= OTHER_WARN_PCT:
                console.print(
                    f"  note: {who} {_size_text(entry['size'])}: other processes used "
                    f"{median['server_core_other_pct']:.0f} % of the server's core; throughput "
                    "and latency are understated (CPU per delivery is not affected)",
                    style="yellow",
                    highlight=False,
                )
            if median.get("hit_limit"):
                console.print(
                    f"  note: {who} {_size_text(entry['size'])} hit the "
                    "workload's time limit; later runs were skipped",
                    style="yellow",
                    highlight=False,
                )
            for sample in median.get("error_samples") or []:
                console.print(
                    f"  {who} error: {sample}",
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
