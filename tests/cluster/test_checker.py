"""The checker on synthetic streams and recordings: what is right passes, every kind of
wrong is reported."""

from __future__ import annotations

from typing import Any

from .checker import ClientRecord, ConnectionRecord, check

TS = "2026-01-01T00:00:00.000Z"
Frame = dict[str, Any]


def message(event_id: int, sender: str, room: str = "lobby", nonce: str | None = None) -> Frame:
    frame: Frame = {
        "type": "message",
        "id": event_id,
        "ts": TS,
        "room": room,
        "from": sender,
        "text": f"text {event_id}",
    }
    if nonce is not None:
        frame["nonce"] = nonce
    return frame


def join(event_id: int, name: str, room: str = "lobby") -> Frame:
    return {"type": "join", "id": event_id, "ts": TS, "room": room, "name": name}


def leave(event_id: int, name: str, room: str = "lobby", reason: str = "part") -> Frame:
    return {"type": "leave", "id": event_id, "ts": TS, "room": room, "name": name, "reason": reason}


def dm(event_id: int, sender: str, to: str, nonce: str | None = None) -> Frame:
    frame: Frame = {
        "type": "dm",
        "id": event_id,
        "ts": TS,
        "from": sender,
        "to": to,
        "text": "psst",
    }
    if nonce is not None:
        frame["nonce"] = nonce
    return frame


def welcome(name: str, history: list[Frame] | None = None, *, gap: bool | None = None) -> Frame:
    frame: Frame = {"type": "welcome", "protocol": 1, "name": name, "room": "lobby"}
    frame["members"] = [name]
    frame["history"] = history or []
    if gap is not None:
        frame["resumed"] = True
        frame["gap"] = gap
    return frame


def joined(room: str, history: list[Frame] | None = None, *, gap: bool | None = None) -> Frame:
    frame: Frame = {"type": "joined", "room": room, "members": [], "history": history or []}
    if gap is not None:
        frame["resumed"] = True
        frame["gap"] = gap
    return frame


def client(
    name: str, *connections: ConnectionRecord, acked: set[str] | None = None
) -> ClientRecord:
    return ClientRecord(name, list(connections), acked or set())


def conn(*frames: Frame, resume: int | None = None, joins: Any = ()) -> ConnectionRecord:
    return ConnectionRecord("127.0.0.1:1", resume, list(joins), list(frames))


# ann is in the lobby from event 1 on; bob comes, talks, and leaves; ann talks too.
STREAM = [
    join(1, "ann"),
    message(2, "ann", nonce="a-1"),
    join(3, "bob"),
    message(4, "bob"),
    message(5, "ann", nonce="a-2"),
    leave(6, "bob", reason="quit"),
    message(7, "ann", nonce="a-3"),
]
ANN = conn(welcome("ann"), *STREAM)
BOB = conn(welcome("bob", STREAM[:2]), join(3, "bob"), message(4, "bob"), message(5, "ann"))


def test_a_faithful_recording_passes() -> None:
    """Everything delivered as the protocol says: no problems."""
    bob = conn(welcome("bob", STREAM[:2]), *STREAM[2:4], STREAM[4], leave(6, "bob", reason="quit"))
    assert (
        check(STREAM, [client("ann", ANN, acked={"a-1", "a-2", "a-3"}), client("bob", bob)]) == []
    )


def test_a_connection_that_drops_is_checked_up_to_its_last_event() -> None:
    """A dropped connection's interval ends with the last event it got: nothing after
    it counts as missing (it may have been on the wire)."""
    bob = conn(welcome("bob", STREAM[:2]), join(3, "bob"), message(4, "bob"))
    assert check(STREAM, [client("bob", bob)]) == []


def test_a_missing_event_is_reported() -> None:
    ann = conn(welcome("ann"), *STREAM[:3], *STREAM[4:])
    problems = check(STREAM, [client("ann", ann)])
    assert len(problems) == 1 and "missing 4" in problems[0], problems


def test_a_duplicate_is_reported() -> None:
    ann = conn(welcome("ann"), *STREAM[:4], STREAM[3], *STREAM[4:])
    problems = check(STREAM, [client("ann", ann)])
    assert any("event 4 received twice" in p for p in problems), problems


def test_a_reordering_is_reported() -> None:
    ann = conn(welcome("ann"), *STREAM[:3], STREAM[4], STREAM[3], *STREAM[5:])
    problems = check(STREAM, [client("ann", ann)])
    assert any("4 came after 5" in p for p in problems), problems


def test_an_event_missing_from_the_stream_or_changed_is_reported() -> None:
    """What a client got must be what was stored, byte for byte once decoded."""
    changed = {**STREAM[3], "text": "forged"}
    ann = conn(welcome("ann"), *STREAM[:3], changed, *STREAM[4:], message(8, "zed"))
    problems = check(STREAM, [client("ann", ann)])
    assert any("event 4" in p and "differs" in p for p in problems), problems
    assert any("event 8" in p and "not in the stream" in p for p in problems), problems


