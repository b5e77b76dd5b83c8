"""protocol.py: typed frames to wire objects and back, field checks, the one serializer."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from types import NoneType, UnionType
from typing import Any, get_args, get_type_hints

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatroom.framing import ErrorCode, FrameDecoder, ProtocolError, encode_object
from chatroom.protocol import (
    CLIENT_FRAMES,
    DEFAULT_ROOM,
    MAX_NONCE_CHARS,
    MAX_PASSWORD_FIELD_CHARS,
    SERVER_FRAMES,
    Ban,
    BanInfo,
    Bans,
    BansRequest,
    Bye,
    Dm,
    DmRequest,
    Error,
    Hello,
    History,
    HistoryRequest,
    Invite,
    Join,
    Joined,
    JoinRequest,
    Kick,
    Leave,
    Members,
    Message,
    Mod,
    Mode,
    Mute,
    Nick,
    NickRequest,
    Part,
    PasswordChange,
    Ping,
    Pong,
    Register,
    Registered,
    RoleRequest,
    RoomInfo,
    Rooms,
    RoomsRequest,
    Say,
    Topic,
    TopicRequest,
    Unban,
    Unmute,
    Welcome,
    Who,
    encode,
    format_ts,
    parse_client_frame,
    parse_server_frame,
)

texts = st.text(max_size=40)


def _wire(data: bytes) -> dict[str, Any]:
    decoder = FrameDecoder(16 * 1024 * 1024)
    decoder.receive_data(data)
    obj = decoder.next_frame()
    assert obj is not None
    assert decoder.next_frame() is None
    return obj


def test_wire_names_are_the_contract_names() -> None:
    """The wire spells fields as protocol-v1 does: ``from``, snake_case, a string type."""
    message = Message(id=42, ts="2026-11-24T02:30:01.123Z", room="lobby", sender="alice", text="hi")
    assert encode(message) == (
        b'{"type":"message","id":42,"ts":"2026-11-24T02:30:01.123Z","room":"lobby",'
        b'"from":"alice","text":"hi"}\n'
    )
    assert encode(Hello(name="alice")) == b'{"type":"hello","protocol":1,"name":"alice"}\n'
    # Extensions may add frame types; the core ones are always there.
    assert set(CLIENT_FRAMES) >= {"hello", "say", "who", "bye", "ping", "pong"}
    assert set(SERVER_FRAMES) >= {
        "welcome",
        "message",
        "join",
        "leave",
        "members",
        "error",
        "ping",
        "pong",
    }


def test_welcome_always_carries_server_and_history() -> None:
    """An empty history is still sent, as an empty list, and so is ``server``."""
    welcome = Welcome(name="a", server="chatroom/0.1.0", room="lobby", members=("a",))
    wire = _wire(encode(welcome))
    assert wire["history"] == [] and wire["server"] == "chatroom/0.1.0"
    assert wire["protocol"] == 1


def test_unknown_fields_are_ignored() -> None:
    """Receivers ignore fields they do not know."""
    frame = parse_client_frame({"type": "say", "text": "hi", "future": {"x": 1}})
    assert frame == Say(text="hi")


@pytest.mark.parametrize(
    ("obj", "code"),
    [
        ({}, ErrorCode.BAD_REQUEST),
        ({"text": "no type"}, ErrorCode.BAD_REQUEST),
        ({"type": 7}, ErrorCode.BAD_REQUEST),
        ({"type": None}, ErrorCode.BAD_REQUEST),
        ({"type": ["say"]}, ErrorCode.BAD_REQUEST),
        ({"type": "shout"}, ErrorCode.UNKNOWN_TYPE),
        ({"type": "message", "id": 1}, ErrorCode.UNKNOWN_TYPE),  # a server frame
        ({"type": "SAY", "text": "x"}, ErrorCode.UNKNOWN_TYPE),
        ({"type": "say"}, ErrorCode.BAD_REQUEST),
        ({"type": "say", "text": 5}, ErrorCode.BAD_REQUEST),
        ({"type": "say", "text": None}, ErrorCode.BAD_REQUEST),
        ({"type": "say", "text": ["hi"]}, ErrorCode.BAD_REQUEST),
        ({"type": "hello", "name": "a"}, ErrorCode.BAD_REQUEST),
        ({"type": "hello", "protocol": 1}, ErrorCode.BAD_REQUEST),
        ({"type": "hello", "protocol": "1", "name": "a"}, ErrorCode.BAD_REQUEST),
        ({"type": "hello", "protocol": True, "name": "a"}, ErrorCode.BAD_REQUEST),
        ({"type": "hello", "protocol": 1.0, "name": "a"}, ErrorCode.BAD_REQUEST),
        ({"type": "hello", "protocol": 1, "name": 3}, ErrorCode.BAD_REQUEST),
        ({"type": "hello", "protocol": 1, "name": "a", "password": 1}, ErrorCode.BAD_REQUEST),
        ({"type": "ping", "token": 1}, ErrorCode.BAD_REQUEST),
        ({"type": "pong", "token": {}}, ErrorCode.BAD_REQUEST),
    ],
)
def test_bad_client_objects(obj: dict[str, Any], code: ErrorCode) -> None:
    """A missing/mistyped type or field is bad_request; an unknown type is unknown_type."""
    with pytest.raises(ProtocolError) as caught:
        parse_client_frame(obj)
    assert caught.value.code is code


def test_ping_token_is_optional() -> None:
    """A ping without a token is answered with an empty token."""
    assert parse_client_frame({"type": "ping"}) == Ping(token="")


def test_error_extension_fields_are_sent_and_ignored_on_read() -> None:
    """Error.extra goes out on the wire; a reader ignores what it does not know."""
    error = Error(code="too_long", message="m", extra={"request": "say"})
    wire = _wire(encode(error))
    assert wire == {"type": "error", "code": "too_long", "message": "m", "request": "say"}
    assert parse_server_frame(wire) == Error(code="too_long", message="m")


def test_welcome_skips_history_events_of_unknown_types() -> None:
    """A history event of a type this client predates is skipped, not an error."""
    welcome = parse_server_frame(
        {
            "type": "welcome",
            "name": "a",
            "members": ["a"],
            "history": [
                {"type": "poll", "id": 1},
                {"type": "join", "id": 2, "ts": "t", "room": "lobby", "name": "b"},
            ],
        }
    )
    assert isinstance(welcome, Welcome)
    assert welcome.history == (Join(id=2, ts="t", room="lobby", name="b"),)


# Objects shaped like server frames, with every field possibly the wrong JSON type: what
# a broken or hostile server can send a client.
_any_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
_field_names = st.sampled_from(
    [
        "type",
        "id",
        "ts",
        "room",
        "from",
        "name",
        "text",
        "reason",
        "members",
        "history",
        "server",
        "protocol",
        "code",
        "message",
        "token",
        "password",
    ]
)


def _frame_like(types: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    fields = st.dictionaries(_field_names, _any_json, max_size=8)
    kinds = st.sampled_from(types) | _any_json
    return st.builds(lambda kind, rest: {**rest, "type": kind}, kinds, fields)


def _nested_events(kind: str, field_name: str) -> st.SearchStrategy[dict[str, Any]]:
    """A frame that carries events (``welcome.history``), each possibly malformed."""
    item = _frame_like(["message", "join", "leave"]) | _any_json
    # The frame's own fields are valid, so the parser gets as far as the events.
    return st.builds(
        lambda items: {
            "type": kind,
            "name": "a",
            "room": "lobby",
            "members": [],
            field_name: items,
        },
        st.lists(item, max_size=3),
    )


@settings(max_examples=300, deadline=None)
@given(_frame_like(list(SERVER_FRAMES)) | _nested_events("welcome", "history"))
def test_parse_server_frame_gives_frames_or_protocol_errors(obj: dict[str, Any]) -> None:
    """Whatever object a server sends, the parser returns a frame or raises ProtocolError."""
    try:
        frame = parse_server_frame(obj)
    except ProtocolError:
        return
    assert type(frame) in SERVER_FRAMES.values()


@settings(max_examples=300, deadline=None)
@given(_frame_like(list(CLIENT_FRAMES)))
def test_parse_client_frame_gives_frames_or_protocol_errors(obj: dict[str, Any]) -> None:
    """Whatever object a client sends, the parser returns a frame or raises ProtocolError."""
    try:
        frame = parse_client_frame(obj)
    except ProtocolError:
        return
    assert type(frame) in CLIENT_FRAMES.values()


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime(2026, 11, 24, 2, 30, 1, 123456, tzinfo=UTC), "2026-11-24T02:30:01.123Z"),
        (datetime(2026, 1, 1, 0, 0, 0, 999, tzinfo=UTC), "2026-01-01T00:00:00.000Z"),
        (
            datetime(2026, 11, 24, 3, 30, 1, 5000, tzinfo=timezone(timedelta(hours=1))),
            "2026-11-24T02:30:01.005Z",
        ),
    ],
)
def test_format_ts_is_utc_rfc3339_with_milliseconds(moment: datetime, expected: str) -> None:
    """Times are UTC, RFC 3339, milliseconds, ``Z``."""
    assert format_ts(moment) == expected


@settings(max_examples=300)
@given(
    event_id=st.integers(min_value=0, max_value=2**63),
    texts=st.lists(st.text(), min_size=4, max_size=4),
    nonce=st.none() | st.text(max_size=64),
    action=st.booleans(),
)
def test_a_message_encodes_byte_for_byte_as_the_generic_encoder_would(
    event_id: int, texts: list[str], nonce: str | None, action: bool
) -> None:
    """Messages take a faster path through encode(); it must write exactly what the one
    JSON encoder writes for to_wire(), and what the table's generic flat encoder writes,
    for any text (quotes, controls, newlines, non-ASCII)."""
    ts, room, sender, text = texts
    message = Message(
        id=event_id, ts=ts, room=room, sender=sender, text=text, nonce=nonce, action=action
    )
    try:
        expected = encode_object(message.to_wire())
    except UnicodeEncodeError:
        # A lone surrogate cannot be UTF-8; the fast path must refuse it the same way.
        with pytest.raises(UnicodeEncodeError):
            encode(message)
        return
    assert encode(message) == expected
    assert Message._TABLE.encode_flat(message) == expected


# ------------------------------------------------------------------ the table, frame by frame

# Every frame with only its required fields, and with every optional one set, as the wire
# has them: the key order, the optional fields left out and the spellings are the contract.
_JOIN = Join(id=1, ts="t", room="r", name="b")
_JOIN_LINE = '{"type":"join","id":1,"ts":"t","room":"r","name":"b"}'
GOLDEN: list[tuple[Any, str]] = [
    (Hello(name="a"), '{"type":"hello","protocol":1,"name":"a"}'),
    (
        Hello(name="a", protocol=2, password="p", resume_after=7, lazy_members=True),
        '{"type":"hello","protocol":2,"name":"a","password":"p","resume_after":7,'
        '"lazy_members":true}',
    ),
    (Say(text="hi"), '{"type":"say","text":"hi"}'),
    (
        Say(text="hi", nonce="n", room="dev", action=True),
        '{"type":"say","text":"hi","nonce":"n","room":"dev","action":true}',
    ),
    (Who(), '{"type":"who"}'),
    (Who(room="dev"), '{"type":"who","room":"dev"}'),
    (Bye(), '{"type":"bye"}'),
    (Ping(), '{"type":"ping","token":""}'),
    (Pong(token="t"), '{"type":"pong","token":"t"}'),
    (HistoryRequest(), '{"type":"history","room":"lobby","limit":100}'),
    (
        HistoryRequest(room="dev", before=9, limit=5),
        '{"type":"history","room":"dev","limit":5,"before":9}',
    ),
    (JoinRequest(room="dev"), '{"type":"join","room":"dev"}'),
    (JoinRequest(room="dev", resume_after=3), '{"type":"join","room":"dev","resume_after":3}'),
    (Part(room="dev"), '{"type":"part","room":"dev"}'),
    (RoomsRequest(), '{"type":"rooms"}'),
    (TopicRequest(room="dev", text="x"), '{"type":"topic","room":"dev","text":"x"}'),
    (DmRequest(to="b", text="x"), '{"type":"dm","to":"b","text":"x"}'),
    (
        DmRequest(to="b", text="x", nonce="n", action=True),
        '{"type":"dm","to":"b","text":"x","nonce":"n","action":true}',
    ),
    (NickRequest(name="c"), '{"type":"nick","name":"c"}'),
    (
        Message(id=1, ts="t", room="r", sender="a", text="x"),
        '{"type":"message","id":1,"ts":"t","room":"r","from":"a","text":"x"}',
    ),
    (
        Message(id=1, ts="t", room="r", sender="a", text="x", nonce="n", action=True),
        '{"type":"message","id":1,"ts":"t","room":"r","from":"a","text":"x","nonce":"n",'
        '"action":true}',
    ),
    (_JOIN, _JOIN_LINE),
    (
        Leave(id=1, ts="t", room="r", name="b", reason="quit"),
        '{"type":"leave","id":1,"ts":"t","room":"r","name":"b","reason":"quit"}',
    ),
    (
        Topic(id=1, ts="t", room="r", sender="a", text="x"),
        '{"type":"topic","id":1,"ts":"t","room":"r","from":"a","text":"x"}',
    ),
    (
        Nick(id=1, ts="t", room="r", old="a", new="b"),
        '{"type":"nick","id":1,"ts":"t","room":"r","old":"a","new":"b"}',
    ),
    (
        Dm(id=1, ts="t", sender="a", to="b", text="x"),
        '{"type":"dm","id":1,"ts":"t","from":"a","to":"b","text":"x"}',
    ),
    (
        # A private message belongs to no room: ``room`` never goes on the wire.
        Dm(id=1, ts="t", sender="a", to="b", text="x", nonce="n", action=True, room="x"),
        '{"type":"dm","id":1,"ts":"t","from":"a","to":"b","text":"x","nonce":"n","action":true}',
    ),
    (
        Welcome(name="a", server="s", room="r", members=("a",)),
        '{"type":"welcome","protocol":1,"name":"a","server":"s","room":"r","members":["a"],'
        '"history":[],"account":null,"roles":[]}',
    ),
    (
        Welcome(
            name="a",
            server="s",
            room="r",
            members=("a", "b"),
            history=(_JOIN,),
            resumed=True,
            lazy_members_above=200,
            account="a",
            roles=("admin",),
            ops=("a",),
            voices=("b",),
        ),
        '{"type":"welcome","protocol":1,"name":"a","server":"s","room":"r","members":["a","b"],'
        f'"history":[{_JOIN_LINE}],"resumed":true,"gap":false,"lazy_members_above":200,'
        '"account":"a","roles":["admin"],"ops":["a"],"voices":["b"]}',
    ),
    (
        # gap goes with resumed, and only with it.
        Welcome(name="a", server="s", room="r", members=(), gap=True),
        '{"type":"welcome","protocol":1,"name":"a","server":"s","room":"r","members":[],'
        '"history":[],"account":null,"roles":[]}',
    ),
    (Members(room="r", members=("a",)), '{"type":"members","room":"r","members":["a"]}'),
    (Error(code="bad_request"), '{"type":"error","code":"bad_request","message":""}'),
    (
        Error(code="too_long", message="m", extra={"request": "say"}),
        '{"type":"error","code":"too_long","message":"m","request":"say"}',
    ),
    (
        History(room="r", events=(_JOIN,), more=False),
        f'{{"type":"history","room":"r","events":[{_JOIN_LINE}],"more":false}}',
    ),
    (
        Joined(room="r", members=("a",)),
        '{"type":"joined","room":"r","members":["a"],"topic":"","history":[]}',
    ),
    (
        Joined(
            room="r",
            members=("a",),
            topic="t",
            history=(_JOIN,),
            resumed=True,
            gap=True,
            lazy_members_above=3,
        ),
        '{"type":"joined","room":"r","members":["a"],"topic":"t",'
        f'"history":[{_JOIN_LINE}],"resumed":true,"gap":true,"lazy_members_above":3}}',
    ),
    (Rooms(rooms=()), '{"type":"rooms","rooms":[]}'),
    (
        Rooms(rooms=(RoomInfo(name="r", members=2), RoomInfo(name="s", members=0, topic="t"))),
        '{"type":"rooms","rooms":[{"name":"r","members":2,"topic":""},'
        '{"name":"s","members":0,"topic":"t"}]}',
    ),
    # Accounts, roles and moderation.
    (Register(password="p"), '{"type":"register","password":"p"}'),
    (
        PasswordChange(old_password="o", password="p"),
        '{"type":"password","old_password":"o","password":"p"}',
    ),
    (
        RoleRequest(room="dev", name="bob", role="op"),
        '{"type":"role","room":"dev","name":"bob","role":"op"}',
    ),
    (Kick(room="dev", name="bob"), '{"type":"kick","room":"dev","name":"bob"}'),
    (
        Kick(room="dev", name="bob", reason="r"),
        '{"type":"kick","room":"dev","name":"bob","reason":"r"}',
    ),
    (Ban(name="bob"), '{"type":"ban","name":"bob"}'),
    (
        Ban(name="bob", room="dev", duration_s=600, reason="r"),
        '{"type":"ban","name":"bob","room":"dev","duration_s":600,"reason":"r"}',
    ),
    (Unban(name="bob", room="dev"), '{"type":"unban","name":"bob","room":"dev"}'),
    (BansRequest(), '{"type":"bans"}'),
    (BansRequest(room="dev"), '{"type":"bans","room":"dev"}'),
    (
        Mute(room="dev", name="bob", duration_s=300, reason="r"),
        '{"type":"mute","room":"dev","name":"bob","duration_s":300,"reason":"r"}',
    ),
    (Unmute(room="dev", name="bob"), '{"type":"unmute","room":"dev","name":"bob"}'),
    (Mode(room="dev"), '{"type":"mode","room":"dev"}'),
    (
        Mode(
            room="dev", invite_only=True, key="k", moderated=False, registered_only=True, slow_s=5
        ),
        '{"type":"mode","room":"dev","invite_only":true,"key":"k","moderated":false,'
        '"registered_only":true,"slow_s":5}',
    ),
    (Invite(room="dev", name="bob"), '{"type":"invite","room":"dev","name":"bob"}'),
    (Registered(account="alice"), '{"type":"registered","account":"alice"}'),
    (
        Mod(id=3, ts="t", room="dev", by="alice", action="kick", target="bob"),
        '{"type":"mod","id":3,"ts":"t","room":"dev","by":"alice","action":"kick",'
        '"target":"bob","reason":"","until":null}',
    ),
    (
        Mod(
            id=3,
            ts="t",
            room="dev",
            by="alice",
            action="mode",
            target="dev",
            reason="r",
            until="u",
            role="op",
            invite_only=True,
            key_set=True,
            moderated=False,
            registered_only=False,
            slow_s=0,
        ),
        '{"type":"mod","id":3,"ts":"t","room":"dev","by":"alice","action":"mode",'
        '"target":"dev","reason":"r","until":"u","role":"op","invite_only":true,'
        '"key_set":true,"moderated":false,"registered_only":false,"slow_s":0}',
    ),
    (Bans(bans=()), '{"type":"bans","bans":[]}'),
    (
        Bans(room="dev", bans=(BanInfo(name="bob", by="alice", reason="r", until="u"),)),
        '{"type":"bans","bans":[{"name":"bob","by":"alice","reason":"r","until":"u"}],'
        '"room":"dev"}',
    ),
]
ALL_FRAMES = sorted(
    {*CLIENT_FRAMES.values(), *SERVER_FRAMES.values()}, key=lambda frame: frame.__name__
)


def test_golden_lines_cover_every_frame() -> None:
    """Each frame class of either side has at least one line above."""
    assert {type(frame) for frame, _ in GOLDEN} == set(ALL_FRAMES)


@pytest.mark.parametrize(("frame", "line"), GOLDEN, ids=lambda value: type(value).__name__)
def test_every_frame_encodes_as_on_the_wire(frame: Any, line: str) -> None:
    """The exact bytes: key order, compact separators, optional fields left out."""
    assert encode(frame) == line.encode() + b"\n"
    assert encode_object(frame.to_wire()) == encode(frame)


def _parser(frame_class: type) -> Any:
    return parse_client_frame if frame_class in CLIENT_FRAMES.values() else parse_server_frame


def _values(frame_class: type, name: str, hint: Any) -> st.SearchStrategy[Any]:
    """Any value the field may hold and still read back equal."""
    special: dict[tuple[type, str], st.SearchStrategy[Any]] = {
        (Say, "nonce"): st.none() | st.text(max_size=MAX_NONCE_CHARS),
        (DmRequest, "nonce"): st.none() | st.text(max_size=MAX_NONCE_CHARS),
        (HistoryRequest, "limit"): st.integers(min_value=1, max_value=2**63),
        (Dm, "room"): st.just(""),  # not on the wire
        (Hello, "account_password"): st.none() | st.text(max_size=MAX_PASSWORD_FIELD_CHARS),
        (Register, "password"): st.text(max_size=MAX_PASSWORD_FIELD_CHARS),
        (PasswordChange, "password"): st.text(max_size=MAX_PASSWORD_FIELD_CHARS),
        (PasswordChange, "old_password"): st.text(max_size=MAX_PASSWORD_FIELD_CHARS),
        (Error, "extra"): st.dictionaries(st.sampled_from(["request", "retry"]), texts),
    }
    if (frame_class, name) in special:
        return special[(frame_class, name)]
    if isinstance(hint, UnionType):
        return st.one_of(*(_hinted(arg) for arg in get_args(hint)))
    return _hinted(hint)


def _hinted(hint: Any) -> st.SearchStrategy[Any]:
    if hint in (str, int, bool, NoneType):
        return {str: st.text(), int: st.integers(-(2**63), 2**63), bool: st.booleans()}.get(
            hint, st.none()
        )
    (item, _) = get_args(hint)  # tuple[X, ...]
    members = get_args(item) if isinstance(item, UnionType) else (item,)
    items = st.one_of(*(_frames(member) for member in members)) if item is not str else texts
    return st.lists(items, max_size=3).map(tuple)


def _frames(frame_class: type) -> st.SearchStrategy[Any]:
    hints = get_type_hints(frame_class)
    return st.builds(
        frame_class,
        **{
            slot.name: _values(frame_class, slot.name, hints[slot.name])
            for slot in dataclasses.fields(frame_class)
        },
    )


def _consistent(frame: Any) -> Any:
    # gap says something only with resumed, and is not sent without it.
    if isinstance(frame, Welcome | Joined) and not frame.resumed:
        return dataclasses.replace(frame, gap=False)
    return frame


any_frame = st.sampled_from(ALL_FRAMES).flatmap(_frames).map(_consistent)


@settings(max_examples=500, deadline=None)
@given(any_frame)
def test_every_frame_round_trips(frame: Any) -> None:
    """Every frame of the table reads back equal from its own bytes, and encode() writes
    what the one JSON encoder writes for to_wire(), whatever the text."""
    try:
        data = encode(frame)
    except UnicodeEncodeError:
        # A lone surrogate cannot be UTF-8: both paths refuse it.
        with pytest.raises(UnicodeEncodeError):
            encode_object(frame.to_wire())
        return
    assert data == encode_object(frame.to_wire())
    assert data.count(b"\n") == 1 and data.endswith(b"\n")
    assert _parser(type(frame))(_wire(data)) == frame


# Fields that are sent even when they hold their default; ``gap`` goes with ``resumed``.
ALWAYS_SENT = {
    (Hello, "protocol"),
    (Ping, "token"),
    (Pong, "token"),
    (HistoryRequest, "room"),
    (HistoryRequest, "limit"),
    (Welcome, "protocol"),
    (Welcome, "history"),
    (Joined, "topic"),
    (Joined, "history"),
    (Error, "message"),
    (Welcome, "account"),
    (Welcome, "roles"),
    (Mod, "reason"),
    (Mod, "until"),
}
WIRE_NAMES = {"sender": "from"}


@settings(max_examples=500, deadline=None)
@given(any_frame)
def test_optional_fields_are_left_out_exactly_when_default(frame: Any) -> None:
    """A field with a default is on the wire exactly when it holds something else."""
    wire = frame.to_wire()
    for slot in dataclasses.fields(frame):
        key = WIRE_NAMES.get(slot.name, slot.name)
        value = getattr(frame, slot.name)
        if (type(frame), slot.name) in {(Dm, "room"), (Error, "extra")}:
            continue  # never on the wire; spliced in
        if slot.name == "gap":
            sent = frame.resumed
        elif slot.default is dataclasses.MISSING and slot.default_factory is dataclasses.MISSING:
            sent = True
        else:
            sent = (type(frame), slot.name) in ALWAYS_SENT or value != slot.default
        assert (key in wire) is sent, key


# What a reader takes for a field that is not on the wire, when the constructor has no
# default for it; and one field the wire requires although the constructor does not.
READ_DEFAULTS = {
    (Welcome, "server"): "",
    (Welcome, "room"): DEFAULT_ROOM,
    (Leave, "reason"): "disconnected",
    (History, "more"): False,
}
REQUIRED_ON_READ = {(Hello, "protocol")}


@settings(max_examples=300, deadline=None)
@given(any_frame)
def test_missing_fields_are_required_or_read_as_their_default(frame: Any) -> None:
    """Leaving a field out gives bad_request naming it, or the field's default."""
    wire = _wire(encode(frame)) if _encodable(frame) else None
    if wire is None:
        return
    for slot in dataclasses.fields(frame):
        key = WIRE_NAMES.get(slot.name, slot.name)
        if key not in wire:
            continue
        partial = {name: value for name, value in wire.items() if name != key}
        has_default = not (
            slot.default is dataclasses.MISSING and slot.default_factory is dataclasses.MISSING
        )
        if (type(frame), slot.name) in READ_DEFAULTS:
            expected = READ_DEFAULTS[(type(frame), slot.name)]
        elif has_default and (type(frame), slot.name) not in REQUIRED_ON_READ:
            expected = slot.default
        else:
            with pytest.raises(ProtocolError) as caught:
                _parser(type(frame))(partial)
            assert caught.value.code is ErrorCode.BAD_REQUEST
            assert repr(key) in caught.value.detail
            continue
        assert getattr(_parser(type(frame))(partial), slot.name) == expected


