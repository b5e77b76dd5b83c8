"""What a load client says and reads over IRC: the gateway of ``chatroom-server --irc``.

A client registers with ``echo-message`` (so its own message comes back, the
acknowledgement the NDJSON client gets for free), lands in ``#lobby`` as every member
does, and sends the bench's texts as ``PRIVMSG #lobby``. Its input is split into whole
lines by the same code as NDJSON's (:meth:`~chatroom.bench.wire._JsonLinesLoad._lines`:
``\\r\\n`` ends in ``\\n``); what is in the lines is counted here with byte searches, as
NDJSON's are, since IRC lines carry none of JSON's markers.

No tags are asked for (``server-time``, ``message-tags``): every delivery would carry
more bytes to write and to scan, and the bench's texts already hold their send time.
"""

from __future__ import annotations

import re

from chatroom.bench.engine import _Client
from chatroom.bench.wire import _JsonLinesLoad
from chatroom.irc.render import MEMBER_HOST, MEMBER_USER

__all__ = ["LOBBY", "MAX_IRC_MESSAGE_BYTES", "_IrcLoad", "privmsg_lines", "registration"]

# The bench's room is the lobby, where every member lands on registering.
LOBBY = b"#lobby"
_MESSAGE = b" PRIVMSG " + LOBBY + b" :"
_JOIN = b" JOIN " + LOBBY
_PART = b" PART "
_QUIT = b" QUIT "
_STAMP = re.compile(rb" PRIVMSG #lobby :(\d{19}) ")
# The longest text sent: an IRC line is 512 bytes, and the gateway's copy of a message
# also carries its source (up to a 32-character nick) and ``PRIVMSG #lobby :``.
MAX_IRC_MESSAGE_BYTES = 400
# The registration is answered with 001 to 005 and 422, then the lobby's JOIN burst;
# its end of NAMES is the welcome: only then is the member list (the joins this member
# is owed) known.
_END_OF_NAMES = b" 366 "
_NAMES = b" 353 "
# A numeric from 400 to 599 is a refusal; ERROR ends the connection.
_NUMERIC = re.compile(rb"^:\S+ ([45]\d\d) ")
# 422 (no MOTD) is part of every registration, not a refusal.
_NOT_ERRORS = {b"422"}
_REFUSED_REGISTRATION = {b"432", b"433", b"436", b"464", b"465"}


def registration(nick: str) -> bytes:
    """What a client writes at once on connecting: capabilities, then its nick.

    The gateway handles lines in order, so nothing waits for ``CAP ACK``.
    """
    return (
        "CAP LS 302\r\n"
        "CAP REQ :echo-message\r\n"
        "CAP END\r\n"
        f"NICK {nick}\r\n"
        f"USER {nick} 0 * :{nick}\r\n"
    ).encode()


def privmsg_lines(head: bytes, tail: bytes, first: int, count: int) -> bytes:
    """``count`` lines ``PRIVMSG #lobby :<head><seq><tail>``, numbered from ``first``."""
    prefix = b"PRIVMSG " + LOBBY + b" :" + head
    suffix = tail + b"\r\n"
    return b"".join([prefix + b"%09d" % seq + suffix for seq in range(first, first + count)])


class _IrcLoad(_JsonLinesLoad):
    """A load process whose clients are IRC users in ``#lobby``."""

    _message_marker = _MESSAGE
    _stamp = _STAMP

    # ---------------------------------------------------------------- connect

    def _ack_marker(self, name: str) -> bytes:
        # The source of a line from ``name``; ':' before it, so no other nick ends in it.
        return f":{name}!{MEMBER_USER}@{MEMBER_HOST}{_MESSAGE.decode()}".encode()

    def _greet(self, client: _Client) -> None:
        self._write(client, registration(client.name))

    # ---------------------------------------------------------------- input

    def _count(self, client: _Client, data: bytes, start: int, end: int, now: int) -> None:
        """Account for the whole lines in ``data[start:end]``."""
        if not client.welcomed:
            data = self._welcome(client, data[start:end], now)
            start, end = 0, len(data)
            if not data:
                return
        # Every line ends in one "\n"; messages are most of them, so the rest are
        # looked at only when the two counts differ.
        lines = data.count(b"\n", start, end)
        count = self._messages(client, data, start, end, now)
        other = lines - count
        if other:
            joins = data.count(_JOIN, start, end)
            if joins:
                self._joined(client, joins, now)
                other -= joins
            if other:
                leaves = data.count(_PART, start, end) + data.count(_QUIT, start, end)
                self.leaves += leaves
                if other - leaves:
                    self._odd_lines(client, data[start:end])

    def _joined(self, client: _Client, joins: int, now: int) -> None:
        client.joins += joins
        if not client.settled and client.joins >= client.expected_joins:
            client.settled = True
            self.settled += 1
            self.last_settle = now

    def _welcome(self, client: _Client, data: bytes, now: int) -> bytes:
        """Read the registration and the lobby's JOIN burst up to its end of NAMES;
        return what follows it. Rare (once per client), so line by line."""
        state: _Registration = client.wire if client.wire is not None else _Registration()
        client.wire = state
        lines = data.split(b"\n")
        for index, line in enumerate(lines):
            if not line:
                continue
            if _NAMES in line and LOBBY in line:
                _, _, names = line.rstrip(b"\r").partition(b" :")
                state.members += len(names.split())
            elif _END_OF_NAMES in line and LOBBY in line:
                client.welcomed = True
                client.welcomed_at = now
                # Its own JOIN and every later one, as an NDJSON member is owed: the
                # NAMES listed everyone already in, this member included.
                client.expected_joins = self.spec.total_members - state.members + 1
                self.welcomed += 1
                self._resolve(client)
                self.last_welcome = max(self.last_welcome, now)
                self._joined(client, state.joins, now)
                return b"\n".join(lines[index + 1 :])
            elif line.startswith(b":" + client.name.encode() + b"!") and _JOIN in line:
                state.joins += 1
            elif self._odd_lines(client, line) and _refuses(line) and not client.closed:
                # The registration was refused (nick in use...): this client is done.
                self._refused(client)
                return b""
        return b""

    def _odd_lines(self, client: _Client, data: bytes) -> int:
        """The rare lines: refusals are counted (and returned), pings answered."""
        errors = 0
        for line in data.split(b"\n"):
            line = line.rstrip(b"\r")
            if not line:
                continue
            command = line.split(b" ", 2)
            verb = command[1] if line.startswith(b":") and len(command) > 1 else command[0]
            if verb == b"PING":
                token = line.partition(b"PING ")[2]
                self._write(client, b"PONG " + token + b"\r\n")
            elif verb == b"ERROR" or (_NUMERIC.match(line) and verb not in _NOT_ERRORS):
                errors += 1
                self._note_error(f"{client.name}: {line[:160].decode(errors='replace')}")
        return errors

    # ---------------------------------------------------------------- output

    def _frames(self, client: _Client, count: int, now: int) -> bytes:
        head = b"%019d %04d " % (now, client.sender_id)
        first = client.seq
        client.seq += count
        return privmsg_lines(head, b" " + client.pad, first, count)


class _Registration:
    """A client's state until its welcome: the lobby's members and its own JOIN seen."""

    __slots__ = ("joins", "members")

    def __init__(self) -> None:
        self.members = 0
        self.joins = 0


def _refuses(line: bytes) -> bool:
    """Whether ``line`` ends a registration: ERROR, or a refused nick or password."""
    if line.startswith(b"ERROR"):
        return True
    match = _NUMERIC.match(line)
    return match is not None and match.group(1) in _REFUSED_REGISTRATION
