"""What a load client says and reads over a WebSocket: chatroom's JSON lines at ``/ws``.

The connection opens with an HTTP/1.1 upgrade; from then on the client sends one JSON
frame per masked text message, and the server sends text messages that each carry one
or more whole JSON lines (a flush's batch for a member is one message). The lines are
counted by the same code as NDJSON's (:class:`~chatroom.bench.wire._JsonLinesLoad`);
this module only finds them.

Frames are parsed by hand rather than with the ``websockets`` library: the load
processes run near 100 % of their core, and the library builds a ``Frame`` object and
copies every payload, where this reader only finds where the payloads are.
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct

from chatroom.bench.engine import _Client
from chatroom.bench.wire import _hello_frame, _JsonLinesLoad

__all__ = [
    "OP_CLOSE",
    "OP_PING",
    "OP_PONG",
    "OP_TEXT",
    "FrameReader",
    "WebSocketError",
    "_WebSocketLoad",
    "accept_token",
    "client_frame",
    "mask_payload",
    "upgrade_request",
]

OP_CONT = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA
_FIN = 0x80
_MASKED = 0x80
# A final text frame's first byte: the only one whose payload is sure to hold whole lines.
_WHOLE_TEXT = _FIN | OP_TEXT
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
WEBSOCKET_PATH = "/ws"
# An HTTP response head longer than this is not the server's 101.
MAX_RESPONSE_HEAD = 16 * 1024
_SAY_PREFIX = b'{"type":"say","text":"'
_SAY_SUFFIX = b'"}'


class WebSocketError(Exception):
    """The server broke the WebSocket protocol (a masked frame, a refused upgrade...)."""


def accept_token(key: bytes) -> bytes:
    """The ``Sec-WebSocket-Accept`` a server must answer ``key`` with (RFC 6455 4.2.2)."""
    return base64.b64encode(hashlib.sha1(key + _GUID).digest())


def upgrade_request(host: str, port: int, key: bytes) -> bytes:
    """The HTTP/1.1 request that opens a WebSocket at ``/ws``; no ``Origin``, as any
    client that is not a browser."""
    return (
        f"GET {WEBSOCKET_PATH} HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key.decode()}\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        "\r\n"
    ).encode()


def check_upgrade(head: bytes, key: bytes) -> None:
    """Raise :class:`WebSocketError` unless ``head`` (the response up to its blank line)
    is a 101 that accepts ``key``."""
    lines = head.decode("latin-1").split("\r\n")
    status = lines[0].split(" ", 2)
    if len(status) < 2 or status[1] != "101":
        raise WebSocketError(f"upgrade refused: {lines[0][:120]}")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("sec-websocket-accept", "").encode() != accept_token(key):
        raise WebSocketError("upgrade answered with a wrong Sec-WebSocket-Accept")
    if headers.get("sec-websocket-extensions"):
        raise WebSocketError(f"unasked-for extensions: {headers['sec-websocket-extensions']}")


class Masker:
    """One connection's fixed mask, applied with one big-integer XOR per payload: a
    Python loop over the bytes would cost more than the rest of a send."""

    __slots__ = ("_ints", "_repeated", "key")

    def __init__(self, key: bytes) -> None:
        self.key = key
        self._repeated = key
        # Most payloads of a connection have the same few lengths (its says, its pongs).
        self._ints: dict[int, int] = {}

    def __call__(self, payload: bytes) -> bytes:
        size = len(payload)
        if not size:
            return payload
        mask = self._ints.get(size)
        if mask is None:
            if len(self._repeated) < size:
                self._repeated = self.key * (size // 4 + 1)
            mask = int.from_bytes(self._repeated[:size], "big")
            if len(self._ints) < 64:
                self._ints[size] = mask
        return (int.from_bytes(payload, "big") ^ mask).to_bytes(size, "big")


def mask_payload(payload: bytes, key: bytes) -> bytes:
    """``payload`` masked with the 4-byte ``key`` (RFC 6455 section 5.3)."""
    return Masker(key)(payload)


def client_frame(opcode: int, payload: bytes, mask: Masker) -> bytes:
    """One final, masked client frame."""
    size = len(payload)
    if size < 126:
        header = bytes((_FIN | opcode, _MASKED | size))
    elif size < 1 << 16:
        header = struct.pack("!BBH", _FIN | opcode, _MASKED | 126, size)
    else:
        header = struct.pack("!BBQ", _FIN | opcode, _MASKED | 127, size)
    return header + mask.key + mask(payload)


class FrameReader:
    """An incremental reader of server frames that finds payloads without copying them.

    ``feed`` returns the chunk (with any header left over from the last one in front),
    the ``[start, end)`` bounds of the text payloads in it, flattened, and the control
    frames that ended in it. Consecutive final text frames come back as one span, the
    headers between them included: each such payload is whole JSON lines, so a header
    sits only between a line's ``\\n`` and the next ``{``, where no pattern the counting
    code searches for can start or end, and one search over many frames costs what one
    over one does. A fragmented message is returned fragment by fragment.
    """

    __slots__ = ("_control", "_head", "_left", "_opcode", "_whole")

    def __init__(self) -> None:
        self._head = b""  # a header cut short by the end of the last chunk
        self._left = 0  # payload bytes of the current frame still to come
        self._opcode = OP_TEXT
        self._control = b""  # a control frame's payload so far
        self._whole = True  # the last text payload ended at a line boundary

    def feed(self, data: bytes) -> tuple[bytes, list[int], list[tuple[int, bytes]]]:
        # One pass per frame header, kept to a few bytecodes on the common path (a final
        # text frame): at 100 receivers this loop runs some 10^5 times a second.
        if self._head:
            # Rare (a read ending inside a few header bytes), so a copy is fine here.
            data = self._head + data
            self._head = b""
        size = len(data)
        spans: list[int] = []
        controls: list[tuple[int, bytes]] = []
        pos = 0
        start = end = -1  # the open span
        left = self._left
        if left:
            pos = left if left < size else size
            left -= pos
            if self._opcode >= OP_CLOSE:
                self._control += data[:pos]
                if not left:
                    controls.append((self._opcode, self._control))
                    self._control = b""
            else:
                start, end = 0, pos
        whole = self._whole
        opcode = self._opcode
        while not left and pos < size:
            if size - pos < 2:
                self._head = data[pos:]
                break
            header = pos
            first = data[pos]
            length = data[pos + 1]
            at = pos + 2
            if length > 125:
                if length == 126:
                    if size - at < 2:
                        self._head = data[pos:]
                        break
                    length = (data[at] << 8) | data[at + 1]
                    at += 2
                elif length == 127:
                    if size - at < 8:
                        self._head = data[pos:]
                        break
                    length = int.from_bytes(data[at : at + 8], "big")
                    at += 8
                else:
                    raise WebSocketError("the server masked a frame")
            pos = at + length
            if pos > size:
                left = pos - size
                pos = size
            if first == _WHOLE_TEXT:
                if whole and end == header:
                    end = pos
                else:
                    if end >= 0:
                        spans += (start, end)
                    start, end = at, pos
                whole = True
                opcode = OP_TEXT
                continue
            if first & 0x70:
                raise WebSocketError("a frame with reserved bits set (no extension was agreed)")
            opcode = first & 0x0F
            if opcode >= OP_CLOSE:
                if end >= 0:
                    spans += (start, end)
                    start = end = -1
                if left:
                    self._control = data[at:pos]
                else:
                    controls.append((opcode, data[at:pos]))
            elif opcode == OP_BINARY:
                raise WebSocketError("a binary message (the protocol is text)")
            else:
                # A fragment: its lines may go on in the next one, so it is a span of its
                # own and the line code joins the pieces.
                if end >= 0:
                    spans += (start, end)
                start, end = at, pos
                whole = bool(first & _FIN)
        self._left = left
        self._whole = whole
        self._opcode = opcode
        if end >= 0:
            spans += (start, end)
        return data, spans, controls


class _WsState:
    """A WebSocket client's own state: its key, its mask, its reader."""

    __slots__ = ("head", "key", "mask", "open", "reader")

    def __init__(self) -> None:
        self.key = base64.b64encode(os.urandom(16))
        self.mask = Masker(os.urandom(4))
        self.reader = FrameReader()
        self.open = False
        self.head = b""  # the HTTP response so far


