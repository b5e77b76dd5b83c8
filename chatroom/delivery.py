"""Who gets which bytes of a flush: members, their outboxes and wire formats, fan-out.

The hub decides what happens and in which order; this module writes the outcome. Each
flush's events reach every member in one write: the same bytes for every NDJSON member
of a room in the common case, and for the members of each other wire format the same
bytes made once for that format.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol, TypeGuard

from chatroom.protocol import Event, Join, Leave, LeaveReason, ServerFrame

__all__ = [
    "Batch",
    "Member",
    "Outbox",
    "WireFormat",
    "fan_out_in_order",
    "is_presence",
    "send_all",
    "send_one_room",
    "take_replies",
]


class Outbox(Protocol):
    """Where a member's bytes go. Implementations never await and never raise."""

    def send(self, payload: bytes) -> None: ...

    def close(self, reason: LeaveReason) -> None: ...


class WireFormat(Protocol):
    """A wire format other than NDJSON, as the hub writes it to its members.

    The hub calls :meth:`encode_event` at most once per event and format, and shares the
    result among that format's members; :meth:`frame` wraps each write (a WebSocket
    message's header, say) and may return its argument.
    """

    def encode_event(self, event: Event, ndjson: bytes) -> bytes:
        """``event`` in this format (``ndjson``: the same event as NDJSON bytes)."""

    def encode_reply(self, frame: ServerFrame, ndjson: bytes) -> bytes:
        """A frame for one member alone (welcome, joined, members) in this format."""

    def frame(self, body: bytes) -> bytes:
        """One write of already encoded events and replies, ready for the outbox."""

    def skips(self, event: Event) -> str | None:
        """The name of the member not sent ``event`` in this format (its own doing,
        which the format shows otherwise or not at all), or None."""

    def collapses(self, event: Event) -> object | None:
        """A key such that, of a member's consecutive events with equal keys in one
        flush, only the first is sent (None: always sent)."""


@dataclass(eq=False, slots=True)
class Member:
    """One joined connection: its name as stored, its outbox, and where it is."""

    name: str
    outbox: Outbox
    keys: frozenset[str]
    # room -> id of the member's own join event there: the first event it is sent.
    rooms: dict[str, int] = field(default_factory=dict)
    # Frames for this member alone (welcome, replay) that must follow the sinks' append.
    replies: list[bytes] = field(default_factory=list)
    # hello.lazy_members: no joins and leaves of others in rooms over the threshold.
    lazy: bool = False
    # None: NDJSON, the hub's own bytes.
    wire: WireFormat | None = None


# A flush's events in id order: (event, its NDJSON bytes, members who get it besides
# the room's: DM parties, a parter).
Batch = list[tuple[Event, bytes, tuple[Member, ...]]]


def is_presence(event: Event) -> TypeGuard[Join | Leave]:
    """A join or a leave: what lazy members of big rooms are not sent of others."""
    return isinstance(event, Join | Leave)


def take_replies(members: Iterable[Member]) -> dict[Member, list[bytes]]:
    """The queued replies of ``members``, taken from them."""
    taken: dict[Member, list[bytes]] = {}
    for member in members:
        if member.replies:
            taken[member], member.replies = member.replies, []
    return taken


def send_all(outgoing: dict[Member, list[bytes]]) -> None:
    """One write per member of everything queued for it."""
    for member, chunks in outgoing.items():
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        member.outbox.send(body if member.wire is None else member.wire.frame(body))


def _picks(batch: Batch, since: int, lazy: bool, name: str) -> list[int]:
    """The indexes of a batch's events for a member that joined during the batch (its
    stream starts at its own join event), or is lazy with its own join or leave in it
    (kept; others' are not)."""
    return [
        index
        for index, (event, _, _) in enumerate(batch)
        if event.id >= since and not (lazy and is_presence(event) and event.name != name)
    ]


class _Encoded:
    """One batch's events in the other wire formats, each encoded at most once."""

    __slots__ = ("_batch", "_by_wire", "_skippers", "_skips")

    def __init__(self, batch: Batch) -> None:
        self._batch = batch
        self._by_wire: dict[WireFormat, list[bytes | None]] = {}
        self._skips: dict[WireFormat, list[str | None]] = {}
        self._skippers: dict[WireFormat, set[str | None]] = {}

    def skips(self, wire: WireFormat) -> list[str | None]:
        """Per event, whose own it is in ``wire`` (see WireFormat.skips)."""
        skips = self._skips.get(wire)
        if skips is None:
            skips = self._skips[wire] = [wire.skips(event) for event, _, _ in self._batch]
            self._skippers[wire] = set(skips)
        return skips

    def skippers(self, wire: WireFormat) -> set[str | None]:
        """Who is not sent some event of the batch in ``wire``."""
        self.skips(wire)
        return self._skippers[wire]

    def for_member(
        self, index: int, member: Member, wire: WireFormat, last: dict[Member, object]
    ) -> bytes | None:
        """The event in ``wire`` for ``member``, or None when it is not sent to it."""
        if self.skips(wire)[index] == member.name:
            return None
        key = wire.collapses(self._batch[index][0])
        if key is not None and last.get(member) == key:
            return None
        last[member] = key
        return self.event(index, wire)

    def event(self, index: int, wire: WireFormat) -> bytes:
        encoded = self._by_wire.get(wire)
        if encoded is None:
            encoded = self._by_wire[wire] = [None] * len(self._batch)
        data = encoded[index]
        if data is None:
            event, payload, _ = self._batch[index]
            data = encoded[index] = wire.encode_event(event, payload)
        return data

    def joined(self, indexes: Iterable[int], wire: WireFormat) -> bytes:
        return b"".join([self.event(index, wire) for index in indexes])


