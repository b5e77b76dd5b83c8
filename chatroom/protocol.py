"""JSON objects <-> typed frames: one frozen dataclass per wire ``type``, field checks, names.

Frames are named as on the wire (``Hello``, ``Say``, ``Message``...). Each has a ``TYPE``
constant; :data:`CLIENT_FRAMES` and :data:`SERVER_FRAMES` map wire names to classes.
Unknown fields are ignored, as protocol-v1 asks of every receiver.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar, TypeVar

from chatroom.framing import ErrorCode, ProtocolError, encode_object

__all__ = [
    "CLIENT_FRAMES",
    "DEFAULT_ROOM",
    "MAX_NONCE_CHARS",
    "MAX_TEXT_CHARS",
    "PROTOCOL_VERSION",
    "SERVER_FRAMES",
    "Bye",
    "ClientFrame",
    "Dm",
    "DmRequest",
    "Error",
    "Event",
    "Hello",
    "History",
    "HistoryRequest",
    "Join",
    "JoinRequest",
    "Joined",
    "Leave",
    "LeaveReason",
    "Members",
    "Message",
    "Nick",
    "NickRequest",
    "Part",
    "Ping",
    "Pong",
    "RoomInfo",
    "Rooms",
    "RoomsRequest",
    "Say",
    "ServerFrame",
    "Topic",
    "TopicRequest",
    "Welcome",
    "Who",
    "encode",
    "format_ts",
    "parse_client_frame",
    "parse_server_frame",
]

PROTOCOL_VERSION = 1
DEFAULT_ROOM = "lobby"
# protocol-v1 default.
MAX_TEXT_CHARS = 4000
# Enough for a UUID in any spelling, short enough to be no storage burden.
MAX_NONCE_CHARS = 64


class LeaveReason(StrEnum):
    """Why a member left, spelled as on the wire."""

    QUIT = "quit"
    DISCONNECTED = "disconnected"
    TIMEOUT = "timeout"
    SLOW_CONSUMER = "slow_consumer"
    KICKED = "kicked"
    SHUTDOWN = "shutdown"
    PART = "part"


def format_ts(moment: datetime) -> str:
    """RFC 3339, UTC, milliseconds, ``Z``: the wire's one time format."""
    # isoformat() is C all the way and several times faster than strftime(), which the
    # server calls once per event; in UTC it always ends "+00:00".
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


T = TypeVar("T")


def _field(obj: dict[str, Any], name: str, kind: type[T], *, default: Any = ...) -> T:
    """Read a field of the expected JSON type, or raise ``bad_request``."""
    if name not in obj:
        if default is ...:
            raise ProtocolError(ErrorCode.BAD_REQUEST, f"missing field {name!r}")
        return default  # type: ignore[no-any-return]
    value = obj[name]
    # bool is an int in Python but not a number on the wire.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ProtocolError(
            ErrorCode.BAD_REQUEST, f"field {name!r} must be {_JSON_KIND.get(kind, kind)}"
        )
    return value


_JSON_KIND: dict[object, str] = {
    str: "a string",
    int: "an integer",
    bool: "true or false",
    list: "an array",
}


def _strings(obj: dict[str, Any], name: str) -> tuple[str, ...]:
    values = _field(obj, name, list)
    if not all(isinstance(value, str) for value in values):
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"field {name!r} must hold strings")
    return tuple(values)


# ---------------------------------------------------------------------------- client frames


@dataclass(frozen=True, slots=True)
class Hello:
    """Client: join as ``name``. ``password`` is the server's, when it has one."""

    TYPE: ClassVar[str] = "hello"
    name: str
    protocol: int = PROTOCOL_VERSION
    password: str | None = None
    # Extension: replay every event of the room after this id, then go live.
    resume_after: int | None = None
    # Extension: in big rooms, leave out other members' join and leave events.
    lazy_members: bool = False

    @classmethod
    def from_wire(cls, obj: dict[str, Any]) -> Hello:
        return cls(
            name=_field(obj, "name", str),
            protocol=_field(obj, "protocol", int),
            password=_field(obj, "password", str, default=None),
            resume_after=_field(obj, "resume_after", int, default=None),
            lazy_members=_field(obj, "lazy_members", bool, default=False),
        )

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"type": self.TYPE, "protocol": self.protocol, "name": self.name}
        if self.password is not None:
            wire["password"] = self.password
        if self.resume_after is not None:
            wire["resume_after"] = self.resume_after
        if self.lazy_members:
            wire["lazy_members"] = True
        return wire


