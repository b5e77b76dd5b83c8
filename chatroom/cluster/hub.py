"""The hub of one cluster node: proposes every change to Redis, applies the stream.

A single server decides each event as it happens. A node cannot: two nodes would hand
out the same id or the same name. So each hub operation here checks what it can
locally (to refuse the obvious at once), turns the event into a proposal for the
engine's script, and changes nothing. Every node, the proposing one included, then
reads the event back from the stream in the one order and applies it with the id the
script gave: the same code paths as a single server's (``_admit``, ``_enter``,
``_publish``), with that id and timestamp in place of its own. The sender's copy of its
message is still its acknowledgement, and it still follows everything before it.

Members on other nodes are members here too, with an outbox that discards: they are in
rooms, lists and names like anyone, and a flush costs one no-op call for each of them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import logging
import secrets
from collections.abc import Callable, Mapping, Sized
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chatroom.delivery import Member, Outbox, WireFormat
from chatroom.framing import ErrorCode, ProtocolError
from chatroom.hub import MAX_ROOMS_PER_MEMBER, Hub, _room_error
from chatroom.names import check_name, name_keys
from chatroom.protocol import (
    DEFAULT_ROOM,
    Dm,
    Error,
    Event,
    Join,
    Leave,
    LeaveReason,
    Message,
    Mod,
    Nick,
    Topic,
    encode,
    parse_server_frame,
)

if TYPE_CHECKING:
    from chatroom.cluster.engine import Engine

__all__ = ["ClusterHub", "Proposal"]

log = logging.getLogger("chatroom.cluster")

# How long Redis keeps a nonce. A client resends within its reconnect, seconds later;
# ten minutes covers a long outage. Each key costs Redis about 100 bytes: at 1,000
# messages/s that is 600,000 keys, some 60 MB, the cluster's largest use of its memory.
NONCE_TTL_S = 600

Proposal = dict[str, Any]


class _Discard:
    """The outbox of a member on another node: its node writes to it, not this one."""

    def send(self, payload: bytes) -> None:
        pass

    def close(self, reason: LeaveReason) -> None:
        pass


_ELSEWHERE = _Discard()


@dataclass(slots=True)
class _Pending:
    """A hello proposed to the cluster, waiting for its join to come back."""

    member: Member
    room: str
    resume_after: int | None
    account: str | None
    roles: tuple[str, ...]
    token: str
    refused: Callable[[ProtocolError], None] | None
    gone: bool = False


def _split(event: Event) -> list[str]:
    """The event's NDJSON frame around its id, for the script to put the id in."""
    text = encode(event)[:-1].decode("utf-8")
    head, tail = text.split('"id":0', 1)
    return [head + '"id":', tail]


