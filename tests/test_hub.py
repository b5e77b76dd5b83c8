"""hub.py with fake outboxes: exact bytes, ids, order, batching, and sinks before fan-out."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatroom.framing import ErrorCode, FrameDecoder, ProtocolError
from chatroom.hub import FLUSH_NOW_EVENTS, Hub
from chatroom.protocol import (
    Event,
    Join,
    Leave,
    LeaveReason,
    Members,
    Message,
    Welcome,
    encode,
    format_ts,
    parse_server_frame,
)

NOW = datetime(2026, 11, 24, 2, 30, 1, 123000, tzinfo=UTC)
TS = "2026-11-24T02:30:01.123Z"


class FakeOutbox:
    """Records every payload; can be told to behave like a reader that fell behind."""

    def __init__(self, hub: Hub | None = None) -> None:
        self.payloads: list[bytes] = []
        self.closed_with: LeaveReason | None = None
        self.hub = hub
        self.member: Any = None
        self.drop_on_send = False

    def send(self, payload: bytes) -> None:
        if self.closed_with is not None:
            return
        if self.drop_on_send:
            # What StreamOutbox does past the SendQ bound: leave from inside fan-out.
            self.close(LeaveReason.SLOW_CONSUMER)
            return
        self.payloads.append(payload)

    def close(self, reason: LeaveReason) -> None:
        self.closed_with = reason
        if self.hub is not None and self.member is not None:
            self.hub.leave(self.member, reason)

    def frames(self) -> list[Any]:
        decoder = FrameDecoder(1 << 24)
        decoder.receive_data(b"".join(self.payloads))
        out = []
        while (obj := decoder.next_frame()) is not None:
            out.append(parse_server_frame(obj))
        return out


class RecordingSink:
    """Records each batch, and what every outbox had been sent when the batch came."""

    def __init__(self, outboxes: list[FakeOutbox]) -> None:
        self.batches: list[list[Event]] = []
        self.sent_before: list[int] = []
        self._outboxes = outboxes

    def append(self, events: Sequence[Event]) -> None:
        self.batches.append(list(events))
        self.sent_before.append(sum(len(o.payloads) for o in self._outboxes))

    @property
    def events(self) -> list[Event]:
        return [event for batch in self.batches for event in batch]


def _hub(**kwargs: Any) -> tuple[Hub, RecordingSink, list[FakeOutbox]]:
    outboxes: list[FakeOutbox] = []
    sink = RecordingSink(outboxes)
    hub = Hub(server_name="chatroom/test", sinks=[sink], now=lambda: NOW, **kwargs)
    return hub, sink, outboxes


def _join(hub: Hub, outboxes: list[FakeOutbox], name: str) -> Any:
    outbox = FakeOutbox(hub)
    outboxes.append(outbox)
    member = hub.join(name, outbox)
    outbox.member = member
    return member, outbox


def test_join_sends_welcome_then_own_join_exact_bytes() -> None:
    """A newcomer's first bytes are its welcome, then its own join, in one write."""
    hub, sink, outboxes = _hub()
    _, alice = _join(hub, outboxes, "alice")
    hub.flush()
    welcome = Welcome(name="alice", server="chatroom/test", room="lobby", members=("alice",))
    join = Join(id=1, ts=TS, room="lobby", name="alice")
    assert alice.payloads == [encode(welcome) + encode(join)]
    assert sink.batches == [[join]]