@dataclass(frozen=True, slots=True)
class Say:
    """Client: send ``text`` to the room."""

    TYPE: ClassVar[str] = "say"
    text: str
    # Extension: a client-chosen id echoed in the message event, for exactly-once resends.
    nonce: str | None = None
    # Extensions: the room (default lobby), and /me actions.
    room: str = DEFAULT_ROOM
    action: bool = False

    @classmethod
    def from_wire(cls, obj: dict[str, Any]) -> Say:
        return cls(
            text=_field(obj, "text", str),
            nonce=_nonce(obj),
            room=_field(obj, "room", str, default=DEFAULT_ROOM),
            action=_field(obj, "action", bool, default=False),
        )

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"type": self.TYPE, "text": self.text}
        if self.nonce is not None:
            wire["nonce"] = self.nonce
        if self.room != DEFAULT_ROOM:
            wire["room"] = self.room
        if self.action:
            wire["action"] = True
        return wire


@dataclass(frozen=True, slots=True)
class Who:
    """Client: ask for the room's members."""

    TYPE: ClassVar[str] = "who"
    # Extension: which room (default lobby).
    room: str = DEFAULT_ROOM

    @classmethod
    def from_wire(cls, obj: dict[str, Any]) -> Who:
        return cls(room=_field(obj, "room", str, default=DEFAULT_ROOM))

    def to_wire(self) -> dict[str, Any]:
        if self.room == DEFAULT_ROOM:
            return {"type": self.TYPE}
        return {"type": self.TYPE, "room": self.room}


@dataclass(frozen=True, slots=True)
class Bye:
    """Client: leave (reason ``quit``); the server closes."""

    TYPE: ClassVar[str] = "bye"

    @classmethod
    def from_wire(cls, obj: dict[str, Any]) -> Bye:
        return cls()

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.TYPE}


@dataclass(frozen=True, slots=True)
class Ping:
    """Either side: are you there? Answered by a ``pong`` with the same token."""

    TYPE: ClassVar[str] = "ping"
    token: str = ""

    @classmethod
    def from_wire(cls, obj: dict[str, Any]) -> Ping:
        return cls(token=_field(obj, "token", str, default=""))

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.TYPE, "token": self.token}


@dataclass(frozen=True, slots=True)
class Pong:
    """Either side: the answer to a ``ping``."""

    TYPE: ClassVar[str] = "pong"
    token: str = ""

    @classmethod
    def from_wire(cls, obj: dict[str, Any]) -> Pong:
        return cls(token=_field(obj, "token", str, default=""))

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.TYPE, "token": self.token}


# ---------------------------------------------------------------------------- server frames


@dataclass(frozen=True, slots=True)
class Message:
    """Event: ``sender`` said ``text`` in ``room`` (``from`` on the wire)."""

    TYPE: ClassVar[str] = "message"
    id: int
    ts: str
    room: str
    sender: str
    text: str
    nonce: str | None = None
    action: bool = False

    @classmethod
    def from_wire(cls, obj: dict[str, Any]) -> Message:
        return cls(
            id=_field(obj, "id", int),
            ts=_field(obj, "ts", str),
            room=_field(obj, "room", str),
            sender=_field(obj, "from", str),
            text=_field(obj, "text", str),
            nonce=_field(obj, "nonce", str, default=None),
            action=_field(obj, "action", bool, default=False),
        )

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {
            "type": self.TYPE,
            "id": self.id,
            "ts": self.ts,
            "room": self.room,
            "from": self.sender,
            "text": self.text,
        }
        if self.nonce is not None:
            wire["nonce"] = self.nonce
        if self.action:
            wire["action"] = True
        return wire


@dataclass(frozen=True, slots=True)
class Join:
    """Event: ``name`` joined ``room``."""

    TYPE: ClassVar[str] = "join"
    id: int
    ts: str
    room: str
    name: str

    @classmethod
    def from_wire(cls, obj: dict[str, Any]) -> Join:
        return cls(
            id=_field(obj, "id", int),
            ts=_field(obj, "ts", str),
            room=_field(obj, "room", str),
            name=_field(obj, "name", str),
        )

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "id": self.id,
            "ts": self.ts,
            "room": self.room,
            "name": self.name,
        }


