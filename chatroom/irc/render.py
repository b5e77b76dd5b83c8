"""The hub's events and replies as IRC lines: the :class:`IrcWire` the hub writes with.

An event is encoded once per wire, and a wire is one set of the capabilities that change
its bytes (``server-time``, ``message-tags``, ``batch``) or whom it is sent to
(``echo-message``). :func:`irc_wire` hands out one object per set, so every IRC member
with the same capabilities shares the bytes of each event, as NDJSON members do.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache

from chatroom import __version__
from chatroom.hub import MAX_ROOMS_PER_MEMBER, MAX_TOPIC_CHARS
from chatroom.irc.lines import MAX_BODY_BYTES, format_line
from chatroom.irc.names import split_text, to_channel, to_nick
from chatroom.names import MAX_NAME_CHARS
from chatroom.protocol import (
    Dm,
    Event,
    Join,
    Joined,
    Leave,
    LeaveReason,
    Message,
    Mod,
    Nick,
    ServerFrame,
    Topic,
    Welcome,
)

__all__ = [
    "MAX_TARGETS",
    "MEMBER_HOST",
    "MEMBER_USER",
    "IrcCaps",
    "IrcWire",
    "ServerInfo",
    "irc_wire",
    "message_lines",
    "names_lines",
    "server_info",
    "source_of",
]

# Members' user and host in their IRC source ("nick!user@host"): the hub keeps no host
# of a member, and telling strangers a peer's address is not the gateway's to do.
MEMBER_USER = "chat"
MEMBER_HOST = "chatroom"
_CTCP = "\x01"

_QUIT_TEXT = {
    LeaveReason.QUIT: "Quit",
    LeaveReason.DISCONNECTED: "Connection closed",
    LeaveReason.TIMEOUT: "Ping timeout",
    LeaveReason.SLOW_CONSUMER: "SendQ exceeded",
    LeaveReason.KICKED: "Kicked (flooding)",
    LeaveReason.SHUTDOWN: "Server shutting down",
}


@dataclass(frozen=True)
class ServerInfo:
    """What the welcome burst says about the server."""

    name: str
    version: str
    network: str = "chatroom"
    created: str = ""
    isupport: tuple[str, ...] = ()
    motd: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class IrcCaps:
    """The capabilities that change what a member is sent of each event."""

    server_time: bool = False
    message_tags: bool = False
    echo_message: bool = False
    batch: bool = False
    userhost_in_names: bool = False
    multi_prefix: bool = False


# A member's room rank as IRC shows it, highest first: ops, then voiced members.
OP_PREFIX = "@"
VOICE_PREFIX = "+"


def mode_change(role: str) -> tuple[str, int]:
    """A room role given, as MODE letters and how many take the member as parameter.
    A member holds one room role, so a new one replaces the other."""
    if role == "op":
        return "+o-v", 2
    if role == "voice":
        return "-o+v", 2
    return "-ov", 2


def room_modes(invite_only: bool, moderated: bool, registered_only: bool, key_set: bool) -> str:
    """A room's modes as one MODE string: what holds after ``+``, what does not after
    ``-`` (a mode event carries the modes as they are, not what changed)."""
    flags = (("i", invite_only), ("m", moderated), ("R", registered_only), ("k", key_set))
    on = "".join(letter for letter, held in flags if held)
    off = "".join(letter for letter, held in flags if not held)
    return (f"+{on}" if on else "") + (f"-{off}" if off else "")


def source_of(name: str) -> str:
    return f"{to_nick(name)}!{MEMBER_USER}@{MEMBER_HOST}"


def _budget(source: str, command: str, target: str) -> int:
    """Bytes left for a message's text in one line from ``source`` to ``target``."""
    overhead = len(f":{source} {command} {target} :\r\n".encode())
    return MAX_BODY_BYTES - overhead


