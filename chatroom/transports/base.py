"""What every transport's connection shares: its outbox, its session's timer, the close.

A transport subclasses :class:`SessionCarrier` beside its asyncio protocol class and
adds only its wire format: how bytes become frames, how a reply and a goodbye are
written.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar, cast

from chatroom.delivery import WireFormat
from chatroom.limits import SendQBound
from chatroom.protocol import LeaveReason
from chatroom.session import Reply, Session

if TYPE_CHECKING:
    from chatroom.server import ChatServer

__all__ = ["CLOSE_DRAIN_S", "SessionCarrier", "StreamOutbox"]

log = logging.getLogger("chatroom.server")

T = TypeVar("T")

# How long a closed connection's buffered output may take to drain before the socket is
# aborted: a peer that stopped reading would otherwise hold it open for ever, unseen by
# the connection limits (TCP itself never gives up on a zero window).
CLOSE_DRAIN_S = 5.0


class StreamOutbox(SendQBound):
    """A member's outbox: writes to its transport, and enforces its SendQ bound.

    Never awaits: the fan-out loop must not stall on one slow reader. Never raises.
    """

    __slots__ = ("_conn", "_fd", "_loop", "_stats", "_transport", "closed")

    def __init__(self, conn: SessionCarrier, transport: asyncio.WriteTransport) -> None:
        config = conn.server.config
        super().__init__(config.max_sendq_bytes, config.soft_sendq_bytes, config.soft_sendq_grace_s)
        self._conn = conn
        self._stats = conn.server.hub.stats
        self._loop = conn.loop
        self._transport = transport
        self.closed = False
        self._fd = _direct_write_fd(conn.loop, transport)

    def send(self, payload: bytes) -> None:
        transport = self._transport
        if self.closed or transport.is_closing():
            # A peer that reset is gone before connection_lost has dropped it. Writing
            # would raise under uvloop (aborting the rest of a fan-out) and make asyncio
            # log a warning per write: thousands for one garbage line after another.
            return
        backlog = transport.get_write_buffer_size()
        if not backlog and self._fd >= 0 and len(payload) <= self._hard_bytes:
            # The fan-out's common case: the peer keeps up, so nothing is queued and no
            # bound applies. Writing the socket ourselves skips the transport's checks,
            # a third of a member's share of a flush. What the kernel does not take
            # goes to the transport, which queues it behind nothing: the order holds.
            self._burst = 0
            self._over_soft_since = None
            try:
                sent = os.write(self._fd, payload)
            except OSError:
                # Full (BlockingIOError): the transport queues it. Reset or broken: the
                # transport's own write meets the same error and closes the connection.
                sent = 0
            if sent == len(payload):
                return
            transport.write(payload[sent:])
            return
        # Only a peer that has fallen behind gets here, so the fast path above pays
        # nothing for the high-water mark.
        if backlog > self._stats.sendq_high_water:
            self._stats.sendq_high_water = backlog
        if self.over_bound(backlog, len(payload), self._loop.time()):
            self._conn.session.drop(LeaveReason.SLOW_CONSUMER)
            return
        transport.write(payload)

    def close(self, reason: LeaveReason) -> None:
        self._conn.session.drop(reason)


def _direct_write_fd(loop: asyncio.AbstractEventLoop, transport: asyncio.WriteTransport) -> int:
    """The socket's descriptor when :class:`StreamOutbox` may write it while the
    transport has nothing queued, else -1.

    Only asyncio's own selector transport over plain TCP qualifies: it writes at once
    when its buffer is empty and keeps no state about the socket's send side beyond
    that buffer. TLS must go through its transport; uvloop queues inside libuv.
    """
    if not isinstance(loop, asyncio.SelectorEventLoop):
        return -1
    if transport.get_extra_info("sslcontext") is not None:
        return -1
    sock = transport.get_extra_info("socket")
    return -1 if sock is None else int(sock.fileno())


class SessionCarrier:
    """A connection that carries one session: admission, outbox, timer, close.

    The session's :class:`~chatroom.session.Link` and the listener's
    :class:`~chatroom.transports.Connection`; subclasses supply :meth:`encode_reply`
    and, when closing gracefully says something on their wire, :meth:`goodbye`.
    """

    # Slots: ten thousand idle connections each hold one of these.
    __slots__ = (
        "_admitted",
        "_close_timer",
        "_timer",
        "_timer_at",
        "accepted_at",
        "loop",
        "outbox",
        "peer_host",
        "server",
        "session",
        "transport",
    )

    # What the hub writes this connection's events in; None: NDJSON as it encodes them.
    wire: WireFormat | None = None
    # The transport's name in the metrics' connection counts.
    transport_name = "ndjson"

    def __init__(self, server: ChatServer) -> None:
        self.server = server
        self.loop = asyncio.get_running_loop()
        self.peer_host = "local"
        self.accepted_at = self.loop.time()
        self._admitted = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._close_timer: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------------ lifecycle

    def carry(self, transport: asyncio.BaseTransport) -> bool:
        """Take the new connection on: outbox, session, admission. False when it was
        refused (the refusal is on its way) or the server is stopping."""
        # uvloop's transports do not derive from asyncio's; they have the same methods.
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        peer_name = "local"
        if isinstance(peer, tuple):
            self.peer_host = str(peer[0])
            peer_name = f"{self.peer_host}:{peer[1]}"
        self.outbox = StreamOutbox(self, self.transport)
        server = self.server
        self.session = Session(
            server.hub,
            server.session_limits,
            self,
            self.outbox,
            now=self.accepted_at,
            peer=peer_name,
        )
        if server.closing:
            self._refuse(None)
            return False
        refusal = server.admit(self, self.peer_host)
        if refusal is not None:
            self._refuse(refusal)
            return False
        self._admitted = True
        self._sync_timer()
        return True

    def take_over(self, other: SessionCarrier) -> None:
        """Carry on a connection ``other`` accepted (its first bytes told the two apart):
        its transport, its place in the limits, its acceptance time."""
        self.transport = other.transport
        self.peer_host = other.peer_host
        self.accepted_at = other.accepted_at
        self.outbox = StreamOutbox(self, self.transport)
        self.session = Session(
            self.server.hub,
            self.server.session_limits,
            self,
            self.outbox,
            now=self.accepted_at,
            peer=other.session.peer,
        )
        other.session.detach()
        other._cancel_timer()
        other.outbox.closed = True
        self._admitted, other._admitted = other._admitted, False
        if self._admitted:
            self.server.replace(other, self)
        self._sync_timer()

    def refresh_limits(self) -> None:
        """Take on the server's limits as they are now (a reload changed them): the
        flood bucket's pace and burst, the SendQ bounds. Deadlines and the password
        are read from the limits whenever they are used, so they need nothing here."""
        limits = self.server.session_limits
        bucket = self.session.bucket
        bucket.rate = limits.flood_rate
        bucket.burst = limits.flood_burst
        bucket.tokens = min(bucket.tokens, float(limits.flood_burst))
        config = self.server.config
        self.outbox.set_bounds(config.max_sendq_bytes, config.soft_sendq_bytes)

    def _refuse(self, refusal: Reply | None) -> None:
        reason = getattr(refusal, "code", "shutting_down")
        self.server.hub.stats.refused[reason] += 1
        if refusal is not None:
            log.info(
                "refused a connection from %s: %s",
                self.session.peer,
                reason,
                extra={"event": "refused", "peer": self.session.peer, "reason": reason},
            )
            self.send_reply(refusal)
        self.session.detach()
        self.outbox.closed = True
        if refusal is None:
            self.transport.abort()
        else:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None:
            log.debug("%s connection lost: %s", self.session.peer, exc)
        self.session.drop(LeaveReason.DISCONNECTED)
        self._cancel_timer()
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        if self._admitted:
            self._admitted = False
            self.server.forget(self, self.peer_host)

    # ------------------------------------------------------------------ the Link

    def encode_reply(self, frame: Reply) -> bytes:
        """``frame`` as this transport writes it to its peer."""
        raise NotImplementedError

    def goodbye(self, reason: LeaveReason) -> bytes:
        """What to write last when closing gracefully for ``reason``."""
        return b""

    def send_reply(self, frame: Reply) -> None:
        data = self.encode_reply(frame)
        if data:
            self.server.hub.stats.bytes_out += len(data)
            self.outbox.send(data)

    def pause_reading(self) -> None:
        self.transport.pause_reading()

    def run_job(self, job: Callable[[], T], done: Callable[[T, float], None]) -> None:
        future = self.loop.run_in_executor(self.server.jobs, job)

        def finished(result: asyncio.Future[T]) -> None:
            if result.cancelled():
                return
            failure = result.exception()
            if failure is not None:
                log.error("%s: a job failed: %r", self.session.peer, failure)
                self.session.drop(LeaveReason.DISCONNECTED)
            else:
                done(result.result(), self.loop.time())
            self._sync_timer()

        future.add_done_callback(finished)

    def close(self, reason: LeaveReason) -> None:
        self._cancel_timer()
        transport = self.transport
        if reason in (LeaveReason.SLOW_CONSUMER, LeaveReason.TIMEOUT):
            # A graceful close waits for the buffer to drain, which a stalled reader
            # never lets happen: drop the bytes and the socket now.
            self.outbox.closed = True
            transport.abort()
            return
        last = self.goodbye(reason)
        if last:
            self.outbox.send(last)
        self.outbox.closed = True
        if not transport.is_closing():
            transport.close()
            # The connection (and its place in the limits) lasts until the socket has
            # closed: within CLOSE_DRAIN_S, or it is aborted.
            self._close_timer = self.loop.call_later(CLOSE_DRAIN_S, transport.abort)

    # ------------------------------------------------------------------ the Connection

    def shutdown(self) -> None:
        self.session.detach()
        self._cancel_timer()
        last = self.goodbye(LeaveReason.SHUTDOWN)
        if last:
            self.outbox.send(last)
        self.outbox.closed = True
        self.transport.close()

    def abort(self) -> None:
        self.transport.abort()

    # ------------------------------------------------------------------ the timer

    def _sync_timer(self) -> None:
        """One timer per connection, at the session's deadline. Reads do not move the
        deadline (see Session.on_deadline), so the hot path never creates or cancels
        a timer."""
        when = self.session.deadline
        if when == self._timer_at:
            return
        self._cancel_timer()
        if when is not None:
            self._timer_at = when
            self._timer = self.loop.call_at(when, self._on_timer)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = None

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self.session.on_deadline(self.loop.time())
        self._sync_timer()
