"""IRC lines, sans-I/O: bytes in, :class:`IrcLine` out; lines in, bytes out.

The grammar is RFC 1459's as modern clients send it (modern.ircdocs.horse) with IRCv3
message tags. Limits: a line's body (source, command, params and the ending) is at most
512 bytes, its tags at most 4,096 more (IRCv3 message-tags, for a client's). Lines end
in ``\\r\\n``; a bare ``\\n`` is accepted, as every server does, and input may arrive
split anywhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_TAGS_BYTES",
    "IrcLine",
    "LineDecoder",
    "LineTooLong",
    "clean",
    "escape_tag_value",
    "format_line",
    "parse_line",
    "unescape_tag_value",
]

# RFC 1459: 512 bytes, CR LF included. IRCv3 message-tags: a client's tags, with "@" and
# the space after them, up to 4,096 bytes (a server's may take 8,191; none are read).
MAX_BODY_BYTES = 512
MAX_TAGS_BYTES = 4096
_MAX_LINE_BYTES = MAX_BODY_BYTES + MAX_TAGS_BYTES
# At most this many parameters (RFC 1459: 15); later ones stay part of the last.
_MAX_PARAMS = 15

_TAG_ESCAPES = {";": "\\:", " ": "\\s", "\\": "\\\\", "\r": "\\r", "\n": "\\n"}
_TAG_TABLE = str.maketrans({**_TAG_ESCAPES, "\0": None})
_TAG_UNESCAPES = {":": ";", "s": " ", "\\": "\\", "r": "\r", "n": "\n"}
# What can never appear raw inside a line: it would end the line or cut it short.
_LINE_BREAKERS = str.maketrans({"\r": " ", "\n": " ", "\0": ""})


class LineTooLong(Exception):
    """A line over the limits; the decoder has skipped it (numeric 417)."""


@dataclass(frozen=True, slots=True)
class IrcLine:
    """One line: its tags, its source (clients seldom send one), command and params."""

    command: str
    params: tuple[str, ...] = ()
    source: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)


def unescape_tag_value(value: str) -> str:
    out: list[str] = []
    chars = iter(value)
    for char in chars:
        if char == "\\":
            following = next(chars, "")
            out.append(_TAG_UNESCAPES.get(following, following))
        else:
            out.append(char)
    return "".join(out)


def escape_tag_value(value: str) -> str:
    return value.translate(_TAG_TABLE)


def parse_line(text: str) -> IrcLine | None:
    """One line without its ending; None for an empty line (ignored, as servers do)."""
    tags: dict[str, str] = {}
    rest = text.lstrip(" ")
    if rest.startswith("@"):
        raw_tags, _, rest = rest[1:].partition(" ")
        for item in raw_tags.split(";"):
            if item:
                key, _, value = item.partition("=")
                tags[key] = unescape_tag_value(value)
        rest = rest.lstrip(" ")
    source = None
    if rest.startswith(":"):
        source, _, rest = rest[1:].partition(" ")
        rest = rest.lstrip(" ")
    if not rest:
        return None
    command, _, rest = rest.partition(" ")
    params: list[str] = []
    while rest:
        rest = rest.lstrip(" ")
        if not rest:
            break
        if rest.startswith(":") or len(params) == _MAX_PARAMS - 1:
            params.append(rest[1:] if rest.startswith(":") else rest)
            break
        param, _, rest = rest.partition(" ")
        params.append(param)
    return IrcLine(command=command.upper(), params=tuple(params), source=source, tags=tags)


class LineDecoder:
    """Bytes in, lines out. Promises: whatever bytes arrive, :meth:`next_line` returns
    lines, None, or raises :class:`LineTooLong` after skipping the offending line; the
    buffer never holds more than one line's limit.

    Invalid UTF-8 is decoded with replacement characters rather than refused: a client
    in Latin-1 gets its accents mangled, not its messages lost.
    """

    __slots__ = ("_buffer", "_discarding", "_scanned")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._scanned = 0
        # Inside an over-long line: drop bytes up to its end.
        self._discarding = False

    @property
    def buffered_bytes(self) -> int:
        return len(self._buffer)

    def receive_data(self, data: bytes) -> None:
        self._buffer += data

    def next_line(self) -> IrcLine | None:
        """The next complete line, or None when more bytes are needed.

        Raises:
            LineTooLong: the line went past the limits; it is skipped (to its end, when
                that has not arrived yet: later bytes up to the next newline are dropped).
        """
        while True:
            buffer = self._buffer
            end = buffer.find(b"\n", self._scanned)
            if end < 0:
                if self._discarding:
                    buffer.clear()
                    self._scanned = 0
                    return None
                if len(buffer) > _MAX_LINE_BYTES:
                    buffer.clear()
                    self._scanned = 0
                    self._discarding = True
                    raise LineTooLong("line too long")
                self._scanned = len(buffer)
                return None
            raw = bytes(buffer[:end])
            del buffer[: end + 1]
            self._scanned = 0
            if self._discarding:
                self._discarding = False
                continue
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            if _too_long(raw):
                raise LineTooLong("line too long")
            line = parse_line(raw.decode("utf-8", "replace"))
            if line is not None:
                return line


def _too_long(raw: bytes) -> bool:
    body = raw
    if raw.startswith(b"@"):
        space = raw.find(b" ")
        if space < 0:
            return len(raw) > MAX_TAGS_BYTES
        if space + 1 > MAX_TAGS_BYTES:
            return True
        body = raw[space + 1 :]
    return len(body) + 2 > MAX_BODY_BYTES


def clean(text: str) -> str:
    """``text`` safe inside one line: CR and LF become spaces, NUL goes."""
    return text.translate(_LINE_BREAKERS)


def format_line(
    command: str,
    *params: str,
    source: str | None = None,
    tags: Iterable[tuple[str, str]] = (),
    trailing: bool = False,
) -> bytes:
    """One line, ``\\r\\n`` included. Every part is cleaned of CR, LF and NUL: no text
    from a stranger can end the line early and start a command of its own. The last
    parameter is written as a trailing one when it has to be (empty, spaces, ``:``) or
    when ``trailing`` says so."""
    parts: list[str] = []
    tag_text = ";".join(f"{key}={escape_tag_value(value)}" if value else key for key, value in tags)
    if tag_text:
        parts.append("@" + tag_text)
    if source:
        parts.append(":" + clean(source).replace(" ", ""))
    parts.append(command)
    if params:
        *middle, last = params
        for param in middle:
            safe = clean(param).replace(" ", "")
            parts.append(safe if safe and not safe.startswith(":") else "*")
        last = clean(last)
        if trailing or not last or " " in last or last.startswith(":"):
            last = ":" + last
        parts.append(last)
    return (" ".join(parts) + "\r\n").encode("utf-8", "replace")
