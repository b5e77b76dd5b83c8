"""``/metrics`` (Prometheus text format) and ``/healthz`` on the chat port's HTTP side.

The numbers are kept as plain integers where they happen (:mod:`chatroom.stats`, the
hub, the history store, the listener) and turned into metric families only when a
scraper asks, by a custom collector: the fan-out never calls into prometheus-client.
Both paths answer loopback peers and the networks of ``--metrics-allow``; anyone else
gets the same 404 as for a file that does not exist.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import ipaddress
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from websockets.http11 import Request, Response

from chatroom.stats import DurationHistogram
from chatroom.transports.http import text_response

if TYPE_CHECKING:
    from chatroom.server import ChatServer

__all__ = [
    "HEALTH_PATH",
    "LOOP_LAG_INTERVAL_S",
    "METRICS_PATH",
    "ChatCollector",
    "LoopLag",
    "Ops",
    "parse_networks",
]

METRICS_PATH = "/metrics"
HEALTH_PATH = "/healthz"
# How often the loop's lag is sampled: twice a second costs nothing and catches a stall
# long before a 15 s scrape interval would show it any other way.
LOOP_LAG_INTERVAL_S = 0.5
_LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
# A proxy in front of the port would make every visitor look local.
_PROXY_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Real-IP")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(cidrs: Iterable[str]) -> list[Network]:
    """``--metrics-allow`` values as networks.

    Raises:
        ValueError: naming the value that is not an address or a CIDR network.
    """
    networks: list[Network] = []
    for cidr in cidrs:
        try:
            networks.append(ipaddress.ip_network(cidr.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{cidr!r} is not a network like 10.0.0.0/8 or an address") from None
    return networks


class LoopLag:
    """How late the event loop runs a timer: sampled every LOOP_LAG_INTERVAL_S."""

    def __init__(self) -> None:
        self.last_s = 0.0
        self.max_s = 0.0  # since the last scrape
        self.histogram = DurationHistogram()
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._due = loop.time() + LOOP_LAG_INTERVAL_S
        self._handle = loop.call_at(self._due, self._sample)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def take_max(self) -> float:
        peak, self.max_s = max(self.max_s, self.last_s), 0.0
        return peak

    def _sample(self) -> None:
        loop = asyncio.get_running_loop()
        lag = max(0.0, loop.time() - self._due)
        self.last_s = lag
        self.max_s = max(self.max_s, lag)
        self.histogram.observe(lag)
        self._due = loop.time() + LOOP_LAG_INTERVAL_S
        self._handle = loop.call_at(self._due, self._sample)


def _histogram(name: str, doc: str, histogram: DurationHistogram) -> HistogramMetricFamily:
    return HistogramMetricFamily(
        name, doc, buckets=histogram.cumulative(), sum_value=histogram.total_s
    )


def _by_label(
    family: CounterMetricFamily | GaugeMetricFamily, counts: Counter[str] | dict[str, int]
) -> CounterMetricFamily | GaugeMetricFamily:
    for label, value in sorted(counts.items()):
        family.add_metric([label], value)
    return family


class ChatCollector(Collector):
    """Reads the server's counts when scraped; nothing is kept between scrapes."""

    def __init__(self, server: ChatServer, lag: LoopLag) -> None:
        self._server = server
        self._lag = lag

    def collect(self) -> Iterator[Metric]:
        server = self._server
        hub = server.hub
        stats = hub.stats
        transports: Counter[str] = Counter()
        sendq_now = 0
        for conn in list(server.connections):
            transports[getattr(conn, "transport_name", "other")] += 1
            transport = getattr(conn, "transport", None)
            if transport is not None:
                with contextlib.suppress(Exception):  # a transport torn down meanwhile
                    sendq_now = max(sendq_now, transport.get_write_buffer_size())
        yield _by_label(
            GaugeMetricFamily(
                "chatroom_connections", "Open connections by transport", labels=["transport"]
            ),
            transports,
        )
        yield GaugeMetricFamily("chatroom_members", "Joined members", value=len(hub.all_members()))
        yield GaugeMetricFamily("chatroom_rooms", "Rooms with members", value=len(hub.rooms()))
        yield _by_label(
            CounterMetricFamily(
                "chatroom_events", "Events published, by wire type", labels=["type"]
            ),
            stats.events,
        )
        yield _by_label(
            CounterMetricFamily(
                "chatroom_deliveries",
                "Events delivered, by wire type: each event times the members of its "
                "room at the flush, plus its private recipients",
                labels=["type"],
            ),
            stats.deliveries,
        )
        yield CounterMetricFamily(
            "chatroom_received_bytes", "Bytes read from clients", value=stats.bytes_in
        )
        yield CounterMetricFamily(
            "chatroom_sent_bytes",
            "Bytes of events, welcomes and replies handed to the sockets",
            value=stats.bytes_out,
        )
        yield CounterMetricFamily(
            "chatroom_rate_limited_frames",
            "Frames refused by the flood limit",
            value=stats.rate_limited,
        )
        yield _by_label(
            CounterMetricFamily(
                "chatroom_connections_refused",
                "Connections refused at the door, by reason",
                labels=["reason"],
            ),
            stats.refused,
        )
        yield _by_label(
            CounterMetricFamily(
                "chatroom_sessions_ended",
                "Connections that ended, by leave reason (slow_consumer, timeout and "
                "kicked are the server's drops)",
                labels=["reason"],
            ),
            stats.sessions_ended,
        )
        yield GaugeMetricFamily(
            "chatroom_sendq_high_water_bytes",
            "The most unsent bytes one connection has held since the start",
            value=max(stats.sendq_high_water, sendq_now),
        )
        yield GaugeMetricFamily(
            "chatroom_sendq_max_bytes",
            "The most unsent bytes any open connection holds now",
            value=sendq_now,
        )
        yield _histogram(
            "chatroom_flush_duration_seconds",
            "How long each flush took: sinks, then fan-out",
            stats.flush_seconds,
        )
        store = server.config.history_store
        if store is not None:
            yield _histogram(
                "chatroom_history_commit_duration_seconds",
                "How long each commit of history rows to SQLite took",
                store.commit_seconds,
            )
            yield GaugeMetricFamily(
                "chatroom_history_backlog_rows",
                "Events journaled but not yet committed to SQLite",
                value=store.backlog,
            )
        yield GaugeMetricFamily(
            "chatroom_event_loop_lag_seconds",
            "How late the event loop ran its latest timer",
            value=self._lag.last_s,
        )
        engine = server.engine
        if engine is not None:
            yield GaugeMetricFamily(
                "chatroom_cluster_serving",
                "1 while this node holds its lease and takes sends, 0 while cut off",
                value=1 if engine.serving else 0,
            )
            counts = engine.counts
            yield CounterMetricFamily(
                "chatroom_cluster_applied_events",
                "Stream events this node applied",
                value=counts.applied,
            )
            yield CounterMetricFamily(
                "chatroom_cluster_script_calls",
                "Calls of the append script (each carries a batch of proposals)",
                value=counts.calls,
            )
            yield CounterMetricFamily(
                "chatroom_cluster_proposals",
                "Changes this node proposed to the cluster",
                value=counts.proposals,
            )
            yield CounterMetricFamily(
                "chatroom_cluster_cut_offs",
                "Times this node lost its lease or Redis and closed its members",
                value=counts.cut_offs,
            )
        yield GaugeMetricFamily(
            "chatroom_event_loop_lag_max_seconds",
            "The worst lag seen since the previous scrape",
            value=self._lag.take_max(),
        )
        yield _histogram(
            "chatroom_event_loop_lag_seconds_sampled",
            "Event-loop lag, sampled every 0.5 s",
            self._lag.histogram,
        )