@dataclass(frozen=True, slots=True)
class Leave:
    """Event: ``name`` left ``room``; ``reason`` is a :class:`LeaveReason` string."""

    TYPE: ClassVar[str] = "leave"
    id: int
    ts: str
    room: str
    name: str
    reason: str

    @classmethod
    def from_wire(cls, obj: dict[str, Any]) -> Leave:
        return cls(
            id=_field(obj, "id", int),
            ts=_field(obj, "ts", str),
            room=_field(obj, "room", str),
            name=_field(obj, "name", str),
            reason=_field(obj, "reason", str, default=LeaveReason.DISCONNECTED.value),
        )

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "id": self.id,
            "ts": self.ts,
            "room": self.room,
            "name": self.name,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class Topic:
    """Event (extension): ``sender`` set the topic of ``room`` to ``text``."""

    TYPE: ClassVar[str] = "topic"
    id: int
    ts: str
    room: str
    sender: str
    text: str

    @classmethod
    def from_wire(cls, obj: dict[str, Any]) -> Topic:
        return cls(
            id=_field(obj, "id", int),
            ts=_field(obj, "ts", str),
            room=_field(obj, "room", str),
            sender=_field(obj, "from", str),
            text=_field(obj, "text", str),
        )

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "id": self.id,
            "ts": self.ts,
            "room": self.room,
            "from": self.sender,
            "text": self.text,
        }


@dataclass(frozen=True, slots=True)
class Nick:
    """Event (extension): ``old`` is now called ``new``; one per room they share with you."""

    TYPE: ClassVar[str] = "nick"
    id: int
    ts: str
    room: str
    old: str
    new: str

    @classmethod
    def from_wire(cls, obj: dict[str, Any]) -> Nick:
        return cls(
            id=_field(obj, "id", int),
            ts=_field(obj, "ts", str),
            room=_field(obj, "room", str),
            old=_field(obj, "old", str),
            new=_field(obj, "new", str),
        )

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "id": self.id,
            "ts": self.ts,
            "room": self.room,
            "old": self.old,
            "new": self.new,
        }


@dataclass(frozen=True, slots=True)
class Dm:
    """Event (extension): a private message, delivered to ``sender`` and ``to`` only.

    ``room`` is ``""``: a private message belongs to no room.
    """

    TYPE: ClassVar[str] = "dm"
    id: int
    ts: str
    sender: str
    to: str
    text: str
    nonce: str | None = None
    action: bool = False
    room: str = ""

    @classmethod
    def from_wire(cls, obj: dict[str, Any]) -> Dm:
        return cls(
            id=_field(obj, "id", int),
            ts=_field(obj, "ts", str),
            sender=_field(obj, "from", str),
            to=_field(obj, "to", str),
            text=_field(obj, "text", str),
            nonce=_field(obj, "nonce", str, default=None),
            action=_field(obj, "action", bool, default=False),
        )

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {
            "type": self.TYPE,
            "id": self.id,
            "ts": self.ts,
            "from": self.sender,
            "to": self.to,
            "text": self.text,
        }
        if self.nonce is not None:
            wire["nonce"] = self.nonce
        if self.action:
            wire["action"] = True
        return wire


Event = Message | Join | Leave | Topic | Nick | Dm
_EVENT_TYPES: dict[str, Any] = {
    "message": Message,
    "join": Join,
    "leave": Leave,
    "topic": Topic,
    "nick": Nick,
    "dm": Dm,
}


def _events(obj: dict[str, Any], name: str) -> tuple[Event, ...]:
    events: list[Event] = []
    for item in _field(obj, name, list):
        if not isinstance(item, dict):
            raise ProtocolError(ErrorCode.BAD_REQUEST, f"field {name!r} must hold objects")
        kind = item.get("type")
        if not isinstance(kind, str):
            # A list or object here is unhashable: checked first, it is a bad request
            # rather than a TypeError out of the parser.
            raise ProtocolError(ErrorCode.BAD_REQUEST, f"an event in {name!r} has no string type")
        frame_class = _EVENT_TYPES.get(kind)
        if frame_class is not None:  # an event type this client does not know: skip it
            events.append(frame_class.from_wire(item))
    return tuple(events)


