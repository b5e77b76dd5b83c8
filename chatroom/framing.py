"""The wire format, sans-I/O: bytes in, JSON objects out; objects in, bytes out.

One frame is one JSON object on one line ended by ``\\n`` (protocol-v1, "Transport and
frames"). Nothing here awaits, reads a socket or looks at a clock, so the same decoder
serves the server, the client, the tests and the fuzzers.
"""

from __future__ import annotations

import json
import math
import re
from enum import StrEnum
from typing import Any

__all__ = [
    "MAX_FRAME_BYTES",
    "ErrorCode",
    "FrameDecoder",
    "ProtocolError",
    "decode_frame",
    "encode_object",
]

# protocol-v1 default, newline included. Big enough for a 4,000-character message in any
# script (at most 4 UTF-8 bytes, 6 when JSON-escaped), small enough that a hostile peer
# cannot make us hold much: the same order as IRCv3's 8 KiB tags+line and NATS' 1 MiB.
MAX_FRAME_BYTES = 64 * 1024


class ErrorCode(StrEnum):
    """The wire's error codes, spelled as on the wire."""

    BAD_FRAME = "bad_frame"
    UNKNOWN_TYPE = "unknown_type"
    BAD_REQUEST = "bad_request"
    NOT_JOINED = "not_joined"
    NAME_TAKEN = "name_taken"
    INVALID_NAME = "invalid_name"
    UNSUPPORTED_PROTOCOL = "unsupported_protocol"
    TOO_LONG = "too_long"
    RATE_LIMITED = "rate_limited"
    AUTH_FAILED = "auth_failed"
    SERVER_FULL = "server_full"
    TOO_MANY_CONNECTIONS = "too_many_connections"
    HANDSHAKE_TIMEOUT = "handshake_timeout"
    SHUTTING_DOWN = "shutting_down"
    INVALID_ROOM = "invalid_room"
    TOO_MANY_ROOMS = "too_many_rooms"
    NO_SUCH_MEMBER = "no_such_member"
    # Accounts, roles and moderation.
    NAME_REGISTERED = "name_registered"
    FORBIDDEN = "forbidden"
    BANNED = "banned"
    MUTED = "muted"
    INVITE_ONLY = "invite_only"
    BAD_KEY = "bad_key"
    REGISTERED_ONLY = "registered_only"
    MODERATED = "moderated"
    SLOW_MODE = "slow_mode"
    # Cluster mode: this node cannot reach the cluster now; another node can serve.
    UNAVAILABLE = "unavailable"


class ProtocolError(Exception):
    """The peer broke protocol-v1. ``code`` goes straight into the error frame.

    ``fatal`` means the stream cannot go on: the server answers and closes.
    """

    def __init__(self, code: ErrorCode, detail: str, *, fatal: bool = False) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.fatal = fatal


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _parse_float(literal: str) -> float:
    value = float(literal)
    if math.isinf(value):
        # 1e999 parses to inf in Python but is not a finite JSON number anyone can echo.
        raise ValueError("number out of range")
    return value


_JSON_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_parse_float)

# Escaped surrogates are the only way JSON can smuggle text that is not valid Unicode; the
# cheap byte test keeps the full walk off the path of ordinary frames.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _has_lone_surrogate(value: object) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


