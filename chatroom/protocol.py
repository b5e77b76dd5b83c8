"""JSON objects <-> typed frames: the wire format as a table, one frozen dataclass per ``type``.

Each frame is declared once, below, with its wire ``type`` and its fields; reading
(``from_wire``, every field check included), writing (``to_wire``) and :func:`encode`
are derived from that declaration by :mod:`chatroom.frametable`, which says how a
field's annotation and its ``_wire`` rules become its row.

:data:`CLIENT_FRAMES` and :data:`SERVER_FRAMES` map wire names to classes. Unknown
fields are ignored, as protocol-v1 asks of every receiver.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, get_args

from chatroom.frametable import Frame as _Frame
from chatroom.frametable import Record as _Record
from chatroom.frametable import bad as _bad
from chatroom.frametable import frame as _frame
from chatroom.frametable import quote as _quote
from chatroom.frametable import wire as _wire
from chatroom.framing import ErrorCode, ProtocolError

__all__ = [
    "CLIENT_FRAMES",
    "DEFAULT_ROOM",
    "MAX_NONCE_CHARS",
    "MAX_PASSWORD_FIELD_CHARS",
    "MAX_TEXT_CHARS",
    "PROTOCOL_VERSION",
    "SERVER_FRAMES",
    "Ban",
    "BanInfo",
    "Bans",
    "BansRequest",
    "Bye",
    "ClientFrame",
    "Dm",
    "DmRequest",
    "Error",
    "Event",
    "Hello",
    "History",
    "HistoryRequest",
    "Invite",
    "Join",
    "JoinRequest",
    "Joined",
    "Kick",
    "Leave",
    "LeaveReason",
    "Members",
    "Message",
    "Mod",
    "Mode",
    "Mute",
    "Nick",
    "NickRequest",
    "Part",
    "PasswordChange",
    "Ping",
    "Pong",
    "Register",
    "Registered",
    "RoleRequest",
    "RoomInfo",
    "Rooms",
    "RoomsRequest",
    "Say",
    "ServerFrame",
    "Topic",
    "TopicRequest",
    "Unban",
    "Unmute",
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
# A cheap bound before any hashing: an account password has at most 256 characters
# after NFC (checked by the accounts), and NFC never needs four times as many to say so.
MAX_PASSWORD_FIELD_CHARS = 1024


# A session token is 24 url-safe characters; anything much longer is not one.
MAX_SESSION_CHARS = 64


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


# ---------------------------------------------------------------------------- client frames


@_frame("hello", first=("protocol",))
class Hello(_Frame):
    """Client: join as ``name``. ``password`` is the server's, when it has one."""

    name: str
    protocol: int = _wire(default=PROTOCOL_VERSION, always=True, required=True)
    password: str | None = None
    # Extension: replay every event of the room after this id, then go live.
    resume_after: int | None = None
    # Extension: in big rooms, leave out other members' join and leave events.
    lazy_members: bool = False
    # Extension: the password of the name's account, when the name is registered.
    account_password: str | None = _wire(default=None, max_chars=MAX_PASSWORD_FIELD_CHARS)
    # Extension: welcome.session of the connection this one replaces (cluster mode).
    session: str | None = _wire(default=None, max_chars=MAX_SESSION_CHARS)


@_frame("say")
class Say(_Frame):
    """Client: send ``text`` to the room."""

    text: str
    # Extension: a client-chosen id echoed in the message event, for exactly-once resends.
    nonce: str | None = _wire(default=None, max_chars=MAX_NONCE_CHARS)
    # Extensions: the room (default lobby), and /me actions.
    room: str = DEFAULT_ROOM
    action: bool = False


@_frame("who")
class Who(_Frame):
    """Client: ask for the room's members."""

    # Extension: which room (default lobby).
    room: str = DEFAULT_ROOM


@_frame("bye")
class Bye(_Frame):
    """Client: leave (reason ``quit``); the server closes."""


@_frame("ping")
class Ping(_Frame):
    """Either side: are you there? Answered by a ``pong`` with the same token."""

    token: str = _wire(default="", always=True)


