"""Compare what recording clients received with the cluster's event stream.

The rules come from docs/protocol.md: after ``welcome`` or ``joined`` a member gets
every event of the room in id order, starting with its own ``join``, until its own
``leave``; a resumed ``welcome`` or ``joined`` is followed first by the replay of the
events after ``resume_after`` (a ``welcome``'s replay includes the member's private
messages), and ``gap`` excuses the oldest of those being gone; a ``say`` or ``dm``
acknowledged by its echo is stored exactly once. Pure functions, no I/O.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "EVENT_TYPES",
    "ClientRecord",
    "ConnectionRecord",
    "check",
    "is_event",
]

EVENT_TYPES = frozenset({"message", "join", "leave", "topic", "nick", "dm", "mod"})
# The channel key of private messages; room keys are casefolded room names, never "@".
PRIVATE = "@private"
# A problem lists at most this many ids: enough to find them, short enough to read.
_SHOWN_IDS = 12

Event = Mapping[str, Any]


@dataclass
class ConnectionRecord:
    """One connection of a recording client: what it asked to resume and what came."""

    address: str
    hello_resume_after: int | None = None
    #: Every ``join`` request sent, in order: (room, resume_after).
    joins: list[tuple[str, int | None]] = field(default_factory=list)
    #: Every frame received, decoded, in order.
    frames: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ClientRecord:
    name: str
    connections: list[ConnectionRecord] = field(default_factory=list)
    #: Nonces of the client's acknowledged ``say``/``dm`` requests.
    acked: set[str] = field(default_factory=set)


def is_event(frame: Mapping[str, Any]) -> bool:
    """A chat event (with an id), as opposed to a reply such as ``welcome``."""
    return frame.get("type") in EVENT_TYPES and isinstance(frame.get("id"), int)


def _ids(events: Iterable[Event]) -> str:
    ids = [event["id"] for event in events]
    shown = ", ".join(str(i) for i in ids[:_SHOWN_IDS])
    return shown + (f", ... ({len(ids)} in all)" if len(ids) > _SHOWN_IDS else "")


def _room_key(event: Event) -> str | None:
    """The channel an event belongs to: a room, the private messages, or None (a
    server-wide ``mod``, sent to its parties only, which this checker leaves out)."""
    if event.get("type") == "dm":
        return PRIVATE
    room = event.get("room")
    return room.casefold() if isinstance(room, str) and room else None


class _Stream:
    """The stream indexed by id and by channel."""

    def __init__(self, events: Sequence[Event], problems: list[str]) -> None:
        self.by_id: dict[int, Event] = {}
        self.rooms: dict[str, list[Event]] = defaultdict(list)
        self.dms: list[Event] = []
        last = None
        for event in events:
            event_id = event.get("id")
            if not isinstance(event_id, int):
                problems.append(f"stream: an entry without an integer id: {dict(event)}")
                continue
            if event_id in self.by_id:
                problems.append(f"stream: id {event_id} appears twice")
                continue
            if last is not None and event_id <= last:
                problems.append(f"stream: id {event_id} comes after {last}")
            last = event_id
            self.by_id[event_id] = event
            key = _room_key(event)
            if key == PRIVATE:
                self.dms.append(event)
            elif key is not None:
                self.rooms[key].append(event)

    def channel(self, key: str, names: set[str]) -> list[Event]:
        if key != PRIVATE:
            return self.rooms.get(key, [])
        return [
            event
            for event in self.dms
            if str(event.get("from", "")).casefold() in names
            or str(event.get("to", "")).casefold() in names
        ]


def _compare(
    label: str, expected: list[Event], received: list[Event], stream: _Stream
) -> list[str]:
    """Problems with ``received`` being exactly ``expected``, in order. Ids the stream
    does not have and repeats are reported elsewhere, once per client."""
    problems: list[str] = []
    expected_ids = {event["id"] for event in expected}
    got = [event for event in received if event["id"] in stream.by_id]
    got_ids = {event["id"] for event in got}
    missing = [event for event in expected if event["id"] not in got_ids]
    if missing:
        problems.append(f"{label}: missing {_ids(missing)}")
    stray = [event for event in got if event["id"] not in expected_ids]
    if stray:
        problems.append(f"{label}: not expected here: {_ids(stray)}")
    previous: int | None = None
    for event in got:
        if previous is not None and event["id"] < previous:
            problems.append(f"{label}: {event['id']} came after {previous}")
        previous = event["id"] if previous is None else max(previous, event["id"])
    return problems


@dataclass
class _Pending:
    """After a welcome or joined, before the member's own join: the replay so far."""

    key: str
    what: str
    resume_after: int | None
    gap: bool
    history: list[Event]
    private: bool
    replay: list[Event] = field(default_factory=list)


