"""session.py and limits.py without sockets: frames and times in, replies and closes out."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from chatroom.framing import ErrorCode, FrameDecoder, ProtocolError
from chatroom.hub import Hub, WireFormat
from chatroom.limits import FLOOD_STRIKES, ConnectionCounter, SendQBound, TokenBucket
from chatroom.protocol import (
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
    parse_server_frame,
)
from chatroom.session import Reply, Session, SessionLimits

NOW = datetime(2026, 11, 24, 2, 30, 1, 123000, tzinfo=UTC)
LIMITS = SessionLimits(
    flood_rate=5.0,
    flood_burst=10,
    handshake_timeout_s=10.0,
    ping_interval_s=60.0,
    ping_timeout_s=30.0,
    password=None,
    auth_failure_delay_s=0.5,
)


class FakeLink:
    """A transport that records: replies, events the hub wrote, pauses and the close."""

    wire: WireFormat | None = None

    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.written: list[bytes] = []
        self.paused = False
        self.closed_with: LeaveReason | None = None

    # Link
    def send_reply(self, frame: Reply) -> None:
        self.replies.append(frame)

    def pause_reading(self) -> None:
        self.paused = True

    def close(self, reason: LeaveReason) -> None:
        self.closed_with = reason

    # Outbox
    def send(self, payload: bytes) -> None:
        self.written.append(payload)

    def events(self) -> list[Any]:
        decoder = FrameDecoder(1 << 24)
        decoder.receive_data(b"".join(self.written))
        frames = []
        while (obj := decoder.next_frame()) is not None:
            frames.append(parse_server_frame(obj))
        return frames

    def errors(self) -> list[str]:
        return [reply.code for reply in self.replies if isinstance(reply, Error)]


def _session(
    hub: Hub | None = None, limits: SessionLimits = LIMITS, now: float = 100.0
) -> tuple[Session, FakeLink, Hub]:
    hub = hub or Hub(server_name="chatroom/test", now=lambda: NOW)
    link = FakeLink()
    return Session(hub, limits, link, link, now=now, peer="192.0.2.1:4000"), link, hub


def _joined(
    name: str, hub: Hub | None = None, limits: SessionLimits = LIMITS, now: float = 100.0
) -> tuple[Session, FakeLink, Hub]:
    session, link, hub = _session(hub, limits, now)
    session.receive(Hello(name=name), now)
    hub.flush()
    return session, link, hub


# ---------------------------------------------------------------------------- hello


def test_hello_joins_and_the_welcome_comes_through_the_outbox() -> None:
    """A hello joins the hub; the welcome and the member's own join reach the outbox,
    and the deadline moves from the handshake to the first ping."""
    session, link, hub = _session(now=100.0)
    assert session.deadline == 110.0
    session.receive(Hello(name="alice"), 101.0)
    hub.flush()
    frames = link.events()
    assert isinstance(frames[0], Welcome) and frames[0].name == "alice"
    assert isinstance(frames[1], Join) and frames[1].name == "alice"
    assert session.member is not None and hub.members() == ["alice"]
    assert session.deadline == 161.0
    assert link.replies == []


def test_frames_before_hello_are_refused_and_change_nothing() -> None:
    """Anything but hello, ping, pong or bye before the hello gets not_joined."""
    session, link, hub = _session()
    session.receive(Say(text="hi"), 100.0)
    session.receive(Who(), 100.0)
    assert link.errors() == ["not_joined", "not_joined"]
    assert hub.members() == [] and not session.closing


def test_a_second_hello_and_a_wrong_protocol_are_errors() -> None:
    """A second hello is bad_request; a hello for another protocol is
    unsupported_protocol; neither ends the connection."""
    session, link, _ = _session()
    session.receive(Hello(name="alice", protocol=2), 100.0)
    assert link.errors() == ["unsupported_protocol"]
    session.receive(Hello(name="alice"), 100.0)
    session.receive(Hello(name="alice"), 100.0)
    assert link.errors() == ["unsupported_protocol", "bad_request"]
    assert not session.closing


def test_a_taken_name_may_be_retried() -> None:
    """name_taken leaves the session open for another hello."""
    _, _, hub = _joined("alice")
    session, link, _ = _session(hub)
    session.receive(Hello(name="ALICE"), 100.0)
    assert link.errors() == ["name_taken"]
    session.receive(Hello(name="bob"), 100.0)
    assert hub.members() == ["alice", "bob"]


def test_wrong_password_is_refused_after_the_delay_reading_nothing_meanwhile() -> None:
    """A wrong password pauses reading, stops accepting frames, and is answered
    auth_failed only when the delay's deadline passes; then the connection closes."""
    limits = SessionLimits(password="s3cret", auth_failure_delay_s=0.5)
    session, link, hub = _session(limits=limits, now=100.0)
    session.receive(Hello(name="alice", password="wrong"), 100.0)
    assert link.paused and not session.accepting and link.replies == []
    assert session.deadline == 100.5
    assert session.end_of_input() is True  # the refusal must still go out
    session.on_deadline(100.5)
    assert link.errors() == ["auth_failed"]
    assert link.closed_with is LeaveReason.DISCONNECTED
    assert hub.members() == []