@_frame("pong")
class Pong(_Frame):
    """Either side: the answer to a ``ping``."""

    token: str = _wire(default="", always=True)


@_frame("history", first=("room", "limit"))
class HistoryRequest(_Frame):
    """Client (extension): up to ``limit`` events of ``room`` older than ``before``."""

    room: str = _wire(default=DEFAULT_ROOM, always=True)
    before: int | None = None
    limit: int = _wire(default=100, always=True, at_least=1)


@_frame("join")
class JoinRequest(_Frame):
    """Client (extension): join ``room``, creating it if needed; ``resume_after`` as in hello."""

    room: str
    resume_after: int | None = None
    # The room's key, when its mode asks for one.
    key: str | None = None


@_frame("part")
class Part(_Frame):
    """Client (extension): leave ``room`` (others see ``leave`` reason ``part``)."""

    room: str


@_frame("rooms")
class RoomsRequest(_Frame):
    """Client (extension): list the rooms."""


@_frame("topic")
class TopicRequest(_Frame):
    """Client (extension): set the topic of ``room``."""

    room: str
    text: str


@_frame("dm")
class DmRequest(_Frame):
    """Client (extension): a private message to ``to``."""

    to: str
    text: str
    nonce: str | None = _wire(default=None, max_chars=MAX_NONCE_CHARS)
    action: bool = False


@_frame("nick")
class NickRequest(_Frame):
    """Client (extension): change my name to ``name`` (the name rules apply)."""

    name: str


@_frame("register")
class Register(_Frame):
    """Client (extension): register my current name as an account with ``password``."""

    password: str = _wire(max_chars=MAX_PASSWORD_FIELD_CHARS)


@_frame("password")
class PasswordChange(_Frame):
    """Client (extension): change my account's password; my other sessions end."""

    old_password: str = _wire(max_chars=MAX_PASSWORD_FIELD_CHARS)
    password: str = _wire(max_chars=MAX_PASSWORD_FIELD_CHARS)


@_frame("role")
class RoleRequest(_Frame):
    """Client (extension): give ``name`` the room role ``op``, ``voice`` or ``none``."""

    room: str
    name: str
    role: str


@_frame("kick")
class Kick(_Frame):
    """Client (extension): put ``name`` out of ``room``."""

    room: str
    name: str
    reason: str = ""


@_frame("ban")
class Ban(_Frame):
    """Client (extension): keep ``name`` out of ``room`` (None: the server, staff only)
    for ``duration_s`` seconds (None: until lifted)."""

    name: str
    room: str | None = None
    duration_s: int | None = None
    reason: str = ""


@_frame("unban")
class Unban(_Frame):
    """Client (extension): lift a ban on ``name`` in ``room`` (None: the server's)."""

    name: str
    room: str | None = None


@_frame("bans")
class BansRequest(_Frame):
    """Client (extension): list the bans of ``room`` (None: the server's)."""

    room: str | None = None


@_frame("mute")
class Mute(_Frame):
    """Client (extension): ``name`` stays in ``room`` but may not speak there."""

    room: str
    name: str
    duration_s: int | None = None
    reason: str = ""


@_frame("unmute")
class Unmute(_Frame):
    """Client (extension): lift a mute."""

    room: str
    name: str


@_frame("mode")
class Mode(_Frame):
    """Client (extension): change a room's modes; a field left out stays as it is.
    ``key``: a string sets it, ``""`` or ``null`` removes it."""

    room: str
    invite_only: bool | None = None
    key: str | None = _wire(default=None, null_as="")
    moderated: bool | None = None
    registered_only: bool | None = None
    slow_s: int | None = None


@_frame("invite")
class Invite(_Frame):
    """Client (extension): let ``name`` into ``room`` past its invite-only mode and key."""

    room: str
    name: str


# ---------------------------------------------------------------------------- server frames


@_frame("message")
class Message(_Frame):
    """Event: ``sender`` said ``text`` in ``room`` (``from`` on the wire)."""

    id: int
    ts: str
    room: str
    sender: str = _wire(key="from")
    text: str
    nonce: str | None = None
    action: bool = False