@dataclass
class _Live:
    start: int
    events: list[Event] = field(default_factory=list)


class _ClientCheck:
    def __init__(self, client: ClientRecord, stream: _Stream, problems: list[str]) -> None:
        self.client = client
        self.stream = stream
        self.problems = problems
        self.names = {client.name.casefold()}
        for connection in client.connections:
            for frame in connection.frames:
                if frame.get("type") == "welcome":
                    self.names.add(str(frame.get("name", "")).casefold())
                elif frame.get("type") == "nick" and str(frame.get("old")).casefold() in self.names:
                    self.names.add(str(frame.get("new", "")).casefold())
        # Where each channel's last interval ended (None: left on purpose).
        self.last_end: dict[str, int | None] = {}

    def run(self) -> None:
        self._events_once()
        for number, connection in enumerate(self.client.connections, 1):
            self._connection(number, connection)

    def _events_once(self) -> None:
        """Every event: in the stream, as in the stream, and received once only
        (histories in welcome and joined aside: they repeat the past on purpose)."""
        where: dict[int, str] = {}
        name = self.client.name
        for number, connection in enumerate(self.client.connections, 1):
            for index, frame in enumerate(connection.frames):
                if not is_event(frame):
                    continue
                here = f"connection {number} frame {index}"
                event_id = frame["id"]
                stored = self.stream.by_id.get(event_id)
                if stored is None:
                    self.problems.append(f"{name}: event {event_id} ({here}) is not in the stream")
                elif dict(stored) != frame:
                    self.problems.append(
                        f"{name}: event {event_id} ({here}) differs from the stream's: "
                        f"{frame} != {dict(stored)}"
                    )
                if event_id in where:
                    self.problems.append(
                        f"{name}: event {event_id} received twice ({where[event_id]}, {here})"
                    )
                else:
                    where[event_id] = here

    def _connection(self, number: int, connection: ConnectionRecord) -> None:
        prefix = f"{self.client.name} connection {number} ({connection.address})"
        me = self.client.name
        pending: dict[str, _Pending] = {}
        live: dict[str, _Live] = {}
        private: _Live | None = None
        join_requests: dict[str, list[int | None]] = defaultdict(list)
        for room, after in connection.joins:
            join_requests[room.casefold()].append(after)
        for frame in connection.frames:
            kind = frame.get("type")
            if kind in ("welcome", "joined"):
                if kind == "welcome":
                    me = str(frame.get("name", me))
                key = str(frame.get("room", "lobby")).casefold()
                asked = (
                    connection.hello_resume_after
                    if kind == "welcome"
                    else (join_requests[key].pop(0) if join_requests[key] else None)
                )
                resumed = bool(frame.get("resumed"))
                if asked is not None and not resumed:
                    self.problems.append(f"{prefix}: asked to resume {key} but {kind} did not")
                pending[key] = _Pending(
                    key=key,
                    what=f"{prefix} {kind} {key}",
                    resume_after=asked if resumed else None,
                    gap=bool(frame.get("gap")),
                    history=[e for e in frame.get("history", ()) if isinstance(e, dict)],
                    private=kind == "welcome",
                )
                continue
            if not is_event(frame):
                continue
            channel = _room_key(frame)
            if channel is None:
                continue
            key = channel
            if key == PRIVATE:
                if private is not None:
                    private.events.append(frame)
                elif holder := next((p for p in pending.values() if p.private), None):
                    holder.replay.append(frame)
                else:
                    self.problems.append(f"{prefix}: dm {frame['id']} before any welcome")
                continue
            if key in pending:
                waiting = pending[key]
                if kind == "join" and frame.get("name") == me:
                    del pending[key]
                    self._replay(waiting, frame["id"])
                    live[key] = _Live(frame["id"], [frame])
                    if waiting.private:
                        private = _Live(frame["id"])
                else:
                    waiting.replay.append(frame)
            elif key in live:
                live[key].events.append(frame)
                if kind == "leave" and frame.get("name") == me:
                    interval = live.pop(key)
                    self._interval(f"{prefix} in {key}", key, interval, frame["id"])
                    self.last_end[key] = None
            else:
                self.problems.append(
                    f"{prefix}: event {frame['id']} of {key}, a room it was not in"
                )
            if kind == "nick" and frame.get("old") == me:
                me = str(frame.get("new", me))
        # The connection ended: each interval ends with the last event it received.
        for key, interval in live.items():
            self._interval(f"{prefix} in {key}", key, interval, interval.events[-1]["id"])
            self.last_end[key] = interval.events[-1]["id"]
        if private is not None:
            end = private.events[-1]["id"] if private.events else private.start
            self._interval(f"{prefix} private", PRIVATE, private, end)
            self.last_end[PRIVATE] = end
        for waiting in pending.values():
            self._replay(waiting, None)

    def _replay(self, waiting: _Pending, join_id: int | None) -> None:
        """Check what came between a welcome or joined and the member's own join
        (``join_id``; None when the connection ended first: then a prefix is fine)."""
        label = waiting.what
        if waiting.resume_after is None:
            if waiting.replay:
                self.problems.append(f"{label}: events before its own join: {_ids(waiting.replay)}")
            if join_id is not None and waiting.history:
                self._history(label, waiting, join_id)
            return
        after = waiting.resume_after
        keys = [waiting.key, PRIVATE] if waiting.private else [waiting.key]
        for key in keys:
            received = [e for e in waiting.replay if _room_key(e) == key]
            expected = [
                e
                for e in self.stream.channel(key, self.names)
                if after < e["id"] and (join_id is None or e["id"] < join_id)
            ]
            self._missed_across(label, key, after)
            if join_id is None:
                # Cut short: whatever came must be where the replay starts.
                expected = expected[: len(received)]
            if waiting.gap and received:
                # Gone to retention: only the oldest can be missing.
                first = received[0]["id"]
                expected = [e for e in expected if e["id"] >= first]
            elif waiting.gap:
                expected = []
            what = label if key != PRIVATE else f"{label} (private)"
            self.problems.extend(
                _compare(f"{what} replay after {after}", expected, received, self.stream)
            )

    def _missed_across(self, label: str, key: str, after: int) -> None:
        """Events between where the last connection's interval ended and where this
        one resumes: neither received before the drop nor replayed."""
        end = self.last_end.get(key)
        if end is None or after <= end:
            return
        lost = [e for e in self.stream.channel(key, self.names) if end < e["id"] <= after]
        if lost:
            self.problems.append(
                f"{label}: {key} resumed after {after} but the previous connection's last "
                f"was {end}: never received {_ids(lost)}"
            )

    def _history(self, label: str, waiting: _Pending, join_id: int) -> None:
        """A fresh welcome's or joined's history: the room's latest events before the
        join, consecutive, as stored."""
        before = [e for e in self.stream.channel(waiting.key, self.names) if e["id"] < join_id]
        expected = before[-len(waiting.history) :]
        got = [e.get("id") for e in waiting.history]
        if got != [e["id"] for e in expected]:
            self.problems.append(
                f"{label}: history is {got[:_SHOWN_IDS]}, the stream's latest before "
                f"{join_id} are {[e['id'] for e in expected][:_SHOWN_IDS]}"
            )
        for event in waiting.history:
            stored = self.stream.by_id.get(event.get("id", -1))
            if stored is not None and dict(stored) != event:
                self.problems.append(
                    f"{label}: history event {event['id']} differs from the stream's"
                )

    def _interval(self, label: str, key: str, interval: _Live, end: int) -> None:
        expected = [
            e for e in self.stream.channel(key, self.names) if interval.start <= e["id"] <= end
        ]
        span = f"{label} [{interval.start}..{end}]"
        self.problems.extend(_compare(span, expected, interval.events, self.stream))


