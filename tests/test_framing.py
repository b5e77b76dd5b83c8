"""framing.py: line splitting, limits, the decoder's promise, and encode."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatroom.framing import (
    MAX_FRAME_BYTES,
    ErrorCode,
    FrameDecoder,
    ProtocolError,
    encode_object,
)

# One outcome per line: the decoded object, or (code, fatal) for an error.
Outcome = dict[str, Any] | tuple[ErrorCode, bool]

# A frame that comes after every line under test, so each test also checks that the
# decoder carries on with the next line after whatever it just did.
NEXT = b'{"type":"ping","token":"next"}\n'
NEXT_OBJ = {"type": "ping", "token": "next"}
# A line left unfinished at the end of the stream: it must never come out as a frame.
PARTIAL = b'{"type":"say","text":"unfini'


def _decode(chunks: list[bytes], *, max_frame_bytes: int = MAX_FRAME_BYTES) -> list[Outcome]:
    """Feed ``chunks`` one by one, draining frames after each, and list what came out."""
    decoder = FrameDecoder(max_frame_bytes)
    out: list[Outcome] = []

    def drain() -> None:
        while True:
            try:
                obj = decoder.next_frame()
            except ProtocolError as exc:
                out.append((exc.code, exc.fatal))
                continue
            if obj is None:
                return
            out.append(obj)

    for chunk in chunks:
        decoder.receive_data(chunk)
        drain()
    return out


def _whole(data: bytes) -> list[bytes]:
    return [data]


def _bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


FEEDS = [pytest.param(_whole, id="whole"), pytest.param(_bytewise, id="byte-by-byte")]

VALID_LINES: list[tuple[bytes, dict[str, Any]]] = [
    (b'{"type":"ping"}\n', {"type": "ping"}),
    (b'{"type":"ping"}\r\n', {"type": "ping"}),
    (b'  {"type" : "who"}\t \n', {"type": "who"}),
    (b"{}\n", {}),
    (b'{"type":"say","text":"h\\u00e9 \\n \\"q\\""}\n', {"type": "say", "text": 'hé \n "q"'}),
    (
        '{"type":"say","text":"héllo wörld ☃ 😀"}\n'.encode(),
        {"type": "say", "text": "héllo wörld ☃ 😀"},
    ),
    # U+2028, U+2029 and U+0085 are line breaks to str.splitlines(), not to the wire.
    ('{"text":"a\u2028b\u2029c\u0085d"}\n'.encode(), {"text": "a\u2028b\u2029c\u0085d"}),
    # A surrogate pair written as escapes is one valid character.
    (b'{"text":"\\ud83d\\ude00"}\n', {"text": "😀"}),
    (
        b'{"n":-1.5e3,"b":true,"z":null,"l":[1,{"x":[]}]}\n',
        {"n": -1500.0, "b": True, "z": None, "l": [1, {"x": []}]},
    ),
    (b'{"type":"ping","unknown_field":[1,2,3]}\n', {"type": "ping", "unknown_field": [1, 2, 3]}),
]

INVALID_LINES: list[tuple[str, bytes, ErrorCode]] = [
    ("not-utf8", b"\xff\xfe{}\n", ErrorCode.BAD_FRAME),
    ("utf8-encoded-surrogate", b'{"a":"\xed\xa0\x80"}\n', ErrorCode.BAD_FRAME),
    ("overlong-utf8", b'{"a":"\xc0\xaf"}\n', ErrorCode.BAD_FRAME),
    ("truncated-json", b'{"type":"ping"\n', ErrorCode.BAD_FRAME),
    ("two-objects", b'{"a":1}{"b":2}\n', ErrorCode.BAD_FRAME),
    ("single-quotes", b"{'a':1}\n", ErrorCode.BAD_FRAME),
    ("trailing-garbage", b'{"a":1} x\n', ErrorCode.BAD_FRAME),
    ("nan", b'{"a":NaN}\n', ErrorCode.BAD_FRAME),
    ("infinity", b'{"a":Infinity}\n', ErrorCode.BAD_FRAME),
    ("minus-infinity", b'{"a":-Infinity}\n', ErrorCode.BAD_FRAME),
    ("number-overflows-to-inf", b'{"a":1e999}\n', ErrorCode.BAD_FRAME),
    ("negative-overflow", b'{"a":-1e999}\n', ErrorCode.BAD_FRAME),
    ("huge-integer", b'{"a":' + b"9" * 5000 + b"}\n", ErrorCode.BAD_FRAME),
    ("array", b'[{"type":"ping"}]\n', ErrorCode.BAD_FRAME),
    ("string", b'"ping"\n', ErrorCode.BAD_FRAME),
    ("number", b"42\n", ErrorCode.BAD_FRAME),
    ("null", b"null\n", ErrorCode.BAD_FRAME),
    ("true", b"true\n", ErrorCode.BAD_FRAME),
    ("nul-byte", b'{"a":1}\x00\n', ErrorCode.BAD_FRAME),
    ("raw-control-in-string", b'{"a":"x\x1by"}\n', ErrorCode.BAD_FRAME),
    ("nested-brackets", b"[" * 100_000 + b"\n", ErrorCode.BAD_FRAME),
    ("nested-objects", b'{"a":' * 30_000 + b"1" + b"}" * 30_000 + b"\n", ErrorCode.BAD_FRAME),
    ("lone-high-surrogate", b'{"type":"say","text":"\\ud800"}\n', ErrorCode.BAD_REQUEST),
    ("lone-low-surrogate", b'{"type":"say","text":"a\\uDFFFb"}\n', ErrorCode.BAD_REQUEST),
    ("surrogate-in-key", b'{"\\ud800":1}\n', ErrorCode.BAD_REQUEST),
    ("surrogate-deep", b'{"a":[{"b":["\\udbff"]}]}\n', ErrorCode.BAD_REQUEST),
    ("reversed-pair", b'{"a":"\\ude00\\ud83d"}\n', ErrorCode.BAD_REQUEST),
]

# Big enough for the nested-bracket lines, which must fail as JSON, not as too long.
TABLE_LIMIT = 1 << 20


@pytest.mark.parametrize("feed", FEEDS)
@pytest.mark.parametrize(("line", "expected"), VALID_LINES)
def test_valid_line(feed: Any, line: bytes, expected: dict[str, Any]) -> None:
    """A valid line decodes to its object, whole or byte by byte; an unfinished tail never
    comes out."""
    assert _decode(feed(line + NEXT + PARTIAL), max_frame_bytes=TABLE_LIMIT) == [
        expected,
        NEXT_OBJ,
    ]


@pytest.mark.parametrize("feed", FEEDS)
@pytest.mark.parametrize("line", [b"\n", b"   \n", b"\r\n", b" \t \r\n"])
def test_blank_lines_are_ignored(feed: Any, line: bytes) -> None:
    """Empty and whitespace-only lines produce nothing."""
    assert _decode(feed(line * 3 + NEXT + PARTIAL)) == [NEXT_OBJ]


@pytest.mark.parametrize("feed", FEEDS)
@pytest.mark.parametrize(
    ("line", "code"),
    [pytest.param(line, code, id=name) for name, line, code in INVALID_LINES],
)
def test_invalid_line(feed: Any, line: bytes, code: ErrorCode) -> None:
    """An invalid line raises its error once, not fatal, and the next line still decodes."""
    chunks = feed(line + NEXT + PARTIAL) if len(line) < 1000 else [line, NEXT, PARTIAL]
    assert _decode(chunks, max_frame_bytes=TABLE_LIMIT) == [(code, False), NEXT_OBJ]


def test_partial_line_at_eof_is_an_error_not_a_frame() -> None:
    """A stream that ends inside a line gives bad_frame, unlike readline() at EOF."""
    decoder = FrameDecoder()
    decoder.receive_data(NEXT + b'{"type":"ping"}')
    decoder.receive_data(b"")
    assert decoder.next_frame() == NEXT_OBJ
    with pytest.raises(ProtocolError) as caught:
        decoder.next_frame()
    assert caught.value.code is ErrorCode.BAD_FRAME
    assert decoder.next_frame() is None
    assert decoder.at_eof


def test_data_after_eof_is_refused() -> None:
    """Feeding bytes after the end of the stream is a caller bug, reported as such."""
    decoder = FrameDecoder()
    decoder.receive_data(b"")
    with pytest.raises(RuntimeError):
        decoder.receive_data(b"{}\n")


def test_tiny_limit_is_refused() -> None:
    """A limit too small for '{}' and a newline cannot be configured."""
    with pytest.raises(ValueError):
        FrameDecoder(1)


# ---------------------------------------------------------------------------- the limit

LIMIT = 64


def _line_of(total: int) -> bytes:
    """A valid frame of exactly ``total`` bytes, newline included."""
    head = b'{"p":"'
    tail = b'"}\n'
    return head + b"x" * (total - len(head) - len(tail)) + tail


@pytest.mark.parametrize("feed", FEEDS)
def test_line_exactly_at_the_limit_is_accepted(feed: Any) -> None:
    """The limit counts the newline: a line of exactly the limit decodes."""
    line = _line_of(LIMIT)
    assert len(line) == LIMIT
    assert _decode(feed(line + NEXT), max_frame_bytes=LIMIT) == [json.loads(line), NEXT_OBJ]


@pytest.mark.parametrize("feed", FEEDS)
def test_line_one_past_the_limit_is_fatal(feed: Any) -> None:
    """One byte over the limit gives a fatal bad_frame; the decoder carries on after it."""
    assert _decode(feed(_line_of(LIMIT + 1) + NEXT), max_frame_bytes=LIMIT) == [
        (ErrorCode.BAD_FRAME, True),
        NEXT_OBJ,
    ]


SMUGGLED = b'{"type":"say","text":"smuggled"}\n'


@pytest.mark.parametrize("feed", FEEDS)
@pytest.mark.parametrize("filler", [LIMIT, LIMIT + 1, 3 * LIMIT, 10 * LIMIT + 7])
def test_tail_of_an_overlong_line_is_never_a_frame(feed: Any, filler: int) -> None:
    """However an over-long line is cut, no part of it (here a valid-looking frame at its
    end) is ever decoded; the error is raised once and the next line decodes."""
    line = b"x" * filler + SMUGGLED
    # The filler has no newline, so the "smuggled" text is part of the over-long line.
    assert _decode(feed(line + NEXT), max_frame_bytes=LIMIT) == [
        (ErrorCode.BAD_FRAME, True),
        NEXT_OBJ,
    ]


def test_overlong_line_is_not_held() -> None:
    """10 MB without a newline, fed in chunks, never makes the decoder hold more than the
    limit plus one chunk, and raises once."""
    chunk_size = 64 * 1024
    decoder = FrameDecoder()
    peak = 0
    errors = 0
    for _ in range(10 * 1024 * 1024 // chunk_size):
        decoder.receive_data(b"a" * chunk_size)
        peak = max(peak, decoder.buffered_bytes)
        try:
            assert decoder.next_frame() is None
        except ProtocolError as exc:
            assert exc.code is ErrorCode.BAD_FRAME and exc.fatal
            errors += 1
        peak = max(peak, decoder.buffered_bytes)
    assert errors == 1
    assert peak <= MAX_FRAME_BYTES + chunk_size
    assert decoder.buffered_bytes == 0
    decoder.receive_data(b"tail of the long line\n" + NEXT)
    assert decoder.next_frame() == NEXT_OBJ


def test_overlong_line_at_eof() -> None:
    """An over-long unfinished line at the end of the stream is a fatal bad_frame."""
    decoder = FrameDecoder(LIMIT)
    decoder.receive_data(b"y" * (2 * LIMIT))
    decoder.receive_data(b"")
    with pytest.raises(ProtocolError) as caught:
        decoder.next_frame()
    assert caught.value.fatal
    assert decoder.next_frame() is None
    assert decoder.at_eof


# ---------------------------------------------------------------------------- encode


@pytest.mark.parametrize(
    "text",
    ["plain", "a\nb", "a\r\nb", "\u2028\u2029\u0085", "\x00\x1b[31m\x7f\x9b", "☃😀", '"\\'],
)
def test_encode_holds_exactly_one_newline_at_the_end(text: str) -> None:
    """encode_object never emits a raw newline inside a frame, whatever the text."""
    data = encode_object({"type": "say", "text": text})
    assert data.endswith(b"\n")
    assert data.count(b"\n") == 1
    assert data.startswith(b'{"type":"say","text":')  # compact separators
    assert _decode([data]) == [{"type": "say", "text": text}]


# ---------------------------------------------------------------------------- properties

_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=20,
)
json_objects = st.dictionaries(st.text(), json_values, max_size=6)


@settings(max_examples=200, deadline=None)
@given(json_objects)
def test_encode_then_decode_round_trips(obj: dict[str, Any]) -> None:
    """decode(encode(obj)) == obj, and the encoding has its one newline at the end."""
    data = encode_object(obj)
    assert data.count(b"\n") == 1 and data.endswith(b"\n")
    assert _decode([data], max_frame_bytes=TABLE_LIMIT) == [obj]


@settings(max_examples=100, deadline=None)
@given(st.lists(json_objects, min_size=1, max_size=6), st.data())
def test_any_split_gives_the_same_frames(objs: list[dict[str, Any]], data: st.DataObject) -> None:
    """However a valid stream is cut into chunks, the same frames come out in order."""
    stream = b"".join(encode_object(obj) for obj in objs)
    cuts = sorted(data.draw(st.sets(st.integers(0, len(stream)), max_size=12)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    assert _decode([c for c in chunks if c], max_frame_bytes=TABLE_LIMIT) == objs


# Pieces that steer random input towards the decoder's edges: escapes, surrogates,
# constants, nesting, line ends and bytes that are not UTF-8.
_TOKENS = st.sampled_from(
    [
        b"{",
        b"}",
        b"[",
        b"]",
        b'"',
        b":",
        b",",
        b"\\",
        b"\\u",
        b"d800",
        b"dc00",
        b"\\ud83d",
        b"NaN",
        b"1e999",
        b"-0",
        b"true",
        b"\n",
        b"\r\n",
        b" ",
        b"\xff",
        b"\xed\xa0\x80",
        b"\xe2\x80\xa8",
        b'"type"',
        b'"say"',
        b"x" * 40,
    ]
)
hostile_bytes = st.one_of(st.binary(max_size=300), st.lists(_TOKENS, max_size=60).map(b"".join))


@settings(max_examples=300, deadline=None)
@given(st.lists(hostile_bytes, max_size=8), st.integers(2, 200))
def test_arbitrary_bytes_give_objects_or_protocol_errors(chunks: list[bytes], limit: int) -> None:
    """Whatever bytes arrive, in whatever chunks, the decoder returns dicts or raises
    ProtocolError, and holds less than the limit once drained."""
    decoder = FrameDecoder(limit)
    # b"" means end of stream, so it comes once, last.
    for chunk in [*(c for c in chunks if c), b""]:
        decoder.receive_data(chunk)
        while True:
            try:
                obj = decoder.next_frame()
            except ProtocolError as exc:
                assert isinstance(exc.code, ErrorCode)
                continue
            if obj is None:
                break
            assert isinstance(obj, dict)
            assert len(encode_object(obj)) > 0
        assert decoder.buffered_bytes < limit
    assert decoder.at_eof