@_frame("join")
class Join(_Frame):
    """Event: ``name`` joined ``room``."""

    id: int
    ts: str
    room: str
    name: str


@_frame("leave")
class Leave(_Frame):
    """Event: ``name`` left ``room``; ``reason`` is a :class:`LeaveReason` string."""

    id: int
    ts: str
    room: str
    name: str
    reason: str = _wire(absent=LeaveReason.DISCONNECTED.value)
    # Extension, with reason ``kicked``: who put them out (absent: the server) and why.
    by: str | None = None
    text: str | None = None


@_frame("topic")
class Topic(_Frame):
    """Event (extension): ``sender`` set the topic of ``room`` to ``text``."""

    id: int
    ts: str
    room: str
    sender: str = _wire(key="from")
    text: str


@_frame("nick")
class Nick(_Frame):
    """Event (extension): ``old`` is now called ``new``; one per room they share with you."""

    id: int
    ts: str
    room: str
    old: str
    new: str


@_frame("dm")
class Dm(_Frame):
    """Event (extension): a private message, delivered to ``sender`` and ``to`` only.

    ``room`` is ``""``: a private message belongs to no room.
    """

    id: int
    ts: str
    sender: str = _wire(key="from")
    to: str
    text: str
    nonce: str | None = None
    action: bool = False
    room: str = _wire(default="", on_wire=False)


@_frame("mod")
class Mod(_Frame):
    """Event (extension): ``by`` took a moderation ``action`` on ``target`` in ``room``
    (``""``: the whole server); ``until`` is when it ends (null: until lifted or not
    timed). The audit log: stored and replayed like any event."""

    id: int
    ts: str
    room: str
    by: str
    action: str
    target: str
    reason: str = _wire(default="", always=True)
    until: str | None = _wire(default=None, always=True)
    # action "role": the role given (op, voice, none).
    role: str | None = None
    # action "mode": the modes as they now are (key_set: whether a key is needed).
    invite_only: bool | None = None
    key_set: bool | None = None
    moderated: bool | None = None
    registered_only: bool | None = None
    slow_s: int | None = None


Event = Message | Join | Leave | Topic | Nick | Dm | Mod


@_frame("welcome", first=("protocol",))
class Welcome(_Frame):
    """Server: ``hello`` accepted; the room's members and its recent past."""

    name: str
    server: str = _wire(absent="")
    room: str = _wire(absent=DEFAULT_ROOM)
    members: tuple[str, ...]
    history: tuple[Event, ...] = _wire(default=(), always=True)
    protocol: int = _wire(default=PROTOCOL_VERSION, always=True)
    # Extension, with hello.resume_after: replay follows; ``gap`` when some is gone.
    resumed: bool = False
    gap: bool = _wire(default=False, only_with="resumed")
    # Extension, with hello.lazy_members: above this many members a room's joins and
    # leaves are left out, and ``members`` is the list as of now.
    lazy_members_above: int | None = None
    # Extension: the account logged in (null: none) and its staff roles.
    account: str | None = _wire(default=None, always=True)
    roles: tuple[str, ...] = _wire(default=(), always=True)
    # Extension: which of ``members`` are the room's ops and voiced members.
    ops: tuple[str, ...] = ()
    voices: tuple[str, ...] = ()
    # Extension, in cluster mode: a secret to send as hello.session when reconnecting,
    # on any node, to take over this session's name before its old node notices.
    session: str | None = None


@_frame("members")
class Members(_Frame):
    """Server: the answer to ``who``."""

    room: str
    members: tuple[str, ...]
    ops: tuple[str, ...] = ()  # as in welcome
    voices: tuple[str, ...] = ()


@_frame("error")
class Error(_Frame):
    """Server: a request failed; ``code`` is an :class:`ErrorCode` string."""

    code: str
    message: str = _wire(default="", always=True)
    # Extension: the request type that failed, so clients can match errors to requests.
    extra: dict[str, Any] = _wire(default_factory=dict, splice=True)


