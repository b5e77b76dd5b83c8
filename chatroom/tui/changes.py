"""What changed in the chat's state: small records the model makes and the app renders.

Each names the conversation it concerns; widgets that show the current conversation only
need redrawing when it is the current one.
"""

from __future__ import annotations

from dataclasses import dataclass

from chatroom import protocol
from chatroom.tui.conversation import Conversation, Outgoing, Request

__all__ = [
    "AccountRegistered",
    "Added",
    "BansListed",
    "Change",
    "Closed",
    "CurrentUpdated",
    "Echoed",
    "Gap",
    "HistoryShown",
    "Left",
    "MembersChanged",
    "MembersListed",
    "Mentioned",
    "NameChanged",
    "OlderShown",
    "OwnJoin",
    "PendingChanged",
    "RateLimited",
    "RejoinFailed",
    "RequestFailed",
    "RoomsChanged",
    "RoomsListed",
    "SendRefused",
    "ServerNotice",
    "Shown",
    "Switched",
    "TopicChanged",
    "Unsent",
]


@dataclass(frozen=True)
class Added:
    """A new conversation, last in the list."""

    conv: Conversation


@dataclass(frozen=True)
class Closed:
    """``conv`` left the list (if it was current, a :class:`Switched` came first)."""

    conv: Conversation


@dataclass(frozen=True)
class Switched:
    """``conv`` is the current conversation now (or again); its unread counts are zero."""

    conv: Conversation


@dataclass(frozen=True)
class CurrentUpdated:
    """The current conversation's name, members, topic or state changed: show it again."""


@dataclass(frozen=True)
class RoomsChanged:
    """The room list's labels, unread counts or joined states changed."""


@dataclass(frozen=True)
class MembersChanged:
    """``conv``'s member list changed."""

    conv: Conversation


@dataclass(frozen=True)
class TopicChanged:
    """``conv``'s topic changed."""

    conv: Conversation


@dataclass(frozen=True)
class PendingChanged:
    """The list of messages not yet acknowledged changed."""


@dataclass(frozen=True)
class NameChanged:
    """Our own name is ``name`` now."""

    name: str


@dataclass(frozen=True)
class Mentioned:
    """Someone else named us or wrote to us privately (time for the bell)."""


@dataclass(frozen=True)
class Shown:
    """A live event to show in ``conv``."""

    conv: Conversation
    event: protocol.Event


@dataclass(frozen=True)
class Echoed:
    """Our private message, also shown in ``conv`` where it was typed (a /msg)."""

    conv: Conversation
    event: protocol.Event


@dataclass(frozen=True)
class OwnJoin:
    """Our own join into ``conv`` came: its replay is over (``conv.joins`` counts them)."""

    conv: Conversation
    event: protocol.Join


@dataclass(frozen=True)
class HistoryShown:
    """A welcome's or joined's history for ``conv``; ``again`` after a reconnect."""

    conv: Conversation
    events: tuple[protocol.Event, ...]
    again: bool


@dataclass(frozen=True)
class OlderShown:
    """A page of older events to put above ``conv``'s; ``beginning``: nothing is older."""

    conv: Conversation
    events: tuple[protocol.Event, ...]
    beginning: bool


@dataclass(frozen=True)
class Gap:
    """Some of ``conv``'s events from while we were away are no longer stored."""

    conv: Conversation


@dataclass(frozen=True)
class Left:
    """We left the room ``conv`` (it is closed already)."""

    conv: Conversation


@dataclass(frozen=True)
class Unsent:
    """``item`` was dropped unsent: its room is no longer joined."""

    item: Outgoing


@dataclass(frozen=True)
class SendRefused:
    """The server refused ``item`` for good (too long, no such member...)."""

    item: Outgoing
    code: str
    text: str


@dataclass(frozen=True)
class RateLimited:
    """What is in flight was not delivered: the app sends it again shortly (``resend``)."""


@dataclass(frozen=True)
class RequestFailed:
    """``request`` came to nothing; say so in ``where``."""

    where: Conversation
    request: Request
    code: str
    text: str


@dataclass(frozen=True)
class RejoinFailed:
    """Rejoining ``conv`` after a reconnect failed; it stays listed, not joined."""

    conv: Conversation
    code: str
    text: str


@dataclass(frozen=True)
class ServerNotice:
    """An error from the server about nothing in flight."""

    code: str
    text: str


@dataclass(frozen=True)
class AccountRegistered:
    """Our account is registered, or its password changed."""

    account: str


@dataclass(frozen=True)
class BansListed:
    """The answer to /bans, to show in ``where``."""

    where: Conversation
    bans: protocol.Bans


@dataclass(frozen=True)
class MembersListed:
    """The answer to /who: ``members`` of ``room``, to list in ``where``."""

    where: Conversation
    room: str
    members: tuple[str, ...]


@dataclass(frozen=True)
class RoomsListed:
    """The answer to /rooms."""

    rooms: tuple[protocol.RoomInfo, ...]


Change = (
    Added
    | Closed
    | Switched
    | CurrentUpdated
    | RoomsChanged
    | MembersChanged
    | TopicChanged
    | PendingChanged
    | NameChanged
    | Mentioned
    | Shown
    | Echoed
    | OwnJoin
    | HistoryShown
    | OlderShown
    | Gap
    | Left
    | Unsent
    | SendRefused
    | RateLimited
    | RequestFailed
    | RejoinFailed
    | ServerNotice
    | AccountRegistered
    | BansListed
    | MembersListed
    | RoomsListed
)
