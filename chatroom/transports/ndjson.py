"""NDJSON over TCP: protocol-v1's own transport. Bytes to frames and back, nothing more.

What the frames mean is the :class:`~chatroom.session.Session`'s business. Every
connection on the listening port starts here; when its first bytes are an HTTP request
line it is handed to :mod:`chatroom.transports.websocket` instead (a JSON line starts
with ``{``, so the two never meet).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from chatroom.framing import FrameDecoder, ProtocolError
from chatroom.protocol import LeaveReason, encode, parse_client_frame
from chatroom.session import Reply
from chatroom.transports.base import CLOSE_DRAIN_S, SessionCarrier, StreamOutbox

if TYPE_CHECKING:
    from chatroom.server import ChatServer

__all__ = ["CLOSE_DRAIN_S", "READ_CHUNK_BYTES", "NdjsonConnection", "StreamOutbox"]

log = logging.getLogger("chatroom.server")

# One read takes what the kernel has, up to a frame's worth: fewer wakeups under load,
# and the decoder never holds more than about two frame limits.
READ_CHUNK_BYTES = 64 * 1024
# The request methods that make a connection's first bytes HTTP, each with its space.
_HTTP_METHODS = (b"GET ", b"HEAD ", b"POST ", b"PUT ", b"DELETE ", b"OPTIONS ", b"PATCH ")
_LONGEST_METHOD = max(len(method) for method in _HTTP_METHODS)

# Every connection reads into this one buffer: a read is decoded before the loop reads
# anything else, so nothing is ever left in it, and no connection holds a buffer of its
# own while it is idle.
_READ_BUFFER = bytearray(READ_CHUNK_BYTES)
_READ_VIEW = memoryview(_READ_BUFFER)


def looks_like_http(head: bytes) -> bool | None:
    """Whether a connection's first bytes are an HTTP request (None: too few to tell)."""
    for method in _HTTP_METHODS:
        if head.startswith(method):
            return True
        if method.startswith(head):
            return None
    return False


class NdjsonConnection(SessionCarrier, asyncio.BufferedProtocol):
    """One NDJSON connection: bytes in through the decoder to its session, bytes out
    through its outbox, one timer at the session's deadline.

    A protocol rather than a stream and a task: what the loop reads is decoded and
    handled in the same callback, so it joins the flush of that loop iteration, and a
    read costs no task wake-up (several microseconds each, at thousands a second).
    """

    __slots__ = ("_head", "decoder")

    def __init__(self, server: ChatServer) -> None:
        super().__init__(server)
        self.decoder = FrameDecoder(server.config.max_frame_bytes)
        # The first bytes, held until they tell NDJSON from HTTP (None: told).
        # The metrics and health check are HTTP too, so they need it even without the web app.
        self._head: bytes | None = b"" if server.config.web or server.config.metrics else None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.carry(transport)

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
        self.server.hub.stats.bytes_in += nbytes
        data = bytes(_READ_VIEW[:nbytes])
        if self._head is not None:
            data = self._head + data
            http = looks_like_http(data[:_LONGEST_METHOD])
            if http is None:
                self._head = data
                return
            self._head = None
            if http:
                self._hand_over_to_http(data)
                return
        self.decoder.receive_data(data)
        self._feed(now)
        if session.deadline != self._timer_at:
            self._sync_timer()

    def eof_received(self) -> bool:
        if self.session.closing:
            return False
        if self._head:
            self.decoder.receive_data(self._head)
        self.decoder.receive_data(b"")
        self._feed(self.loop.time())
        keep_open = self.session.end_of_input()
        self._sync_timer()
        return keep_open

    def encode_reply(self, frame: Reply) -> bytes:
        return encode(frame)

    def _hand_over_to_http(self, data: bytes) -> None:
        # Imported here: most servers never see a browser, and the WebSocket library
        # then costs them nothing.
        from chatroom.transports.websocket import WebConnection

        web = WebConnection(self.server)
        web.take_over(self)
        self.transport.set_protocol(web)
        web.data_received(data)

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