def test_events_of_one_iteration_are_one_write_per_member() -> None:
    """Everything published before a flush reaches each member as a single payload, in
    id order, and the sinks get the whole batch before anyone is sent anything."""
    hub, sink, outboxes = _hub()
    alice, alice_box = _join(hub, outboxes, "alice")
    bob, bob_box = _join(hub, outboxes, "bob")
    hub.flush()
    alice_box.payloads.clear()
    bob_box.payloads.clear()
    hub.say(alice, "one")
    hub.say(bob, "two")
    hub.say(alice, "three")
    hub.flush()
    expected = [
        Message(id=3, ts=TS, room="lobby", sender="alice", text="one"),
        Message(id=4, ts=TS, room="lobby", sender="bob", text="two"),
        Message(id=5, ts=TS, room="lobby", sender="alice", text="three"),
    ]
    payload = b"".join(encode(event) for event in expected)
    assert alice_box.payloads == [payload]
    assert bob_box.payloads == [payload]
    assert sink.batches[-1] == expected
    assert sink.sent_before[-1] == 0


def test_sinks_record_before_fan_out() -> None:
    """No member holds an event that the sinks were not given first."""
    hub, sink, outboxes = _hub()
    alice, _ = _join(hub, outboxes, "alice")
    hub.flush()
    sent_after_join = sum(len(o.payloads) for o in outboxes)
    hub.say(alice, "hi")
    hub.flush()
    assert sink.sent_before == [0, sent_after_join]


def test_newcomer_in_the_same_batch_starts_at_its_own_join() -> None:
    """A member joining mid-batch gets earlier events of the batch in its history, never
    in its stream: its stream starts with its own join."""
    hub, _, outboxes = _hub()
    alice, alice_box = _join(hub, outboxes, "alice")
    hub.flush()
    alice_box.payloads.clear()
    hub.say(alice, "before bob")
    _, bob_box = _join(hub, outboxes, "bob")
    hub.say(alice, "after bob")
    hub.flush()
    frames = bob_box.frames()
    assert isinstance(frames[0], Welcome)
    assert [e.text for e in frames[0].history if isinstance(e, Message)] == ["before bob"]
    assert frames[0].members == ("alice", "bob")
    assert frames[1:] == [
        Join(id=3, ts=TS, room="lobby", name="bob"),
        Message(id=4, ts=TS, room="lobby", sender="alice", text="after bob"),
    ]
    assert [type(f).__name__ for f in alice_box.frames()] == ["Message", "Join", "Message"]
    assert len(bob_box.payloads) == 1


def test_history_is_bounded_and_oldest_first() -> None:
    """welcome.history holds the last N events of the room, oldest first."""
    hub, _, outboxes = _hub(history_events=3)
    alice, _ = _join(hub, outboxes, "alice")
    for i in range(5):
        hub.say(alice, f"m{i}")
    hub.flush()
    _, bob_box = _join(hub, outboxes, "bob")
    hub.flush()
    welcome = bob_box.frames()[0]
    assert [e.text for e in welcome.history] == ["m2", "m3", "m4"]


@pytest.mark.parametrize("name", ["alice", "ALICE", "\u0430lice", "\uff41lice"])
def test_taken_name_changes_nothing(name: str) -> None:
    """name_taken leaves members, ids and outboxes as they were."""
    hub, sink, outboxes = _hub()
    _join(hub, outboxes, "alice")
    hub.flush()
    with pytest.raises(ProtocolError) as caught:
        hub.join(name, FakeOutbox())
    assert caught.value.code is ErrorCode.NAME_TAKEN
    assert hub.members() == ["alice"]
    assert hub.last_id == 1
    hub.flush()
    assert len(sink.events) == 1


def test_invalid_name_changes_nothing() -> None:
    """invalid_name takes no id and adds no member."""
    hub, _, _ = _hub()
    with pytest.raises(ProtocolError) as caught:
        hub.join("bad\u202ename", FakeOutbox())
    assert caught.value.code is ErrorCode.INVALID_NAME
    assert hub.members() == [] and hub.last_id == 0


def test_name_is_stored_as_nfc() -> None:
    """The welcome and the join carry the NFC form of the name asked for."""
    hub, _, outboxes = _hub()
    _, box = _join(hub, outboxes, "Jose\u0301")
    hub.flush()
    welcome, join = box.frames()
    assert welcome.name == join.name == "Jos\u00e9"