def message_lines(
    source: str,
    target: str,
    text: str,
    *,
    action: bool = False,
    command: str = "PRIVMSG",
    tags: Sequence[tuple[str, str]] = (),
) -> list[bytes]:
    """A message as IRC lines: one per line of ``text``, long lines split, never cut.

    A stray ``\\x01`` from a stranger would open a CTCP request in the reader's client:
    it goes."""
    text = text.replace(_CTCP, "")
    budget = _budget(source, command, target) - (len("\x01ACTION \x01") if action else 0)
    pieces = (
        [text]
        # The common case: one short line, nothing to split.
        if len(text) * 4 <= budget and text and "\n" not in text and "\r" not in text
        else split_text(text, budget)
    )
    lines = []
    for piece in pieces:
        body = f"\x01ACTION {piece}\x01" if action else piece
        lines.append(format_line(command, target, body, source=source, tags=tags, trailing=True))
    return lines


def names_lines(server: str, nick: str, channel: str, names: Iterable[str]) -> list[bytes]:
    """353 lines for ``names`` (IRC forms), each within a line, then 366."""
    head = f":{server} 353 {nick} = {channel} :\r\n"
    budget = MAX_BODY_BYTES - len(head.encode())
    lines: list[bytes] = []
    chunk: list[str] = []
    used = 0
    for name in names:
        size = len(name.encode()) + 1
        if chunk and used + size > budget:
            lines.append(_names_line(server, nick, channel, chunk))
            chunk, used = [], 0
        chunk.append(name)
        used += size
    if chunk:
        lines.append(_names_line(server, nick, channel, chunk))
    lines.append(format_line("366", nick, channel, "End of /NAMES list", source=server))
    return lines


def _names_line(server: str, nick: str, channel: str, names: list[str]) -> bytes:
    return format_line("353", nick, "=", channel, " ".join(names), source=server, trailing=True)


