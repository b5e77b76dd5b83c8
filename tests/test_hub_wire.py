"""hub.py with members of several wire formats: each event encoded at most once per
format, the bytes shared, and every member's choice of events the same as NDJSON's."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from chatroom.framing import FrameDecoder
from chatroom.hub import Hub, Member
from chatroom.protocol import (
    Event,
    Join,
    Leave,
    LeaveReason,
    Message,
    ServerFrame,
    Welcome,
    encode,
    parse_server_frame,
)

NOW = datetime(2026, 11, 24, 2, 30, 1, 123000, tzinfo=UTC)


class TaggedWire:
    """A made-up wire format: each frame as ``<tag>json|``, each write as ``[body]``.

    Counts its calls, so tests can tell how often each event was encoded.
    """

    def __init__(self, tag: str) -> None:
        self.tag = tag.encode()
        self.encoded: Counter[int] = Counter()
        self.frames = 0

    def encode_event(self, event: Event, ndjson: bytes) -> bytes:
        self.encoded[event.id] += 1
        return b"<" + self.tag + b">" + ndjson[:-1] + b"|"

    def encode_reply(self, frame: ServerFrame, ndjson: bytes) -> bytes:
        assert encode(frame) == ndjson
        return b"<" + self.tag + b">" + ndjson[:-1] + b"|"

    def frame(self, body: bytes) -> bytes:
        self.frames += 1
        return b"[" + body + b"]"

    def skips(self, event: Event) -> str | None:
        return None

    def collapses(self, event: Event) -> object | None:
        return None

    def decode(self, payloads: list[bytes]) -> list[Any]:
        """Every frame in ``payloads``, checking each write's envelope and tags."""
        frames = []
        for payload in payloads:
            assert payload.startswith(b"[") and payload.endswith(b"]")
            for part in payload[1:-1].split(b"|")[:-1]:
                prefix = b"<" + self.tag + b">"
                assert part.startswith(prefix)
                frames.append(parse_server_frame(json.loads(part[len(prefix) :])))
        return frames


class Box:
    """An outbox that records each write."""

    def __init__(self) -> None:
        self.payloads: list[bytes] = []

    def send(self, payload: bytes) -> None:
        self.payloads.append(payload)

    def close(self, reason: Any) -> None:
        raise AssertionError("not expected")

    def ndjson(self) -> list[Any]:
        decoder = FrameDecoder(1 << 24)
        decoder.receive_data(b"".join(self.payloads))
        frames = []
        while (obj := decoder.next_frame()) is not None:
            frames.append(parse_server_frame(obj))
        return frames


def _hub(**kwargs: Any) -> Hub:
    return Hub(server_name="chatroom/test", now=lambda: NOW, **kwargs)


def _member(
    hub: Hub, name: str, wire: TaggedWire | None = None, **kwargs: Any
) -> tuple[Member, Box]:
    box = Box()
    return hub.join(name, box, wire=wire, **kwargs), box


def _frames(box: Box, wire: TaggedWire | None) -> list[Any]:
    return box.ndjson() if wire is None else wire.decode(box.payloads)


def test_a_mixed_room_encodes_each_event_once_per_format_and_shares_the_bytes() -> None:
    """Three NDJSON members and three members each of two other formats: every event of
    a flush is encoded once per format, each format's members get the very same bytes
    in one write, and every member gets the same frames."""
    hub = _hub()
    wires = [None, TaggedWire("a"), TaggedWire("b")]
    members = [
        (wire, *_member(hub, f"{index}-{n}", wire))
        for index, wire in enumerate(wires)
        for n in range(3)
    ]
    hub.flush()
    for _, _, box in members:
        box.payloads.clear()
    sender = members[0][1]
    sent = [hub.say(sender, f"m{n}") for n in range(5)]
    hub.flush()
    for wire in wires[1:]:
        assert wire is not None
        assert all(wire.encoded[event.id] == 1 for event in sent)
    for wire in wires:
        boxes = [box for member_wire, _, box in members if member_wire is wire]
        assert all(len(box.payloads) == 1 for box in boxes)
        assert all(box.payloads[0] is boxes[0].payloads[0] for box in boxes)
        for box in boxes:
            assert _frames(box, wire) == sent


def test_a_newcomer_of_another_format_gets_its_welcome_and_its_own_join_in_one_write() -> None:
    """A member of another format joining mid-batch gets its welcome (with members and
    history filled in), then the events from its own join on, in its format, in one
    write; NDJSON members are unaffected."""
    hub = _hub()
    alice, alice_box = _member(hub, "alice")
    hub.flush()
    hub.say(alice, "before")
    wire = TaggedWire("w")
    _, bob_box = _member(hub, "bob", wire)
    hub.say(alice, "after")
    hub.flush()
    frames = _frames(bob_box, wire)
    assert len(bob_box.payloads) == 1
    welcome = frames[0]
    assert isinstance(welcome, Welcome)
    assert welcome.members == ("alice", "bob")
    assert [getattr(event, "text", None) for event in welcome.history] == [None, "before"]
    assert [type(frame) for frame in frames[1:]] == [Join, Message]
    assert frames[2].text == "after"
    texts = [f.text for f in _frames(alice_box, None) if isinstance(f, Message)]
    assert texts == ["before", "after"]


def test_private_messages_and_several_rooms_take_the_general_path_once_per_format() -> None:
    """A flush with two rooms and a private message: members of another format get
    their events in id order, each event encoded once for that format."""
    hub = _hub()
    wire = TaggedWire("w")
    alice, alice_box = _member(hub, "alice")
    bob, bob_box = _member(hub, "bob", wire)
    _, carol_box = _member(hub, "carol", wire)
    hub.join_room(alice, "dev")
    hub.join_room(bob, "dev")
    hub.flush()
    for box in (alice_box, bob_box, carol_box):
        box.payloads.clear()
    lobby = hub.say(alice, "to the lobby")
    dev = hub.say(alice, "to dev", "dev")
    dm = hub.dm(alice, "bob", "psst")
    hub.flush()
    assert _frames(bob_box, wire) == [lobby, dev, dm]
    assert _frames(carol_box, wire) == [lobby]
    assert _frames(alice_box, None) == [lobby, dev, dm]
    assert [wire.encoded[event.id] for event in (lobby, dev, dm)] == [1, 1, 1]


def test_lazy_members_of_another_format_are_spared_others_presence_in_big_rooms() -> None:
    """Above the lazy threshold, a lazy member of another format gets messages but not
    other members' joins and leaves, like a lazy NDJSON member."""
    hub = _hub(lazy_members_above=2)
    wire = TaggedWire("w")
    _, lazy_box = _member(hub, "lazy", wire, lazy=True)
    _, eager_box = _member(hub, "eager", wire)
    talker, _ = _member(hub, "talker")
    hub.flush()
    hub.flush()  # the room is big from the flush after it passed the threshold
    lazy_box.payloads.clear()
    eager_box.payloads.clear()
    _member(hub, "newcomer")
    said = hub.say(talker, "hello")
    hub.leave(talker, LeaveReason.QUIT)
    hub.flush()
    lazy_frames = _frames(lazy_box, wire)
    eager_frames = _frames(eager_box, wire)
    assert lazy_frames == [said]
    assert [type(frame) for frame in eager_frames] == [Join, Message, Leave]