@dataclass(frozen=True, slots=True)
class Welcome:
    """Server: ``hello`` accepted; the room's members and its recent past."""

    TYPE: ClassVar[str] = "welcome"
    name: str
    server: str
    room: str
    members: tuple[str, ...]
    history: tuple[Event, ...] = ()
    protocol: int = PROTOCOL_VERSION
    # Extension, with hello.resume_after: replay follows; ``gap`` when some is gone.
    resumed: bool = False
    gap: bool = False
    # Extension, with hello.lazy_members: above this many members a room's joins and
    # leaves are left out, and ``members`` is the list as of now.
    lazy_members_above: int | None = None

    @classmethod
    def from_wire(cls, obj: dict[str, Any]) -> Welcome:
        return cls(
            name=_field(obj, "name", str),
            server=_field(obj, "server", str, default=""),
            room=_field(obj, "room", str, default=DEFAULT_ROOM),
            members=_strings(obj, "members"),
            history=_events(obj, "history") if "history" in obj else (),
            protocol=_field(obj, "protocol", int, default=PROTOCOL_VERSION),
            resumed=_field(obj, "resumed", bool, default=False),
            gap=_field(obj, "gap", bool, default=False),
            lazy_members_above=_field(obj, "lazy_members_above", int, default=None),
        )

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {
            "type": self.TYPE,
            "protocol": self.protocol,
            "name": self.name,
            "server": self.server,
            "room": self.room,
            "members": list(self.members),
            "history": [event.to_wire() for event in self.history],
        }
        if self.resumed:
            wire["resumed"] = True
            wire["gap"] = self.gap
        if self.lazy_members_above is not None:
            wire["lazy_members_above"] = self.lazy_members_above
        return wire


@dataclass(frozen=True, slots=True)
class Members:
    """Server: the answer to ``who``."""

    TYPE: ClassVar[str] = "members"
    room: str
    members: tuple[str, ...]

    @classmethod
    def from_wire(cls, obj: dict[str, Any]) -> Members:
        return cls(room=_field(obj, "room", str), members=_strings(obj, "members"))

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.TYPE, "room": self.room, "members": list(self.members)}


@dataclass(frozen=True, slots=True)
class Error:
    """Server: a request failed; ``code`` is an :class:`ErrorCode` string."""

    TYPE: ClassVar[str] = "error"
    code: str
    message: str = ""
    # Extension: the request type that failed, so clients can match errors to requests.
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_wire(cls, obj: dict[str, Any]) -> Error:
        return cls(code=_field(obj, "code", str), message=_field(obj, "message", str, default=""))

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.TYPE, "code": self.code, "message": self.message, **self.extra}


@dataclass(frozen=True, slots=True)
class HistoryRequest:
    """Client (extension): up to ``limit`` events of ``room`` older than ``before``."""

    TYPE: ClassVar[str] = "history"
    room: str = DEFAULT_ROOM
    before: int | None = None
    limit: int = 100

    @classmethod
    def from_wire(cls, obj: dict[str, Any]) -> HistoryRequest:
        limit = _field(obj, "limit", int, default=100)
        if limit < 1:
            raise ProtocolError(ErrorCode.BAD_REQUEST, "'limit' must be at least 1")
        return cls(
            room=_field(obj, "room", str, default=DEFAULT_ROOM),
            before=_field(obj, "before", int, default=None),
            limit=limit,
        )

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"type": self.TYPE, "room": self.room, "limit": self.limit}
        if self.before is not None:
            wire["before"] = self.before
        return wire


@dataclass(frozen=True, slots=True)
class History:
    """Server (extension): a page of older events, oldest first; ``more`` if older remain."""

    TYPE: ClassVar[str] = "history"
    room: str
    events: tuple[Event, ...]
    more: bool

    @classmethod
    def from_wire(cls, obj: dict[str, Any]) -> History:
        return cls(
            room=_field(obj, "room", str),
            events=_events(obj, "events"),
            more=_field(obj, "more", bool, default=False),
        )

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "room": self.room,
            "events": [event.to_wire() for event in self.events],
            "more": self.more,
        }


