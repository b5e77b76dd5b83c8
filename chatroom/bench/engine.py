"""A load process's engine: its clients' sockets in one epoll loop, the phases, the counts."""

from __future__ import annotations

import abc
import array
import contextlib
import errno
import multiprocessing
import multiprocessing.connection
import os
import random
import select
import socket
import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

from chatroom.bench.options import DRAIN_TIMEOUT_S, NS_PER_S

__all__ = ["TEXT_HEADER_CHARS", "_Client", "_Load", "_LoadSpec"]

# A send stamp is 19 digits, a sender number 4, a sequence number 9, with a space after
# each: the shortest text that still carries all three.
TEXT_HEADER_CHARS = 35
# Probes and senders are read the moment data arrives; every other receiver is read in
# a sweep every LAZY_SWEEP_S, a slice at a time so a probe never waits for a whole sweep.
# One load core cannot read 100 sockets per message the moment each is written without
# queueing behind itself: it then measures its own backlog. The server's work is the
# same either way (a write per member per flush), and what arrives between sweeps is
# far from filling a loopback socket buffer. In ``latency`` all of it runs in one load
# process (probes in several processes on one core wait for each other's turn on it),
# with fewer probes.
LAZY_SWEEP_S = 0.005
LAZY_SLICES = 10
# One read takes what the kernel has queued, up to the default loopback socket buffer.
RECV_BYTES = 256 * 1024
CONNECT_TIMEOUT_S = 10.0
# An open-loop sender never lets more than this many messages go unacknowledged: past it
# the offered rate is not being served, which the result reports as skipped sends.
LATENCY_MAX_UNACKED = 1000


@dataclass(frozen=True)
class _LoadSpec:
    """What one load process does: its clients, the workload, the server's address."""

    mode: str  # fanout | latency | idle | storm
    host: str
    port: int
    names: tuple[str, ...]
    # For each name: its sender number, or -1 for a receiver.
    sender_ids: tuple[int, ...]
    # For each name: whether it times every message it receives.
    probes: tuple[bool, ...]
    total_members: int
    window: int
    rate_per_sender: float
    message_bytes: int
    seed: int
    connect_window: int
    core: int | None
    phase_timeout_s: float
    lazy_members: bool = False
    # What the clients speak: ndjson (chatroom's own wire), websocket (the same frames
    # in WebSocket messages, as the web app's clients send them) or irc (the gateway;
    # ``port`` is then its port).
    transport: str = "ndjson"
    # --cluster: for each name, the port of the node it connects to and that node's
    # number; for each sender number, its node. Empty: every client on ``port``, and
    # latency is not split by whether a message crossed from one node to another.
    ports: tuple[int, ...] = ()
    nodes: tuple[int, ...] = ()
    sender_nodes: tuple[int, ...] = ()


class _Client:
    """One connection on the load side: a socket and counters, nothing parsed per event."""

    __slots__ = (
        "closed",
        "connecting",
        "expected_joins",
        "fd",
        "joins",
        "marker",
        "messages",
        "name",
        "next_at",
        "node",
        "pad",
        "port",
        "probe",
        "resolved",
        "sender_id",
        "sent",
        "seq",
        "settled",
        "sock",
        "tail",
        "unacked",
        "welcomed",
        "welcomed_at",
        "wire",
    )

    def __init__(
        self,
        name: str,
        sender_id: int,
        probe: bool,
        pad: bytes,
        marker: bytes,
        port: int = 0,
        node: int = 0,
    ) -> None:
        self.name = name
        self.port = port
        self.node = node
        self.sender_id = sender_id
        self.probe = probe
        self.marker = marker
        self.pad = pad
        self.sock: socket.socket | None = None
        self.fd = -1
        self.tail = b""
        self.welcomed = False
        self.welcomed_at = 0
        self.settled = False
        self.expected_joins = 0
        self.joins = 0
        self.messages = 0
        self.unacked = 0
        self.sent = 0
        self.seq = 0
        self.next_at = 0
        self.closed = False
        self.connecting = False
        self.resolved = False
        # The protocol's own per-connection state (a WebSocket's frame reader, its mask).
        self.wire: Any = None