def _encodable(frame: Any) -> bool:
    try:
        encode(frame)
    except UnicodeEncodeError:
        return False
    return True


# Fields where JSON null is a value: always sent (null when unset), or a key's removal.
NULLABLE = {(Welcome, "account"), (Mod, "until"), (Mode, "key")}


def _wrong_values(value: Any) -> list[Any]:
    """JSON values of another kind than ``value``: what a broken peer sends instead."""
    if isinstance(value, bool):
        return [1, 0, "true", None, []]
    if isinstance(value, int):
        return [True, "1", 1.0, None, {}]
    if isinstance(value, str):
        return [5, True, None, ["s"], {}]
    assert isinstance(value, list)
    # An array of the wrong items: strings where objects go and the other way round.
    return ["[]", {}, None, 3, [{"a": 1}] if value and isinstance(value[0], str) else [7]]


@settings(max_examples=300, deadline=None)
@given(any_frame)
def test_wrongly_typed_fields_are_bad_requests_naming_the_field(frame: Any) -> None:
    """Each field of the wrong JSON kind (``true`` is not an integer) gets bad_request
    with the field's wire name in the message."""
    if not _encodable(frame):
        return
    wire = _wire(encode(frame))
    fields = {WIRE_NAMES.get(slot.name, slot.name) for slot in dataclasses.fields(frame)}
    for key, value in wire.items():
        if key == "type" or key not in fields:
            continue
        # A null where null is a value: every field of this kind holds a string.
        for wrong in _wrong_values("" if value is None else value):
            if wrong is None and (type(frame), key) in NULLABLE:
                continue
            with pytest.raises(ProtocolError) as caught:
                _parser(type(frame))({**wire, key: wrong})
            assert caught.value.code is ErrorCode.BAD_REQUEST
            assert repr(key) in caught.value.detail


@pytest.mark.parametrize(
    ("obj", "detail"),
    [
        ({"type": "say", "text": "x", "nonce": "n" * 65}, "a nonce has at most 64 characters"),
        ({"type": "dm", "to": "b", "text": "x", "nonce": "n" * 65}, "a nonce has at most 64"),
        ({"type": "history", "limit": 0}, "'limit' must be at least 1"),
        ({"type": "say", "text": "x", "nonce": None}, "field 'nonce' must be a string"),
    ],
)
def test_limits_on_read(obj: dict[str, Any], detail: str) -> None:
    """Nonces and history pages have limits; null is not an absent field."""
    with pytest.raises(ProtocolError) as caught:
        parse_client_frame(obj)
    assert caught.value.code is ErrorCode.BAD_REQUEST
    assert detail in caught.value.detail
    assert parse_client_frame({**obj, "nonce": "n" * 64, "limit": 1}) is not None
