"""protocol.py: typed frames to wire objects and back, field checks, the one serializer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatroom.framing import ErrorCode, FrameDecoder, ProtocolError, encode_object
from chatroom.protocol import (
    CLIENT_FRAMES,
    SERVER_FRAMES,
    Bye,
    Error,
    Hello,
    Join,
    Leave,
    LeaveReason,
    Members,
    Message,
    Ping,
    Pong,
    Say,
    Welcome,
    Who,
    encode,
    format_ts,
    parse_client_frame,
    parse_server_frame,
)

texts = st.text(max_size=40)
ids = st.integers(min_value=1, max_value=2**53)
reasons = st.sampled_from([reason.value for reason in LeaveReason])
messages = st.builds(Message, id=ids, ts=texts, room=texts, sender=texts, text=texts)
joins = st.builds(Join, id=ids, ts=texts, room=texts, name=texts)
leaves = st.builds(Leave, id=ids, ts=texts, room=texts, name=texts, reason=reasons)
events = messages | joins | leaves

client_frames = st.one_of(
    st.builds(Hello, name=texts, protocol=st.integers(-5, 5), password=st.none() | texts),
    st.builds(Say, text=st.text(max_size=200)),
    st.just(Who()),
    st.just(Bye()),
    st.builds(Ping, token=texts),
    st.builds(Pong, token=texts),
)
server_frames = st.one_of(
    st.builds(
        Welcome,
        name=texts,
        server=texts,
        room=texts,
        members=st.lists(texts, max_size=5).map(tuple),
        history=st.lists(events, max_size=5).map(tuple),
    ),
    events,
    st.builds(Members, room=texts, members=st.lists(texts, max_size=5).map(tuple)),
    st.builds(Error, code=st.sampled_from([code.value for code in ErrorCode]), message=texts),
    st.builds(Ping, token=texts),
    st.builds(Pong, token=texts),
)


def _wire(data: bytes) -> dict[str, Any]:
    decoder = FrameDecoder(16 * 1024 * 1024)
    decoder.receive_data(data)
    obj = decoder.next_frame()
    assert obj is not None
    assert decoder.next_frame() is None
    return obj


@settings(max_examples=200, deadline=None)
@given(client_frames)
def test_client_frames_round_trip(frame: Any) -> None:
    """parse_client_frame(decode(encode(f))) == f for every client frame."""
    data = encode(frame)
    assert data.count(b"\n") == 1 and data.endswith(b"\n")
    assert parse_client_frame(_wire(data)) == frame


@settings(max_examples=200, deadline=None)
@given(server_frames)
def test_server_frames_round_trip(frame: Any) -> None:
    """parse_server_frame(decode(encode(f))) == f for every server frame."""
    data = encode(frame)
    assert data.count(b"\n") == 1 and data.endswith(b"\n")
    assert parse_server_frame(_wire(data)) == frame


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
    JSON encoder writes for to_wire(), for any text (quotes, controls, newlines, non-ASCII)."""
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