def test_right_password_joins() -> None:
    """The right password joins at once."""
    limits = SessionLimits(password="s3cret ☃")
    session, link, hub = _session(limits=limits)
    session.receive(Hello(name="alice", password="s3cret ☃"), 100.0)
    assert hub.members() == ["alice"] and link.replies == [] and not link.paused


# ---------------------------------------------------------------------------- deadlines


def test_no_hello_in_time_is_a_handshake_timeout() -> None:
    """At the handshake deadline a connection without a member gets handshake_timeout
    and is closed as timed out."""
    session, link, _ = _session(now=100.0)
    session.on_deadline(110.0)
    assert link.errors() == ["handshake_timeout"]
    assert link.closed_with is LeaveReason.TIMEOUT
    assert session.closing and session.deadline is None


def test_a_quiet_member_is_pinged_and_dropped_without_a_pong() -> None:
    """Quiet for the ping interval: a ping; no answer within the ping timeout: dropped
    with reason timeout, and the room sees the leave."""
    session, link, hub = _joined("alice", now=100.0)
    other, other_link, _ = _joined("bob", hub, now=100.0)
    session.on_deadline(160.0)
    assert link.replies == [Ping(token="t160000")]
    assert session.deadline == 190.0
    session.on_deadline(190.0)
    assert link.closed_with is LeaveReason.TIMEOUT
    hub.flush()
    leaves = [f for f in other_link.events() if isinstance(f, Leave)]
    assert [(leave.name, leave.reason) for leave in leaves] == [("alice", "timeout")]
    assert not other.closing


def test_anything_heard_answers_a_ping_and_moves_the_deadline_on() -> None:
    """Bytes received after the ping count as the answer; a member heard from recently
    is not pinged, its deadline moves to the end of its quiet interval."""
    session, link, _ = _joined("alice", now=100.0)
    session.last_received = 150.0
    session.on_deadline(160.0)
    assert link.replies == [] and session.deadline == 210.0
    session.on_deadline(210.0)
    assert link.replies == [Ping(token="t210000")]
    session.last_received = 215.0
    session.receive(Pong(token="t210000"), 215.0)
    session.on_deadline(240.0)
    assert not session.closing and session.deadline == 275.0


# ---------------------------------------------------------------------------- rate limit


def test_the_token_bucket_allows_a_burst_then_the_rate() -> None:
    """A burst of ten frames (the hello was the first) goes through, the eleventh is
    rate_limited; a fifth of a second later one more goes through. Pongs are free."""
    session, link, hub = _joined("alice", now=100.0)
    for n in range(9):
        session.receive(Say(text=f"m{n}"), 100.0)
    session.receive(Say(text="over"), 100.0)
    assert link.errors() == ["rate_limited"]
    session.receive(Pong(token="x"), 100.0)
    assert link.errors() == ["rate_limited"]
    session.receive(Say(text="later"), 100.2)
    hub.flush()
    texts = [f.text for f in link.events() if isinstance(f, Message)]
    assert texts == [*(f"m{n}" for n in range(9)), "later"]


def test_a_persistent_flooder_is_kicked() -> None:
    """Past FLOOD_STRIKES refusals in a row the session ends as kicked, and says so."""
    session, link, _ = _joined("alice", now=100.0)
    for _ in range(10 + FLOOD_STRIKES + 1):
        session.receive(Say(text="x"), 100.0)
    assert link.replies[-1] == Error(code="rate_limited", message="flooding; disconnected")
    assert link.closed_with is LeaveReason.KICKED


def test_undecodable_input_costs_tokens_and_fatal_errors_close() -> None:
    """A broken line is answered with its code and costs a token like a frame; a fatal
    one is always answered, then the connection closes."""
    session, link, _ = _session(now=100.0)
    for _ in range(12):
        session.receive_error(ProtocolError(ErrorCode.BAD_FRAME, "not JSON"), 100.0)
    assert link.errors() == ["bad_frame"] * 10 + ["rate_limited"] * 2
    session.receive_error(ProtocolError(ErrorCode.TOO_LONG, "long", fatal=True), 100.0)
    assert link.errors()[-1] == "too_long"
    assert link.closed_with is LeaveReason.DISCONNECTED


