"""NDJSON over TCP: protocol-v1's own transport. Bytes to frames and back, nothing more.

Each connection is an asyncio protocol with one :class:`StreamOutbox`, the only code
that writes to its socket, so frames never interleave. What the frames mean is the
:class:`~chatroom.session.Session`'s business.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING, cast

from chatroom.framing import FrameDecoder, ProtocolError
from chatroom.hub import WireFormat
from chatroom.limits import SendQBound
from chatroom.protocol import LeaveReason, encode, parse_client_frame
from chatroom.session import Reply, Session

if TYPE_CHECKING:
    from chatroom.server import ChatServer

__all__ = ["CLOSE_DRAIN_S", "READ_CHUNK_BYTES", "NdjsonConnection", "StreamOutbox"]

log = logging.getLogger("chatroom.server")

# One read takes what the kernel has, up to a frame's worth: fewer wakeups under load,
# and the decoder never holds more than about two frame limits.
READ_CHUNK_BYTES = 64 * 1024
# How long a closed connection's buffered output may take to drain before the socket is
# aborted: a peer that stopped reading would otherwise hold it open for ever, unseen by
# the connection limits (TCP itself never gives up on a zero window).
CLOSE_DRAIN_S = 5.0


class StreamOutbox(SendQBound):
    """A member's outbox: writes to its transport, and enforces its SendQ bound.

    Never awaits: the fan-out loop must not stall on one slow reader. Never raises.
    """

    __slots__ = ("_conn", "_fd", "_loop", "_transport", "closed")

    def __init__(self, conn: NdjsonConnection, transport: asyncio.WriteTransport) -> None:
        config = conn.server.config
        super().__init__(config.max_sendq_bytes, config.soft_sendq_bytes, config.soft_sendq_grace_s)
        self._conn = conn
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


# Every connection reads into this one buffer: a read is decoded before the loop reads
# anything else, so nothing is ever left in it, and no connection holds a buffer of its
# own while it is idle.
_READ_BUFFER = bytearray(READ_CHUNK_BYTES)
_READ_VIEW = memoryview(_READ_BUFFER)


class NdjsonConnection(asyncio.BufferedProtocol):
    """One NDJSON connection: bytes in through the decoder to its session, bytes out
    through its outbox, one timer at the session's deadline.

    A protocol rather than a stream and a task: what the loop reads is decoded and
    handled in the same callback, so it joins the flush of that loop iteration, and a
    read costs no task wake-up (several microseconds each, at thousands a second).
    """

    # Slots: ten thousand idle connections each hold one of these.
    __slots__ = (
        "_admitted",
        "_close_timer",
        "_timer",
        "_timer_at",
        "decoder",
        "loop",
        "outbox",
        "peer_host",
        "server",
        "session",
        "transport",
    )

    # The hub's own bytes: events go out exactly as it encoded them.
    wire: WireFormat | None = None

    def __init__(self, server: ChatServer) -> None:
        self.server = server
        self.loop = asyncio.get_running_loop()
        self.peer_host = "local"
        self.decoder = FrameDecoder(server.config.max_frame_bytes)
        self._admitted = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._close_timer: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------------ lifecycle

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
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
            now=self.loop.time(),
            peer=peer_name,
        )
        if server.closing:
            self.session.detach()
            self.outbox.closed = True
            self.transport.abort()
            return
        refusal = server.admit(self, self.peer_host)
        if refusal is not None:
            self.send_reply(refusal)
            self.session.detach()
            self.outbox.closed = True
            self.transport.close()
            return
        self._admitted = True
        self._sync_timer()

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

    def get_buffer(self, sizehint: int) -> memoryview:
        # Never more than what completes a frame at the limit: the decoder then holds
        # at most the limit, whatever the peer sends.
        room_left = self.server.config.max_frame_bytes - self.decoder.buffered_bytes
        return _READ_VIEW[: min(READ_CHUNK_BYTES, max(room_left, 1))]

    def buffer_updated(self, nbytes: int) -> None:
        session = self.session
        if session.closing:
            return
        now = self.loop.time()
        session.last_received = now
        self.decoder.receive_data(bytes(_READ_VIEW[:nbytes]))
        self._feed(now)
        if session.deadline != self._timer_at:
            self._sync_timer()

    def eof_received(self) -> bool:
        if self.session.closing:
            return False
        self.decoder.receive_data(b"")
        self._feed(self.loop.time())
        keep_open = self.session.end_of_input()
        self._sync_timer()
        return keep_open

    # ------------------------------------------------------------------ the Link

    def send_reply(self, frame: Reply) -> None:
        self.outbox.send(encode(frame))

    def pause_reading(self) -> None:
        self.transport.pause_reading()

    def close(self, reason: LeaveReason) -> None:
        self.outbox.closed = True
        self._cancel_timer()
        transport = self.transport
        if reason in (LeaveReason.SLOW_CONSUMER, LeaveReason.TIMEOUT):
            # A graceful close waits for the buffer to drain, which a stalled reader
            # never lets happen: drop the bytes and the socket now.
            transport.abort()
        elif not transport.is_closing():
            transport.close()
            # The connection (and its place in the limits) lasts until the socket has
            # closed: within CLOSE_DRAIN_S, or it is aborted.
            self._close_timer = self.loop.call_later(CLOSE_DRAIN_S, transport.abort)

    # ------------------------------------------------------------------ the Connection

    def shutdown(self) -> None:
        self.session.detach()
        self._cancel_timer()
        self.outbox.closed = True
        self.transport.close()

    def abort(self) -> None:
        self.transport.abort()

    # ------------------------------------------------------------------ internals

    def _feed(self, now: float) -> None:
        session = self.session
        decoder = self.decoder
        try:
            while session.accepting:
                try:
                    obj = decoder.next_frame()
                    if obj is None:
                        return
                    frame = parse_client_frame(obj)
                except ProtocolError as exc:
                    session.receive_error(exc, now)
                    continue
                session.receive(frame, now)
        except Exception:
            # A bug must cost this connection, never the server or anyone else.
            log.exception("connection %s failed; it is closed, the server goes on", session.peer)
            session.drop(LeaveReason.DISCONNECTED)

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