def send_one_room(
    room: str,
    room_members: dict[Member, None] | None,
    foreign: dict[Member, None] | None,
    big: bool,
    batch: Batch,
    outgoing: dict[Member, list[bytes]],
) -> None:
    """The hot path: one room's events, joined once, the same bytes to every member.

    Sends as it goes, instead of collecting a list per member and sending in a second
    pass: at hundreds of members that bookkeeping costs as much as the hub's share of
    the send. A member with a pending reply (its welcome) gets it in the same write,
    first; ``outgoing`` keeps only the replies of members outside this room.
    """
    if not room_members:
        return
    first_id = batch[0][0].id
    shared = b"".join([payload for _, payload, _ in batch])
    quiet: bytes | None = None  # the batch without joins and leaves, for lazy members
    # Who the batch's joins and leaves are about: a lazy member keeps its own.
    named = {event.name for event, _, _ in batch if is_presence(event)} if big else set()
    # A copy: a send that drops a slow reader takes it out of the room.
    members = (
        tuple(room_members)
        if foreign is None
        else [member for member in room_members if member.wire is None]
    )
    for member in members:
        since = member.rooms.get(room)
        if since is None:
            continue
        lazy = big and member.lazy
        if not lazy and since <= first_id:
            chunk = shared
        elif lazy and since < first_id and member.name not in named:
            if quiet is None:
                quiet = b"".join([payload for event, payload, _ in batch if not is_presence(event)])
            chunk = quiet
        else:
            chunk = b"".join([batch[index][1] for index in _picks(batch, since, lazy, member.name)])
        replies = outgoing.pop(member, None) if outgoing else None
        if replies is not None:
            replies.append(chunk)
            chunk = b"".join(replies)
        if chunk:
            member.outbox.send(chunk)
    if foreign is not None:
        send_foreign(room, batch, tuple(foreign), outgoing, big, named)


def send_foreign(
    room: str,
    batch: Batch,
    members: tuple[Member, ...],
    outgoing: dict[Member, list[bytes]],
    big: bool,
    named: set[str],
) -> None:
    """:func:`send_one_room` for the members of other wire formats: the same choice
    of events, each format's bytes made once and shared by its members."""
    encoded = _Encoded(batch)
    first_id = batch[0][0].id
    everything = range(len(batch))
    quiet = [index for index, (event, _, _) in enumerate(batch) if not is_presence(event)]
    # (format, "whole" or "quiet") -> the framed write every such member gets.
    writes: dict[tuple[WireFormat, str], bytes] = {}
    # The common case, as for NDJSON: the whole batch, made once per format.
    whole: dict[WireFormat, bytes] = {}
    skippers: dict[WireFormat, set[str | None]] = {}
    for member in members:
        since = member.rooms.get(room)
        wire = member.wire
        if since is None or wire is None:
            continue
        skipping = skippers.get(wire)
        if skipping is None:
            skipping = skippers[wire] = encoded.skippers(wire)
        lazy = big and member.lazy
        if (
            since <= first_id
            and not lazy
            and member.name not in skipping
            and not (outgoing and member in outgoing)
        ):
            chunk = whole.get(wire)
            if chunk is None:
                body = encoded.joined(everything, wire)
                chunk = whole[wire] = wire.frame(body) if body else b""
            if chunk:
                member.outbox.send(chunk)
            continue
        picks: Iterable[int]
        if not lazy and since <= first_id:
            share, picks = "whole", everything
        elif lazy and since < first_id and member.name not in named:
            share, picks = "quiet", quiet
        else:
            share, picks = "", _picks(batch, since, lazy, member.name)
        if member.name in skipping:
            skips = encoded.skips(wire)
            share, picks = "", [index for index in picks if skips[index] != member.name]
        replies = outgoing.pop(member, None) if outgoing else None
        if replies is None and share:
            chunk = writes.get((wire, share))
            if chunk is None:
                body = encoded.joined(picks, wire)
                chunk = writes[wire, share] = wire.frame(body) if body else b""
        else:
            body = b"".join([*(replies or ()), encoded.joined(picks, wire)])
            chunk = wire.frame(body) if body else b""
        if chunk:
            member.outbox.send(chunk)


def fan_out_in_order(
    rooms: dict[str, dict[Member, None]],
    big_rooms: set[str],
    batch: Batch,
    outgoing: dict[Member, list[bytes]],
) -> None:
    """Several rooms or private deliveries: each member gets its events in id order."""
    encoded = _Encoded(batch)
    # Members of other formats: the key of the last event each was sent (collapses).
    last: dict[Member, object] = {}
    for index, (event, payload, also) in enumerate(batch):
        room_members = rooms.get(event.room, {}) if event.room else {}
        lazy_skip = event.name if is_presence(event) and event.room in big_rooms else None
        receivers = [
            member
            for member in room_members
            if member.rooms[event.room] <= event.id
            and not (member.lazy and lazy_skip is not None and lazy_skip != member.name)
        ]
        receivers.extend(member for member in also if member not in room_members)
        for member in receivers:
            wire = member.wire
            if wire is None:
                outgoing.setdefault(member, []).append(payload)
            else:
                data = encoded.for_member(index, member, wire, last)
                if data is not None:
                    outgoing.setdefault(member, []).append(data)
