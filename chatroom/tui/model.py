"""The chat client's state without a screen: conversations, counts, members, pending sends.

:class:`ChatModel` applies each server frame and each thing the user asks for to plain
state and records what changed (:mod:`chatroom.tui.changes`); the Textual app takes those
records (:meth:`ChatModel.take_changes`) and renders them. Nothing here draws, waits or
touches a socket, so the same state is tested without Textual and without a server.
"""

from __future__ import annotations

import secrets
import time
from collections import deque
from collections.abc import Callable

from chatroom import protocol
from chatroom.framing import ErrorCode
from chatroom.tui.changes import (
    AccountRegistered,
    Added,
    BansListed,
    Change,
    Closed,
    CurrentUpdated,
    Echoed,
    Gap,
    HistoryShown,
    Left,
    MembersChanged,
    MembersListed,
    Mentioned,
    NameChanged,
    OlderShown,
    OwnJoin,
    PendingChanged,
    RateLimited,
    RejoinFailed,
    RequestFailed,
    RoomsChanged,
    RoomsListed,
    SendRefused,
    ServerNotice,
    Shown,
    Switched,
    TopicChanged,
    Unsent,
)
from chatroom.tui.conversation import (
    Conversation,
    Outgoing,
    Request,
    answers,
    mention_pattern,
    private_key,
    room_key,
)

__all__ = ["HISTORY_PAGE_EVENTS", "SEEN_EVENTS_KEPT", "ChatModel"]

# One page of older events: a few screenfuls per request (the server caps pages at 500).
HISTORY_PAGE_EVENTS = 100
# Ids of events already shown, so a reconnect's history does not repeat them (for servers
# without resume; with it the server sends each event once).
SEEN_EVENTS_KEPT = 1000
# Request errors that mean the message in flight went nowhere and never will.
_REFUSED_SENDS = frozenset(
    {ErrorCode.TOO_LONG, ErrorCode.BAD_REQUEST, ErrorCode.NO_SUCH_MEMBER, ErrorCode.NOT_JOINED}
)


def _clock_now() -> str:
    """The local time as the member list's "as of" shows it: HH:MM."""
    return time.strftime("%H:%M")


