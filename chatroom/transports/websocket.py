"""HTTP on the chat port: the web app's files, and the protocol over a WebSocket at /ws.

The ``websockets`` library's sans-I/O :class:`~websockets.server.ServerProtocol` parses
the request and the client's frames; this module only translates. Server to client,
each text message carries one or more NDJSON frames, each ending in ``\\n`` (a flush's
batch for a member is one message); client to server, one frame per message. The
session, and so every limit, is the same as NDJSON's.

Events are written as the hub hands them: the NDJSON bytes it encoded once, wrapped in
one WebSocket frame header per flush that every WebSocket member of the room shares
(:class:`WebSocketWire`). Server frames are never masked or compressed, which is what
lets them be shared.
"""

from __future__ import annotations

import asyncio
import http
import logging
import struct
from typing import TYPE_CHECKING

from websockets.exceptions import InvalidState
from websockets.frames import Close, CloseCode, Frame, Opcode
from websockets.http11 import Request
from websockets.server import ServerProtocol

from chatroom.framing import ErrorCode, ProtocolError, decode_frame
from chatroom.protocol import Event, LeaveReason, Ping, ServerFrame, encode, parse_client_frame
from chatroom.session import Reply
from chatroom.transports.base import SessionCarrier
from chatroom.transports.http import WEBSOCKET_PATH, origin_allowed, text_response

if TYPE_CHECKING:
    from chatroom.server import ChatServer

__all__ = ["WEBSOCKET_WIRE", "WebConnection", "WebSocketWire", "text_frame"]

log = logging.getLogger("chatroom.server")
# The library logs every connection opened and every HTTP response at INFO: a line per
# browser and per metrics scrape. Its own logger lets the log keep them to debug.
_library_log = logging.getLogger("chatroom.websocket")

# Close codes (RFC 6455 section 7.4.1) for why the server ends a session.
_CLOSE_CODES = {
    LeaveReason.QUIT: CloseCode.NORMAL_CLOSURE,
    LeaveReason.DISCONNECTED: CloseCode.NORMAL_CLOSURE,
    LeaveReason.KICKED: CloseCode.POLICY_VIOLATION,
    LeaveReason.SHUTDOWN: CloseCode.GOING_AWAY,
}


def text_frame(body: bytes) -> bytes:
    """``body`` as one unmasked, final WebSocket text frame (RFC 6455 section 5.2)."""
    size = len(body)
    if size < 126:
        header = bytes((0x81, size))
    elif size < 1 << 16:
        header = struct.pack("!BBH", 0x81, 126, size)
    else:
        header = struct.pack("!BBQ", 0x81, 127, size)
    return header + body


class WebSocketWire:
    """The hub's view of WebSocket members: NDJSON frames, one text message a write."""

    def encode_event(self, event: Event, ndjson: bytes) -> bytes:
        return ndjson

    def encode_reply(self, frame: ServerFrame, ndjson: bytes) -> bytes:
        return ndjson

    def frame(self, body: bytes) -> bytes:
        return text_frame(body)

    def skips(self, event: Event) -> str | None:
        return None

    def collapses(self, event: Event) -> object | None:
        return None


# One for every WebSocket member, so the hub shares each flush's bytes among them all.
WEBSOCKET_WIRE = WebSocketWire()