def _nonces(stream: Sequence[Event], clients: Sequence[ClientRecord], problems: list[str]) -> None:
    counts: dict[tuple[str, str], int] = defaultdict(int)
    by_nonce: dict[str, int] = defaultdict(int)
    for event in stream:
        nonce = event.get("nonce")
        if event.get("type") in ("message", "dm") and isinstance(nonce, str):
            counts[(str(event.get("from", "")).casefold(), nonce)] += 1
            by_nonce[nonce] += 1
    for (sender, nonce), count in sorted(counts.items()):
        if count > 1:
            problems.append(f"stream: {sender}'s nonce {nonce!r} is stored {count} times")
    for client in clients:
        for nonce in sorted(client.acked):
            if by_nonce.get(nonce, 0) == 0:
                problems.append(f"{client.name}: acknowledged nonce {nonce!r} is not in the stream")


def check(stream: Sequence[Event], clients: Sequence[ClientRecord]) -> list[str]:
    """Everything wrong with what ``clients`` received, given the cluster's ``stream``
    (its events, oldest first); an empty list when nothing is.

    Args:
        stream: the events of ``chatroom:events`` (the ``event`` field), in order.
        clients: what each recording client sent and received, connection by connection.
    """
    problems: list[str] = []
    indexed = _Stream(stream, problems)
    for client in clients:
        _ClientCheck(client, indexed, problems).run()
    _nonces(stream, clients, problems)
    return problems