def test_too_long_goes_nowhere() -> None:
    """Text over the limit raises too_long, takes no id, and reaches no one."""
    hub, _, outboxes = _hub(max_text_chars=10)
    alice, box = _join(hub, outboxes, "alice")
    hub.flush()
    box.payloads.clear()
    hub.say(alice, "x" * 10)
    with pytest.raises(ProtocolError) as caught:
        hub.say(alice, "x" * 11)
    assert caught.value.code is ErrorCode.TOO_LONG
    hub.flush()
    assert [e.id for e in box.frames()] == [2]
    assert hub.last_id == 2


def test_leave_tells_the_others_and_frees_the_name() -> None:
    """Others see leave with the reason; the name is free again; leaving twice is a no-op."""
    hub, _, outboxes = _hub()
    alice, alice_box = _join(hub, outboxes, "alice")
    _, bob_box = _join(hub, outboxes, "bob")
    hub.flush()
    alice_box.payloads.clear()
    bob_box.payloads.clear()
    hub.leave(alice, LeaveReason.QUIT)
    hub.leave(alice, LeaveReason.DISCONNECTED)
    hub.flush()
    assert bob_box.frames() == [Leave(id=3, ts=TS, room="lobby", name="alice", reason="quit")]
    assert alice_box.payloads == []
    assert hub.members() == ["bob"]
    _join(hub, outboxes, "Alice")
    assert hub.members() == ["bob", "Alice"]


def test_saying_after_leaving_is_not_joined() -> None:
    """A member that left can no longer publish."""
    hub, _, outboxes = _hub()
    alice, _ = _join(hub, outboxes, "alice")
    hub.leave(alice, LeaveReason.QUIT)
    with pytest.raises(ProtocolError) as caught:
        hub.say(alice, "ghost")
    assert caught.value.code is ErrorCode.NOT_JOINED


def test_drop_during_fan_out_is_safe() -> None:
    """A member whose outbox gives up during fan-out leaves (slow_consumer); the others
    get every event and then its leave; nothing raises."""
    hub, _, outboxes = _hub()
    alice, alice_box = _join(hub, outboxes, "alice")
    _, slow_box = _join(hub, outboxes, "slow")
    _, carol_box = _join(hub, outboxes, "carol")
    hub.flush()
    for box in outboxes:
        box.payloads.clear()
    slow_box.drop_on_send = True
    hub.say(alice, "hello")
    hub.flush()
    assert slow_box.closed_with is LeaveReason.SLOW_CONSUMER
    for box in (alice_box, carol_box):
        assert [type(f).__name__ for f in box.frames()] == ["Message", "Leave"]
        assert box.frames()[1].reason == "slow_consumer"
    assert hub.members() == ["alice", "carol"]


def test_shutdown_tells_everyone_about_everyone() -> None:
    """On shutdown each member receives a shutdown leave for every member, itself
    included, and the sinks have them all."""
    hub, sink, outboxes = _hub()
    for name in ("alice", "bob", "carol"):
        _join(hub, outboxes, name)
    hub.flush()
    for box in outboxes:
        box.payloads.clear()
    hub.shutdown()
    for box in outboxes:
        leaves = box.frames()
        assert [(f.name, f.reason) for f in leaves] == [
            ("alice", "shutdown"),
            ("bob", "shutdown"),
            ("carol", "shutdown"),
        ]
    assert [e.reason for e in sink.events if isinstance(e, Leave)] == ["shutdown"] * 3
    assert hub.members() == [] and hub.all_members() == []


def test_a_failing_sink_is_logged_and_chat_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    """A sink that raises is reported loudly; members still get every event."""

    class BrokenSink:
        def append(self, events: Sequence[Event]) -> None:
            raise OSError(28, "No space left on device")

    outboxes: list[FakeOutbox] = []
    later = RecordingSink(outboxes)
    hub = Hub(server_name="s", sinks=[BrokenSink(), later], now=lambda: NOW)
    alice, box = _join(hub, outboxes, "alice")
    with caplog.at_level(logging.ERROR, logger="chatroom.hub"):
        hub.say(alice, "still here")
        hub.flush()
    assert [type(f).__name__ for f in box.frames()] == ["Welcome", "Join", "Message"]
    assert len(later.events) == 2
    assert any("sink" in record.getMessage() for record in caplog.records)