class ChatModel:
    """Every conversation, what is pending, and where each resumes; fed frames and commands.

    Args:
        clock: the local time as HH:MM, for "members as of" (tests pin it).
        nonce_prefix: what every nonce starts with (random when None).
    """

    def __init__(
        self, *, clock: Callable[[], str] = _clock_now, nonce_prefix: str | None = None
    ) -> None:
        self._clock = clock
        self._changes: list[Change] = []
        #: Our name as the server last confirmed it (None before the first welcome).
        self.me: str | None = None
        #: A connection is up and welcomed.
        self.online = False
        self.convs: dict[str, Conversation] = {}
        self.lobby = self._new(protocol.DEFAULT_ROOM, private=False)
        self.current = self.lobby
        # Typed and not yet acknowledged. Only the head is ever on the wire, and only
        # once its room's replay is over (``Conversation.ready``): one at a time keeps the
        # order and makes a rate_limited answer unambiguous; the nonce makes a resend
        # after a reconnect exactly-once.
        self.outbox: deque[Outgoing] = deque()
        # Other requests (joins, parts, pages of history...) go before waiting messages,
        # one at a time as well: errors carry no request id, so whatever is in flight is
        # what an error is about.
        self.requests: deque[Request] = deque()
        self.in_flight: Outgoing | Request | None = None
        self._nonce_prefix = nonce_prefix or secrets.token_hex(4)
        self._nonces = 0
        self._seen: dict[int, str] = {}
        # Where the lobby and private messages resume (hello's resume_after); other rooms
        # keep their own cursor.
        self.last_event_id: int | None = None
        #: Welcomes so far: the first history is "earlier messages", later ones were missed.
        self.welcomes = 0
        #: Rooms from the last /rooms answer, for completion and the command palette.
        self.known_rooms: dict[str, protocol.RoomInfo] = {}
        #: welcome.session of a cluster node: sent back in the next hello, on any node,
        #: to take our name back at once after a loss.
        self.session_token: str | None = None
        #: The account we are logged in to (None: a guest) and its staff roles.
        self.account: str | None = None
        self.roles: tuple[str, ...] = ()

    def take_changes(self) -> list[Change]:
        """What changed since the last call, oldest first (the list is then empty)."""
        changes, self._changes = self._changes, []
        return changes

    # ------------------------------------------------------------------ conversations

    def _new(self, name: str, *, private: bool) -> Conversation:
        key = private_key(name) if private else room_key(name)
        conv = Conversation(key=key, name=name, private=private)
        self.convs[key] = conv
        return conv

    def _add(self, name: str, *, private: bool) -> Conversation:
        conv = self._new(name, private=private)
        self._changes.append(Added(conv))
        return conv

    def find(self, room: str | None) -> Conversation | None:
        """The conversation ``room`` names (``#dev``'s name, ``@bob``, ``bob``); None: current."""
        if room is None:
            return self.current
        if room.startswith("@"):
            return self.convs.get(private_key(room[1:]))
        return self.convs.get(room_key(room)) or self.convs.get(private_key(room))

    def in_room(self, name: str) -> bool:
        """Whether we are in the room ``name`` (joined, or rejoining)."""
        conv = self.convs.get(room_key(name))
        return conv is not None and conv.joined and not conv.private

    def open_private(self, name: str) -> Conversation:
        """The private conversation with ``name``, added if new, made current."""
        conv = self.convs.get(private_key(name)) or self._add(name, private=True)
        self.switch_to(conv.key)
        return conv

    def _rekey(self, conv: Conversation, key: str) -> None:
        """Give ``conv`` a new key, keeping its place in the list."""
        self.convs = {(key if k == conv.key else k): c for k, c in self.convs.items()}
        conv.key = key

    def close(self, conv: Conversation) -> None:
        """Take ``conv`` off the list; the one before it is current if it was."""
        index = list(self.convs).index(conv.key)
        del self.convs[conv.key]
        if conv is self.current:
            neighbour = list(self.convs.values())[max(0, index - 1)]
            self.switch_to(neighbour.key)
        self._changes += [Closed(conv), RoomsChanged()]

    def switch_to(self, key: str) -> bool:
        """Make ``key`` current and clear its unread counts; False if there is no such one."""
        conv = self.convs.get(key)
        if conv is None:
            return False
        self.current = conv
        conv.unread = conv.mentions = 0
        self._changes.append(Switched(conv))
        return True

    def switch_by(self, step: int) -> None:
        """Make the next (1) or previous (-1) conversation current, wrapping around."""
        keys = list(self.convs)
        index = keys.index(self.current.key)
        self.switch_to(keys[(index + step) % len(keys)])

    def switch_to_number(self, number: int) -> None:
        """Make conversation ``number`` in the list (from 1) current, if there is one."""
        keys = list(self.convs)
        if 0 < number <= len(keys):
            self.switch_to(keys[number - 1])

    def _note_unread(self, conv: Conversation, *, mention: bool) -> None:
        if mention:
            self._changes.append(Mentioned())
        if conv is self.current:
            return
        conv.unread += 1
        if mention:
            conv.mentions += 1
        self._changes.append(RoomsChanged())

    def completions(self, head: str) -> list[str]:
        """What a word typed after ``head`` may complete to."""
        command = head.strip().casefold()
        if command in ("/join", "/j"):
            rooms = {room.name for room in self.known_rooms.values()}
            rooms.update(c.name for c in self.convs.values() if not c.private)
            return sorted((f"#{room}" for room in rooms), key=str.casefold)
        if command in ("/part", "/leave", "/close"):
            return [c.label for c in self.convs.values() if c is not self.lobby]
        if command in ("/msg", "/query"):
            names = {n for c in self.convs.values() for n in c.members}
            names.update(c.name for c in self.convs.values() if c.private)
            names.discard(self.me or "")
            return sorted(names, key=str.casefold)
        conv = self.current
        if conv.private:
            return [conv.name]
        return list(conv.members)

    # ------------------------------------------------------------------ the connection

    def welcomed(self, welcome: protocol.Welcome) -> None:
        """A connection is up and the server welcomed us: back into every room we were in."""
        self.session_token = welcome.session
        self.online = True
        self.me = welcome.name
        lobby = self.lobby
        if room_key(welcome.room) != lobby.key:
            self._rekey(lobby, room_key(welcome.room))
        lobby.name = welcome.room
        lobby.members = list(welcome.members)
        lobby.ops, lobby.voices = set(welcome.ops), set(welcome.voices)
        self.account, self.roles = welcome.account, welcome.roles
        lobby.lazy_above = welcome.lazy_members_above
        lobby.members_at = self._clock()
        lobby.joined = True
        lobby.ready = False
        if welcome.gap:
            self._changes.append(Gap(lobby))
        fresh = [e for e in welcome.history if self._seen.get(e.id) != e.ts]
        if fresh:
            self._add_history(lobby, fresh, again=self.welcomes > 0)
        self.welcomes += 1
        # Back into every other room, each from its own last event: the server replays
        # what was missed there, as hello's resume_after does for the lobby.
        self.requests.clear()
        for conv in self.convs.values():
            if conv is not lobby and not conv.private and conv.joined:
                self.requests.append(
                    Request(
                        protocol.JoinRequest(room=conv.name, resume_after=conv.last_id),
                        automatic=True,
                    )
                )

    def resume_after(self) -> int | None:
        """hello's ``resume_after``: after a loss, ask for what was missed (None at first)."""
        return self.last_event_id if self.welcomes else None

    def lost(self) -> None:
        """The connection is gone: nothing is in flight; every room waits for its rejoin.

        The outbox stays: its messages go again, with the same nonces, once reconnected.
        """
        self.online = False
        self.in_flight = None
        self.requests.clear()
        for conv in self.convs.values():
            conv.ready = False
            conv.paging = False
        self._changes.append(PendingChanged())

    # ------------------------------------------------------------------ frames

    def receive(self, frame: protocol.ServerFrame) -> bool:
        """Apply one frame from the server.

        Returns:
            True when it settled something (an answer, an acknowledgement, a room now
            ready): the next request or message may go (:meth:`next_to_send`).
        """
        answered = self._take_answer(frame)
        settled = answered is not None
        match frame:
            case (
                protocol.Message()
                | protocol.Join()
                | protocol.Leave()
                | protocol.Topic()
                | protocol.Nick()
                | protocol.Dm()
                | protocol.Mod()
            ):
                settled = self._live_event(frame) or settled
            case protocol.Registered(account=account):
                self.account = account
                self._changes.append(AccountRegistered(account))
            case protocol.Bans():
                self._changes.append(BansListed(self.current, frame))
            case protocol.Joined():
                self._joined(frame, switch=answered is not None and not answered.automatic)
            case protocol.History():
                self._older_page(frame)
            case protocol.Members(members=members):
                conv = self.convs.get(room_key(frame.room))
                if conv is not None and not conv.private:
                    conv.members = list(members)
                    conv.ops, conv.voices = set(frame.ops), set(frame.voices)
                    conv.members_at = self._clock()
                    self._changes.append(MembersChanged(conv))
                # Unasked: a big room became small, and these are its members now.
                if answered is not None:
                    where = conv if conv is not None else self.current
                    self._changes.append(MembersListed(where, frame.room, members))
            case protocol.Rooms(rooms=rooms):
                self.known_rooms = {room_key(room.name): room for room in rooms}
                self._changes.append(RoomsListed(rooms))
            case protocol.Error(code=code, message=text):
                settled = self._server_error(code, text) or settled
            case _:
                pass  # pongs, and answers to requests this client does not make
        return settled

    def _take_answer(self, frame: protocol.ServerFrame) -> Request | None:
        """If ``frame`` answers the request in flight, that request is done: return it."""
        request = self.in_flight
        if not isinstance(request, Request) or not answers(frame, request.frame, self.me):
            return None
        self.requests.popleft()
        self.in_flight = None
        return request

    def _mark_seen(self, event: protocol.Event) -> None:
        self._seen[event.id] = event.ts
        if len(self._seen) > SEEN_EVENTS_KEPT:
            del self._seen[next(iter(self._seen))]

    def _live_event(self, event: protocol.Event) -> bool:
        """Apply a live event; True when it settled something (see :meth:`receive`)."""
        me = self.me
        acked = self._acknowledges(event)
        self._mark_seen(event)
        if isinstance(event, protocol.Dm):
            self._private_event(event, acked)
            return acked is not None
        conv = self.convs.get(room_key(event.room)) if event.room else None
        if conv is None or conv.private:
            # A room already left (its last words may still be on the way), or a rename
            # seen in no room at all.
            if isinstance(event, protocol.Nick):
                self._renamed(event)
                self._changes.append(Shown(self.current, event))
            return acked is not None
        # The latest, not the highest: a server restarted without its store counts from 1.
        if conv is self.lobby:
            self.last_event_id = event.id
        else:
            conv.last_id = event.id
        match event:
            case protocol.Join(name=name) if name == me:
                # The room's replay (after a resume) is over: what waits for it may go.
                conv.ready = True
                conv.joins += 1
                self._changes += [OwnJoin(conv, event), RoomsChanged()]
                return True
            case protocol.Join(name=name) if conv.ready:
                # Only live events: a replay's comings and goings are older than the
                # member list the welcome or joined brought.
                if name not in conv.members:
                    conv.members.append(name)
                self._changes.append(MembersChanged(conv))
            case protocol.Leave(name=name, reason=reason) if (
                name == me and reason == protocol.LeaveReason.PART and conv.ready
            ):
                self.close(conv)
                self._changes.append(Left(conv))
                return True
            case protocol.Leave(name=name, reason=protocol.LeaveReason.KICKED) if name == me:
                # Put out (kicked or banned): the entry stays, dimmed, with the reason;
                # a reconnect does not rejoin it.
                conv.joined = conv.ready = False
                self._changes += [MembersChanged(conv), RoomsChanged()]
            case protocol.Mod(action="role", target=target, role=role):
                conv.ops.discard(target)
                conv.voices.discard(target)
                if role == "op":
                    conv.ops.add(target)
                elif role == "voice":
                    conv.voices.add(target)
                self._changes.append(MembersChanged(conv))
            case protocol.Leave(name=name) if conv.ready:
                if name in conv.members:
                    conv.members.remove(name)
                self._changes.append(MembersChanged(conv))
            case protocol.Nick(old=old, new=new):
                if conv.ready:
                    conv.members = [new if m == old else m for m in conv.members]
                for roles in (conv.ops, conv.voices):
                    if old in roles:
                        roles.discard(old)
                        roles.add(new)
                self._renamed(event)
                self._changes.append(MembersChanged(conv))
            case protocol.Topic(text=text):
                conv.topic = text
                self._changes.append(TopicChanged(conv))
        self._changes.append(Shown(conv, event))
        if isinstance(event, protocol.Message) and event.sender != me:
            self._note_unread(conv, mention=mention_pattern(me, event.text) is not None)
        return acked is not None

    def _private_event(self, event: protocol.Dm, acked: Outgoing | None) -> None:
        me = self.me
        self.last_event_id = event.id
        other = event.to if event.sender == me else event.sender
        conv = self.convs.get(private_key(other)) or self._add(other, private=True)
        conv.name = other  # as the server spells it
        self._changes.append(Shown(conv, event))
        if event.sender != me:
            # A private message is addressed to you: it counts as a mention.
            self._note_unread(conv, mention=True)
        elif acked is not None and acked.origin not in (None, conv.key):
            origin = self.convs.get(acked.origin or "")
            if origin is not None:
                self._changes.append(Echoed(origin, event))
        self._changes.append(RoomsChanged())

    def _renamed(self, event: protocol.Nick) -> None:
        """Someone (maybe us) has a new name: follow it in our name and private entries."""
        if event.old == self.me:
            self.me = event.new
            self._changes.append(NameChanged(event.new))
        conv = self.convs.get(private_key(event.old))
        if conv is not None and private_key(event.new) not in self.convs:
            self._rekey(conv, private_key(event.new))
            conv.name = event.new
            self._changes.append(Shown(conv, event))
            if conv is self.current:
                self._changes.append(CurrentUpdated())
            self._changes.append(RoomsChanged())

    def _joined(self, joined: protocol.Joined, *, switch: bool) -> None:
        conv = self.convs.get(room_key(joined.room)) or self._add(joined.room, private=False)
        conv.name = joined.room
        conv.members = list(joined.members)
        conv.ops, conv.voices = set(joined.ops), set(joined.voices)
        conv.lazy_above = joined.lazy_members_above
        conv.members_at = self._clock()
        conv.topic = joined.topic
        conv.joined = True
        conv.ready = False
        if joined.gap:
            self._changes.append(Gap(conv))
        fresh = [e for e in joined.history if self._seen.get(e.id) != e.ts]
        if fresh:
            self._add_history(conv, fresh, again=conv.joins > 0)
        if switch:
            self.switch_to(conv.key)
        elif conv is self.current:
            self._changes.append(CurrentUpdated())
        else:
            self._changes.append(RoomsChanged())

    def _add_history(
        self, conv: Conversation, events: list[protocol.Event], *, again: bool
    ) -> None:
        """A welcome's or joined's history: seen, resumed after, maybe our own echo."""
        for event in events:
            self._mark_seen(event)
            if conv is self.lobby:
                self.last_event_id = event.id
            else:
                conv.last_id = event.id
            self._acknowledges(event)
        self._changes.append(HistoryShown(conv, tuple(events), again))

    def _older_page(self, page: protocol.History) -> None:
        """A page of older events for the conversation ``page.room`` names."""
        if page.room.startswith("@"):
            conv = self.convs.get(private_key(page.room[1:]))
        else:
            conv = self.convs.get(room_key(page.room))
        if conv is None:
            return  # closed while the page was on its way
        conv.paging = False
        before = conv.page_before
        events = tuple(e for e in page.events if before is None or e.id < before)
        if not page.more:
            conv.history_done = True
        self._changes.append(OlderShown(conv, events, beginning=not page.more))

    def _server_error(self, code: str, text: str) -> bool:
        """Apply an error frame; True when it settled what was in flight."""
        flight = self.in_flight
        if code == ErrorCode.RATE_LIMITED and flight is not None:
            # Not delivered; try again once the server's bucket has a token.
            self._changes.append(RateLimited())
            return False
        if isinstance(flight, Request):
            self.requests.popleft()
            self.in_flight = None
            self._request_failed(flight, code, text)
            return True
        if code in _REFUSED_SENDS and flight is not None:
            unsent = self.outbox.popleft()
            self.in_flight = None
            self._changes += [SendRefused(unsent, code, text), PendingChanged()]
            return True
        self._changes.append(ServerNotice(code, text))
        return False

    def _request_failed(self, request: Request, code: str, text: str) -> None:
        match request.frame:
            case protocol.JoinRequest(room=room):
                conv = self.convs.get(room_key(room))
                if conv is not None and request.automatic:
                    conv.joined = False
                    conv.ready = False
                    self._changes += [RoomsChanged(), RejoinFailed(conv, code, text)]
                    return
            case protocol.HistoryRequest(room=room):
                key = private_key(room[1:]) if room.startswith("@") else room_key(room)
                conv = self.convs.get(key)
                if conv is None:
                    return
                conv.paging = False
                if code == "timeout":
                    return  # scrolling up again asks again
                # The server keeps no older events for us; asking again would say the same.
                conv.history_done = True
                self._changes.append(RequestFailed(conv, request, code, text))
                return
        self._changes.append(RequestFailed(self.current, request, code, text))

    # ------------------------------------------------------------------ sending

    def queue(
        self,
        text: str,
        *,
        room: str = protocol.DEFAULT_ROOM,
        to: str | None = None,
        action: bool = False,
        origin: str | None = None,
    ) -> Outgoing:
        """Add a message to the outbox with a fresh nonce (it goes by :meth:`next_to_send`)."""
        self._nonces += 1
        item = Outgoing(text, f"{self._nonce_prefix}-{self._nonces}", to, action, room, origin)
        self.outbox.append(item)
        self._changes.append(PendingChanged())
        return item

    def say(self, conv: Conversation, text: str, *, action: bool = False) -> bool:
        """Queue ``text`` for ``conv``; False when it cannot take it (a room not joined)."""
        if conv.private:
            self.queue(text, to=conv.name, action=action)
        elif conv.joined:
            self.queue(text, room=conv.name, action=action)
        else:
            return False
        return True

    def ask(self, frame: protocol.ClientFrame, *, automatic: bool = False) -> bool:
        """Queue a request that needs a live connection; False when there is none."""
        if not self.online:
            return False
        self.requests.append(Request(frame, automatic=automatic))
        return True

    def join(self, room: str) -> bool:
        """Join ``room`` (from its last event), or make it current if already in.

        Returns:
            False when a join must be asked for and there is no connection.
        """
        conv = self.convs.get(room_key(room))
        if conv is not None and conv.joined and not conv.private:
            return self.switch_to(conv.key)
        resume_after = conv.last_id if conv is not None else None
        return self.ask(protocol.JoinRequest(room=room, resume_after=resume_after))

    def load_older(self, conv: Conversation, oldest_shown: int | None) -> bool:
        """Ask for the page before ``oldest_shown``; False when not now (or never again)."""
        if conv.paging or conv.history_done or not self.online:
            return False
        if not (conv.ready if not conv.private else self.lobby.ready):
            return False
        conv.paging = True
        conv.page_before = oldest_shown
        request = protocol.HistoryRequest(
            room=conv.history_room, before=oldest_shown, limit=HISTORY_PAGE_EVENTS
        )
        return self.ask(request, automatic=True)

    def _sendable(self) -> Outgoing | None:
        """The outbox's head if its conversation is ready for it; drops what cannot go."""
        while self.outbox:
            head = self.outbox[0]
            if head.to is not None:
                return head if self.lobby.ready else None
            conv = self.convs.get(room_key(head.room))
            if conv is not None and conv.joined:
                return head if conv.ready and self.lobby.ready else None
            self.outbox.popleft()
            self._changes += [Unsent(head), PendingChanged()]
        return None

    def next_to_send(self) -> Outgoing | Request | None:
        """The next request, or else the outbox's head, now in flight; None: nothing may go.

        Nothing goes while something is in flight or there is no connection.
        """
        if not self.online or self.in_flight is not None:
            return None
        if self.requests:
            self.in_flight = self.requests[0]
        else:
            head = self._sendable()
            if head is None:
                return None
            self.in_flight = head
            head.sent = True
        return self.in_flight

    def send_failed(self) -> None:
        """What went in flight never reached the wire (the connection is closing)."""
        self.in_flight = None

    def resend(self) -> None:
        """After :class:`RateLimited`: what was in flight may go again."""
        self.in_flight = None

    def request_timed_out(self, request: Request) -> bool:
        """``request`` had no answer in time; False if it is no longer in flight."""
        if self.in_flight is not request:
            return False
        self.requests.popleft()
        self.in_flight = None
        self._request_failed(request, "timeout", "no answer from the server")
        return True

    def _acknowledges(self, event: protocol.Event) -> Outgoing | None:
        """If ``event`` is the echo of the outbox's head, take the head off and return it."""
        if not self.outbox or not isinstance(event, protocol.Message | protocol.Dm):
            return None
        head = self.outbox[0]
        if event.sender != self.me or isinstance(event, protocol.Dm) != (head.to is not None):
            return None
        if event.nonce is not None:
            matches = event.nonce == head.nonce
        else:
            # A server that does not echo nonces: the text of our own, unseen message.
            matches = head.sent and event.text == head.text
        if not matches:
            return None
        self.outbox.popleft()
        if self.in_flight is head:
            self.in_flight = None
        self._changes.append(PendingChanged())
        return head
