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

Members whose transport speaks another wire format (a :class:`WireFormat`) get the
same events in that format: each event is encoded for it lazily, at most once per
format, and the bytes are shared by every member of that format, as the NDJSON bytes
are shared by every NDJSON member. Which bytes each member gets is
:mod:`chatroom.delivery`'s part.

The module is longer than most (about 900 lines) because what it holds is one piece of
state read by every flush: members, rooms, ids, the recent-history and welcome caches,
the flush's pacing and the hooks moderation needs. Split apart, each part would reach
into the others'. The moderation rules themselves live in ``authority.py``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
import unicodedata
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence, Sized
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from chatroom.delivery import (
    Batch,
    Member,
    Outbox,
    WireFormat,
    fan_out_in_order,
    send_all,
    send_one_room,
    take_replies,
)
from chatroom.framing import ErrorCode, ProtocolError
from chatroom.history import HistoryStore
from chatroom.names import check_name, name_keys
from chatroom.protocol import (
    DEFAULT_ROOM,
    Dm,
    Event,
    Join,
    Joined,
    Leave,
    LeaveReason,
    Members,
    Message,
    Mod,
    Nick,
    RoomInfo,
    ServerFrame,
    Topic,
    Welcome,
    encode,
    format_ts,
)
from chatroom.stats import Stats

__all__ = [
    "DEFAULT_HISTORY_EVENTS",
    "MAX_ROOMS",
    "MAX_ROOMS_PER_MEMBER",
    "MAX_TOPIC_CHARS",
    "EventSink",
    "Hub",
    "Member",
    "Outbox",
    "WireFormat",
]

if TYPE_CHECKING:
    from chatroom.authority import Authority

log = logging.getLogger(__name__)

# How many recent events a newcomer sees in welcome.history: a screenful and then some,
# as IRC bouncers and Matrix clients replay by default.
DEFAULT_HISTORY_EVENTS = 100
# A flush costs one write per member however few events it carries, and a loopback
# write is several microseconds of kernel time. When events trickle in one per loop
# iteration, flushing each at once makes the room's writes the server's whole load (100
# members at 3,900 messages/s kept a core at 99 %, and latency grew with the queue; a
# 10,000-member room spent 50 ms writing each handful of joins). So the next flush waits
# until FLUSH_PACING times the cost of recent flushes has passed: writes then take at
# most two thirds of the time, and each carries what arrived meanwhile. The wait is
# bounded by FLUSH_WAIT_MAX_S and is shorter than the flush it follows, so it costs a
# big room less latency than one more flush would. An idle server, a small room or a
# burst of FLUSH_NOW_EVENTS events flushes at once, as before; welcomes never wait.
FLUSH_PACING = 0.5
FLUSH_WAIT_MAX_S = 0.05
FLUSH_NOW_EVENTS = 64
FLUSH_COST_SMOOTHING = 0.25
# The history writer (a thread at idle priority) gets the core only when the loop leaves
# it free, and under a steady load that is mostly the pacing wait. Each FLUSH_STRETCH_ROWS
# rows it is behind add one more FLUSH_PACING to the wait, so it keeps up without the
# loop ever stopping for it. (Lending it the core after each flush instead, by waiting
# for its commit, kept the loop from reading meanwhile: at 9,000 msg/s, R=100, 7 pairs
# of runs, p99 1.49-2.37 ms against 1.27-2.09 ms this way; the writer stays under
# 1,250 rows behind.)
FLUSH_STRETCH_ROWS = 1024
# Every member of a room is sent every join and leave: joining C people costs C²/2
# deliveries (10,000 people: 50 million events, 4.7 GB). A client that says
# hello.lazy_members is spared other members' joins and leaves while a room has more
# than this many members, as big IRC-like services do; it asks `who` for the list.
LAZY_MEMBERS_ABOVE = 200
# IRC networks settle on a few dozen channels per user (Libera: 250 with a cloak, 120
# without); a small-team chat needs far fewer, and each room costs history in memory.
MAX_ROOMS_PER_MEMBER = 20
MAX_ROOMS = 1000
# A topic is a line, not a message: IRC's TOPICLEN is commonly 300 to 390.
MAX_TOPIC_CHARS = 300