async def test_flush_runs_once_per_loop_iteration() -> None:
    """Inside a running loop nobody calls flush(): the hub flushes on the next iteration,
    once for everything published in this one."""
    hub, sink, outboxes = _hub()
    alice, box = _join(hub, outboxes, "alice")
    hub.say(alice, "a")
    hub.say(alice, "b")
    assert box.payloads == []
    await asyncio.sleep(0)
    assert len(box.payloads) == 1
    assert len(sink.batches) == 1
    assert [type(f).__name__ for f in box.frames()] == ["Welcome", "Join", "Message", "Message"]


def test_default_timestamps_are_the_current_millisecond_in_order() -> None:
    hub = Hub(server_name="chatroom/test")
    box = FakeOutbox()
    member = hub.join("alice", box)
    stamps = []
    for number in range(200):
        before = format_ts(datetime.now(UTC))
        hub.say(member, f"m{number}")
        after = format_ts(datetime.now(UTC))
        hub.flush()
        stamp = box.frames()[-1].ts
        assert before <= stamp <= after
        stamps.append(stamp)
    assert stamps == sorted(stamps)


def test_lazy_members_of_a_big_room_get_no_joins_or_leaves_of_others() -> None:
    """Above the threshold a lazy member is sent messages and its own join, not the
    others' joins and leaves; an ordinary member is sent everything, as always."""
    hub, _, outboxes = _hub(lazy_members_above=3)
    first, first_box = _join(hub, outboxes, "first")
    lazy_box = FakeOutbox(hub)
    lazy = hub.join("lazy", lazy_box, lazy=True)
    lazy_box.member = lazy
    hub.flush()
    welcome = lazy_box.frames()[0]
    assert isinstance(welcome, Welcome) and welcome.lazy_members_above == 3
    # Two members: not big yet, so the lazy one sees the next join.
    _join(hub, outboxes, "second")
    hub.flush()
    assert [f.name for f in lazy_box.frames() if isinstance(f, Join)] == ["lazy", "second"]
    # Four members: the join that takes the room past the threshold is still sent, so
    # the lazy member's list says the room is big; it is big from this flush on.
    third, _ = _join(hub, outboxes, "third")
    hub.say(first, "in a big room")
    hub.flush()
    hub.leave(third, LeaveReason.QUIT)
    late_lazy_box = FakeOutbox(hub)
    hub.join("late", late_lazy_box, lazy=True)
    hub.say(first, "still here")
    hub.flush()
    assert [type(f).__name__ for f in lazy_box.frames()] == [
        "Welcome", "Join", "Join", "Join", "Message", "Message"
    ]  # fmt: skip
    assert [type(f).__name__ for f in late_lazy_box.frames()] == ["Welcome", "Join", "Message"]
    assert late_lazy_box.frames()[1].name == "late"
    everything = [type(f).__name__ for f in first_box.frames()]
    assert everything.count("Join") == 5 and everything.count("Leave") == 1


def test_lazy_members_are_sent_the_list_when_a_big_room_is_small_again() -> None:
    hub, _, outboxes = _hub(lazy_members_above=2)
    members = [_join(hub, outboxes, name)[0] for name in ("a", "b", "c")]
    lazy_box = FakeOutbox(hub)
    hub.join("lazy", lazy_box, lazy=True)
    hub.flush()
    hub.leave(members[0], LeaveReason.QUIT)
    hub.flush()  # three left: still big, the leave is not sent
    assert not any(isinstance(f, Leave | Members) for f in lazy_box.frames())
    hub.leave(members[1], LeaveReason.QUIT)
    hub.flush()  # two: small again, so the list comes instead of the leaves
    listing = lazy_box.frames()[-1]
    assert isinstance(listing, Members) and sorted(listing.members) == ["c", "lazy"]
    assert not any(isinstance(f, Leave) for f in lazy_box.frames())
    hub.leave(members[2], LeaveReason.QUIT)
    hub.flush()  # small: leaves are sent again
    assert isinstance(lazy_box.frames()[-1], Leave)