class FrameDecoder:
    """Splits a byte stream into JSON objects, one per line.

    Feed bytes with :meth:`receive_data` (``b""`` means end of stream), then call
    :meth:`next_frame` until it returns ``None``. Whatever bytes arrive, ``next_frame``
    returns a ``dict`` or ``None``, or raises :class:`ProtocolError`; nothing else.

    State after an error: the offending line has been consumed, so the next call goes on
    with the line after it. A line over the limit raises a fatal ``bad_frame`` once; the
    decoder then drops everything up to and including that line's newline (never holding
    more than the limit) and goes on after it, so a client-side user can choose to carry
    on while the server closes.
    """

    __slots__ = ("_buffer", "_discarding", "_eof", "_scanned", "max_frame_bytes")

    def __init__(self, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        if max_frame_bytes < 2:
            raise ValueError("max_frame_bytes must leave room for '{}' and a newline")
        self.max_frame_bytes = max_frame_bytes
        self._buffer = bytearray()
        # Where the newline search resumes, so a long line arriving in small chunks is
        # scanned once in all rather than once per chunk.
        self._scanned = 0
        self._discarding = False
        self._eof = False

    @property
    def buffered_bytes(self) -> int:
        """Bytes held that are not yet a whole frame."""
        return len(self._buffer)

    @property
    def at_eof(self) -> bool:
        """True once ``b""`` was fed and every complete frame has been taken."""
        return self._eof and not self._buffer

    def receive_data(self, data: bytes) -> None:
        """Add bytes from the peer; ``b""`` marks the end of the stream."""
        if not data:
            self._eof = True
            return
        if self._eof:
            raise RuntimeError("data received after end of stream")
        if self._discarding:
            newline = data.find(b"\n")
            if newline < 0:
                return
            self._discarding = False
            data = data[newline + 1 :]
        self._buffer += data

    def next_frame(self) -> dict[str, Any] | None:
        """Return the next JSON object, or ``None`` when a whole line has not arrived.

        Raises:
            ProtocolError: ``bad_frame`` for a line that is too long (fatal), not UTF-8,
                not JSON or not an object; ``bad_request`` for an object with text that
                is not valid Unicode.
        """
        while True:
            newline = self._buffer.find(b"\n", self._scanned)
            if newline < 0:
                self._scanned = len(self._buffer)
                if len(self._buffer) >= self.max_frame_bytes:
                    # Drop what we hold and the rest of this line as it comes; no part
                    # of it may ever be taken as a frame of its own.
                    self._buffer.clear()
                    self._scanned = 0
                    self._discarding = not self._eof
                    raise ProtocolError(
                        ErrorCode.BAD_FRAME,
                        f"frame longer than {self.max_frame_bytes} bytes",
                        fatal=True,
                    )
                if self._eof and self._buffer:
                    # A partial last line is not a frame (unlike readline() at EOF).
                    self._buffer.clear()
                    self._scanned = 0
                    raise ProtocolError(ErrorCode.BAD_FRAME, "stream ended inside a frame")
                return None
            line = bytes(self._buffer[:newline])
            del self._buffer[: newline + 1]
            self._scanned = 0
            if newline + 1 > self.max_frame_bytes:
                raise ProtocolError(
                    ErrorCode.BAD_FRAME,
                    f"frame longer than {self.max_frame_bytes} bytes",
                    fatal=True,
                )
            if not line.strip():
                continue
            return decode_frame(line)


def decode_frame(line: bytes) -> dict[str, Any]:
    """One frame's JSON object, for the decoder and for transports whose messages are
    frames already (a WebSocket message); the same rules and errors either way.

    Raises:
        ProtocolError: ``bad_frame`` for bytes that are not UTF-8, not JSON or not an
            object; ``bad_request`` for text that is not valid Unicode.
    """
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError(ErrorCode.BAD_FRAME, f"not UTF-8 at byte {exc.start}") from None
    try:
        value = _JSON_DECODER.decode(text)
    except (ValueError, RecursionError) as exc:
        # RecursionError: tens of thousands of nested brackets fit in one frame.
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc) or "too deep"
        raise ProtocolError(ErrorCode.BAD_FRAME, f"not JSON: {reason}") from None
    if not isinstance(value, dict):
        raise ProtocolError(ErrorCode.BAD_FRAME, "a frame must be a JSON object")
    if _SURROGATE_ESCAPE.search(line) and _has_lone_surrogate(value):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "text is not valid Unicode")
    return value


# One encoder for every frame: json.dumps() with any non-default option builds a new
# JSONEncoder per call, which costs as much as encoding a small event.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def encode_object(obj: dict[str, Any]) -> bytes:
    """Serialize one frame: compact JSON, UTF-8, one trailing newline.

    ``json.dumps`` escapes every control character inside strings, so the result holds
    exactly one newline, at the end, whatever the text.
    """
    return (_ENCODER.encode(obj) + "\n").encode("utf-8")