class WebConnection(SessionCarrier, asyncio.Protocol):
    """A connection whose first bytes were HTTP: a request for the web app's files, or
    a WebSocket upgrade at :data:`WEBSOCKET_PATH` carrying a session."""

    __slots__ = ("_fragments", "_open", "_ws")

    wire = WEBSOCKET_WIRE

    def __init__(self, server: ChatServer) -> None:
        super().__init__(server)
        config = server.config
        # Client messages are frames, so a frame's limit is a message's: past it the
        # library closes with 1009 (message too big), fragments counted together.
        self._ws = ServerProtocol(max_size=config.max_frame_bytes, logger=_library_log)
        self._fragments: list[bytes] | None = None
        self._open = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Only a listener that speaks HTTP alone would start here; the chat port starts
        # every connection as NDJSON and hands HTTP over (take_over).
        self.carry(transport)

    def data_received(self, data: bytes) -> None:
        session = self.session
        if session.closing:
            return
        now = self.loop.time()
        session.last_received = now
        self.server.hub.stats.bytes_in += len(data)
        self._ws.receive_data(data)
        self._handle_events(now)

    def eof_received(self) -> bool:
        self._ws.receive_eof()
        self._handle_events(self.loop.time())
        if self.session.closing:
            return False
        return self.session.end_of_input()

    # ------------------------------------------------------------------ the Link

    def encode_reply(self, frame: Reply) -> bytes:
        if not self._open:
            return b""  # before the upgrade there is nobody to tell
        if type(frame) is Ping:
            # A WebSocket ping: browsers answer it themselves, even in a background tab
            # whose scripts are throttled, and any bytes back count as the answer.
            return Frame(Opcode.PING, frame.token.encode()).serialize(mask=False, extensions=[])
        return text_frame(encode(frame))

    def goodbye(self, reason: LeaveReason) -> bytes:
        if not self._open:
            return b""
        code = _CLOSE_CODES.get(reason, CloseCode.NORMAL_CLOSURE)
        try:
            self._ws.send_close(code, reason.value)
        except InvalidState:
            return b""  # the peer closed first; the library has answered it
        return b"".join(chunk for chunk in self._ws.data_to_send() if chunk)

    # ------------------------------------------------------------------ internals

    def _handle_events(self, now: float) -> None:
        try:
            for event in self._ws.events_received():
                if isinstance(event, Request):
                    self._request(event)
                elif isinstance(event, Frame):
                    self._frame(event, now)
            self._write_pending()
        except Exception:
            # A bug must cost this connection, never the server or anyone else.
            log.exception(
                "connection %s failed; it is closed, the server goes on", self.session.peer
            )
            self.session.drop(LeaveReason.DISCONNECTED)
        if self.session.deadline != self._timer_at:
            self._sync_timer()

    def _write_pending(self) -> None:
        """Send what the library has to say (its responses, pongs, close frames); an
        empty chunk is its end of output."""
        for chunk in self._ws.data_to_send():
            if chunk:
                self.outbox.send(chunk)
            else:
                # The library is done with the connection: an HTTP response was sent,
                # a closing handshake ended, or it failed the connection (1009, a
                # protocol error). Whoever was joined leaves; then the socket closes.
                self.session.drop(LeaveReason.DISCONNECTED)

    @property
    def transport_name(self) -> str:  # type: ignore[override]
        return "websocket" if self._open else "http"

    def _request(self, request: Request) -> None:
        ws = self._ws
        path = request.path.split("?", 1)[0]
        ops = self.server.ops
        if ops is not None and path in ops.paths:
            ws.send_response(ops.respond(request, self.peer_host))
            return
        if not self.server.config.web:
            ws.send_response(text_response(http.HTTPStatus.NOT_FOUND, b"not found\n"))
            return
        if path != WEBSOCKET_PATH:
            # The cluster's other nodes are those allowed to open our WebSocket: the
            # page may open theirs (its ?servers= parameter moves between them).
            response = self.server.static_files.respond(
                request.method, path, peer_origins=self.server.config.allow_origins
            )
            ws.send_response(response)
            return
        tls = self.transport.get_extra_info("sslcontext") is not None
        if not origin_allowed(request.headers, tls, self.server.config.allow_origins):
            # Cross-site WebSocket hijacking: another page open in the same browser
            # must not chat in the user's name.
            response = ws.reject(403, "this page's origin may not open a chat connection\n")
            ws.send_response(response)
            return
        response = ws.accept(request)
        ws.send_response(response)
        if response.status_code == 101:
            self._open = True

    def _frame(self, frame: Frame, now: float) -> None:
        session = self.session
        if frame.opcode is Opcode.CLOSE:
            close = Close.parse(frame.data) if frame.data else None
            log.debug("%s closed the WebSocket (%s)", session.peer, close)
            session.drop(LeaveReason.DISCONNECTED)
            return
        data = bytes(frame.data)
        if frame.opcode is Opcode.TEXT:
            self._fragments = None if frame.fin else [data]
            if frame.fin:
                self._message(data, now)
        elif frame.opcode is Opcode.CONT and self._fragments is not None:
            self._fragments.append(data)
            if frame.fin:
                data, self._fragments = b"".join(self._fragments), None
                self._message(data, now)
        elif frame.opcode is Opcode.BINARY:
            session.receive_error(
                ProtocolError(ErrorCode.BAD_FRAME, "frames are JSON in text messages"), now
            )

    def _message(self, data: bytes, now: float) -> None:
        session = self.session
        if not session.accepting:
            return
        # One message is one frame, its size already bounded by the library.
        try:
            frame = parse_client_frame(decode_frame(data))
        except ProtocolError as exc:
            session.receive_error(exc, now)
            return
        session.receive(frame, now)
