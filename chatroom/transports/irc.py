"""The IRC client protocol on its own port: irssi, WeeChat, HexChat and bots join the rooms.

Each IRC command becomes a session frame (``PRIVMSG #dev`` a ``say`` in ``dev``, ``JOIN``
a ``join``, ``KICK`` a ``kick``, ``MODE #dev +o bob`` a ``role``...), so the session, its
limits, its moderation and the hub are the same as for every other transport; commands
that only read (``WHOIS``, a ``MODE`` query, ``ISON``) are answered here from the hub's
state, and cost a token of the rate limit like any line. SASL's password check is the
session's too (:meth:`~chatroom.session.Session.authenticate`), before the hello.
Events reach IRC members through the hub in an :class:`~chatroom.irc.render.IrcWire`,
one per set of capabilities, so each event is encoded once for all of them.

Order: whatever a command causes for its sender reaches it before the answer to any later
command. Events and ``joined`` replies wait in the hub for its next flush, while an answer
from here is written at once, so every answer first flushes the hub when something waits
there (:meth:`IrcConnection._write`).

About 950 lines, longer than a module should be: IRC has some forty commands, and each
one's handler is a short method reading this connection's state (its nick, caps, rooms
and SASL exchange). The wire's own parts, which need no connection, are apart in
:mod:`chatroom.irc`; splitting the handlers by topic would leave each half reaching
into the other's state. A command table in its own module is the next step if it grows.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from chatroom.framing import ErrorCode, ProtocolError
from chatroom.irc.lines import IrcLine, LineDecoder, LineTooLong, format_line
from chatroom.irc.names import NameNotMapped, from_channel, from_nick, to_channel, to_nick
from chatroom.irc.render import (
    MAX_TARGETS,
    MEMBER_HOST,
    MEMBER_USER,
    IrcCaps,
    IrcWire,
    ServerInfo,
    irc_wire,
    names_lines,
    server_info,
)
from chatroom.irc.replies import CLOSING_ERRORS, error_numeric
from chatroom.moderation import room_key
from chatroom.protocol import (
    Ban,
    Bans,
    BansRequest,
    Bye,
    ClientFrame,
    DmRequest,
    Error,
    Hello,
    Invite,
    JoinRequest,
    Kick,
    LeaveReason,
    Members,
    Mode,
    NickRequest,
    Part,
    Ping,
    Pong,
    RoleRequest,
    Rooms,
    RoomsRequest,
    Say,
    TopicRequest,
    Unban,
    Who,
)
from chatroom.session import Reply
from chatroom.transports.base import SessionCarrier

if TYPE_CHECKING:
    from chatroom.server import ChatServer

__all__ = ["CAPABILITIES", "IrcConnection", "server_info"]

log = logging.getLogger("chatroom.server")

# What CAP LS offers; sasl too when the server keeps accounts. multi-prefix changes
# nothing yet (a member holds one room role, so nobody is both @ and +) and is offered
# because clients ask for it and it is true of this server.
CAPABILITIES = (
    "batch",
    "echo-message",
    "message-tags",
    "multi-prefix",
    "server-time",
    "userhost-in-names",
)
SASL = "sasl"
# AUTHENTICATE carries at most 400 bytes a line; a longer payload comes in pieces.
_SASL_CHUNK = 400
# PLAIN's payload: two names and a password field, base64, with room to spare.
_SASL_MAX = 4 * (2 * 4 * 32 + 1024 + 2) // 3 + 4
# Modes of a channel that are on or off, as the mode frame's fields.
_ROOM_FLAGS = {"i": "invite_only", "m": "moderated", "R": "registered_only"}

_ACTION = "\x01ACTION"
# Channel lists a MODE query may ask for, and the numeric that ends each (all empty).
_MODE_LISTS = {"b": ("368",), "e": ("349",), "I": ("347",)}
# Why the connection ends, in its last ERROR line.
_CLOSING = {
    LeaveReason.QUIT: "Quit",
    LeaveReason.KICKED: "Kicked",
    LeaveReason.SHUTDOWN: "Server shutting down",
    LeaveReason.DISCONNECTED: "Connection closed",
}


Handler = Callable[["IrcConnection", IrcLine, float], None]


class IrcConnection(SessionCarrier, asyncio.Protocol):
    """One IRC client: lines in through the decoder to its session, lines out."""

    transport_name = "irc"

    __slots__ = (
        "_account",
        "_away",
        "_cap_version",
        "_caps",
        "_context",
        "_decoder",
        "_info",
        "_negotiating",
        "_nick",
        "_password",
        "_sasl",
        "_sasl_waiting",
        "_user",
        "wire",
    )

    def __init__(self, server: ChatServer, info: ServerInfo) -> None:
        super().__init__(server)
        self._info = info
        self._decoder = LineDecoder()
        self._caps: set[str] = set()
        self._negotiating = False
        self._nick: str | None = None
        self._user: str | None = None
        self._password: str | None = None
        self._away = False
        self._cap_version = 0
        # SASL: the payload read so far (None: no AUTHENTICATE under way), whether its
        # answer is awaited (lines wait meanwhile, in order), the account it logged in to.
        self._sasl: str | None = None
        self._sasl_waiting = False
        self._account: str | None = None
        # The command, its target and the member it acts on, whose frame the session is
        # handling: its replies become that command's numerics.
        self._context: tuple[str, str, str] | None = None
        self.wire: IrcWire = irc_wire(info, IrcCaps())

    # ------------------------------------------------------------------ asyncio

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.carry(transport)

    def data_received(self, data: bytes) -> None:
        session = self.session
        if session.closing:
            return
        now = self.loop.time()
        session.last_received = now
        self._decoder.receive_data(data)
        self._read_lines(now)

    def _read_lines(self, now: float) -> None:
        session = self.session
        try:
            while session.accepting and not self._sasl_waiting:
                try:
                    line = self._decoder.next_line()
                except LineTooLong:
                    if self._charge(now):
                        self._numeric("417", "Input line was too long")
                    continue
                if line is None:
                    break
                self._handle(line, now)
        except Exception:
            # A bug must cost this connection, never the server or anyone else.
            log.exception("connection %s failed; it is closed, the server goes on", session.peer)
            session.drop(LeaveReason.DISCONNECTED)
        if session.deadline != self._timer_at:
            self._sync_timer()

    def eof_received(self) -> bool:
        if self.session.closing:
            return False
        keep_open = self.session.end_of_input()
        self._sync_timer()
        return keep_open

    # ------------------------------------------------------------------ the Link

    def send_reply(self, frame: Reply) -> None:
        data = self.encode_reply(frame)
        if data:
            self._write(data)

    def encode_reply(self, frame: Reply) -> bytes:
        context = self._context
        match frame:
            case Error():
                return self._error_lines(frame, context)
            case Ping(token=token):
                return format_line("PING", token or "chatroom", source=self._info.name)
            case Pong(token=token):
                return format_line("PONG", self._info.name, token, source=self._info.name)
            case Members():
                return self._members_lines(frame, context)
            case Bans(room=room, bans=bans):
                channel = to_channel(room or "")
                return b"".join(
                    [
                        *(
                            self._numeric_line("367", channel, f"{to_nick(ban.name)}!*@*", ban.by)
                            for ban in bans
                        ),
                        self._numeric_line("368", channel, "End of channel ban list"),
                    ]
                )
            case Rooms(rooms=rooms):
                wanted = context[1] if context else ""
                return b"".join(
                    [
                        self._numeric_line("321", "Channel", "Users  Name"),
                        *(
                            self._numeric_line(
                                "322", to_channel(info.name), str(info.members), info.topic
                            )
                            for info in rooms
                            if not wanted or to_channel(info.name).casefold() in wanted
                        ),
                        self._numeric_line("323", "End of /LIST"),
                    ]
                )
        return b""

    def goodbye(self, reason: LeaveReason) -> bytes:
        why = _CLOSING.get(reason, reason.value)
        return format_line("ERROR", f"Closing Link: {self._info.name} ({why})")

    # ------------------------------------------------------------------ writing

    def _write(self, data: bytes) -> None:
        hub = self.server.hub
        if hub.pending:
            # The order promise: what earlier commands caused (a JOIN's burst, a
            # message's echo) is waiting for the hub's flush; it goes first.
            hub.flush()
        self.outbox.send(data)

    def _me(self) -> str:
        member = self.session.member
        if member is not None:
            return to_nick(member.name)
        return self._nick or "*"

    def _numeric_line(self, code: str, *params: str) -> bytes:
        return format_line(code, self._me(), *params, source=self._info.name)

    def _numeric(self, code: str, *params: str) -> None:
        self._write(self._numeric_line(code, *params))

    def _notice(self, text: str) -> None:
        self._write(format_line("NOTICE", self._me(), text, source=self._info.name))

    def _error_lines(self, error: Error, context: tuple[str, str, str] | None) -> bytes:
        if error.code in CLOSING_ERRORS:
            return format_line("ERROR", f"Closing Link: {error.message}")
        command, target, nick = context or ("", "", "")
        registered = self.session.member is not None
        numeric = error_numeric(
            error.code, error.message, command, target, registered=registered, nick=nick
        )
        if numeric is None:
            return format_line("NOTICE", self._me(), error.message, source=self._info.name)
        return self._numeric_line(*numeric) if numeric else b""

    def _members_lines(self, frame: Members, context: tuple[str, str, str] | None) -> bytes:
        channel = to_channel(frame.room)
        server = self._info.name
        me = self._me()
        wire = self.wire
        if context is not None and context[0] == "WHO":
            lines = [
                self._who_line(channel, name, wire.prefix(name, frame.ops, frame.voices))
                for name in frame.members
            ]
            lines.append(self._numeric_line("315", context[1], "End of WHO list"))
            return b"".join(lines)
        shown = wire.names_shown(frame.members, frame.ops, frame.voices)
        return b"".join(names_lines(server, me, channel, shown))

    def _who_line(self, channel: str, name: str, prefix: str = "") -> bytes:
        nick = to_nick(name)
        return self._numeric_line(
            "352",
            channel,
            MEMBER_USER,
            MEMBER_HOST,
            self._info.name,
            nick,
            f"H{prefix}",
            f"0 {name}",
        )

    # ------------------------------------------------------------------ reading

    def _charge(self, now: float) -> bool:
        """A token of the rate limit for a line answered here, not by the session."""
        session = self.session
        if session.bucket.take(now):
            return True
        session.receive_error(ProtocolError(ErrorCode.RATE_LIMITED, "slow down"), now)
        return False

    def _reject(self, now: float, code: str, *params: str) -> None:
        """Answer a line that never reaches the session with a numeric, for a token."""
        if self._charge(now):
            self._numeric(code, *params)

    def _frame(
        self, frame: ClientFrame, now: float, command: str, target: str = "", nick: str = ""
    ) -> None:
        self._context = (command, target, nick)
        try:
            self.session.receive(frame, now)
        finally:
            self._context = None

    def _handle(self, line: IrcLine, now: float) -> None:
        command = line.command
        if command == "PONG":
            self.session.receive(Pong(token=line.params[-1] if line.params else ""), now)
            return
        registered = self.session.member is not None
        handler = (_COMMANDS if registered else _BEFORE_REGISTRATION).get(command)
        if handler is None:
            if not self._charge(now):
                return
            if not registered and (command in _COMMANDS or command.isdigit()):
                self._numeric("451", "You have not registered")
            else:
                self._numeric("421", command, "Unknown command")
            return
        if command not in _SESSION_COMMANDS and not self._charge(now):
            return
        needed = _PARAMS_NEEDED.get(command, 0)
        if len(line.params) < needed or (needed and not line.params[0]):
            self._numeric("461", command, "Not enough parameters")
            return
        handler(self, line, now)

    # ------------------------------------------------------------------ registration

    def _cmd_cap(self, line: IrcLine, now: float) -> None:
        sub = line.params[0].upper()
        me = self._me() if self.session.member is not None else "*"
        if sub == "LS":
            if self.session.member is None:
                self._negotiating = True
            version = line.params[1] if len(line.params) > 1 else ""
            self._cap_version = max(self._cap_version, int(version) if version.isdigit() else 0)
            offered = list(CAPABILITIES)
            if self._sasl_offered():
                offered.append("sasl=PLAIN" if self._cap_version >= 302 else SASL)
            self._write(self._cap_line(me, "LS", " ".join(sorted(offered))))
        elif sub == "LIST":
            self._write(self._cap_line(me, "LIST", " ".join(sorted(self._caps))))
        elif sub == "REQ":
            if self.session.member is None:
                self._negotiating = True
            asked = line.params[1].split() if len(line.params) > 1 else []
            takes = {*CAPABILITIES, SASL} if self._sasl_offered() else set(CAPABILITIES)
            known = bool(asked) and all(cap.removeprefix("-") in takes for cap in asked)
            if known:
                for cap in asked:
                    if cap.startswith("-"):
                        self._caps.discard(cap[1:])
                    else:
                        self._caps.add(cap)
                self._update_wire()
            verdict = "ACK" if known else "NAK"
            self._write(self._cap_line(me, verdict, " ".join(asked)))
        elif sub == "END":
            self._negotiating = False
            self._register(now)
        else:
            self._numeric("410", sub, "Invalid CAP command")

    def _sasl_offered(self) -> bool:
        return self.server.hub.authority is not None

    def _cap_line(self, me: str, sub: str, caps: str) -> bytes:
        return format_line("CAP", me, sub, caps, source=self._info.name, trailing=True)

    def _update_wire(self) -> None:
        caps = self._caps
        self.wire = irc_wire(
            self._info,
            IrcCaps(
                server_time="server-time" in caps,
                message_tags="message-tags" in caps,
                echo_message="echo-message" in caps,
                batch="batch" in caps,
                userhost_in_names="userhost-in-names" in caps,
                multi_prefix="multi-prefix" in caps,
            ),
        )
        member = self.session.member
        if member is not None:
            member.wire = self.wire

    def _cmd_pass(self, line: IrcLine, now: float) -> None:
        if self.session.member is not None:
            self._numeric("462", "You may not reregister")
            return
        self._password = line.params[0]

    def _cmd_user(self, line: IrcLine, now: float) -> None:
        if self.session.member is not None:
            self._numeric("462", "You may not reregister")
            return
        if not line.params[3]:
            self._numeric("461", "USER", "Not enough parameters")
            return
        self._user = line.params[0]
        self._register(now)

    def _cmd_nick(self, line: IrcLine, now: float) -> None:
        nick = line.params[0] if line.params else ""
        if not nick:
            self._numeric("431", "No nickname given")
            return
        try:
            name = from_nick(nick)
        except NameNotMapped:
            self._numeric("432", nick, "Erroneous nickname")
            return
        member = self.session.member
        if member is None:
            self._nick = nick
            self._register(now)
        elif name != member.name:
            self._frame(NickRequest(name=name), now, "NICK", nick)

    def _register(self, now: float) -> None:
        session = self.session
        nick = self._nick
        if nick is None or self._user is None or self._negotiating or session.member is not None:
            return
        self._update_wire()
        # A chat name is its account: logged in with SASL, the member is the account,
        # whatever NICK said (001 tells the client its nick).
        name = self._account or from_nick(nick)
        shown = to_nick(name)
        self._frame(Hello(name=name, password=self._password), now, "NICK", shown)
        if session.member is None and session.accepting:
            # Refused: the next NICK tries again, as a guest if the account's name was
            # taken (its owner is on elsewhere) and the client moves on to another nick.
            self._nick = None
            self._account = None

    def _cmd_authenticate(self, line: IrcLine, now: float) -> None:
        payload = line.params[0]
        if self._account is not None:
            self._numeric("907", "You have already authenticated using SASL")
            return
        if self.session.member is not None:
            # The member's name is its account: a guest cannot become one in passing.
            self._numeric("904", "SASL authentication failed")
            return
        if SASL not in self._caps or not self._sasl_offered():
            self._numeric("904", "SASL authentication failed")
            return
        if payload == "*":
            self._sasl = None
            self._numeric("906", "SASL authentication aborted")
            return
        if self._sasl is None:
            if payload.upper() != "PLAIN":
                self._write(
                    self._numeric_line("908", "PLAIN", "are available SASL mechanisms")
                    + self._numeric_line("904", "SASL authentication failed")
                )
                return
            self._sasl = ""
            self._write(format_line("AUTHENTICATE", "+"))
            return
        if payload != "+":
            self._sasl += payload
            if len(self._sasl) > _SASL_MAX:
                self._sasl = None
                self._numeric("905", "SASL message too long")
                return
            if len(payload) == _SASL_CHUNK:
                return  # a full piece: more follows, or "+"
        data, self._sasl = self._sasl, None
        try:
            authzid, authcid, password = (
                base64.b64decode(data, validate=True).decode("utf-8").split("\0")
            )
        except (binascii.Error, UnicodeDecodeError, ValueError):
            self._numeric("904", "SASL authentication failed")
            return
        if authzid and authzid != authcid:
            # Nobody may log in as someone else, staff included.
            self._numeric("904", "SASL authentication failed")
            return
        # Nothing more is handled, nor read, until the answer: a client may send CAP END
        # right behind, and a guesser gets no second try meanwhile.
        self._sasl_waiting = True
        self.transport.pause_reading()
        self.session.authenticate(authcid, password, now, self._sasl_answer)

    def _sasl_answer(self, account: str | None, at: float) -> None:
        if account is None:
            # The same delay a wrong hello waits for, then 904; the client may try again.
            self.loop.call_at(at, self._sasl_failed)
            return
        self._account = account
        me = self._nick or "*"
        self._write(
            self._numeric_line(
                "900",
                f"{me}!{MEMBER_USER}@{MEMBER_HOST}",
                account,
                f"You are now logged in as {account}",
            )
            + self._numeric_line("903", "SASL authentication successful")
        )
        self._sasl_resume()

    def _sasl_failed(self) -> None:
        if self.session.closing:
            return
        self._numeric("904", "SASL authentication failed")
        self._sasl_resume()

    def _sasl_resume(self) -> None:
        self._sasl_waiting = False
        if self.session.accepting:
            self.transport.resume_reading()
            self._read_lines(self.loop.time())

    def _cmd_quit(self, line: IrcLine, now: float) -> None:
        self.session.receive(Bye(), now)

    def _cmd_ping(self, line: IrcLine, now: float) -> None:
        token = line.params[0]
        self._write(format_line("PONG", self._info.name, token, source=self._info.name))

    # ------------------------------------------------------------------ talking

    def _cmd_privmsg(self, line: IrcLine, now: float) -> None:
        command = line.command
        notice = command == "NOTICE"
        if not line.params or not line.params[0]:
            if not notice:
                self._reject(now, "411", f"No recipient given ({command})")
            return
        text = line.params[1].replace("\0", "") if len(line.params) > 1 else ""
        if not text:
            if not notice:
                self._reject(now, "412", "No text to send")
            return
        action = False
        if text.startswith("\x01"):
            body = text.strip("\x01")
            if body.upper() == "ACTION" or body[:7].upper() == "ACTION ":
                action, text = True, body[7:] or " "
            else:
                self._charge(now)
                return  # other CTCP requests have no counterpart in the chat
        targets = line.params[0].split(",")
        if len(targets) > MAX_TARGETS:
            self._reject(now, "407", line.params[0], "Too many targets")
            return
        for target in targets:
            if target.startswith("#"):
                try:
                    room = from_channel(target)
                except NameNotMapped:
                    if not notice:
                        self._reject(now, "403", target, "No such channel")
                    continue
                self._frame(Say(text=text, room=room, action=action), now, command, target)
            else:
                try:
                    name = from_nick(target)
                except NameNotMapped:
                    if not notice:
                        self._reject(now, "401", target, "No such nick/channel")
                    continue
                self._frame(DmRequest(to=name, text=text, action=action), now, command, target)

    def _room(self, channel: str, *, now: float, exists: bool = False) -> str | None:
        """The room of a channel, or None after answering 403 or 479 (for a token)."""
        try:
            room = from_channel(channel)
        except NameNotMapped:
            self._reject(now, "403" if exists else "479", channel, "No such channel")
            return None
        if exists and not self.server.hub.members(room):
            self._reject(now, "403", channel, "No such channel")
            return None
        return room

    def _in_room(self, room: str) -> bool:
        member = self.session.member
        return member is not None and room.casefold() in {name.casefold() for name in member.rooms}

    def _cmd_join(self, line: IrcLine, now: float) -> None:
        member = self.session.member
        if line.params[0] == "0" and member is not None:
            for joined in list(member.rooms):
                self._frame(Part(room=joined), now, "PART", to_channel(joined))
            return
        keys = line.params[1].split(",") if len(line.params) > 1 else []
        for index, channel in enumerate(line.params[0].split(",")):
            if not channel.startswith("#"):
                self._reject(now, "403", channel, "No such channel")
                continue
            room = self._room(channel, now=now)
            key = keys[index] if index < len(keys) and keys[index] else None
            if room is not None:
                self._frame(JoinRequest(room=room, key=key), now, "JOIN", channel)

    def _cmd_part(self, line: IrcLine, now: float) -> None:
        for channel in line.params[0].split(","):
            room = self._room(channel, exists=True, now=now)
            if room is not None:
                self._frame(Part(room=room), now, "PART", channel)

    def _cmd_topic(self, line: IrcLine, now: float) -> None:
        channel = line.params[0]
        room = self._room(channel, exists=True, now=now)
        if room is None:
            return
        if len(line.params) > 1:
            self._frame(TopicRequest(room=room, text=line.params[1]), now, "TOPIC", channel)
            return
        topic = self.server.hub.topic(room)
        if topic:
            self._numeric("332", channel, topic)
        else:
            self._numeric("331", channel, "No topic is set")

    def _cmd_away(self, line: IrcLine, now: float) -> None:
        # Away is not shared with the chat yet: the client is answered, nobody is told.
        self._away = bool(line.params and line.params[0])
        if self._away:
            self._numeric("306", "You have been marked as being away")
        else:
            self._numeric("305", "You are no longer marked as being away")

    # ------------------------------------------------------------------ looking around

    def _cmd_names(self, line: IrcLine, now: float) -> None:
        if not line.params:
            self._numeric("366", "*", "End of /NAMES list")
            return
        for channel in line.params[0].split(","):
            try:
                room = from_channel(channel)
            except NameNotMapped:
                self._numeric("366", channel, "End of /NAMES list")
                continue
            self._frame(Who(room=room), now, "NAMES", channel)

    def _cmd_list(self, line: IrcLine, now: float) -> None:
        wanted = ""
        if line.params and line.params[0].startswith("#"):
            wanted = ",".join(c.casefold() for c in line.params[0].split(","))
        self._frame(RoomsRequest(), now, "LIST", wanted)

    def _cmd_who(self, line: IrcLine, now: float) -> None:
        mask = line.params[0] if line.params else "*"
        if mask.startswith("#"):
            try:
                room = from_channel(mask)
            except NameNotMapped:
                self._numeric("315", mask, "End of WHO list")
                return
            self._frame(Who(room=room), now, "WHO", mask)
            return
        found = self._find(mask)
        lines = [self._who_line("*", found)] if found is not None else []
        self._write(b"".join([*lines, self._numeric_line("315", mask, "End of WHO list")]))

    def _find(self, nick: str) -> str | None:
        try:
            member = self.server.hub.member_named(from_nick(nick))
        except NameNotMapped:
            return None
        return None if member is None else member.name

    def _cmd_whois(self, line: IrcLine, now: float) -> None:
        nick = line.params[-1]
        hub = self.server.hub
        try:
            member = hub.member_named(from_nick(nick))
        except NameNotMapped:
            member = None
        if member is None:
            self._write(
                self._numeric_line("401", nick, "No such nick/channel")
                + self._numeric_line("318", nick, "End of /WHOIS list")
            )
            return
        shown = to_nick(member.name)
        lines = [
            self._numeric_line("311", shown, MEMBER_USER, MEMBER_HOST, "*", member.name),
            self._numeric_line("312", shown, self._info.name, "chatroom"),
        ]
        if member.rooms:
            channels = " ".join(
                self.wire.prefix(member.name, *hub.room_roles(room)) + to_channel(room)
                for room in member.rooms
            )
            lines.append(self._numeric_line("319", shown, channels))
        authority = hub.authority
        account = authority.account_of(member) if authority is not None else None
        if account is not None:
            lines.append(self._numeric_line("330", shown, account, "is logged in as"))
        lines.append(self._numeric_line("318", shown, "End of /WHOIS list"))
        self._write(b"".join(lines))

    def _cmd_ison(self, line: IrcLine, now: float) -> None:
        nicks = " ".join(line.params).split()
        present = [to_nick(name) for name in (self._find(nick) for nick in nicks) if name]
        self._numeric("303", " ".join(present))

    def _cmd_userhost(self, line: IrcLine, now: float) -> None:
        found = [self._find(nick) for nick in line.params[:5]]
        replies = [f"{to_nick(name)}=+{MEMBER_USER}@{MEMBER_HOST}" for name in found if name]
        self._numeric("302", " ".join(replies))

    def _cmd_mode(self, line: IrcLine, now: float) -> None:
        target = line.params[0]
        if not target.startswith("#"):
            if not self._charge(now):
                return
            if target.casefold() != self._me().casefold():
                self._numeric("502", "Can't change mode for other users")
            elif len(line.params) == 1:
                self._numeric("221", "+")
            # Setting one's own modes (irssi asks for +i on connecting) changes nothing.
            return
        room = self._room(target, exists=True, now=now)
        if room is None:
            return
        if len(line.params) == 1:
            if self._charge(now):
                self._numeric("324", target, *self._modes_of(room))
            return
        modes, args = line.params[1], list(line.params[2:])
        listed = modes.lstrip("+")
        if not args and listed in _MODE_LISTS:
            if listed == "b" and self.server.hub.authority is not None:
                self._frame(BansRequest(room=room), now, "MODE", target)
            elif self._charge(now):
                self._numeric(*_MODE_LISTS[listed], target, "End of list")
            return
        self._change_modes(target, room, modes, args, now)

    def _modes_of(self, room: str) -> list[str]:
        """A room's modes for 324: ``+n`` and what the room's modes add."""
        authority = self.server.hub.authority
        if authority is None:
            return ["+n"]
        modes = authority.rules.modes.get(room_key(room))
        if modes is None:
            return ["+n"]
        letters = "n" + "".join(
            letter for letter, field in _ROOM_FLAGS.items() if getattr(modes, field)
        )
        if not modes.key:
            return [f"+{letters}"]
        # Only members are told the key, as IRC servers do.
        return [f"+{letters}k", modes.key if self._in_room(room) else "*"]

    def _change_modes(
        self, channel: str, room: str, modes: str, args: list[str], now: float
    ) -> None:
        """``MODE #room +o-v+ik nick nick key``: the room flags as one ``mode`` frame, then
        each role, ban and unban as a frame of its own, each costing its token."""
        flags: dict[str, Any] = {}
        acts: list[tuple[ClientFrame, str]] = []
        ops, voices = self.server.hub.room_roles(self.server.hub.room_name(room))
        adding = True
        for letter in modes:
            if letter in "+-":
                adding = letter == "+"
            elif letter in _ROOM_FLAGS:
                flags[_ROOM_FLAGS[letter]] = adding
            elif letter == "k":
                key = args.pop(0) if args else ""
                if adding and not key:
                    continue  # +k without a key: nothing to set
                flags["key"] = key if adding else ""
            elif letter in "ovb":
                if not args:
                    continue
                nick = args.pop(0)
                name = self._nick_name(nick.split("!", 1)[0] if letter == "b" else nick)
                if name is None:
                    if self._charge(now):
                        self._numeric("401", nick, "No such nick/channel")
                    continue
                if letter == "b":
                    ban = Ban(name=name, room=room) if adding else Unban(name=name, room=room)
                    acts.append((ban, nick))
                elif adding:
                    acts.append((RoleRequest(room=room, name=name, role=_ROLE[letter]), nick))
                elif name in (ops if letter == "o" else voices):
                    # Taking away a role not held would take the other one away.
                    acts.append((RoleRequest(room=room, name=name, role="none"), nick))
            elif letter != "n" and self._charge(now):
                self._numeric("472", letter, "is unknown mode char to me")
        if flags:
            self._frame(Mode(room=room, **flags), now, "MODE", channel)
        elif not acts:
            self._charge(now)  # nothing changes, and the line still costs its token
        for frame, nick in acts:
            self._frame(frame, now, "MODE", channel, nick)

    def _nick_name(self, nick: str) -> str | None:
        try:
            return from_nick(nick)
        except NameNotMapped:
            return None

    def _cmd_kick(self, line: IrcLine, now: float) -> None:
        channel = line.params[0]
        room = self._room(channel, exists=True, now=now)
        if room is None:
            return
        reason = line.params[2] if len(line.params) > 2 else ""
        for nick in line.params[1].split(","):
            name = self._nick_name(nick)
            if name is None:
                self._reject(now, "401", nick, "No such nick/channel")
                continue
            self._frame(Kick(room=room, name=name, reason=reason), now, "KICK", channel, nick)

    def _cmd_invite(self, line: IrcLine, now: float) -> None:
        nick, channel = line.params[0], line.params[1]
        room = self._room(channel, exists=True, now=now)
        if room is None:
            return
        name = self._nick_name(nick)
        if name is None:
            self._reject(now, "401", nick, "No such nick/channel")
            return
        self._frame(Invite(room=room, name=name), now, "INVITE", channel, nick)

    def _cmd_tagmsg(self, line: IrcLine, now: float) -> None:
        pass  # client-only tags are not carried (CLIENTTAGDENY=*): nothing is left to send

    def _cmd_motd(self, line: IrcLine, now: float) -> None:
        self._numeric("422", "MOTD File is missing")

    def _cmd_version(self, line: IrcLine, now: float) -> None:
        self._numeric("351", self._info.version, self._info.name, "chatroom IRC gateway")

    def _cmd_time(self, line: IrcLine, now: float) -> None:
        self._numeric("391", self._info.name, time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()))

    def _cmd_lusers(self, line: IrcLine, now: float) -> None:
        hub = self.server.hub
        people = len(hub.all_members())
        self._write(
            self._numeric_line("251", f"There are {people} users and 0 invisible on 1 servers")
            + self._numeric_line("254", str(len(hub.rooms())), "channels formed")
            + self._numeric_line("255", f"I have {people} clients and 0 servers")
        )

    def _cmd_whowas(self, line: IrcLine, now: float) -> None:
        nick = line.params[0]
        self._write(
            self._numeric_line("406", nick, "There was no such nickname")
            + self._numeric_line("369", nick, "End of WHOWAS")
        )

    def _cmd_oper(self, line: IrcLine, now: float) -> None:
        self._numeric("491", "No O-lines for your host")

    def _cmd_reregister(self, line: IrcLine, now: float) -> None:
        self._numeric("462", "You may not reregister")


_BEFORE_REGISTRATION: dict[str, Handler] = {
    "CAP": IrcConnection._cmd_cap,
    "PASS": IrcConnection._cmd_pass,
    "NICK": IrcConnection._cmd_nick,
    "USER": IrcConnection._cmd_user,
    "PING": IrcConnection._cmd_ping,
    "QUIT": IrcConnection._cmd_quit,
    "AUTHENTICATE": IrcConnection._cmd_authenticate,
}
_COMMANDS: dict[str, Handler] = {
    **_BEFORE_REGISTRATION,
    "PASS": IrcConnection._cmd_reregister,
    "USER": IrcConnection._cmd_reregister,
    "PRIVMSG": IrcConnection._cmd_privmsg,
    "NOTICE": IrcConnection._cmd_privmsg,
    "JOIN": IrcConnection._cmd_join,
    "PART": IrcConnection._cmd_part,
    "TOPIC": IrcConnection._cmd_topic,
    "NAMES": IrcConnection._cmd_names,
    "LIST": IrcConnection._cmd_list,
    "WHO": IrcConnection._cmd_who,
    "WHOIS": IrcConnection._cmd_whois,
    "WHOWAS": IrcConnection._cmd_whowas,
    "ISON": IrcConnection._cmd_ison,
    "USERHOST": IrcConnection._cmd_userhost,
    "MODE": IrcConnection._cmd_mode,
    "KICK": IrcConnection._cmd_kick,
    "INVITE": IrcConnection._cmd_invite,
    "AWAY": IrcConnection._cmd_away,
    "MOTD": IrcConnection._cmd_motd,
    "VERSION": IrcConnection._cmd_version,
    "TIME": IrcConnection._cmd_time,
    "LUSERS": IrcConnection._cmd_lusers,
    "OPER": IrcConnection._cmd_oper,
    "TAGMSG": IrcConnection._cmd_tagmsg,
}
# Commands that become session frames: the session charges their token itself (and
# MODE, KICK and INVITE charge here for what they answer without one).
_SESSION_COMMANDS = frozenset(
    {"PRIVMSG", "NOTICE", "JOIN", "PART", "NAMES", "LIST", "QUIT", "MODE", "KICK", "INVITE"}
)
_ROLE = {"o": "op", "v": "voice"}
_PARAMS_NEEDED = {
    "PING": 1,
    "CAP": 1,
    "PASS": 1,
    "USER": 4,
    "JOIN": 1,
    "PART": 1,
    "TOPIC": 1,
    "MODE": 1,
    "KICK": 2,
    "INVITE": 2,
    "AUTHENTICATE": 1,
    "WHOIS": 1,
    "WHOWAS": 1,
    "ISON": 1,
    "USERHOST": 1,
}