class _Load(abc.ABC):
    """The load process: all its clients in one epoll loop, steered over a pipe.

    What a client says and how its input is read are its protocol's: a subclass gives
    them (``_ack_marker``, ``_greet``, ``_feed``, ``_frames``, and ``_handshake`` when
    the connection needs one before the hello); connecting, writing,
    pacing, the phases and the counts are the same whatever the clients speak.
    """

    def __init__(self, spec: _LoadSpec, ctrl: multiprocessing.connection.Connection) -> None:
        self.spec = spec
        self.ctrl = ctrl
        self.epoll = select.epoll()
        self.ctrl_fd = ctrl.fileno()
        self.epoll.register(self.ctrl_fd, select.EPOLLIN)
        self.inbox: deque[tuple[Any, ...]] = deque()
        rng = random.Random(spec.seed)
        pad_chars = max(0, spec.message_bytes - TEXT_HEADER_CHARS)
        letters = "abcdefghijklmnopqrstuvwxyz"
        self.clients = [
            _Client(
                name,
                sender_id,
                probe,
                "".join(rng.choice(letters) for _ in range(pad_chars)).encode()
                if sender_id >= 0
                else b"",
                self._ack_marker(name),
                spec.ports[index] if spec.ports else spec.port,
                spec.nodes[index] if spec.nodes else 0,
            )
            for index, (name, sender_id, probe) in enumerate(
                zip(spec.names, spec.sender_ids, spec.probes, strict=True)
            )
        ]
        self.senders = [client for client in self.clients if client.sender_id >= 0]
        self.phase_offsets = [rng.random() for _ in self.senders]
        self.by_fd: dict[int, _Client] = {}
        self.t0 = 1 << 62  # the measured window; nothing is in it until "go"
        self.t1 = 1 << 62
        self.sending = False
        self.window_deliveries = 0
        self.sends = array.array("q")
        self.marks = array.array("q")
        self.mark_counts = array.array("q")
        # Beside each send stamp: 1 when its sender is on another node than the probe.
        self.sender_nodes = spec.sender_nodes
        self.crossed = array.array("b")
        self.started = 0
        self.connected = 0
        self.hello_on_connect = True
        self.resolved = 0
        self.welcomed = 0
        self.settled = 0
        self.errors = 0
        self.error_samples: list[str] = []
        self.leaves = 0
        self.disconnects = 0
        self.connect_failures = 0
        self.skipped = 0
        self.last_welcome = 0
        self.last_settle = 0

    # ---------------------------------------------------------------- protocol

    @abc.abstractmethod
    def _ack_marker(self, name: str) -> bytes:
        """Bytes only a message from ``name`` holds: a sender's own copy acknowledges."""

    @abc.abstractmethod
    def _greet(self, client: _Client) -> None:
        """Say what a client says once connected to be let in (its hello)."""

    @abc.abstractmethod
    def _feed(self, client: _Client, data: bytes, now: int) -> None:
        """Account for one chunk read from ``client`` at ``now``."""

    def _handshake(self, client: _Client) -> None:
        """Open the protocol on a connected socket; call ``_ready`` once it is open."""
        self._ready(client)

    @abc.abstractmethod
    def _frames(self, client: _Client, count: int, now: int) -> bytes:
        """``count`` messages from ``client``, each stamped ``now``, ready to write."""

    # ---------------------------------------------------------------- control

    def _read_ctrl(self) -> None:
        try:
            while self.ctrl.poll():
                self.inbox.append(self.ctrl.recv())
        except (EOFError, OSError):
            raise SystemExit("the bench went away") from None

    def _wait_ctrl(self, kind: str, timeout_s: float) -> tuple[Any, ...]:
        """Keep serving sockets until the bench sends ``kind``."""
        deadline = time.monotonic() + timeout_s
        while True:
            for index, message in enumerate(self.inbox):
                if message[0] == kind:
                    del self.inbox[index]
                    return message
            if time.monotonic() > deadline:
                raise SystemExit(f"no {kind!r} from the bench within {timeout_s:g} s")
            self._pump(0.05)

    def _send(self, message: tuple[Any, ...]) -> None:
        self.ctrl.send(message)

    # ---------------------------------------------------------------- sockets

    def _connect(self, client: _Client) -> None:
        """Start a non-blocking connect: a blocking one that waits out a SYN retransmit
        (1 s when the accept queue is full) would stop this whole process reading."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.started += 1
        error = sock.connect_ex((self.spec.host, client.port))
        if error not in (0, errno.EINPROGRESS):
            sock.close()
            self._connect_failed(client, os.strerror(error))
            return
        client.sock = sock
        client.fd = sock.fileno()
        client.connecting = True
        self.by_fd[client.fd] = client
        self.epoll.register(client.fd, select.EPOLLOUT)

    def _connected(self, client: _Client) -> None:
        assert client.sock is not None
        error = client.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if error:
            self.epoll.unregister(client.fd)
            self.by_fd.pop(client.fd, None)
            client.sock.close()
            client.sock = None
            self._connect_failed(client, os.strerror(error))
            return
        client.connecting = False
        self.connected += 1
        self.epoll.modify(client.fd, select.EPOLLIN)
        self._handshake(client)

    def _ready(self, client: _Client) -> None:
        """The protocol is open on ``client``: it says hello, or is done connecting."""
        if self.hello_on_connect:
            self._greet(client)
        else:
            self._resolve(client)

    def _resolve(self, client: _Client) -> None:
        """This client's current phase is over for it (welcomed, connected, or failed)."""
        if not client.resolved:
            client.resolved = True
            self.resolved += 1

    def _connect_failed(self, client: _Client, reason: str) -> None:
        client.closed = True
        self.connect_failures += 1
        self._resolve(client)
        self._note_error(f"{client.name}: connect: {reason}")

    def _write(self, client: _Client, data: bytes) -> None:
        sock = client.sock
        if sock is None or client.closed:
            return
        try:
            sent = sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            self._lost(client)
            return
        if sent < len(data):
            # The server is not reading this socket fast enough: rare, so wait for it
            # here, bounded, rather than keep an output queue per client.
            sock.settimeout(CONNECT_TIMEOUT_S)
            try:
                sock.sendall(data[sent:])
            except OSError:
                self._lost(client)
            finally:
                if not client.closed:
                    sock.setblocking(False)

    def _lost(self, client: _Client) -> None:
        if client.closed:
            return
        client.closed = True
        self.disconnects += 1
        self._resolve(client)
        if client.sock is not None:
            with contextlib.suppress(OSError, ValueError):
                self.epoll.unregister(client.fd)
            self.by_fd.pop(client.fd, None)
            client.sock.close()

    def _refused(self, client: _Client) -> None:
        """The server turned ``client`` away: it is done, and that is not a disconnect."""
        self._resolve(client)
        client.closed = True
        self.epoll.unregister(client.fd)
        self.by_fd.pop(client.fd, None)
        client.sock.close()  # type: ignore[union-attr]

    def _note_error(self, text: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(text[:200])

    def _pump(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` for input, then take everything that is ready."""
        events = self.epoll.poll(timeout_s)
        by_fd = self.by_fd
        for fd, _ in events:
            client = by_fd.get(fd)
            if client is None:
                if fd == self.ctrl_fd:
                    self._read_ctrl()
                continue
            if client.connecting:
                self._connected(client)
                continue
            self._receive(client)

    def _receive(self, client: _Client) -> int:
        """Read one chunk and account for it; return its size (0: nothing, or gone)."""
        try:
            data = client.sock.recv(RECV_BYTES)  # type: ignore[union-attr]
        except BlockingIOError:
            return 0
        except OSError:
            data = b""
        if data:
            # One clock read per socket, not per poll: with hundreds of sockets ready,
            # the last is read milliseconds after the first, and its latency says so.
            self._feed(client, data, time.monotonic_ns())
        else:
            self._lost(client)
        return len(data)

    # ---------------------------------------------------------------- output

    def _top_up(self, client: _Client, now: int) -> None:
        room = self.spec.window - client.unacked
        if room > 0 and not client.closed:
            self._write(client, self._frames(client, room, now))
            client.unacked += room
            client.sent += room

    def _paced_sends(self, now: int, interval_ns: int) -> int:
        """Send what the schedule says is due; return ns until the next send is due."""
        next_due = now + NS_PER_S
        for client in self.senders:
            if client.closed:
                continue
            if client.next_at <= now:
                due = (now - client.next_at) // interval_ns + 1
                client.next_at += due * interval_ns
                room = LATENCY_MAX_UNACKED - client.unacked
                if due > room:
                    self.skipped += due - max(room, 0)
                    due = max(room, 0)
                if due:
                    self._write(client, self._frames(client, due, now))
                    client.unacked += due
                    client.sent += due
            next_due = min(next_due, client.next_at)
        return max(0, next_due - now)

    # ---------------------------------------------------------------- phases

    def join_all(self, deadline: float, *, hello: bool = True) -> None:
        """Connect (and say hello) with a bounded number in flight, until all resolve.

        Without ``hello`` a client is resolved once connected.
        """
        self.hello_on_connect = hello
        pending = deque(self.clients)
        window = self.spec.connect_window
        total = len(self.clients)
        while self.resolved < total:
            while pending and self.started - self.resolved < window:
                self._connect(pending.popleft())
            if time.monotonic() > deadline:
                return
            self._pump(0.05)

    def hello_all(self) -> None:
        """Every connected client says hello now; the welcomes start a new phase."""
        self.resolved = 0
        for client in self.clients:
            client.resolved = client.closed or client.sock is None
            self.resolved += client.resolved
        for client in self.clients:
            if not client.resolved:
                self._greet(client)

    def wait_welcomed(self, deadline: float) -> None:
        total = len(self.clients)
        while self.resolved < total and time.monotonic() < deadline:
            self._pump(0.05)

    def settle(self, deadline: float) -> bool:
        """Read until every welcomed client has every join event it is owed."""
        while self.settled < self.welcomed:
            if time.monotonic() > deadline:
                return False
            self._pump(0.05)
        return True

    def linger(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self._pump(min(left, 0.05))

    def traffic(self, t_start: int, t0: int, t1: int) -> None:
        """Send from ``t_start`` until ``t1``, then wait for the senders' own copies."""
        self.t0, self.t1 = t0, t1
        clock = time.monotonic_ns
        while (now := clock()) < t_start:
            self._pump(min(0.05, (t_start - now) / NS_PER_S))
        paced = self.spec.mode == "latency"
        interval_ns = int(NS_PER_S / self.spec.rate_per_sender) if paced else 0
        self.sending = bool(self.senders)
        now = clock()
        for client, offset in zip(self.senders, self.phase_offsets, strict=True):
            if paced:
                client.next_at = now + int(offset * interval_ns)
            else:
                self._top_up(client, now)
        lazy = self._go_lazy()
        sweep_ns = int(LAZY_SWEEP_S * NS_PER_S / LAZY_SLICES)
        slice_size = -(-len(lazy) // LAZY_SLICES)
        slice_at = 0
        next_sweep = now + sweep_ns
        drain_deadline = t1 + int(DRAIN_TIMEOUT_S * NS_PER_S)
        while True:
            now = clock()
            if lazy and now >= next_sweep:
                self._sweep(lazy[slice_at : slice_at + slice_size])
                slice_at = (slice_at + slice_size) % len(lazy)
                next_sweep = now + sweep_ns
                now = clock()  # a send stamped before the sweep would count it as latency
            if self.sending and now >= t1:
                self.sending = False
            if not self.sending:
                if now > drain_deadline or not any(
                    client.unacked > 0 and not client.closed for client in self.senders
                ):
                    break
                self._pump(sweep_ns / NS_PER_S if lazy else 0.05)
                continue
            wait_ns = min(t1 - now, 50_000_000)
            if paced:
                wait_ns = min(wait_ns, self._paced_sends(now, interval_ns))
            if lazy:
                wait_ns = min(wait_ns, max(0, next_sweep - now))
            self._pump(wait_ns / NS_PER_S)
        self._sweep(lazy)
        for client in lazy:
            if not client.closed:
                self.epoll.modify(client.fd, select.EPOLLIN)

    def _go_lazy(self) -> list[_Client]:
        """Stop watching every receiver that is not a probe; ``_sweep`` reads them.

        Senders stay watched: in ``fanout`` their own copies pace them.
        """
        lazy = [
            client
            for client in self.clients
            if not client.probe and client.sender_id < 0 and not client.closed
        ]
        for client in lazy:
            self.epoll.modify(client.fd, 0)
        return lazy

    def _sweep(self, clients: list[_Client]) -> None:
        """Read whatever is queued on each of ``clients``, without waiting."""
        for client in clients:
            while not client.closed and self._receive(client) == RECV_BYTES:
                pass

    def drain(self, expected: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(client.messages >= expected for client in self.clients if not client.closed):
                return
            self._pump(0.05)

    # ---------------------------------------------------------------- report

    def latency_histogram(self) -> dict[int, int]:
        """Send-to-receive latencies in whole microseconds: {µs: count}."""
        values: list[int] = []
        sends = self.sends
        index = 0
        for now, count in zip(self.marks, self.mark_counts, strict=True):
            values.extend([(now - sent) // 1000 for sent in sends[index : index + count]])
            index += count
        return dict(Counter(values))

    def latency_by_path(self) -> tuple[dict[int, int], dict[int, int]]:
        """``latency_histogram`` split: (sender on the probe's node, on another node)."""
        same: Counter[int] = Counter()
        cross: Counter[int] = Counter()
        sends, crossed = self.sends, self.crossed
        index = 0
        for now, count in zip(self.marks, self.mark_counts, strict=True):
            for at in range(index, index + count):
                (cross if crossed[at] else same)[(now - sends[at]) // 1000] += 1
            index += count
        return dict(same), dict(cross)

    def report(self, expected: int | None = None) -> dict[str, Any]:
        lost = extra = 0
        if expected is not None:
            for client in self.clients:
                if client.sock is None and not client.welcomed:
                    continue
                lost += max(0, expected - client.messages)
                extra += max(0, client.messages - expected)
        split: dict[str, Any] = {}
        if self.sender_nodes:
            same, cross = self.latency_by_path()
            split = {"latency_same_us": same, "latency_cross_us": cross}
        return {
            **split,
            "clients": len(self.clients),
            "welcomed": self.welcomed,
            "settled": self.settled,
            "window_deliveries": self.window_deliveries,
            "latency_us": self.latency_histogram(),
            "sent": sum(client.sent for client in self.senders),
            "lost": lost,
            "extra": extra,
            "errors": self.errors,
            "error_samples": self.error_samples,
            "leaves": self.leaves,
            "disconnects": self.disconnects,
            "connect_failures": self.connect_failures,
            "skipped": self.skipped,
            "last_welcome": self.last_welcome,
            "last_settle": self.last_settle,
        }

    def close(self) -> None:
        for client in self.clients:
            if client.sock is not None:
                with contextlib.suppress(OSError):
                    client.sock.close()
        self.epoll.close()