def _nonce(obj: dict[str, Any]) -> str | None:
    nonce = _field(obj, "nonce", str, default=None)
    if nonce is not None and len(nonce) > MAX_NONCE_CHARS:
        raise ProtocolError(
            ErrorCode.BAD_REQUEST, f"a nonce has at most {MAX_NONCE_CHARS} characters"
        )
    return nonce


@dataclass(frozen=True, slots=True)
class JoinRequest:
    """Client (extension): join ``room``, creating it if needed; ``resume_after`` as in hello."""

    TYPE: ClassVar[str] = "join"
    room: str
    resume_after: int | None = None

    @classmethod
    def from_wire(cls, obj: dict[str, Any]) -> JoinRequest:
        return cls(
            room=_field(obj, "room", str),
            resume_after=_field(obj, "resume_after", int, default=None),
        )

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"type": self.TYPE, "room": self.room}
        if self.resume_after is not None:
            wire["resume_after"] = self.resume_after
        return wire


@dataclass(frozen=True, slots=True)
class Part:
    """Client (extension): leave ``room`` (others see ``leave`` reason ``part``)."""

    TYPE: ClassVar[str] = "part"
    room: str

    @classmethod
    def from_wire(cls, obj: dict[str, Any]) -> Part:
        return cls(room=_field(obj, "room", str))

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.TYPE, "room": self.room}


@dataclass(frozen=True, slots=True)
class RoomsRequest:
    """Client (extension): list the rooms."""

    TYPE: ClassVar[str] = "rooms"

    @classmethod
    def from_wire(cls, obj: dict[str, Any]) -> RoomsRequest:
        return cls()

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.TYPE}


@dataclass(frozen=True, slots=True)
class TopicRequest:
    """Client (extension): set the topic of ``room``."""

    TYPE: ClassVar[str] = "topic"
    room: str
    text: str

    @classmethod
    def from_wire(cls, obj: dict[str, Any]) -> TopicRequest:
        return cls(room=_field(obj, "room", str), text=_field(obj, "text", str))

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.TYPE, "room": self.room, "text": self.text}


@dataclass(frozen=True, slots=True)
class DmRequest:
    """Client (extension): a private message to ``to``."""

    TYPE: ClassVar[str] = "dm"
    to: str
    text: str
    nonce: str | None = None
    action: bool = False

    @classmethod
    def from_wire(cls, obj: dict[str, Any]) -> DmRequest:
        return cls(
            to=_field(obj, "to", str),
            text=_field(obj, "text", str),
            nonce=_nonce(obj),
            action=_field(obj, "action", bool, default=False),
        )

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"type": self.TYPE, "to": self.to, "text": self.text}
        if self.nonce is not None:
            wire["nonce"] = self.nonce
        if self.action:
            wire["action"] = True
        return wire


@dataclass(frozen=True, slots=True)
class NickRequest:
    """Client (extension): change my name to ``name`` (the name rules apply)."""

    TYPE: ClassVar[str] = "nick"
    name: str

    @classmethod
    def from_wire(cls, obj: dict[str, Any]) -> NickRequest:
        return cls(name=_field(obj, "name", str))

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.TYPE, "name": self.name}


@dataclass(frozen=True, slots=True)
class Joined:
    """Server (extension): you joined ``room``: its members, topic and recent past.

    Like ``welcome``, the room's events follow, starting with your own ``join``.
    """

    TYPE: ClassVar[str] = "joined"
    room: str
    members: tuple[str, ...]
    topic: str = ""
    history: tuple[Event, ...] = ()
    resumed: bool = False
    gap: bool = False
    lazy_members_above: int | None = None  # as in welcome

    @classmethod
    def from_wire(cls, obj: dict[str, Any]) -> Joined:
        return cls(
            room=_field(obj, "room", str),
            members=_strings(obj, "members"),
            topic=_field(obj, "topic", str, default=""),
            history=_events(obj, "history") if "history" in obj else (),
            resumed=_field(obj, "resumed", bool, default=False),
            gap=_field(obj, "gap", bool, default=False),
            lazy_members_above=_field(obj, "lazy_members_above", int, default=None),
        )

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {
            "type": self.TYPE,
            "room": self.room,
            "members": list(self.members),
            "topic": self.topic,
            "history": [event.to_wire() for event in self.history],
        }
        if self.resumed:
            wire["resumed"] = True
            wire["gap"] = self.gap
        if self.lazy_members_above is not None:
            wire["lazy_members_above"] = self.lazy_members_above
        return wire


