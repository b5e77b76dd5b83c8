"""Members, rooms, ids and fan-out of encoded bytes. No parsing, no sockets, no reading.

The hub is the server's whole chat state behind a small interface (:meth:`Hub.join`,
:meth:`Hub.leave`, :meth:`Hub.say`, :meth:`Hub.members`), so that another backend, say
several server processes sharing rooms through a broker, can stand in its place without
the connection code changing.

Events are not written the moment they happen. Each loop iteration's events are gathered,
handed to the sinks (transcript, console, later the history store) in one batch, and only
then fanned out: a client can never hold an event that the transcript lacks, and the
cost of a durable append is shared by every event of the iteration. Fan-out writes each
member one buffer per iteration holding all of that iteration's events for it, so the
syscall is shared too, and each event is encoded exactly once.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from chatroom.framing import ErrorCode, ProtocolError
from chatroom.history import HistoryStore
from chatroom.names import check_name, name_keys
from chatroom.protocol import (
    DEFAULT_ROOM,
    Event,
    Join,
    Leave,
    LeaveReason,
    Message,
    Welcome,
    encode,
    format_ts,
)

__all__ = ["DEFAULT_HISTORY_EVENTS", "EventSink", "Hub", "Member", "Outbox"]

log = logging.getLogger(__name__)

# How many recent events a newcomer sees in welcome.history: a screenful and then some,
# as IRC bouncers and Matrix clients replay by default.
DEFAULT_HISTORY_EVENTS = 100


class Outbox(Protocol):
    """Where a member's bytes go. Implementations never await and never raise."""

    def send(self, payload: bytes) -> None: ...

    def close(self, reason: LeaveReason) -> None: ...


class EventSink(Protocol):
    """Something that records each batch of events before anyone is sent them."""

    def append(self, events: Sequence[Event]) -> None: ...