def test_on_shutdown_a_lazy_member_of_a_big_room_is_told_of_its_own_leave() -> None:
    hub, _, outboxes = _hub(lazy_members_above=2)
    for name in ("alice", "bob"):
        _join(hub, outboxes, name)
    lazy_box = FakeOutbox(hub)
    hub.join("lazy", lazy_box, lazy=True)
    hub.flush()
    for box in (*outboxes, lazy_box):
        box.payloads.clear()
    hub.shutdown()
    assert [(f.name, f.reason) for f in lazy_box.frames()] == [("lazy", "shutdown")]
    assert [f.name for f in outboxes[0].frames()] == ["alice", "bob", "lazy"]


def test_lazy_members_in_mixed_batches_get_their_own_join_only() -> None:
    """The several-rooms path filters the same way as the one-room path."""
    hub, _, outboxes = _hub(lazy_members_above=1)
    talker, _ = _join(hub, outboxes, "talker")
    lazy_box = FakeOutbox(hub)
    lazy = hub.join("lazy", lazy_box, lazy=True)
    hub.flush()  # two members: big from the next flush
    hub.join_room(talker, "other")  # a second room in the same batch: the mixed path
    hub.say(talker, "hello")
    hub.join("newcomer", FakeOutbox(hub))
    hub.flush()
    kinds = [(type(f).__name__, getattr(f, "name", "")) for f in lazy_box.frames()]
    assert kinds == [("Welcome", "lazy"), ("Join", "lazy"), ("Message", "")]
    assert lazy.rooms


class CostlyClock:
    """A clock for the hub's flush pacing: every send to a member costs ``per_send``."""

    def __init__(self, per_send: float) -> None:
        self.now = 1000.0
        self.per_send = per_send

    def __call__(self) -> float:
        return self.now


class CostlyOutbox(FakeOutbox):
    """Advances the clock on each send, and signals every write."""

    def __init__(self, clock: CostlyClock) -> None:
        super().__init__()
        self.clock = clock
        self.wrote = asyncio.Event()

    def send(self, payload: bytes) -> None:
        self.clock.now += self.clock.per_send
        super().send(payload)
        self.wrote.set()

    async def next_write(self) -> bytes:
        self.wrote.clear()
        await asyncio.wait_for(self.wrote.wait(), 2)
        return self.payloads[-1]


async def _costly_room(per_send: float, names: str = "abc") -> tuple[Hub, list[Any], list[Any]]:
    """A room whose flushes cost ``per_send`` a member, everyone welcomed and settled."""
    clock = CostlyClock(per_send)
    hub = Hub(server_name="chatroom/test", now=lambda: NOW, clock=clock)
    members, boxes = [], []
    for name in names:
        box = CostlyOutbox(clock)
        members.append(hub.join(name, box))
        boxes.append(box)
    hub.flush()
    return hub, members, boxes


async def test_after_a_costly_flush_the_next_waits_and_carries_more() -> None:
    """Messages trickling in one per iteration share the next write instead of each
    costing the room a write, once a flush has shown itself expensive."""
    hub, (alice, *_), (_, bob_box, _) = await _costly_room(per_send=0.005)
    hub.say(alice, "one")
    first = await bob_box.next_write()  # the last flush was cheap: this one went at once
    assert b'"one"' in first
    waiting = asyncio.ensure_future(bob_box.next_write())
    hub.say(alice, "two")
    await asyncio.sleep(0)  # one loop iteration: an unpaced hub would flush "two" alone
    hub.say(alice, "three")
    await asyncio.sleep(0)
    assert not waiting.done()
    payload = await waiting
    assert b'"two"' in payload and b'"three"' in payload
    texts = [f.text for f in bob_box.frames() if isinstance(f, Message)]
    assert texts == ["one", "two", "three"]