@dataclass(frozen=True, slots=True)
class RoomInfo:
    """One entry of a ``rooms`` answer."""

    name: str
    members: int
    topic: str = ""


@dataclass(frozen=True, slots=True)
class Rooms:
    """Server (extension): the answer to ``rooms``."""

    TYPE: ClassVar[str] = "rooms"
    rooms: tuple[RoomInfo, ...]

    @classmethod
    def from_wire(cls, obj: dict[str, Any]) -> Rooms:
        rooms: list[RoomInfo] = []
        for item in _field(obj, "rooms", list):
            if not isinstance(item, dict):
                raise ProtocolError(ErrorCode.BAD_REQUEST, "field 'rooms' must hold objects")
            rooms.append(
                RoomInfo(
                    name=_field(item, "name", str),
                    members=_field(item, "members", int, default=0),
                    topic=_field(item, "topic", str, default=""),
                )
            )
        return cls(rooms=tuple(rooms))

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "rooms": [
                {"name": room.name, "members": room.members, "topic": room.topic}
                for room in self.rooms
            ],
        }


ClientFrame = (
    Hello
    | Say
    | Who
    | Bye
    | Ping
    | Pong
    | HistoryRequest
    | JoinRequest
    | Part
    | RoomsRequest
    | TopicRequest
    | DmRequest
    | NickRequest
)
ServerFrame = (
    Welcome
    | Message
    | Join
    | Leave
    | Topic
    | Nick
    | Dm
    | Members
    | Error
    | Ping
    | Pong
    | History
    | Joined
    | Rooms
)

CLIENT_FRAMES: dict[str, Any] = {
    frame.TYPE: frame
    for frame in (
        Hello,
        Say,
        Who,
        Bye,
        Ping,
        Pong,
        HistoryRequest,
        JoinRequest,
        Part,
        RoomsRequest,
        TopicRequest,
        DmRequest,
        NickRequest,
    )
}
SERVER_FRAMES: dict[str, Any] = {
    frame.TYPE: frame
    for frame in (
        Welcome,
        Message,
        Join,
        Leave,
        Topic,
        Nick,
        Dm,
        Members,
        Error,
        Ping,
        Pong,
        History,
        Joined,
        Rooms,
    )
}


def _parse(obj: dict[str, Any], registry: dict[str, Any]) -> Any:
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "a frame needs a string 'type'")
    frame_class = registry.get(kind)
    if frame_class is None:
        raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"unknown frame type {kind[:40]!r}")
    return frame_class.from_wire(obj)


def parse_client_frame(obj: dict[str, Any]) -> ClientFrame:
    """Turn a decoded object from a client into a frame.

    Raises:
        ProtocolError: ``bad_request`` for a missing or mistyped field or ``type``,
            ``unknown_type`` for a type the server does not serve.
    """
    frame: ClientFrame = _parse(obj, CLIENT_FRAMES)
    return frame


def parse_server_frame(obj: dict[str, Any]) -> ServerFrame:
    """Turn a decoded object from the server into a frame (``unknown_type`` if new)."""
    frame: ServerFrame = _parse(obj, SERVER_FRAMES)
    return frame


def encode(frame: ClientFrame | ServerFrame) -> bytes:
    """The one serializer: a frame as wire bytes, newline included."""
    if type(frame) is Message:
        return _encode_message(frame)
    return encode_object(frame.to_wire())


# How the JSON encoder (ensure_ascii=False) writes a string, quotes included.
_quote: Callable[[str], str] = json.encoder.encode_basestring


def _encode_message(message: Message) -> bytes:
    """``encode_object(message.to_wire())``, byte for byte, in a third of the time:
    messages are most of what a server encodes (each once, whatever the room's size)."""
    extra = ""
    if message.nonce is not None:
        extra = ',"nonce":' + _quote(message.nonce)
    if message.action:
        extra += ',"action":true'
    return (
        f'{{"type":"message","id":{message.id:d},"ts":{_quote(message.ts)},'
        f'"room":{_quote(message.room)},"from":{_quote(message.sender)},'
        f'"text":{_quote(message.text)}{extra}}}\n'
    ).encode()