@_frame("history")
class History(_Frame):
    """Server (extension): a page of older events, oldest first; ``more`` if older remain."""

    room: str
    events: tuple[Event, ...]
    more: bool = _wire(absent=False)


@_frame("joined")
class Joined(_Frame):
    """Server (extension): you joined ``room``: its members, topic and recent past.

    Like ``welcome``, the room's events follow, starting with your own ``join``.
    """

    room: str
    members: tuple[str, ...]
    topic: str = _wire(default="", always=True)
    history: tuple[Event, ...] = _wire(default=(), always=True)
    resumed: bool = False
    gap: bool = _wire(default=False, only_with="resumed")
    lazy_members_above: int | None = None  # as in welcome
    ops: tuple[str, ...] = ()
    voices: tuple[str, ...] = ()


@_frame(None)
class RoomInfo(_Record):
    """One entry of a ``rooms`` answer."""

    name: str
    members: int = _wire(absent=0)
    topic: str = _wire(default="", always=True)


@_frame("rooms")
class Rooms(_Frame):
    """Server (extension): the answer to ``rooms``."""

    rooms: tuple[RoomInfo, ...]


@_frame("registered")
class Registered(_Frame):
    """Server (extension): ``account`` is registered, or its password changed."""

    account: str


@_frame(None)
class BanInfo(_Record):
    """One entry of a ``bans`` answer."""

    name: str
    by: str = _wire(absent="")
    reason: str = _wire(default="", always=True)
    until: str | None = _wire(default=None, always=True)


@_frame("bans")
class Bans(_Frame):
    """Server (extension): the answer to ``bans``."""

    bans: tuple[BanInfo, ...]
    room: str | None = None


# fmt: off
ClientFrame = (
    Hello | Say | Who | Bye | Ping | Pong | HistoryRequest | JoinRequest | Part | RoomsRequest
    | TopicRequest | DmRequest | NickRequest | Register | PasswordChange | RoleRequest | Kick
    | Ban | Unban | BansRequest | Mute | Unmute | Mode | Invite
)
ServerFrame = (
    Welcome | Message | Join | Leave | Topic | Nick | Dm | Members | Error | Ping | Pong
    | History | Joined | Rooms | Mod | Registered | Bans
)
# fmt: on

CLIENT_FRAMES: dict[str, Any] = {frame.TYPE: frame for frame in get_args(ClientFrame)}
SERVER_FRAMES: dict[str, Any] = {frame.TYPE: frame for frame in get_args(ServerFrame)}
_CLIENT_READERS = {name: frame._TABLE.read for name, frame in CLIENT_FRAMES.items()}
_SERVER_READERS = {name: frame._TABLE.read for name, frame in SERVER_FRAMES.items()}


def _parse(obj: dict[str, Any], readers: dict[str, Callable[[dict[str, Any]], Any]]) -> Any:
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise _bad("a frame needs a string 'type'")
    read = readers.get(kind)
    if read is None:
        raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"unknown frame type {kind[:40]!r}")
    return read(obj)


def parse_client_frame(obj: dict[str, Any]) -> ClientFrame:
    """Turn a decoded object from a client into a frame.

    Raises:
        ProtocolError: ``bad_request`` for a missing or mistyped field or ``type``,
            ``unknown_type`` for a type the server does not serve.
    """
    frame: ClientFrame = _parse(obj, _CLIENT_READERS)
    return frame


def parse_server_frame(obj: dict[str, Any]) -> ServerFrame:
    """Turn a decoded object from the server into a frame (``unknown_type`` if new)."""
    frame: ServerFrame = _parse(obj, _SERVER_READERS)
    return frame


def encode(frame: ClientFrame | ServerFrame) -> bytes:
    """The one serializer: a frame as wire bytes, newline included."""
    if type(frame) is Message:  # most of what a server encodes: spared even the lookup
        return _encode_message(frame)
    return frame._TABLE.encode(frame)


def _encode_message(message: Message) -> bytes:
    """Message's row of the table as one formatted string: what ``encode_flat`` writes,
    byte for byte (a test holds it to that for any text), in about 60 % of the time.
    Messages are most of what a server encodes (each once, whatever the room's size)."""
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