class IrcWire:
    """The hub's view of IRC members with one set of capabilities."""

    __slots__ = ("caps", "info")

    def __init__(self, info: ServerInfo, caps: IrcCaps) -> None:
        self.info = info
        self.caps = caps

    # ------------------------------------------------------------------ WireFormat

    def encode_event(self, event: Event, ndjson: bytes) -> bytes:
        return b"".join(self.event_lines(event))

    def encode_reply(self, frame: ServerFrame, ndjson: bytes) -> bytes:
        if isinstance(frame, Welcome):
            return b"".join(self.welcome_lines(frame))
        if isinstance(frame, Joined) and frame.members:
            # The joiner is the room's newest member: the hub lists members in join order.
            return b"".join(self.room_lines(frame.members[-1], frame.room, frame))
        return b""

    def frame(self, body: bytes) -> bytes:
        return body

    def skips(self, event: Event) -> str | None:
        """Whose own event this format does not send back to them: a member's join is
        shown by its ``joined`` reply (JOIN, then NAMES: the order clients expect), its
        quit by the connection's end, and its messages only with ``echo-message``."""
        if isinstance(event, Join):
            return event.name
        if isinstance(event, Leave):
            return None if event.reason == LeaveReason.PART or _kicked(event) else event.name
        if self.caps.echo_message:
            return None
        if isinstance(event, Message):
            return event.sender
        if isinstance(event, Dm) and event.sender != event.to:
            return event.sender
        return None

    def collapses(self, event: Event) -> object | None:
        """A member who shares several rooms with someone is told of their quit or new
        nick once: IRC says these once per person, not per channel."""
        if isinstance(event, Nick):
            return ("nick", event.old, event.new)
        if isinstance(event, Leave) and event.reason != LeaveReason.PART and not _kicked(event):
            return ("quit", event.name)
        return None

    # ------------------------------------------------------------------ lines

    def _tags(self, event: Event, msgid: bool = False) -> list[tuple[str, str]]:
        tags: list[tuple[str, str]] = []
        if self.caps.server_time:
            tags.append(("time", event.ts))
        if msgid and self.caps.message_tags:
            tags.append(("msgid", str(event.id)))
        return tags

    def event_lines(self, event: Event) -> list[bytes]:
        match event:
            case Message(room=room, sender=sender, text=text, action=action):
                return message_lines(
                    source_of(sender),
                    to_channel(room),
                    text,
                    action=action,
                    tags=self._tags(event, msgid=True),
                )
            case Dm(sender=sender, to=to, text=text, action=action):
                return message_lines(
                    source_of(sender),
                    to_nick(to),
                    text,
                    action=action,
                    tags=self._tags(event, True),
                )
            case Join(room=room, name=name):
                return [
                    format_line(
                        "JOIN", to_channel(room), source=source_of(name), tags=self._tags(event)
                    )
                ]
            case Leave(room=room, name=name, by=str(by), text=text) if _kicked(event):
                return [
                    format_line(
                        "KICK",
                        to_channel(room),
                        to_nick(name),
                        text or by,
                        source=source_of(by),
                        tags=self._tags(event),
                        trailing=True,
                    )
                ]
            case Mod():
                return self._mod_lines(event)
            case Leave(room=room, name=name, reason=reason):
                source = source_of(name)
                if reason == LeaveReason.PART:
                    return [
                        format_line("PART", to_channel(room), source=source, tags=self._tags(event))
                    ]
                why = _QUIT_TEXT.get(LeaveReason(reason), reason) if reason in _REASONS else reason
                return [format_line("QUIT", why or "Quit", source=source, tags=self._tags(event))]
            case Topic(room=room, sender=sender, text=text):
                return [
                    format_line(
                        "TOPIC",
                        to_channel(room),
                        text,
                        source=source_of(sender),
                        tags=self._tags(event, True),
                    )
                ]
            case Nick(old=old, new=new):
                return [
                    format_line("NICK", to_nick(new), source=source_of(old), tags=self._tags(event))
                ]
        return []

    def _mod_lines(self, event: Mod) -> list[bytes]:
        """Role and mode changes as MODE, invites as INVITE, the rest as a notice from
        the server; a kick shows as the KICK of its ``leave``, which follows."""
        tags = self._tags(event)
        source = source_of(event.by)
        channel = to_channel(event.room) if event.room else "*"
        match event.action:
            case "role":
                letters, count = mode_change(event.role or "none")
                nick = to_nick(event.target)
                return [
                    format_line("MODE", channel, letters, *[nick] * count, source=source, tags=tags)
                ]
            case "mode":
                modes = room_modes(
                    bool(event.invite_only),
                    bool(event.moderated),
                    bool(event.registered_only),
                    bool(event.key_set),
                )
                # The key itself is the ops' to hand out, never broadcast: ``*`` stands in.
                params = [modes, "*"] if "k" in modes else [modes]
                return [format_line("MODE", channel, *params, source=source, tags=tags)]
            case "invite":
                return [
                    format_line("INVITE", to_nick(event.target), channel, source=source, tags=tags)
                ]
            case "kick":
                return []
        what = {"ban": "banned", "unban": "unbanned", "mute": "muted", "unmute": "unmuted"}
        text = f"{event.by} {what.get(event.action, event.action)} {event.target}"
        if event.until:
            text += f" until {event.until}"
        if event.reason:
            text += f": {event.reason}"
        return [format_line("NOTICE", channel, text, source=self.info.name, tags=tags)]

    def welcome_lines(self, welcome: Welcome) -> list[bytes]:
        info = self.info
        server = info.name
        nick = to_nick(welcome.name)

        def numeric(code: str, *params: str) -> bytes:
            return format_line(code, nick, *params, source=server)

        lines = [
            numeric("001", f"Welcome to the {info.network} IRC gateway, {nick}"),
            numeric("002", f"Your host is {server}, running version {info.version}"),
            numeric("003", f"This server was created {info.created or 'at start'}"),
            numeric("004", server, info.version, "i", "bikmnovR", "bkov"),
        ]
        tokens = list(info.isupport)
        for start in range(0, len(tokens), 12):
            chunk = tokens[start : start + 12]
            lines.append(numeric("005", *chunk, "are supported by this server"))
        if info.motd:
            lines.append(numeric("375", f"- {server} Message of the day -"))
            lines.extend(numeric("372", f"- {text}") for text in info.motd)
            lines.append(numeric("376", "End of /MOTD command."))
        else:
            lines.append(numeric("422", "MOTD File is missing"))
        lines.extend(self.room_lines(welcome.name, welcome.room, welcome))
        return lines

    def room_lines(self, name: str, room: str, frame: Welcome | Joined) -> list[bytes]:
        """What a member sees on entering a room: its JOIN, the topic, the names, and
        the room's recent messages played back."""
        server = self.info.name
        nick = to_nick(name)
        channel = to_channel(room)
        lines = [format_line("JOIN", channel, source=source_of(name))]
        topic = frame.topic if isinstance(frame, Joined) else ""
        if topic:
            lines.append(format_line("332", nick, channel, topic, source=server))
        shown = self.names_shown(frame.members, frame.ops, frame.voices)
        lines.extend(names_lines(server, nick, channel, shown))
        if frame.history:
            lines.extend(self.playback_lines(channel, frame.history, f"j{frame.history[-1].id}"))
        return lines

    def names_shown(
        self, members: Iterable[str], ops: Sequence[str] = (), voices: Sequence[str] = ()
    ) -> list[str]:
        """Members as NAMES lists them: nicks, or whole sources with userhost-in-names,
        after their prefixes (the highest only, both with multi-prefix)."""
        show = source_of if self.caps.userhost_in_names else to_nick
        if not ops and not voices:
            return [show(name) for name in members]
        return [self.prefix(name, ops, voices) + show(name) for name in members]

    def prefix(self, name: str, ops: Sequence[str], voices: Sequence[str]) -> str:
        """``name``'s prefix in a channel whose ops and voiced members are these."""
        prefix = OP_PREFIX if name in ops else ""
        if name in voices and (self.caps.multi_prefix or not prefix):
            prefix += VOICE_PREFIX
        return prefix

    def playback_lines(self, target: str, events: Iterable[Event], batch_id: str) -> list[bytes]:
        """Past messages: in a ``chathistory`` batch with their times as tags when the
        client takes them, else with the time written before the text."""
        caps = self.caps
        body: list[bytes] = []
        for event in events:
            if not isinstance(event, Message | Dm):
                continue
            tags = self._tags(event, msgid=True)
            if caps.batch:
                tags.insert(0, ("batch", batch_id))
            text = event.text
            if not caps.server_time:
                text = f"[{event.ts[:16].replace('T', ' ')}] {text}"
            destination = target if isinstance(event, Message) else to_nick(event.to)
            body.extend(
                message_lines(
                    source_of(event.sender), destination, text, action=event.action, tags=tags
                )
            )
        if not body or not caps.batch:
            return body
        return [
            format_line("BATCH", f"+{batch_id}", "chathistory", target, source=self.info.name),
            *body,
            format_line("BATCH", f"-{batch_id}", source=self.info.name),
        ]