def test_rate_zero_turns_the_limit_off() -> None:
    """flood_rate 0: no frame is ever refused."""
    session, link, _ = _joined("alice", limits=SessionLimits(flood_rate=0))
    for _ in range(500):
        session.receive(Ping(token="p"), 100.0)
    assert link.errors() == [] and len(link.replies) == 500


# ---------------------------------------------------------------------------- the end


def test_bye_and_eof_leave_with_their_reasons_once() -> None:
    """bye closes with quit; a later EOF or drop changes nothing; the room saw one
    leave."""
    session, link, hub = _joined("alice")
    _, bob_link, _ = _joined("bob", hub)
    session.receive(Bye(), 100.0)
    assert link.closed_with is LeaveReason.QUIT
    assert session.end_of_input() is False
    session.drop(LeaveReason.DISCONNECTED)
    hub.flush()
    leaves = [f for f in bob_link.events() if isinstance(f, Leave)]
    assert [(leave.name, leave.reason) for leave in leaves] == [("alice", "quit")]


def test_detach_stops_without_a_leave() -> None:
    """On shutdown the hub tells everyone; a detached session then adds no leave of its
    own and does not close the link itself."""
    session, link, hub = _joined("alice")
    hub.shutdown()
    session.detach()
    session.drop(LeaveReason.DISCONNECTED)
    assert link.closed_with is None and session.deadline is None
    leaves = [f for f in link.events() if isinstance(f, Leave)]
    assert [leave.reason for leave in leaves] == ["shutdown"]


def test_who_is_answered_on_the_link() -> None:
    """who is answered to this peer alone, as a reply."""
    session, link, _ = _joined("alice")
    session.receive(Who(), 100.0)
    assert link.replies == [Members(room="lobby", members=("alice",))]


# ---------------------------------------------------------------------------- limits


def test_token_bucket_refills_up_to_the_burst() -> None:
    """Tokens come back at the rate, never above the burst."""
    bucket = TokenBucket(rate=2.0, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.strikes == 1
    assert bucket.take(0.5) is True and bucket.strikes == 0
    assert [bucket.take(100.0) for _ in range(4)] == [True, True, True, False]


def test_sendq_hard_bound_past_the_soft_bound_drops() -> None:
    """Unread output past the hard bound drops a reader that is also over the soft
    bound; a burst to a reader that had caught up is allowed once."""
    bound = SendQBound(hard_bytes=1000, soft_bytes=200, grace_s=10.0)
    assert bound.over_bound(backlog=100, size=800, now=0.0) is False
    assert bound.over_bound(backlog=900, size=200, now=0.0) is True
    bursty = SendQBound(hard_bytes=1000, soft_bytes=200, grace_s=10.0)
    assert bursty.over_bound(backlog=100, size=5000, now=0.0) is False  # a burst
    assert bursty.over_bound(backlog=4000, size=900, now=0.0) is False  # within it
    assert bursty.over_bound(backlog=4000, size=1200, now=0.0) is True  # past it


def test_sendq_soft_bound_for_longer_than_the_grace_drops() -> None:
    """Above the soft bound for longer than the grace: dropped; dipping below resets."""
    bound = SendQBound(hard_bytes=10_000, soft_bytes=200, grace_s=10.0)
    assert bound.over_bound(backlog=300, size=10, now=0.0) is False
    assert bound.over_bound(backlog=300, size=10, now=9.0) is False
    assert bound.over_bound(backlog=100, size=10, now=9.5) is False
    assert bound.over_bound(backlog=300, size=10, now=15.0) is False
    assert bound.over_bound(backlog=300, size=10, now=25.1) is True


@pytest.mark.parametrize("exempt", [True, False])
def test_connection_counter_caps_total_and_per_address(exempt: bool) -> None:
    """The per-address cap counts each address apart (loopback exempt when asked); the
    total counts everyone; a release frees the place."""
    counter = ConnectionCounter(max_total=5, max_per_ip=2, exempt_loopback=exempt)
    assert [counter.refusal("192.0.2.1") for _ in range(3)] == [None, None, "per_ip"]
    loopback = [counter.refusal("127.0.0.1") for _ in range(3)]
    assert loopback == ([None, None, None] if exempt else [None, None, "per_ip"])
    if exempt:
        assert counter.refusal("::1") == "total"
    counter.release("192.0.2.1")
    assert counter.refusal("192.0.2.1") is None