class Ops:
    """The server's ``/metrics`` and ``/healthz``, and who may read them.

    Args:
        server: the server whose numbers are served.
        allow: networks (CIDR) besides loopback whose peers may read them.
    """

    paths = frozenset({METRICS_PATH, HEALTH_PATH})

    def __init__(self, server: ChatServer, allow: Iterable[str] = ()) -> None:
        self._server = server
        self.allow: list[Network] = [*_LOOPBACK, *parse_networks(allow)]
        self.lag = LoopLag()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(ChatCollector(server, self.lag))
        ProcessCollector(registry=self.registry)

    def set_allow(self, cidrs: Iterable[str]) -> None:
        """Who besides loopback may read the metrics from now on (a reload)."""
        self.allow = [*_LOOPBACK, *parse_networks(cidrs)]

    def start(self) -> None:
        self.lag.start()

    def close(self) -> None:
        self.lag.close()

    def allowed(self, host: str, request: Request) -> bool:
        """Whether a peer at ``host`` may read the metrics."""
        if any(request.headers.get(name) is not None for name in _PROXY_HEADERS):
            return False
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.allow)

    def healthy(self) -> tuple[bool, str]:
        """Whether the listener accepts and the history is written, and what is wrong."""
        server = self._server
        problems = []
        if not server.serving:
            problems.append("the listener is not accepting connections")
        store = server.config.history_store
        if store is not None and not store.healthy:
            problems.append("the history is not being written")
        if server.engine is not None and not server.engine.serving:
            # A load balancer then sends newcomers to a node that can serve them.
            problems.append("this node cannot reach the cluster's Redis")
        return not problems, "; ".join(problems) or "ok"

    def respond(self, request: Request, host: str) -> Response:
        """The response to a request for one of :attr:`paths` from ``host``."""
        if not self.allowed(host, request):
            return text_response(http.HTTPStatus.NOT_FOUND, b"not found\n")
        if request.method not in ("GET", "HEAD"):
            response = text_response(http.HTTPStatus.METHOD_NOT_ALLOWED, b"GET only\n")
            response.headers["Allow"] = "GET, HEAD"
            return response
        path = request.path.split("?", 1)[0]
        if path == METRICS_PATH:
            response = text_response(
                http.HTTPStatus.OK, generate_latest(self.registry), CONTENT_TYPE_LATEST
            )
        else:
            ok, why = self.healthy()
            status = http.HTTPStatus.OK if ok else http.HTTPStatus.SERVICE_UNAVAILABLE
            response = text_response(status, f"{why}\n".encode())
        if request.method == "HEAD":
            response.body = b""
        return response