def _kicked(event: Leave) -> bool:
    """Put out of the room by someone (a flooder is dropped by the server, with no
    ``by``, and quits)."""
    return event.reason == LeaveReason.KICKED and event.by is not None


_REASONS = frozenset(reason.value for reason in LeaveReason)
# At most this many targets in one PRIVMSG or NOTICE (TARGMAX).
MAX_TARGETS = 4


def server_info(name: str) -> ServerInfo:
    """The server called ``name`` as the welcome burst describes it, ISUPPORT included."""
    return ServerInfo(
        name=name,
        version=f"chatroom-{__version__}",
        created=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        isupport=(
            "CASEMAPPING=ascii",
            f"CHANLIMIT=#:{MAX_ROOMS_PER_MEMBER}",
            # Bans are a list; the key takes a parameter; the rest are on or off.
            "CHANMODES=b,k,,imnR",
            f"CHANNELLEN={MAX_NAME_CHARS + 1}",
            "CHANTYPES=#",
            # Messages carry no client-only tags: the chat's other clients have none.
            "CLIENTTAGDENY=*",
            "LINELEN=512",
            f"MAXTARGETS={MAX_TARGETS}",
            "NETWORK=chatroom",
            f"NICKLEN={MAX_NAME_CHARS}",
            "PREFIX=(ov)@+",
            f"TARGMAX=JOIN:,PART:,NAMES:,PRIVMSG:{MAX_TARGETS},NOTICE:{MAX_TARGETS},WHOIS:1",
            f"TOPICLEN={MAX_TOPIC_CHARS}",
        ),
    )


@lru_cache(maxsize=256)
def irc_wire(info: ServerInfo, caps: IrcCaps) -> IrcWire:
    """The one wire for this server and these capabilities."""
    return IrcWire(info, caps)