def test_an_acknowledged_nonce_not_in_the_stream_is_reported() -> None:
    problems = check(STREAM, [client("ann", ANN, acked={"a-1", "a-9"})])
    assert problems == ["ann: acknowledged nonce 'a-9' is not in the stream"]


def test_a_nonce_stored_twice_is_reported() -> None:
    """Exactly once: a resend that was stored again is a duplicate message."""
    stream = [*STREAM, message(8, "ann", nonce="a-3")]
    ann = conn(welcome("ann"), *stream)
    problems = check(stream, [client("ann", ann, acked={"a-3"})])
    assert problems == ["stream: ann's nonce 'a-3' is stored 2 times"]


def test_the_same_nonce_from_two_senders_is_not_a_duplicate() -> None:
    stream = [
        join(1, "ann"),
        join(2, "bob"),
        message(3, "ann", nonce="x"),
        message(4, "bob", nonce="x"),
    ]
    assert check(stream, [client("ann", conn(welcome("ann"), *stream))]) == []


def test_a_bad_stream_is_reported() -> None:
    """Ids must strictly increase along the stream."""
    stream = [join(1, "ann"), message(3, "ann"), message(2, "ann"), message(3, "ann")]
    problems = check(stream, [])
    assert "stream: id 2 comes after 3" in problems
    assert "stream: id 3 appears twice" in problems


def test_events_before_the_own_join_are_reported() -> None:
    """A fresh welcome has the past in its history; no event may come before the
    member's own join."""
    bob = conn(welcome("bob", STREAM[:1]), STREAM[1], *STREAM[2:5])
    problems = check(STREAM, [client("bob", bob)])
    assert any("before its own join: 2" in p for p in problems), problems


def test_a_history_that_is_not_the_latest_is_reported() -> None:
    """welcome.history: the room's most recent events before the join, consecutive."""
    bob = conn(welcome("bob", [STREAM[0]]), *STREAM[2:5])
    problems = check(STREAM, [client("bob", bob)])
    assert any("history is [1]" in p and "[2]" in p for p in problems), problems


def test_a_resume_without_loss_passes() -> None:
    """ann drops after 4, resumes after 4: 5 and 6 are replayed, her join is 8."""
    stream = [*STREAM[:6], join(8, "ann")]
    stream.insert(6, message(7, "bob", room="elsewhere"))
    first = conn(welcome("ann"), *STREAM[:4])
    second = conn(welcome("ann", gap=False), STREAM[4], STREAM[5], join(8, "ann"), resume=4)
    assert check(stream, [client("ann", first, second)]) == []


def test_a_replay_that_repeats_or_skips_is_reported() -> None:
    stream = [*STREAM, join(8, "ann")]
    first = conn(welcome("ann"), *STREAM[:4])
    repeats = conn(welcome("ann", gap=False), *STREAM[3:7], join(8, "ann"), resume=4)
    problems = check(stream, [client("ann", first, repeats)])
    assert any("event 4 received twice" in p for p in problems), problems
    skips = conn(welcome("ann", gap=False), STREAM[4], STREAM[6], join(8, "ann"), resume=4)
    problems = check(stream, [client("ann", first, skips)])
    assert len(problems) == 1 and "replay after 4: missing 6" in problems[0], problems


def test_resuming_past_what_was_received_is_reported() -> None:
    """Resumed after 6 though the last event received was 4: 5 and 6 were never seen."""
    stream = [*STREAM, join(8, "ann")]
    first = conn(welcome("ann"), *STREAM[:4])
    second = conn(welcome("ann", gap=False), STREAM[6], join(8, "ann"), resume=6)
    problems = check(stream, [client("ann", first, second)])
    assert len(problems) == 1, problems
    assert "resumed after 6" in problems[0] and "never received 5, 6" in problems[0]


def test_a_gap_excuses_the_oldest_events_only() -> None:
    """gap: true says the oldest events after resume_after are gone; missing ones in
    the middle, or missing without gap, are still problems."""
    stream = [*STREAM, join(8, "ann")]
    first = conn(welcome("ann"), *STREAM[:2])
    oldest_gone = conn(welcome("ann", gap=True), STREAM[5], STREAM[6], join(8, "ann"), resume=2)
    assert check(stream, [client("ann", first, oldest_gone)]) == []
    all_gone = conn(welcome("ann", gap=True), join(8, "ann"), resume=2)
    assert check(stream, [client("ann", first, all_gone)]) == []
    no_gap = conn(welcome("ann", gap=False), STREAM[5], STREAM[6], join(8, "ann"), resume=2)
    problems = check(stream, [client("ann", first, no_gap)])
    assert len(problems) == 1 and "missing 3, 4, 5" in problems[0], problems
    middle = conn(welcome("ann", gap=True), STREAM[3], STREAM[5], join(8, "ann"), resume=2)
    problems = check(stream, [client("ann", first, middle)])
    assert len(problems) == 1 and "missing 5" in problems[0], problems