@dataclass(eq=False, slots=True)
class Member:
    """One joined connection: its name as stored, its outbox, and where it is."""

    name: str
    outbox: Outbox
    keys: frozenset[str]
    # room -> id of the member's own join event there: the first event it is sent.
    rooms: dict[str, int] = field(default_factory=dict)
    # Frames for this member alone (its welcome) that must follow the transcript write.
    replies: list[bytes] = field(default_factory=list)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Hub:
    """Chat state for one server: members, rooms, event ids, fan-out.

    Args:
        server_name: what ``welcome.server`` says, e.g. ``chatroom/0.1.0``.
        sinks: called with every batch of events, in order, before fan-out.
        now: the clock, a parameter so tests can pin timestamps.
        history_events: how many recent events ``welcome.history`` carries.
        first_id: the id the next event gets (ids never go back).
        max_text_chars: the longest message accepted.
    """

    def __init__(
        self,
        *,
        server_name: str,
        sinks: Iterable[EventSink] = (),
        now: Callable[[], datetime] = _utc_now,
        history_events: int = DEFAULT_HISTORY_EVENTS,
        first_id: int = 1,
        max_text_chars: int = 4000,
        store: HistoryStore | None = None,
    ) -> None:
        self.server_name = server_name
        self.max_text_chars = max_text_chars
        self._store = store
        # The store commits first: a client must never hold an event it lacks.
        self._sinks = ([store] if store is not None else []) + list(sinks)
        self._now = now
        self._next_id = max(first_id, store.last_id() + 1) if store is not None else first_id
        self._history_events = history_events
        self._by_key: dict[str, Member] = {}
        self._rooms: dict[str, dict[Member, None]] = {}
        self._history: dict[str, deque[Event]] = {}
        self._pending_events: list[tuple[Event, bytes]] = []
        self._pending_replies: list[Member] = []
        self._flush_handle: asyncio.Handle | None = None

    # ------------------------------------------------------------------ the interface

    def join(
        self,
        raw_name: str,
        outbox: Outbox,
        room: str = DEFAULT_ROOM,
        *,
        resume_after: int | None = None,
    ) -> Member:
        """Admit a member under ``raw_name`` and queue its welcome and join event.

        With ``resume_after``, the welcome carries no history; instead every event of the
        room with a higher id follows it as an ordinary frame, then the live stream
        (starting with the member's join): no gap, no duplicate.

        Raises:
            ProtocolError: ``invalid_name`` or ``name_taken``; nothing changes then.
        """
        name = check_name(raw_name)
        keys = name_keys(name)
        for key in keys:
            holder = self._by_key.get(key)
            if holder is not None:
                same = "is" if key.startswith("=") else "looks too much like one that is"
                raise ProtocolError(ErrorCode.NAME_TAKEN, f"that name {same} taken ({holder.name})")
        member = Member(name=name, outbox=outbox, keys=keys)
        for key in keys:
            self._by_key[key] = member
        if resume_after is not None:
            # Everything below the join id must be in the store before the replay reads it.
            self.flush()
        history = self._recent(room)
        event = Join(id=self._take_id(), ts=self._ts(), room=room, name=name)
        member.rooms[room] = event.id
        self._rooms.setdefault(room, {})[member] = None
        members = tuple(self.members(room))
        if resume_after is None:
            welcome = Welcome(
                name=name, server=self.server_name, room=room, members=members, history=history
            )
            member.replies.append(encode(welcome))
        else:
            replay, gap = self._events_between(room, resume_after, event.id)
            welcome = Welcome(
                name=name,
                server=self.server_name,
                room=room,
                members=members,
                resumed=True,
                gap=gap,
            )
            member.replies.append(encode(welcome))
            member.replies.extend(encode(item) for item in replay)
        self._pending_replies.append(member)
        self._publish(event)
        return member

    def leave(self, member: Member, reason: LeaveReason) -> None:
        """Remove ``member`` everywhere and tell each of its rooms. Safe to call twice."""
        if self._by_key.get(next(iter(member.keys))) is not member:
            return
        for key in member.keys:
            del self._by_key[key]
        for room in member.rooms:
            room_members = self._rooms.get(room)
            if room_members is not None:
                room_members.pop(member, None)
                if not room_members:
                    del self._rooms[room]
            self._publish(
                Leave(id=self._take_id(), ts=self._ts(), room=room, name=member.name, reason=reason)
            )
        member.rooms.clear()

    def say(
        self, member: Member, text: str, room: str = DEFAULT_ROOM, *, nonce: str | None = None
    ) -> Message:
        """Publish ``text`` from ``member`` to ``room``; the sender's copy is its ack.

        Raises:
            ProtocolError: ``too_long`` past the text limit, ``not_joined`` outside the room.
        """
        if len(text) > self.max_text_chars:
            raise ProtocolError(
                ErrorCode.TOO_LONG,
                f"a message has at most {self.max_text_chars} characters (got {len(text)})",
            )
        if room not in member.rooms:
            raise ProtocolError(ErrorCode.NOT_JOINED, f"not a member of {room!r}")
        event = Message(
            id=self._take_id(), ts=self._ts(), room=room, sender=member.name, text=text, nonce=nonce
        )
        self._publish(event)
        return event

    def shutdown(self) -> None:
        """Everyone leaves with reason ``shutdown``, and everyone is told, themselves too.

        The leave events are recorded and sent while all members are still in their rooms,
        so each client learns why the connection is about to close.
        """
        self.flush()
        members = self.all_members()
        for member in members:
            for room in member.rooms:
                self._publish(
                    Leave(
                        id=self._take_id(),
                        ts=self._ts(),
                        room=room,
                        name=member.name,
                        reason=LeaveReason.SHUTDOWN,
                    )
                )
        self.flush()
        for member in members:
            member.rooms.clear()
        self._by_key.clear()
        self._rooms.clear()

    def history_page(self, room: str, before: int | None, limit: int) -> tuple[list[Event], bool]:
        """Up to ``limit`` events of ``room`` older than ``before`` (None: the newest),
        oldest first, and whether older ones remain."""
        below = self._next_id if before is None else before
        if self._store is not None:
            self.flush()
            return self._store.before(room, below, limit)
        older = [event for event in self._history.get(room, ()) if event.id < below]
        return older[-limit:], len(older) > limit

    def members(self, room: str = DEFAULT_ROOM) -> list[str]:
        """Names in ``room``, in the order they joined."""
        return [member.name for member in self._rooms.get(room, ())]

    def all_members(self) -> list[Member]:
        """Every joined member, once."""
        return list({id(m): m for m in self._by_key.values()}.values())

    @property
    def last_id(self) -> int:
        """The id of the newest event (0 before the first)."""
        return self._next_id - 1

    def flush(self) -> None:
        """Record the pending events in every sink, then send everyone their share.

        Runs by itself once per loop iteration after anything was published; callers
        that stop the loop (shutdown) call it to push out the last batch.
        """
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        while self._pending_events or self._pending_replies:
            self._flush_once()

    # ------------------------------------------------------------------ internals

    def _recent(self, room: str) -> tuple[Event, ...]:
        history = self._history.get(room)
        if history is None:
            history = self._history[room] = deque(maxlen=self._history_events)
            if self._store is not None:
                history.extend(self._store.recent(room, self._history_events))
        return tuple(history)

    def _events_between(self, room: str, after_id: int, below_id: int) -> tuple[list[Event], bool]:
        """Events of ``room`` with ids strictly between, and whether some are gone."""
        if self._store is not None:
            return self._store.after(room, after_id, below_id)
        recent = self._history.get(room, deque())
        replay = [event for event in recent if after_id < event.id < below_id]
        # Without a store only the recent window is known; older ids count as a gap.
        oldest = recent[0].id if recent else self._next_id
        return replay, after_id + 1 < oldest and after_id < self.last_id

    def _take_id(self) -> int:
        event_id = self._next_id
        self._next_id += 1
        return event_id

    def _ts(self) -> str:
        return format_ts(self._now())

    def _publish(self, event: Event) -> None:
        self._pending_events.append((event, encode(event)))
        history = self._history.get(event.room)
        if history is None:
            self._recent(event.room)
            history = self._history[event.room]
        history.append(event)
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        if self._flush_handle is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # no loop (hub tests drive flush() by hand)
            self._flush_handle = loop.call_soon(self._flush_from_loop)

    def _flush_from_loop(self) -> None:
        self._flush_handle = None
        self.flush()

    def _flush_once(self) -> None:
        batch = self._pending_events
        self._pending_events = []
        waiting_replies = self._pending_replies
        self._pending_replies = []
        if batch:
            events = [event for event, _ in batch]
            for sink in self._sinks:
                try:
                    sink.append(events)
                except Exception:
                    # A sink reports its own failures loudly; the chat goes on regardless.
                    log.exception("event sink %r failed", sink)

        outgoing: dict[Member, list[bytes]] = {}
        for member in waiting_replies:
            if member.replies:
                outgoing[member] = member.replies
                member.replies = []

        by_room: dict[str, list[tuple[Event, bytes]]] = {}
        for item in batch:
            by_room.setdefault(item[0].room, []).append(item)
        for room, items in by_room.items():
            room_members = self._rooms.get(room)
            if not room_members:
                continue
            first_id = items[0][0].id
            shared = b"".join(payload for _, payload in items)
            for member in room_members:
                since = member.rooms[room]
                if since <= first_id:
                    chunk = shared
                else:
                    # Joined during this batch: its stream starts at its own join event.
                    chunk = b"".join(payload for event, payload in items if event.id >= since)
                chunks = outgoing.get(member)
                if chunks is None:
                    outgoing[member] = [chunk]
                else:
                    chunks.append(chunk)

        for member, chunks in outgoing.items():
            member.outbox.send(chunks[0] if len(chunks) == 1 else b"".join(chunks))