def token_hash(token: str) -> str:
    """What Redis keeps of a reconnect token: enough to find the session, not to use it."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()[:32]


class ClusterHub(Hub):
    """A :class:`Hub` whose events are decided by the cluster and applied from its stream.

    :attr:`engine` is set by :class:`~chatroom.cluster.engine.Engine` before any member
    joins.
    """

    def __init__(self, *, node_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.node_id = node_id
        self.engine: Engine | None = None
        self._serial = itertools.count(1)
        self._incarnation = secrets.token_hex(4)
        self._pending: dict[str, _Pending] = {}
        self._by_cid: dict[str, Member] = {}
        self._cid_of: dict[Member, str] = {}
        self._local: set[Member] = set()
        # Each room's members on this node: what this node's metrics count as deliveries.
        self._local_rooms: dict[str, set[Member]] = {}
        # While an entry is applied: its id, timestamp and bytes stand in for the hub's.
        self._forced: tuple[int, str, bytes] | None = None
        # Resumes from before this id have a gap: Redis lost the events just before it.
        self.epoch_floor = 0
        self.available = False
        # The newest id this node has seen applied (here or, before, in its store): the
        # hub's own next id may be a clock reading when it keeps no history.
        store = kwargs.get("store")
        self._applied_through = store.last_id() if store is not None else 0
        # Ids are the cluster's: this process's starting point (a clock reading without a
        # store) means nothing here.
        self._next_id = self._applied_through + 1

    # ------------------------------------------------------------------ proposing

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
        self._check_available()
        name = check_name(raw_name)
        keys = name_keys(name)
        if session is None:
            # Refused here at once; a reconnect may be taking its own name back.
            self._check_free(keys, None)
        member = Member(name=name, outbox=outbox, keys=keys, lazy=lazy, wire=wire)
        cid = f"{self.node_id}.{self._incarnation}.{next(self._serial)}"
        token = secrets.token_urlsafe(18)
        room = self._room_names.get(room.casefold(), room)
        self._pending[cid] = _Pending(member, room, resume_after, account, roles, token, refused)
        self._cid_of[member] = cid
        event = Join(id=0, ts=self._ts(), room=room, name=name)
        proposal = {
            "op": "join",
            "cid": cid,
            "name": name,
            "keys": sorted(keys),
            "room": room,
            "room_key": room.casefold(),
            "tok": token_hash(token),
            "old_tok": token_hash(session) if session is not None else None,
            "event": _split(event),
            "meta": json.dumps({"cid": cid, "op": "join", "keys": sorted(keys)}),
        }
        self._propose(proposal, lambda result: self._join_answered(cid, result))
        return member

    def join_room(self, member: Member, raw_room: str, *, resume_after: int | None = None) -> str:
        # Checked, not yet stored: the stream's first join decides a new room's spelling.
        try:
            checked = check_name(raw_room)
        except ProtocolError as exc:
            raise _room_error(exc) from None
        room = self._room_names.get(checked.casefold(), checked)
        if room in member.rooms:
            raise ProtocolError(ErrorCode.BAD_REQUEST, f"already in {room!r}")
        if len(member.rooms) >= MAX_ROOMS_PER_MEMBER:
            raise ProtocolError(
                ErrorCode.TOO_MANY_ROOMS, f"at most {MAX_ROOMS_PER_MEMBER} rooms at once"
            )
        self._member_proposal(
            member,
            "room",
            Join(id=0, ts=self._ts(), room=room, name=member.name),
            room=room,
            room_key=room.casefold(),
            max_rooms=MAX_ROOMS_PER_MEMBER,
            meta={"resume_after": resume_after},
        )
        return room

    def part(self, member: Member, raw_room: str) -> None:
        room = self._room_names.get(raw_room.casefold(), raw_room)
        if room not in member.rooms:
            raise ProtocolError(ErrorCode.NOT_JOINED, f"not in {raw_room[:40]!r}")
        event = Leave(id=0, ts=self._ts(), room=room, name=member.name, reason=LeaveReason.PART)
        self._member_proposal(member, "part", event, room=room, room_key=room.casefold())

    def leave(self, member: Member, reason: LeaveReason) -> None:
        cid = self._cid_of.get(member)
        if cid is None:
            return
        pending = self._pending.get(cid)
        if pending is not None:
            pending.gone = True  # its join, once applied, is followed by this leave
            return
        if cid not in self._by_cid:
            return
        self._propose({"op": "leave", "cid": cid, "reason": reason.value}, _ignore)

    def say(
        self,
        member: Member,
        text: str,
        room: str = DEFAULT_ROOM,
        *,
        nonce: str | None = None,
        action: bool = False,
    ) -> Message:
        self._check_text(text)
        room = self._room_names.get(room.casefold(), room)
        if room not in member.rooms:
            raise ProtocolError(ErrorCode.NOT_JOINED, f"not in {room[:40]!r}")
        event = Message(
            id=0,
            ts=self._ts(),
            room=room,
            sender=member.name,
            text=text,
            nonce=nonce,
            action=action,
        )
        self._member_proposal(
            member, "say", event, room=room, room_key=room.casefold(), nonce=nonce
        )
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
        self._check_text(text)
        recipient = self.find(to)
        if recipient is None:
            raise ProtocolError(ErrorCode.NO_SUCH_MEMBER, f"nobody here is called {to[:40]!r}")
        event = Dm(
            id=0,
            ts=self._ts(),
            sender=member.name,
            to=recipient.name,
            text=text,
            nonce=nonce,
            action=action,
        )
        self._member_proposal(
            member,
            "dm",
            event,
            to=recipient.name,
            to_key=min(k for k in recipient.keys if k.startswith("=")),
            nonce=nonce,
            meta={"to": self._cid_of.get(recipient)},
        )
        return event

    def set_topic(self, member: Member, raw_room: str, text: str) -> None:
        room = self._room_names.get(raw_room.casefold(), raw_room)
        if room not in member.rooms:
            raise ProtocolError(ErrorCode.NOT_JOINED, f"not in {raw_room[:40]!r}")
        super()._check_topic(text)
        event = Topic(id=0, ts=self._ts(), room=room, sender=member.name, text=text)
        self._member_proposal(
            member, "topic", event, room=room, room_key=room.casefold(), text=text
        )

    def rename(self, member: Member, raw_name: str) -> None:
        name = check_name(raw_name)
        keys = name_keys(name)
        self._check_free(keys, member)
        if name == member.name:
            return
        self._check_available()
        cid = self._cid_of.get(member)
        if cid is None or cid not in self._by_cid:
            raise ProtocolError(ErrorCode.NOT_JOINED, "not joined yet")
        self._propose(
            {
                "op": "nick",
                "cid": cid,
                "name": name,
                "keys": sorted(keys),
                "meta": json.dumps({"cid": cid, "op": "nick", "keys": sorted(keys)}),
            },
            lambda result: self._answered(member, result, None),
        )

    def shutdown(self) -> None:
        """Close this node's connections; their leaves were proposed by :meth:`leave_all`
        and, when the cluster took them, already sent."""
        self.flush()
        for member in list(self._local):
            member.outbox.close(LeaveReason.SHUTDOWN)
        self._local.clear()

    def leave_all(self, reason: LeaveReason) -> list[str]:
        """Propose the leave of every member on this node; the cids to wait for."""
        cids = []
        for member in list(self._local):
            cid = self._cid_of.get(member)
            if cid is not None and cid in self._by_cid:
                self._propose({"op": "leave", "cid": cid, "reason": reason.value}, _ignore)
                cids.append(cid)
        return cids

    def holds(self, cid: str) -> bool:
        """Whether the session ``cid`` is still a member as far as this node knows."""
        return cid in self._by_cid

    def local_count(self) -> int:
        return len(self._local)

    @property
    def applied_through(self) -> int:
        """The newest event id this node has applied (0: none yet)."""
        return self._applied_through

    def stored_through(self) -> int | None:
        """The newest id in the history store (None: no store)."""
        return self._store.last_id() if self._store is not None else None

    def advance(self, last_id: int) -> None:
        """Ids up to ``last_id`` are handed out (the snapshot says so)."""
        self._next_id = max(self._next_id, last_id + 1)

    def cut_off(self) -> None:
        """This node lost the cluster: refuse sends and close every connection, so its
        members move to a node that can serve them (their leaves come from whichever
        node reaps this one's lease)."""
        self.available = False
        self.flush()
        for cid, pending in list(self._pending.items()):
            del self._pending[cid]
            if pending.refused is not None:
                pending.refused(_unavailable())
        for member in list(self._local):
            member.outbox.close(LeaveReason.SHUTDOWN)

    # ------------------------------------------------------------------ answers

    def _check_available(self) -> None:
        if not self.available:
            raise _unavailable()

    def _propose(self, proposal: Proposal, done: Callable[[dict[str, Any]], None]) -> None:
        if self.engine is None or not self.available:
            done({"err": ErrorCode.UNAVAILABLE.value})
            return
        self.engine.propose(proposal, done)

    def _member_proposal(
        self,
        member: Member,
        kind: str,
        event: Event,
        *,
        meta: dict[str, Any] | None = None,
        **fields: Any,
    ) -> None:
        self._check_available()
        cid = self._cid_of.get(member)
        if cid is None or cid not in self._by_cid:
            raise ProtocolError(ErrorCode.NOT_JOINED, "not joined yet")
        proposal = {
            "op": kind,
            "cid": cid,
            "event": _split(event),
            "meta": json.dumps({"cid": cid, "op": kind, **(meta or {})}),
            "nonce_ttl": NONCE_TTL_S,
            **fields,
        }
        self._propose(proposal, lambda result: self._answered(member, result, event))

    def _answered(self, member: Member, result: dict[str, Any], event: Event | None) -> None:
        """A proposal's outcome: an error goes to the member; a nonce seen before gets
        its acknowledgement again, with the id it was stored under."""
        if "err" in result:
            code = result["err"]
            if code == "gone":
                if self._cid_of.get(member) in self._by_cid:
                    # Redis no longer has the session this node still serves (it lost
                    # its last writes): a reconnect makes it anew.
                    member.outbox.close(LeaveReason.SHUTDOWN)
                return  # otherwise it ended meanwhile and its connection is closing
            self._reply_error(member, code, _error_text(code, result))
            if code == ErrorCode.UNAVAILABLE.value:
                # Whether Redis took it is unknown: the client reconnects (here or
                # elsewhere), sees in the replay whether it landed, and resends if not.
                member.outbox.close(LeaveReason.SHUTDOWN)
        elif "dup" in result and isinstance(event, Message | Dm):
            stored = result.get("event")
            if isinstance(stored, str) and stored:
                payload = stored.encode("utf-8", "surrogatepass") + b"\n"
                self._send_reply_now(member, parse_server_frame(json.loads(stored)), payload)
            else:
                # The stream no longer has it: the same message under the stored id.
                again = dataclasses.replace(event, id=int(result["dup"]))
                self._send_reply_now(member, again, encode(again))

    def _join_answered(self, cid: str, result: dict[str, Any]) -> None:
        if "err" not in result:
            return  # the join comes back through the stream
        pending = self._pending.pop(cid, None)
        if pending is None:
            return
        self._cid_of.pop(pending.member, None)
        if pending.refused is not None:
            code = ErrorCode(result["err"])
            pending.refused(ProtocolError(code, _error_text(code, result)))

    def _reply_error(self, member: Member, code: str, text: str) -> None:
        frame = Error(code=code, message=text)
        self._send_reply_now(member, frame, encode(frame))

    # ------------------------------------------------------------------ applying

    def apply(self, event_id: int, payload: bytes, meta: dict[str, Any]) -> None:
        """Apply one stream entry: ``payload`` is the event's frame (no newline), or
        empty for the end of a session."""
        op = meta.get("op")
        cid = meta.get("cid", "")
        if not payload:
            if op == "gone":
                self._forget(cid)
            return
        event = _event(json.loads(payload))
        self._forced = (event_id, event.ts, payload + b"\n")
        try:
            self._apply_event(event, op, cid, meta)
        finally:
            self._forced = None
            self._next_id = max(self._next_id, event_id + 1)
            self._applied_through = max(self._applied_through, event_id)

    def _apply_event(self, event: Any, op: Any, cid: str, meta: dict[str, Any]) -> None:
        member = self._by_cid.get(cid)
        match event:
            case Join() if op == "join":
                self._apply_hello(cid, event, meta)
            case Join() if member is not None:
                resume_after = meta.get("resume_after") if member in self._local else None
                room = self._room_names.setdefault(event.room.casefold(), event.room)
                if member in self._local:
                    self._enter_room(member, room, resume_after)
                else:
                    self._enter(member, room, None, private=False)
                    self._publish(event)
            case Leave() if member is not None:
                room = self._room_names.get(event.room.casefold(), event.room)
                if room in member.rooms:
                    self._remove_from_room(member, room)
                parter = (member,) if op == "part" and member in self._local else ()
                self._publish(event, also=parter)
            case Nick() if member is not None:
                self._apply_nick(member, event, meta)
            case Topic():
                self._topics[self.room_name(event.room)] = event.text
                self._publish(event)
            case Dm():
                parties = [m for m in (member, self._by_cid.get(meta.get("to") or "")) if m]
                self._publish(event, also=tuple(dict.fromkeys(parties)))
            case Message():
                self._publish(event)
            case _:
                # An event about a session this node never saw (it started later and
                # the snapshot already had it gone): history and the room still get it.
                self._publish(event)

    def _apply_hello(self, cid: str, event: Join, meta: dict[str, Any]) -> None:
        keys = frozenset(meta.get("keys") or name_keys(event.name))
        pending = self._pending.pop(cid, None)
        if pending is None:
            member = Member(name=event.name, outbox=_ELSEWHERE, keys=keys)
            self._register(cid, member)
            for key in keys:
                self._by_key[key] = member
            room = self._room_names.setdefault(event.room.casefold(), event.room)
            self._enter(member, room, None)
            self._publish(event)
            return
        member = pending.member
        self._register(cid, member)
        self._local.add(member)
        self._admit(
            member,
            pending.room,
            pending.resume_after,
            pending.account,
            pending.roles,
            session=pending.token,
        )
        if pending.gone:
            self.leave(member, LeaveReason.QUIT)

    def _apply_nick(self, member: Member, event: Nick, meta: dict[str, Any]) -> None:
        if member.name != event.new:
            for key in member.keys:
                if self._by_key.get(key) is member:
                    del self._by_key[key]
            member.keys = frozenset(meta.get("keys") or name_keys(event.new))
            member.name = event.new
            for key in member.keys:
                self._by_key[key] = member
            for room in member.rooms:
                self._names_wire[room] = None
        self._publish(event, also=(member,) if not event.room else ())

    def _register(self, cid: str, member: Member) -> None:
        self._by_cid[cid] = member
        self._cid_of[member] = cid

    def _forget(self, cid: str) -> None:
        """A session ended (left, taken over, or its node's lease ran out)."""
        member = self._by_cid.pop(cid, None)
        if member is None:
            return
        self._cid_of.pop(member, None)
        for room in list(member.rooms):
            self._remove_from_room(member, room)
        for key in member.keys:
            if self._by_key.get(key) is member:
                del self._by_key[key]
        if member in self._local:
            self._local.discard(member)
            self.flush()  # its last events (its own leaves) before the close
            member.outbox.close(LeaveReason.TIMEOUT)

    def load(self, sessions: list[dict[str, Any]], topics: dict[str, str]) -> None:
        """Start from a snapshot: who is where on the other nodes, and the topics. Each
        room lists its members in the order of their joins, as on a node that saw them."""
        placed: list[tuple[int, str, Member]] = []
        for session in sessions:
            member = Member(
                name=session["name"], outbox=_ELSEWHERE, keys=frozenset(session["keys"] or [])
            )
            self._register(session["cid"], member)
            for key in member.keys:
                self._by_key[key] = member
            for raw_room, join_id in session.get("rooms") or []:
                placed.append((int(join_id), raw_room, member))
        for join_id, raw_room, member in sorted(placed, key=lambda place: place[0]):
            room = self._room_names.setdefault(raw_room.casefold(), raw_room)
            member.rooms[room] = join_id
            self._rooms.setdefault(room, {})[member] = None
            self._names_wire[room] = None
        for room, text in (topics or {}).items():
            self._topics[self.room_name(room)] = text

    def reset(self) -> None:
        """Forget everyone: Redis is a new data set, and the snapshot says who is left."""
        for cid in list(self._by_cid):
            self._forget(cid)
        self._rooms.clear()
        self._local_rooms.clear()
        self._names_wire.clear()

    # ------------------------------------------------------------------ overrides

    def _enter(
        self, member: Member, room: str, resume_after: int | None, *, private: bool = True
    ) -> tuple[tuple[Event, ...], list[Event], bool, Join]:
        entered = super()._enter(member, room, resume_after, private=private)
        if member.outbox is not _ELSEWHERE:
            self._local_rooms.setdefault(room, set()).add(member)
        return entered

    def _remove_from_room(self, member: Member, room: str) -> None:
        super()._remove_from_room(member, room)
        local = self._local_rooms.get(room)
        if local is not None:
            local.discard(member)
            if not local:
                del self._local_rooms[room]

    def _delivered_rooms(self) -> Mapping[str, Sized]:
        # Members elsewhere are in the rooms too, but their nodes deliver to them.
        return self._local_rooms

    def _take_id(self) -> int:
        if self._forced is not None:
            return self._forced[0]
        return super()._take_id()

    def _ts(self) -> str:
        if self._forced is not None:
            return self._forced[1]
        return super()._ts()

    def _publish(
        self, event: Event, also: tuple[Member, ...] = (), payload: bytes | None = None
    ) -> None:
        forced = self._forced
        if payload is None and forced is not None and event.id == forced[0]:
            payload = forced[2]
        super()._publish(event, also, payload)

    def _events_between(
        self, room: str, after_id: int, below_id: int, *, private_for: str | None
    ) -> tuple[list[Event], bool]:
        replay, gap = super()._events_between(room, after_id, below_id, private_for=private_for)
        return replay, gap or after_id + 1 < self.epoch_floor


def _event(obj: dict[str, Any]) -> Event:
    """An event of the stream, which the nodes' own encoder wrote. Messages, nearly all
    of the traffic, are built directly: the full parser's checks cost 12 us of each
    node's 20 us per applied message (cProfile, chatroom-bench fanout, one node)."""
    if obj["type"] == "message":
        return Message(
            id=obj["id"],
            ts=obj["ts"],
            room=obj["room"],
            sender=obj["from"],
            text=obj["text"],
            nonce=obj.get("nonce"),
            action=obj.get("action", False),
        )
    frame = parse_server_frame(obj)
    assert isinstance(frame, Message | Join | Leave | Topic | Nick | Dm | Mod)
    return frame


def _ignore(result: dict[str, Any]) -> None:
    pass


def _unavailable() -> ProtocolError:
    # Fatal: the client is closed so that it moves on to a node that can serve it.
    return ProtocolError(
        ErrorCode.UNAVAILABLE,
        "this server cannot reach the cluster now; try another one",
        fatal=True,
    )


def _error_text(code: str, result: dict[str, Any]) -> str:
    match code:
        case "name_taken":
            return f"that name is taken ({result.get('detail', '?')})"
        case "not_joined":
            return "not in that room"
        case "no_such_member":
            return "nobody here is called that"
        case "too_many_rooms":
            return f"at most {MAX_ROOMS_PER_MEMBER} rooms at once"
        case "unavailable":
            return "this server cannot reach the cluster now; try another one"
        case _:
            return str(result.get("detail") or code)