class EventSink(Protocol):
    """Something that records each batch of events before anyone is sent them."""

    def append(self, events: Sequence[Event]) -> None: ...


# The members of a welcome are encoded one by one, as they join, with this.
_STRING_ENCODER = json.JSONEncoder(ensure_ascii=False)


def _json_string(text: str) -> bytes:
    """``text`` as a JSON string, as ``encode()`` writes it inside a frame."""
    return _STRING_ENCODER.encode(text).encode("utf-8")


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _no_roles(room: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return (), ()


def _room_error(exc: ProtocolError) -> ProtocolError:
    return ProtocolError(ErrorCode.INVALID_ROOM, exc.detail.replace("a name", "a room name"))


class Hub:
    """Chat state for one server: members, rooms, event ids, fan-out.

    Args:
        server_name: what ``welcome.server`` says, e.g. ``chatroom/0.1.0``.
        sinks: called with every batch of events, in order, before fan-out.
        now: the clock, a parameter so tests can pin timestamps.
        clock: seconds, for pacing flushes (see FLUSH_PACING); tests pass a fake one.
        history_events: how many recent events ``welcome.history`` carries.
        first_id: the id the next event gets (ids never go back).
        max_text_chars: the longest message accepted.
        store: the history store; it is appended to before every other sink.
        lazy_members_above: room size above which lazy members get no joins and leaves
            of others.
    """

    def __init__(
        self,
        *,
        server_name: str,
        sinks: Iterable[EventSink] = (),
        now: Callable[[], datetime] = _utc_now,
        clock: Callable[[], float] = time.monotonic,
        history_events: int = DEFAULT_HISTORY_EVENTS,
        first_id: int = 1,
        max_text_chars: int = 4000,
        store: HistoryStore | None = None,
        lazy_members_above: int = LAZY_MEMBERS_ABOVE,
    ) -> None:
        self.server_name = server_name
        self.max_text_chars = max_text_chars
        self.lazy_members_above = lazy_members_above
        self._store = store
        # The store commits first: a client must never hold an event it lacks.
        self._sinks = ([store] if store is not None else []) + list(sinks)
        self._now = now
        self._ts_millis = -1
        self._ts_text = ""
        self._clock = clock
        self._next_id = max(first_id, store.last_id() + 1) if store is not None else first_id
        self._history_events = history_events
        self._by_key: dict[str, Member] = {}
        # Rooms by their name as first created; names compare case-insensitively.
        self._rooms: dict[str, dict[Member, None]] = {}
        # The members of each room who speak another wire format, when it has any: the
        # fan-out's NDJSON loop stays as it was for rooms without them.
        self._foreign: dict[str, dict[Member, None]] = {}
        self._room_names: dict[str, str] = {DEFAULT_ROOM.casefold(): DEFAULT_ROOM}
        self._topics: dict[str, str] = store.topics() if store is not None else {}
        self._history: dict[str, deque[Event]] = {}
        # Each history event as encoded for the wire (no newline), in step with _history,
        # and each room's member names as JSON strings in join order (None: rebuild). A
        # welcome is spliced from these instead of encoding a hundred events and every
        # member's name again for each newcomer: at 10,000 members that was 0.75 ms a join.
        self._history_wire: dict[str, deque[bytes]] = {}
        self._names_wire: dict[str, bytearray | None] = {}
        # (event, its bytes, members who get it besides the room's: DM parties, a parter)
        self._pending_events: Batch = []
        self._pending_replies: list[Member] = []
        self._flush_handle: asyncio.Handle | None = None
        # The time on self._clock before which no flush is to start.
        self._next_flush_at = 0.0
        # Rooms over lazy_members_above as of the last flush (see _update_big_rooms).
        self._big_rooms: set[str] = set()
        self._flush_cost = 0.0  # seconds, smoothed over recent flushes
        self._replies_handle: asyncio.Handle | None = None
        # Counted per flush and per batch, read by the metrics at scrape time.
        self.stats = Stats()
        # Accounts, roles and moderation, when the server keeps accounts: they set these.
        self.authority: Authority | None = None
        # A room's (ops, voices) for welcome, joined and members.
        self.room_roles: Callable[[str], tuple[tuple[str, ...], tuple[str, ...]]] = _no_roles

    # ------------------------------------------------------------------ the interface

    def join(
        self,
        raw_name: str,
        outbox: Outbox,
        room: str = DEFAULT_ROOM,
        *,
        resume_after: int | None = None,
        lazy: bool = False,
        wire: WireFormat | None = None,
        account: str | None = None,
        roles: tuple[str, ...] = (),
        session: str | None = None,
        refused: Callable[[ProtocolError], None] | None = None,
    ) -> Member:
        """Admit a member under ``raw_name``, in ``room``; queue its welcome and join event.

        With ``resume_after``, the welcome carries no history; instead every event of the
        room (and every private message of the member) with a higher id follows it as an
        ordinary frame, then the live stream, starting with the member's join: no gap, no
        duplicate. ``wire`` is the member's wire format when it is not NDJSON.
        ``account`` and ``roles``: what the welcome says the member logged in as.
        ``session`` and ``refused`` serve a hub that decides later (a cluster node's):
        the token of the session this one replaces, and where a later refusal goes.

        Raises:
            ProtocolError: ``invalid_name`` or ``name_taken``; nothing changes then.
        """
        name = check_name(raw_name)
        keys = name_keys(name)
        self._check_free(keys, None)
        member = Member(name=name, outbox=outbox, keys=keys, lazy=lazy, wire=wire)
        self._admit(member, room, resume_after, account, roles)
        return member

    def _admit(
        self,
        member: Member,
        room: str,
        resume_after: int | None,
        account: str | None,
        roles: tuple[str, ...],
        session: str | None = None,
    ) -> None:
        """Register a checked ``member``, put it in ``room`` and queue its welcome (with
        ``session``, a reconnect token, when the server hands them out) and join."""
        for key in member.keys:
            self._by_key[key] = member
        room = self._room_names.setdefault(room.casefold(), room)
        _, replay, gap, join_event = self._enter(member, room, resume_after)
        ops, voices = self.room_roles(room)
        # Members and history are spliced in by _encode_welcome, from cached bytes.
        welcome = Welcome(
            name=member.name,
            server=self.server_name,
            room=room,
            members=(),
            history=(),
            resumed=resume_after is not None,
            gap=gap,
            lazy_members_above=self.lazy_members_above if member.lazy else None,
            account=account,
            roles=roles,
            ops=ops,
            voices=voices,
            session=session,
        )
        with_history = resume_after is None
        encoded = self._encode_welcome(welcome, with_history=with_history)
        if member.wire is not None:
            # Spliced only in the NDJSON bytes; another format may need the lists.
            welcome = dataclasses.replace(
                welcome,
                members=tuple(self.members(room)),
                history=self._recent(room) if with_history else (),
            )
        self._queue_reply(member, welcome, encoded, replay)
        self._publish(join_event)

    def join_room(self, member: Member, raw_room: str, *, resume_after: int | None = None) -> str:
        """Put ``member`` in another room (created if new); queue ``joined`` and the join.

        Returns the room's name as stored.

        Raises:
            ProtocolError: ``invalid_room``, ``bad_request`` (already there),
                ``too_many_rooms``.
        """
        room = self._room_name(raw_room)
        if room in member.rooms:
            raise ProtocolError(ErrorCode.BAD_REQUEST, f"already in {room!r}")
        if len(member.rooms) >= MAX_ROOMS_PER_MEMBER:
            raise ProtocolError(
                ErrorCode.TOO_MANY_ROOMS, f"at most {MAX_ROOMS_PER_MEMBER} rooms at once"
            )
        if room not in self._rooms and len(self._rooms) >= MAX_ROOMS:
            raise ProtocolError(ErrorCode.TOO_MANY_ROOMS, "this server has no room for more rooms")
        self._enter_room(member, room, resume_after)
        return room

    def _enter_room(self, member: Member, room: str, resume_after: int | None) -> None:
        """Put a checked ``member`` in another room; queue ``joined`` and the join."""
        history, replay, gap, join_event = self._enter(member, room, resume_after, private=False)
        ops, voices = self.room_roles(room)
        joined = Joined(
            room=room,
            members=tuple(self.members(room)),
            topic=self._topics.get(room, ""),
            history=history,
            resumed=resume_after is not None,
            gap=gap,
            lazy_members_above=self.lazy_members_above if member.lazy else None,
            ops=ops,
            voices=voices,
        )
        self._queue_reply(member, joined, encode(joined), replay)
        self._publish(join_event)

    def part(self, member: Member, raw_room: str) -> None:
        """Take ``member`` out of a room; the room and the member see ``leave`` (``part``).

        Raises:
            ProtocolError: ``not_joined`` when the member is not in that room.
        """
        room = self._room_names.get(raw_room.casefold(), raw_room)
        if room not in member.rooms:
            raise ProtocolError(ErrorCode.NOT_JOINED, f"not in {raw_room[:40]!r}")
        # Deliver what the room said before the part to the parting member as well.
        self.flush()
        self._remove_from_room(member, room)
        event = Leave(
            id=self._take_id(), ts=self._ts(), room=room, name=member.name, reason=LeaveReason.PART
        )
        self._publish(event, also=(member,))

    def leave(self, member: Member, reason: LeaveReason) -> None:
        """Remove ``member`` everywhere and tell each of its rooms. Safe to call twice."""
        if self._by_key.get(next(iter(member.keys))) is not member:
            return
        for key in member.keys:
            del self._by_key[key]
        for room in list(member.rooms):
            self._remove_from_room(member, room)
            self._publish(
                Leave(id=self._take_id(), ts=self._ts(), room=room, name=member.name, reason=reason)
            )

    def say(
        self,
        member: Member,
        text: str,
        room: str = DEFAULT_ROOM,
        *,
        nonce: str | None = None,
        action: bool = False,
    ) -> Message:
        """Publish ``text`` from ``member`` to ``room``; the sender's copy is its ack.

        Raises:
            ProtocolError: ``too_long`` past the text limit, ``not_joined`` outside the room.
        """
        self._check_text(text)
        room = self._room_names.get(room.casefold(), room)
        if room not in member.rooms:
            raise ProtocolError(ErrorCode.NOT_JOINED, f"not in {room[:40]!r}")
        event = Message(
            id=self._take_id(),
            ts=self._ts(),
            room=room,
            sender=member.name,
            text=text,
            nonce=nonce,
            action=action,
        )
        self._publish(event)
        return event

    def dm(
        self,
        member: Member,
        to: str,
        text: str,
        *,
        nonce: str | None = None,
        action: bool = False,
    ) -> Dm:
        """Send a private message: delivered to both parties and nobody else.

        Raises:
            ProtocolError: ``too_long``, or ``no_such_member`` when nobody has that name.
        """
        self._check_text(text)
        recipient = self._by_key.get("=" + unicodedata.normalize("NFC", to).casefold())
        if recipient is None:
            raise ProtocolError(ErrorCode.NO_SUCH_MEMBER, f"nobody here is called {to[:40]!r}")
        event = Dm(
            id=self._take_id(),
            ts=self._ts(),
            sender=member.name,
            to=recipient.name,
            text=text,
            nonce=nonce,
            action=action,
        )
        self._publish(event, also=(member,) if recipient is member else (member, recipient))
        return event

    def set_topic(self, member: Member, raw_room: str, text: str) -> None:
        """Set a room's topic; everyone in the room gets a ``topic`` event.

        Raises:
            ProtocolError: ``not_joined`` outside the room, ``too_long`` past the limit.
        """
        room = self._room_names.get(raw_room.casefold(), raw_room)
        if room not in member.rooms:
            raise ProtocolError(ErrorCode.NOT_JOINED, f"not in {raw_room[:40]!r}")
        self._check_topic(text)
        self._topics[room] = text
        self._publish(
            Topic(id=self._take_id(), ts=self._ts(), room=room, sender=member.name, text=text)
        )

    def rename(self, member: Member, raw_name: str) -> None:
        """Give ``member`` a new name; every room it is in gets a ``nick`` event.

        Raises:
            ProtocolError: ``invalid_name`` or ``name_taken``; nothing changes then.
        """
        name = check_name(raw_name)
        keys = name_keys(name)
        self._check_free(keys, member)
        old = member.name
        if name == old:
            return
        for key in member.keys:
            del self._by_key[key]
        member.keys = keys
        member.name = name
        for key in keys:
            self._by_key[key] = member
        for room in member.rooms:
            self._names_wire[room] = None
        if not member.rooms:
            nick = Nick(id=self._take_id(), ts=self._ts(), room="", old=old, new=name)
            self._publish(nick, also=(member,))
        for room in member.rooms:
            self._publish(Nick(id=self._take_id(), ts=self._ts(), room=room, old=old, new=name))

    def find(self, raw_name: str) -> Member | None:
        """The member called ``raw_name`` (case aside), if any."""
        return self._by_key.get("=" + unicodedata.normalize("NFC", raw_name).casefold())

    def occupied(self, raw_room: str) -> bool:
        """Whether anyone is in the room now."""
        return self.room_name(raw_room) in self._rooms

    def room_name(self, raw_room: str) -> str:
        """A room's name as the hub first stored it (``raw_room`` if never seen)."""
        return self._room_names.get(raw_room.casefold(), raw_room)

    def mod_event(
        self,
        room: str,
        by: str,
        action: str,
        target: str,
        *,
        also: tuple[Member, ...] = (),
        **details: Any,
    ) -> Mod:
        """Publish a moderation action: the room's audit log (``""``: the server's,
        sent to ``also`` alone)."""
        event = Mod(
            id=self._take_id(),
            ts=self._ts(),
            room=room,
            by=by,
            action=action,
            target=target,
            **details,
        )
        self._publish(event, also=also)
        return event

    def kick(self, member: Member, room: str, by: str, text: str) -> None:
        """Put ``member`` out of ``room``: the room and the member see ``leave`` with
        reason ``kicked``, ``by`` and ``text``."""
        if room not in member.rooms:
            return
        self._remove_from_room(member, room)
        event = Leave(
            id=self._take_id(),
            ts=self._ts(),
            room=room,
            name=member.name,
            reason=LeaveReason.KICKED,
            by=by,
            text=text,
        )
        self._publish(event, also=(member,))

    def expel(self, member: Member, by: str, text: str) -> None:
        """Put ``member`` out of the server: kicked from every room (told why), then
        its connection closes once that is written."""
        if self._by_key.get(next(iter(member.keys))) is not member:
            return
        for room in list(member.rooms):
            self.kick(member, room, by, text)
        for key in member.keys:
            del self._by_key[key]
        self.flush()
        member.outbox.close(LeaveReason.KICKED)

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
        self._foreign.clear()
        self._big_rooms.clear()
        self._names_wire.clear()

    def history_page(
        self, member: Member, room: str, before: int | None, limit: int
    ) -> tuple[list[Event], bool]:
        """Up to ``limit`` events older than ``before`` (None: the newest), oldest first,
        and whether older ones remain. ``room`` is a room the member is in, or ``@name``
        for the private messages between the member and ``name``.

        Raises:
            ProtocolError: ``not_joined`` for a room the member is not in.
        """
        below = self._next_id if before is None else before
        if room.startswith("@"):
            if self._store is None:
                return [], False
            self.flush()
            return self._store.private_before(member.name, room[1:], below, limit)
        room = self._room_names.get(room.casefold(), room)
        if room not in member.rooms:
            raise ProtocolError(ErrorCode.NOT_JOINED, f"not in {room[:40]!r}")
        if self._store is not None:
            self.flush()
            return self._store.before(room, below, limit)
        older = [event for event in self._history.get(room, ()) if event.id < below]
        return older[-limit:], len(older) > limit

    def members(self, room: str = DEFAULT_ROOM) -> list[str]:
        """Names in ``room``, in the order they joined."""
        room = self._room_names.get(room.casefold(), room)
        return [member.name for member in self._rooms.get(room, ())]

    def rooms(self) -> list[RoomInfo]:
        """Every room with members, by name."""
        return [
            RoomInfo(name=room, members=len(members), topic=self._topics.get(room, ""))
            for room, members in sorted(self._rooms.items(), key=lambda item: item[0].casefold())
        ]

    def member_named(self, name: str) -> Member | None:
        """The member called ``name`` (compared as names are), or None."""
        return self._by_key.get("=" + unicodedata.normalize("NFC", name).casefold())

    def topic(self, room: str) -> str:
        """A room's topic ("" when it has none)."""
        return self._topics.get(self._room_names.get(room.casefold(), room), "")

    @property
    def pending(self) -> bool:
        """Whether events or replies wait for the next flush: a transport that answers
        at once flushes first when they do, so that no answer overtakes them."""
        return bool(self._pending_events or self._pending_replies)

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
        if self._replies_handle is not None:
            self._replies_handle.cancel()
            self._replies_handle = None
        if not (self._pending_events or self._pending_replies):
            return
        started = self._clock()
        while self._pending_events or self._pending_replies:
            self._flush_once()
        ended = self._clock()
        cost = ended - started
        self.stats.flush_seconds.observe(cost)
        self._flush_cost += (cost - self._flush_cost) * FLUSH_COST_SMOOTHING
        # The smaller of the two: one flush slowed by a page fault or a checkpoint does
        # not make the next one wait as long, and a small room's flush right after a big
        # room's is not held back by it.
        wait = FLUSH_PACING * min(cost, self._flush_cost)
        if self._store is not None:
            wait *= 1 + self._store.backlog / FLUSH_STRETCH_ROWS
        wait = min(FLUSH_WAIT_MAX_S, wait)
        self._next_flush_at = ended + wait
        if self._store is not None and wait > 0:
            # Far behind, the writer gets the core for the wait (see CATCH_UP_ROWS).
            self._store.catch_up(wait)

    # ------------------------------------------------------------------ internals

    def _check_free(self, keys: frozenset[str], renaming: Member | None) -> None:
        for key in keys:
            holder = self._by_key.get(key)
            if holder is not None and holder is not renaming:
                same = "is" if key.startswith("=") else "looks too much like one that is"
                raise ProtocolError(ErrorCode.NAME_TAKEN, f"that name {same} taken ({holder.name})")

    def _check_topic(self, text: str) -> None:
        if len(text) > MAX_TOPIC_CHARS:
            raise ProtocolError(
                ErrorCode.TOO_LONG, f"a topic has at most {MAX_TOPIC_CHARS} characters"
            )

    def _check_text(self, text: str) -> None:
        if len(text) > self.max_text_chars:
            raise ProtocolError(
                ErrorCode.TOO_LONG,
                f"a message has at most {self.max_text_chars} characters (got {len(text)})",
            )

    def _room_name(self, raw_room: str) -> str:
        """The stored name of a room, checked by the name rules when it is new."""
        try:
            room = check_name(raw_room)
        except ProtocolError as exc:
            raise _room_error(exc) from None
        return self._room_names.setdefault(room.casefold(), room)

    def _enter(
        self, member: Member, room: str, resume_after: int | None, *, private: bool = True
    ) -> tuple[tuple[Event, ...], list[Event], bool, Join]:
        """Add ``member`` to ``room``: (history, replay, gap, its join event, unpublished)."""
        replay: list[Event] = []
        gap = False
        history: tuple[Event, ...] = ()
        if resume_after is not None:
            # Everything below the join id must be in the store before the replay reads it.
            self.flush()
        else:
            history = self._recent(room)
        join_event = Join(id=self._take_id(), ts=self._ts(), room=room, name=member.name)
        if resume_after is not None:
            replay, gap = self._events_between(
                room, resume_after, join_event.id, private_for=member.name if private else None
            )
        member.rooms[room] = join_event.id
        self._rooms.setdefault(room, {})[member] = None
        if member.wire is not None:
            self._foreign.setdefault(room, {})[member] = None
        names = self._names_wire.get(room)
        if names is not None:
            if names:
                names += b","
            names += _json_string(member.name)
        return history, replay, gap, join_event

    def _queue_reply(
        self, member: Member, first: Welcome | Joined, encoded: bytes, replay: list[Event]
    ) -> None:
        """Queue ``first`` (its welcome or joined; ``encoded``: its NDJSON bytes) and the
        replay for ``member``, in the member's wire format."""
        wire = member.wire
        queued = len(member.replies)
        if wire is None:
            member.replies.append(encoded)
            member.replies.extend(encode(event) for event in replay)
        else:
            member.replies.append(wire.encode_reply(first, encoded))
            member.replies.extend(wire.encode_event(event, encode(event)) for event in replay)
        self.stats.bytes_out += sum(len(chunk) for chunk in member.replies[queued:])
        self._pending_replies.append(member)

    def _send_reply_now(self, member: Member, frame: ServerFrame, encoded: bytes) -> None:
        wire = member.wire
        if wire is None:
            member.outbox.send(encoded)
        else:
            member.outbox.send(wire.frame(wire.encode_reply(frame, encoded)))

    def _remove_from_room(self, member: Member, room: str) -> None:
        del member.rooms[room]
        self._names_wire[room] = None
        room_members = self._rooms.get(room)
        if room_members is not None:
            room_members.pop(member, None)
            if not room_members:
                del self._rooms[room]
        foreign = self._foreign.get(room)
        if foreign is not None:
            foreign.pop(member, None)
            if not foreign:
                del self._foreign[room]

    def _recent(self, room: str) -> tuple[Event, ...]:
        history = self._history.get(room)
        if history is None:
            history = self._history[room] = deque(maxlen=self._history_events)
            if self._store is not None:
                history.extend(self._store.recent(room, self._history_events))
            self._history_wire[room] = deque(
                (encode(event)[:-1] for event in history), maxlen=self._history_events
            )
        return tuple(history)

    def _encode_welcome(self, welcome: Welcome, *, with_history: bool) -> bytes:
        """The welcome, encoded, with the room's members and (``with_history``) its
        recent history spliced in from bytes encoded once, when each name joined and
        each event was published: the same bytes ``encode()`` would give.

        In compact JSON, ``"members":[]`` and ``"history":[]`` can only be those keys
        with empty lists: a quote inside a string value is always escaped.
        """
        room = welcome.room
        names = self._names_wire.get(room)
        if names is None:
            names = self._names_wire[room] = bytearray(
                b",".join([_json_string(member.name) for member in self._rooms.get(room, ())])
            )
        history = self._history_wire.get(room, ()) if with_history else ()
        head, rest = encode(welcome).split(b'"members":[]', 1)
        middle, tail = rest.split(b'"history":[]', 1)
        return b"".join(
            (
                head,
                b'"members":[',
                names,
                b"]",
                middle,
                b'"history":[',
                b",".join(history),
                b"]",
                tail,
            )
        )

    def _events_between(
        self, room: str, after_id: int, below_id: int, *, private_for: str | None
    ) -> tuple[list[Event], bool]:
        """Events of ``room`` with ids strictly between, and whether some are gone."""
        if self._store is not None:
            return self._store.after(room, after_id, below_id, private_for=private_for)
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
        if self._now is not _utc_now:
            return format_ts(self._now())
        # Timestamps have millisecond resolution, and a busy room stamps several events
        # in the same millisecond: formatting once per millisecond saved 5 % of the
        # server's time at 8,000 messages/s.
        millis = time.time_ns() // 1_000_000
        if millis != self._ts_millis:
            self._ts_millis = millis
            moment = datetime.fromtimestamp(millis // 1000, UTC)
            self._ts_text = format_ts(moment.replace(microsecond=millis % 1000 * 1000))
        return self._ts_text

    def _publish(
        self, event: Event, also: tuple[Member, ...] = (), payload: bytes | None = None
    ) -> None:
        # ``payload``: the event's bytes when they exist already (a cluster's stream).
        if payload is None:
            payload = encode(event)
        self._pending_events.append((event, payload, also))
        if event.room:
            history = self._history.get(event.room)
            if history is None:
                self._recent(event.room)
                history = self._history[event.room]
            history.append(event)
            self._history_wire[event.room].append(payload[:-1])
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        handle = self._flush_handle
        burst = len(self._pending_events) >= FLUSH_NOW_EVENTS
        if handle is not None and not burst and not self._pending_replies:
            return  # the common case, once per event: a flush is already on its way
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (hub tests drive flush() by hand)
        if handle is None or (burst and isinstance(handle, asyncio.TimerHandle)):
            if handle is not None:
                handle.cancel()  # enough events to share the writes already
            wait = self._next_flush_at - self._clock()
            if wait > 0 and not burst:
                self._flush_handle = loop.call_later(wait, self._flush_after_reads)
            else:
                self._flush_handle = loop.call_soon(self._flush_from_loop)
        if (
            self._pending_replies
            and self._replies_handle is None
            and isinstance(self._flush_handle, asyncio.TimerHandle)
        ):
            # A newcomer is not kept waiting for the room's next write: its welcome
            # goes now, its own join and what follows with the room's next flush.
            self._replies_handle = loop.call_soon(self._send_replies)

    def _send_replies(self) -> None:
        self._replies_handle = None
        waiting = self._pending_replies
        self._pending_replies = []
        send_all(take_replies(waiting))

    def _flush_after_reads(self) -> None:
        # One more loop iteration first: its select() does not wait, and whatever
        # arrived while this one ran is read and joins the flush instead of waiting for
        # the next one. Measured when connections still read through a task, which made
        # the reads an iteration late: latency p99 at 9,400 msg/s, R=100, 4 runs each,
        # interleaved: 2.00-2.89 ms (median 2.55) without, 1.88-2.06 ms (median 2.01) with.
        self._flush_handle = asyncio.get_running_loop().call_soon(self._flush_from_loop)

    def _flush_from_loop(self) -> None:
        self._flush_handle = None
        self.flush()

    def _flush_once(self) -> None:
        batch = self._pending_events
        self._pending_events = []
        waiting_replies = self._pending_replies
        self._pending_replies = []
        if batch:
            events = [event for event, _, _ in batch]
            for sink in self._sinks:
                try:
                    if sink is self._store:
                        self._store.append(events, [payload for _, payload, _ in batch])
                    else:
                        sink.append(events)
                except Exception:
                    # A sink reports its own failures loudly; the chat goes on regardless.
                    log.exception("event sink %r failed", sink)

        outgoing = take_replies(waiting_replies)
        if batch:
            # Before the fan-out, which may drop slow readers from the rooms.
            self.stats.record_batch(batch, self._delivered_rooms())
            first_room = batch[0][0].room
            if first_room and all(
                event.room == first_room and not also for event, _, also in batch
            ):
                send_one_room(
                    first_room,
                    self._rooms.get(first_room),
                    self._foreign.get(first_room),
                    first_room in self._big_rooms,
                    batch,
                    outgoing,
                )
                rooms = {first_room}
            else:
                fan_out_in_order(self._rooms, self._big_rooms, batch, outgoing)
                rooms = {event.room for event, _, _ in batch if event.room}
        send_all(outgoing)
        if batch:
            self._update_big_rooms(rooms)

    def _delivered_rooms(self) -> Mapping[str, Sized]:
        """The rooms' members this process writes to, for counting deliveries."""
        return self._rooms

    def _update_big_rooms(self, rooms: set[str]) -> None:
        """A room is big for lazy members from the flush after it passed the threshold:
        the joins that took it past are still sent, so their list says it is big. When
        it is small again they are sent its members, since they missed who came and went.
        """
        for room in rooms:
            room_members = self._rooms.get(room, {})
            if len(room_members) > self.lazy_members_above:
                self._big_rooms.add(room)
            elif room in self._big_rooms:
                self._big_rooms.discard(room)
                lazy = [member for member in room_members if member.lazy]
                if lazy:
                    frame = Members(room=room, members=tuple(self.members(room)))
                    names = encode(frame)
                    for member in lazy:
                        self._send_reply_now(member, frame, names)