class _WebSocketLoad(_JsonLinesLoad):
    """A load process whose clients speak chatroom's protocol over a WebSocket, as the
    web app does: the same frames, counted the same way, inside WebSocket messages."""

    def _handshake(self, client: _Client) -> None:
        client.wire = state = _WsState()
        self._write(client, upgrade_request(self.spec.host, self.spec.port, state.key))

    def _greet(self, client: _Client) -> None:
        hello = _hello_frame(client.name, self.spec.lazy_members).rstrip(b"\n")
        self._write(client, client_frame(OP_TEXT, hello, client.wire.mask))

    def _feed(self, client: _Client, data: bytes, now: int) -> None:
        state: _WsState = client.wire
        if not state.open:
            data = self._upgrade(client, state, data)
            if not data:
                return
        try:
            data, spans, controls = state.reader.feed(data)
        except WebSocketError as exc:
            self._note_error(f"{client.name}: {exc}")
            self._lost(client)
            return
        lines = self._lines
        for index in range(0, len(spans), 2):
            lines(client, data, spans[index], spans[index + 1], now)
        for opcode, payload in controls:
            if opcode == OP_PING:
                self._write(client, client_frame(OP_PONG, payload, state.mask))

    def _upgrade(self, client: _Client, state: _WsState, data: bytes) -> bytes:
        """Read the server's answer to the upgrade; return what follows it."""
        state.head += data
        end = state.head.find(b"\r\n\r\n")
        if end < 0:
            if len(state.head) > MAX_RESPONSE_HEAD:
                self._note_error(f"{client.name}: no end to the upgrade response")
                self._refused(client)
            return b""
        head, rest = state.head[:end], state.head[end + 4 :]
        state.head = b""
        try:
            check_upgrade(head, state.key)
        except WebSocketError as exc:
            self._note_error(f"{client.name}: {exc}")
            self._refused(client)
            return b""
        state.open = True
        self._ready(client)
        return rest

    def _frames(self, client: _Client, count: int, now: int) -> bytes:
        head = _SAY_PREFIX + b"%019d %04d " % (now, client.sender_id)
        tail = b" " + client.pad + _SAY_SUFFIX
        first = client.seq
        client.seq += count
        mask = client.wire.mask
        return b"".join(
            [
                client_frame(OP_TEXT, head + b"%09d" % seq + tail, mask)
                for seq in range(first, first + count)
            ]
        )
