"""Rooms and private conversations: what the client keeps for each, and what it sends.

Each entry of the room list is a :class:`Conversation` with its members, topic, unread
counts and resume cursor; :class:`Outgoing` and :class:`Request` are what waits to go to
the server. Plain data, no Textual: the app keeps the pane that shows each conversation.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from chatroom import protocol
from chatroom.text import inert

__all__ = [
    "Conversation",
    "Outgoing",
    "Request",
    "answers",
    "mention_pattern",
    "private_key",
    "room_key",
]


def _fold(name: str) -> str:
    return unicodedata.normalize("NFC", name).casefold()


def room_key(name: str) -> str:
    """The key of a room: names compare case-insensitively after NFC, as on the server."""
    return "#" + _fold(name)


def private_key(name: str) -> str:
    """The key of the private conversation with ``name`` (never equal to a room's key)."""
    return "@" + _fold(name)


def mention_pattern(me: str | None, text: str) -> re.Pattern[str] | None:
    """The pattern of ``me`` as a word in ``text``, or None when ``text`` does not name me."""
    if not me:
        return None
    pattern = re.compile(rf"(?<!\w){re.escape(inert(me))}(?!\w)", re.IGNORECASE)
    return pattern if pattern.search(inert(text, keep_newlines=True)) else None


@dataclass(eq=False)
class Conversation:
    """A room the app is in, or a private conversation (the app keeps the pane that shows it)."""

    key: str
    #: The room's name as stored, or the other person's name.
    name: str
    private: bool
    members: list[str] = field(default_factory=list)
    #: The server leaves out others' joins and leaves above this many members (we ask it
    #: to: hello.lazy_members); the list is then as of ``members_at`` (HH:MM).
    lazy_above: int | None = None
    members_at: str = ""
    #: The "joins and leaves are not shown here" notice was given.
    lazy_told: bool = False
    topic: str = ""
    #: In the room, or meaning to be: rejoined after a reconnect. False after a failed
    #: rejoin (the entry stays, dimmed, with what it showed).
    joined: bool = True
    #: Our own join came on this connection: any replay is over, sends may go.
    ready: bool = False
    #: The last live event of the room: where a rejoin resumes.
    last_id: int | None = None
    #: How many times our own join came (the first says "joined", later ones "are back").
    joins: int = 0
    unread: int = 0
    mentions: int = 0
    #: A page of older events was asked for and has not come.
    paging: bool = False
    #: The oldest event shown when that page was asked for: the page keeps what is older.
    page_before: int | None = None
    #: The server said there is nothing older.
    history_done: bool = False
    #: The room's ops and voiced members, as welcome, joined, members and mod events say.
    ops: set[str] = field(default_factory=set)
    voices: set[str] = field(default_factory=set)

    @property
    def label(self) -> str:
        """How the room list shows it: ``#dev``, ``@bob`` (untrusted: inert it to show)."""
        return ("@" if self.private else "#") + self.name

    @property
    def history_room(self) -> str:
        """The ``room`` of a history request for it: private pages are ``@name``."""
        return "@" + self.name if self.private else self.name

    @property
    def snapshot(self) -> bool:
        """Over the lazy threshold the server sends no joins and leaves: a snapshot."""
        return self.lazy_above is not None and len(self.members) > self.lazy_above


@dataclass
class Outgoing:
    """A message typed and not yet acknowledged (its echo has not come back)."""

    text: str
    nonce: str
    to: str | None = None
    action: bool = False
    room: str = protocol.DEFAULT_ROOM
    #: The conversation it was typed in, when that is not where it goes (a /msg).
    origin: str | None = None
    sent: bool = field(default=False, compare=False)

    def frame(self) -> protocol.Say | protocol.DmRequest:
        """The request that sends it (the same nonce every time: resends are exactly-once)."""
        if self.to is not None:
            return protocol.DmRequest(
                to=self.to, text=self.text, nonce=self.nonce, action=self.action
            )
        return protocol.Say(text=self.text, nonce=self.nonce, room=self.room, action=self.action)

    def label(self, current: str) -> str:
        """How the pending list shows it (untrusted parts are made inert by the view)."""
        text = f"* {self.text}" if self.action else self.text
        if self.to is not None:
            return f"→ {self.to}: {text}"
        return text if room_key(self.room) == current else f"#{self.room}: {text}"


@dataclass(eq=False)
class Request:
    """A request other than a message, waiting for its answer (or its error)."""

    frame: protocol.ClientFrame
    #: Made by the app (a rejoin, a page of history), not typed.
    automatic: bool = False


def answers(frame: protocol.ServerFrame, request: protocol.ClientFrame, me: str | None) -> bool:
    """Whether ``frame`` is the server's answer to ``request`` (errors aside)."""
    match request, frame:
        case protocol.JoinRequest(room=room), protocol.Joined(room=got):
            return room_key(room) == room_key(got)
        case protocol.Part(room=room), protocol.Leave(room=got, name=name, reason=reason):
            return (
                name == me
                and reason == protocol.LeaveReason.PART
                and (room_key(room) == room_key(got))
            )
        case protocol.TopicRequest(room=room), protocol.Topic(room=got, sender=sender):
            return sender == me and room_key(room) == room_key(got)
        case protocol.Who(room=room), protocol.Members(room=got):
            return room_key(room) == room_key(got)
        case protocol.RoomsRequest(), protocol.Rooms():
            return True
        case protocol.HistoryRequest(room=room), protocol.History(room=got):
            return room == got
        case protocol.NickRequest(), protocol.Nick(old=old):
            return old == me
        case protocol.Register() | protocol.PasswordChange(), protocol.Registered():
            return True
        case protocol.BansRequest(), protocol.Bans():
            return True
        case _, protocol.Mod(by=by, action=action) if by == me:
            return _MOD_ACTIONS.get(type(request)) == action
    return False


_MOD_ACTIONS: dict[type, str] = {
    protocol.Kick: "kick",
    protocol.Ban: "ban",
    protocol.Unban: "unban",
    protocol.Mute: "mute",
    protocol.Unmute: "unmute",
    protocol.Mode: "mode",
    protocol.Invite: "invite",
    protocol.RoleRequest: "role",
}