async def test_a_newcomer_is_welcomed_without_waiting_for_the_paced_flush() -> None:
    hub, (alice, *_), (_, bob_box, _) = await _costly_room(per_send=0.005)
    hub.say(alice, "one")
    await bob_box.next_write()  # costly: the next flush is paced
    dave_box = CostlyOutbox(bob_box.clock)
    hub.join("dave", dave_box)
    await asyncio.sleep(0)
    assert [type(f).__name__ for f in dave_box.frames()] == ["Welcome"]
    assert not any(isinstance(f, Join) and f.name == "dave" for f in bob_box.frames())
    await dave_box.next_write()
    assert [type(f).__name__ for f in dave_box.frames()] == ["Welcome", "Join"]
    assert isinstance(bob_box.frames()[-1], Join)


async def test_a_burst_is_flushed_at_once_however_costly_the_last_flush() -> None:
    # 1 s a send: unpaced, the next flush would wait the longest pacing allows.
    hub, (alice, *_), (_, bob_box, _) = await _costly_room(per_send=1.0)
    hub.say(alice, "first")
    await bob_box.next_write()
    for number in range(FLUSH_NOW_EVENTS):
        hub.say(alice, f"m{number}")
    await asyncio.sleep(0)
    texts = [f.text for f in bob_box.frames() if isinstance(f, Message)]
    assert texts == ["first"] + [f"m{number}" for number in range(FLUSH_NOW_EVENTS)]


# ---------------------------------------------------------------------------- a model check

_ops = st.lists(
    st.one_of(
        st.tuples(st.just("join"), st.integers(0, 5)),
        st.tuples(st.just("say"), st.integers(0, 5)),
        st.tuples(st.just("leave"), st.integers(0, 5)),
        st.tuples(st.just("flush"), st.just(0)),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(_ops)
def test_every_member_sees_exactly_its_share_in_order(ops: list[tuple[str, int]]) -> None:
    """For any sequence of joins, messages, leaves and flushes: ids are 1, 2, 3... with no
    reuse; each member's stream is its welcome (history = the events before its join),
    then exactly the room's events from its own join on, in id order, up to the batch in
    which it left (its connection is closing by then)."""
    hub, sink, outboxes = _hub(history_events=1000)
    members: dict[int, Any] = {}
    join_ids: dict[int, int] = {}
    left_ids: dict[int, int] = {}
    for op, who in ops:
        if op == "join" and who not in members:
            members[who], box = _join(hub, outboxes, f"user{who}")
            join_ids[id(box)] = members[who].rooms["lobby"]
        elif op == "say" and who in members:
            hub.say(members[who], f"from {who}")
        elif op == "leave" and who in members:
            member = members.pop(who)
            hub.leave(member, LeaveReason.QUIT)
            left_ids[id(member.outbox)] = hub.last_id
        elif op == "flush":
            hub.flush()
    hub.flush()
    log = sink.events
    assert [e.id for e in log] == list(range(1, len(log) + 1))
    for box in outboxes:
        frames = box.frames()
        welcome, stream = frames[0], frames[1:]
        assert isinstance(welcome, Welcome)
        join_id = join_ids[id(box)]
        assert list(welcome.history) == [e for e in log if e.id < join_id]
        left = left_ids.get(id(box))
        batches = sink.batches
        if left is not None:
            batches = batches[: next(i for i, b in enumerate(batches) if b[-1].id >= left)]
        expected = [e for batch in batches for e in batch if e.id >= join_id]
        assert stream == expected
        if stream:
            assert stream[0] == Join(id=join_id, ts=TS, room="lobby", name=welcome.name)