def test_a_resume_that_was_not_granted_is_reported() -> None:
    stream = [*STREAM, join(8, "ann")]
    first = conn(welcome("ann"), *STREAM)
    second = conn(welcome("ann", STREAM), join(8, "ann"), resume=7)
    problems = check(stream, [client("ann", first, second)])
    assert any("asked to resume lobby" in p for p in problems), problems


ROOMS = [
    join(1, "ann"),
    join(2, "ann", "dev"),
    message(3, "ann", "dev"),
    message(4, "ann"),
    leave(5, "ann", "dev"),
    message(6, "bob", "dev"),
    join(7, "ann", "dev"),
    message(8, "ann", "dev"),
]


def test_rooms_are_checked_from_join_to_leave() -> None:
    """In a room from its own join to its own leave (part), and again after a rejoin."""
    ann = conn(
        welcome("ann"),
        join(1, "ann"),
        joined("dev"),
        *ROOMS[1:5],
        joined("Dev", [ROOMS[4], ROOMS[5]]),
        *ROOMS[6:],
        joins=[("dev", None), ("Dev", None)],
    )
    assert check(ROOMS, [client("ann", ann)]) == []


def test_an_event_of_a_room_left_is_reported() -> None:
    ann = conn(welcome("ann"), join(1, "ann"), joined("dev"), *ROOMS[1:6], joins=[("dev", None)])
    problems = check(ROOMS, [client("ann", ann)])
    assert any("event 6 of dev, a room it was not in" in p for p in problems), problems


def test_a_room_resumed_with_join_and_resume_after() -> None:
    """A room rejoined after a reconnect with resume_after: its own replay, checked."""
    stream = [
        join(1, "ann"),
        join(2, "ann", "dev"),
        message(3, "bob", "dev"),
        message(4, "bob", "dev"),
        join(5, "ann"),
        message(6, "bob", "dev"),
        join(7, "ann", "dev"),
    ]
    first = conn(welcome("ann"), join(1, "ann"), joined("dev"), *stream[1:3], joins=[("dev", None)])
    good = conn(
        welcome("ann", gap=False),
        join(5, "ann"),
        joined("dev", gap=False),
        stream[3],
        stream[5],
        join(7, "ann", "dev"),
        resume=1,
        joins=[("dev", 3)],
    )
    assert check(stream, [client("ann", first, good)]) == []
    short = conn(
        welcome("ann", gap=False),
        join(5, "ann"),
        joined("dev", gap=False),
        stream[5],
        join(7, "ann", "dev"),
        resume=1,
        joins=[("dev", 3)],
    )
    problems = check(stream, [client("ann", first, short)])
    assert len(problems) == 1 and "joined dev replay after 3: missing 4" in problems[0], problems


PRIVATE = [
    join(1, "ann"),
    join(2, "bob"),
    dm(3, "bob", "ann"),
    dm(4, "ann", "bob", nonce="a-1"),
    dm(5, "bob", "cat"),
    message(6, "bob"),
    dm(7, "bob", "ann"),
    join(8, "ann"),
]


def test_private_messages_are_checked() -> None:
    """ann gets the private messages to or from her, and no one else's; a resumed
    welcome replays them with the lobby."""
    first = conn(welcome("ann"), *PRIVATE[:4])
    second = conn(welcome("ann", gap=False), PRIVATE[5], PRIVATE[6], join(8, "ann"), resume=4)
    assert check(PRIVATE, [client("ann", first, second, acked={"a-1"})]) == []
    nosy = conn(welcome("ann"), *PRIVATE[:6])
    problems = check(PRIVATE, [client("ann", nosy)])
    assert len(problems) == 1 and "private" in problems[0] and "not expected here: 5" in problems[0]
    lost = conn(welcome("ann", gap=False), PRIVATE[5], join(8, "ann"), resume=4)
    problems = check(PRIVATE, [client("ann", first, lost)])
    assert len(problems) == 1 and "(private) replay after 4: missing 7" in problems[0], problems


def test_a_private_message_missing_live_is_reported() -> None:
    ann = conn(welcome("ann"), PRIVATE[0], PRIVATE[1], PRIVATE[3], PRIVATE[5], PRIVATE[6])
    problems = check(PRIVATE, [client("ann", ann)])
    assert len(problems) == 1 and "private" in problems[0] and "missing 3" in problems[0]


def test_renames_are_followed() -> None:
    """After a nick, the member's own join and leave carry the new name."""
    stream = [
        join(1, "ann"),
        {"type": "nick", "id": 2, "ts": TS, "room": "lobby", "old": "ann", "new": "anna"},
        dm(3, "bob", "anna"),
        leave(4, "anna"),
        message(5, "bob"),
    ]
    ann = conn(welcome("ann"), *stream[:4])
    assert check(stream, [client("ann", ann)]) == []
