"""The Textual chat app: one worker owns the connection, handlers update the widgets.

The app is in several conversations at once: the lobby, the rooms it joined and private
conversations. Each has its own pane (in a ``ContentSwitcher``), members, topic, unread
counts and resume cursor; the room list beside the pane switches between them.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import secrets
import ssl
import time
import unicodedata
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, cast

from rich.cells import cell_len
from rich.text import Text
from textual import on, work
from textual._ansi_sequences import ANSI_SEQUENCES_KEYS
from textual.actions import SkipAction
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.command import Provider
from textual.containers import Horizontal, Vertical
from textual.timer import Timer
from textual.widgets import ContentSwitcher, Footer, Input

from chatroom import __version__, protocol
from chatroom.client import ClientConnection, ConnectError, ConnectionClosed, ServerError
from chatroom.framing import ErrorCode
from chatroom.text import inert, name_colour, truncate
from chatroom.tui import commands
from chatroom.tui.conversation import (
    Conversation,
    day_rule,
    event_entry,
    history_entries,
    local_time,
    private_key,
    room_key,
)
from chatroom.tui.messages import (
    Connected,
    Connecting,
    Disconnected,
    FrameReceived,
    JoinRefused,
    RetryScheduled,
)
from chatroom.tui.palette import ChatCommands, PaletteHost
from chatroom.tui.widgets import (
    ChatInput,
    MemberList,
    MessagePane,
    NewBelowBar,
    PaneEntry,
    PendingView,
    PromptScreen,
    RoomList,
    RoomTab,
    StatusLine,
)

__all__ = [
    "BELL_MIN_INTERVAL_S",
    "HISTORY_PAGE_EVENTS",
    "JOIN_TIMEOUT_S",
    "RATE_LIMIT_RETRY_S",
    "RECONNECT_INITIAL_S",
    "RECONNECT_MAX_S",
    "REQUEST_TIMEOUT_S",
    "ChatApp",
    "backoff_delay",
]

# Reconnect pacing: 1 s doubling to 30 s, as most chat and MQTT clients do, with jitter so
# that everyone dropped by one server restart does not come back in the same instant.
RECONNECT_INITIAL_S = 1.0
RECONNECT_MAX_S = 30.0
RECONNECT_JITTER = 0.2
# A server that accepts the socket but never answers the hello is as good as gone.
JOIN_TIMEOUT_S = 15.0
# The server refills 5 tokens a second (protocol-v1 default), so one is back in 0.2 s.
RATE_LIMIT_RETRY_S = 0.3
# Every request but a message is answered within a round trip; one that never is must not
# hold up everything typed after it for longer than this.
REQUEST_TIMEOUT_S = 10.0
# One page of older events: a few screenfuls per request (the server caps pages at 500).
HISTORY_PAGE_EVENTS = 100
# A burst of mentions (a replay after a reconnect, someone flooding) rings once, not once
# per line.
BELL_MIN_INTERVAL_S = 1.0
# Ids of events already shown, so a reconnect's history does not repeat them (for servers
# without resume; with it the server sends each event once).
SEEN_EVENTS_KEPT = 1000
# Request errors that mean the message in flight went nowhere and never will.
_REFUSED_SENDS = frozenset(
    {ErrorCode.TOO_LONG, ErrorCode.BAD_REQUEST, ErrorCode.NO_SUCH_MEMBER, ErrorCode.NOT_JOINED}
)


def backoff_delay(
    failures: int,
    *,
    initial_s: float = RECONNECT_INITIAL_S,
    max_s: float = RECONNECT_MAX_S,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before attempt number ``failures + 1`` (``failures`` >= 1).

    ``initial_s`` doubled per failure, capped at ``max_s``, then moved by up to
    ±:data:`RECONNECT_JITTER` of itself (never above ``max_s``).
    """
    base = min(max_s, initial_s * 2.0 ** max(0, failures - 1))
    jittered = base * (1 + RECONNECT_JITTER * (2 * rand() - 1))
    return max(0.0, min(max_s, jittered))


def _read_alt_digits_as_alt() -> None:
    """Let Alt+1..9 reach the app as ``alt+1``..``alt+9``.

    xterm, tmux, GNOME Terminal and most others send Alt+digit as ESC and the digit;
    Textual 8 reads those as the characters macOS types for Option+digit (``¡``, ``™``...),
    for WezTerm on macOS. A chat client needs them as keys, as WeeChat and irssi use them:
    without the table entries the parser reads ESC+digit as the Alt key it is.
    """
    table = cast("dict[str, object]", ANSI_SEQUENCES_KEYS)
    for digit in "123456789":
        table.pop(f"\x1b{digit}", None)


@dataclass
class _Outcome:
    """How one connection attempt ended, and what the worker does next."""

    reason: str
    joined: bool = False
    retry_at_once: bool = False
    wait_for_user: bool = False
    show: bool = True


@dataclass
class _Outgoing:
    """A message typed and not yet acknowledged (its echo has not come back)."""

    text: str
    nonce: str
    to: str | None = None
    action: bool = False
    room: str = protocol.DEFAULT_ROOM
    #: The conversation it was typed in, when that is not where it goes (a /msg).
    origin: str | None = None
    sent: bool = field(default=False, compare=False)

    def frame(self) -> protocol.Say | protocol.DmRequest:
        if self.to is not None:
            return protocol.DmRequest(
                to=self.to, text=self.text, nonce=self.nonce, action=self.action
            )
        return protocol.Say(text=self.text, nonce=self.nonce, room=self.room, action=self.action)

    def label(self, current: str) -> str:
        """How the pending list shows it (untrusted parts are made inert by the view)."""
        text = f"* {self.text}" if self.action else self.text
        if self.to is not None:
            return f"→ {self.to}: {text}"
        return text if room_key(self.room) == current else f"#{self.room}: {text}"


@dataclass(eq=False)
class _Request:
    """A request other than a message, waiting for its answer (or its error)."""

    frame: protocol.ClientFrame
    #: Made by the app (a rejoin, a page of history), not typed.
    automatic: bool = False


def _answers(frame: protocol.ServerFrame, request: protocol.ClientFrame, me: str | None) -> bool:
    """Whether ``frame`` is the server's answer to ``request`` (errors aside)."""
    match request, frame:
        case protocol.JoinRequest(room=room), protocol.Joined(room=got):
            return room_key(room) == room_key(got)
        case protocol.Part(room=room), protocol.Leave(room=got, name=name, reason=reason):
            return (
                name == me
                and reason == protocol.LeaveReason.PART
                and (room_key(room) == room_key(got))
            )
        case protocol.TopicRequest(room=room), protocol.Topic(room=got, sender=sender):
            return sender == me and room_key(room) == room_key(got)
        case protocol.Who(room=room), protocol.Members(room=got):
            return room_key(room) == room_key(got)
        case protocol.RoomsRequest(), protocol.Rooms():
            return True
        case protocol.HistoryRequest(room=room), protocol.History(room=got):
            return room == got
        case protocol.NickRequest(), protocol.Nick(old=old):
            return old == me
    return False


class ChatApp(App[int]):
    """A terminal chat client for one chatroom server.

    Args:
        host: the server's host name or address.
        port: its TCP port.
        name: the name to join as; None asks for one in the app.
        password: the server's password, if it has one (asked for when refused).
        ssl_context: a client TLS context, or None for plain TCP.
        bell: ring the terminal bell on mentions and private messages.
    """

    CSS_PATH = "chat.tcss"
    TITLE = "chatroom"
    COMMANDS: ClassVar[set[type[Provider] | Callable[[], type[Provider]]]] = {ChatCommands}

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+q", "quit", "Quit", priority=True),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
        Binding("ctrl+r", "retry_now", "Reconnect"),
        Binding("f1", "help", "Help"),
        # Priority: the input would otherwise take Alt+digit for the digit.
        Binding("alt+right", "switch_by(1)", "Next room", key_display="Alt+→", priority=True),
        Binding("alt+down", "switch_by(1)", "Next room", show=False, priority=True),
        Binding("alt+left", "switch_by(-1)", "Previous room", show=False, priority=True),
        Binding("alt+up", "switch_by(-1)", "Previous room", show=False, priority=True),
        *(
            Binding(f"alt+{n}", f"switch_to_number({n})", f"Room {n}", show=False, priority=True)
            for n in range(1, 10)
        ),
        Binding("pageup", "scroll_page(-1)", "Scroll up", show=False),
        Binding("pagedown", "scroll_page(1)", "Scroll down", show=False),
        Binding("ctrl+home", "load_older", "Older messages", show=False),
    ]

    #: The first reconnect delay; tests may lower it on an instance.
    reconnect_initial_s = RECONNECT_INITIAL_S

    def __init__(
        self,
        host: str,
        port: int,
        name: str | None = None,
        password: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        *,
        bell: bool = True,
    ) -> None:
        super().__init__()
        _read_alt_digits_as_alt()
        self.host = host
        self.port = port
        self.chat_name = name
        self.password = password
        self.ssl_context = ssl_context
        self.bell_on = bell
        self.conn: ClientConnection | None = None
        self.joined_name: str | None = None
        # Typed and not yet acknowledged. Only the head is ever on the wire, and only
        # once its room's replay is over (``Conversation.ready``): one at a time keeps the
        # order and makes a rate_limited answer unambiguous; the nonce makes a resend
        # after a reconnect exactly-once.
        self.outbox: deque[_Outgoing] = deque()
        # Other requests (joins, parts, pages of history...) go before waiting messages,
        # one at a time as well: errors carry no request id, so whatever is in flight is
        # what an error is about.
        self._requests: deque[_Request] = deque()
        self.in_flight: _Outgoing | _Request | None = None
        self._request_timer: Timer | None = None
        self._nonce_prefix = secrets.token_hex(4)
        self._nonces = 0
        self._resend_timer: Timer | None = None
        self._retry_now = asyncio.Event()
        self._seen: dict[int, str] = {}
        # Where the lobby and private messages resume (hello's resume_after); other rooms
        # keep their own cursor.
        self._last_event_id: int | None = None
        self._last_failure = ""
        self._last_bell = -math.inf
        self._joins = 0
        self._quitting = False
        self._quit_warned = False
        #: Rooms from the last /rooms answer, for completion and the command palette.
        self.known_rooms: dict[str, protocol.RoomInfo] = {}
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.where = where
        self.sub_title = where
        # Kept as attributes, not queried: handlers still run while the app shuts down,
        # when a query for them would fail.
        self.status = StatusLine(where, tls=ssl_context is not None, id="status")
        self.member_list = MemberList(id="members")
        self.pending_view = PendingView(id="pending")
        self.room_list = RoomList(id="rooms")
        self.input_line = ChatInput(self._completions, id="input")
        self._panes = 0
        self.convs: dict[str, Conversation] = {}
        self.lobby = self._conversation(protocol.DEFAULT_ROOM, private=False)
        self.current = self.lobby
        self.switcher = ContentSwitcher(self.lobby.pane, id="panes", initial=self.lobby.pane.id)
        self.new_below = NewBelowBar(self.lobby.pane, id="new-below")

    @property
    def pane(self) -> MessagePane:
        """The pane shown now (the current conversation's)."""
        return self.current.pane

    @property
    def members(self) -> list[str]:
        """The current conversation's members as last known."""
        return self.current.members

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield self.status
        with Horizontal(id="main"):
            yield self.room_list
            with Vertical(id="conversation"):
                yield self.switcher
                yield self.new_below
                yield self.pending_view
            yield self.member_list
        yield self.input_line
        yield Footer()

    def on_mount(self) -> None:
        self._watch_pane(self.lobby.pane)
        self._show_current()
        self._notice(
            Text.assemble(
                (f"chatroom {__version__}", "bold"),
                f" · connecting to {self.where}… ",
                ("F1 or /help for help, Ctrl+P for the command palette", "dim"),
            )
        )
        self.input_line.focus()
        self._connection_loop()

    # ------------------------------------------------------------------ the connection worker

    @work(exclusive=True, group="connection", exit_on_error=False)
    async def _connection_loop(self) -> None:
        """Connect, join, read frames into messages; on loss, back off and do it again."""
        failures = 0
        attempt = 1
        while not self._quitting:
            self._retry_now.clear()
            try:
                outcome = await self._session(attempt)
            except Exception as exc:  # a bug here must cost a reconnect, never the app
                self.log.error("connection worker failed", exc)
                outcome = _Outcome(f"internal error: {exc!r}")
            if self._quitting:
                return
            if outcome.joined:
                failures = 0
            if outcome.show:
                self.post_message(Disconnected(outcome.reason, was_joined=outcome.joined))
            attempt += 1
            if outcome.retry_at_once:
                continue
            if outcome.wait_for_user:
                self.post_message(RetryScheduled(None, outcome.reason))
                await self._retry_now.wait()
                continue
            failures += 1
            delay = backoff_delay(failures, initial_s=self.reconnect_initial_s)
            self.post_message(RetryScheduled(delay, outcome.reason))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._retry_now.wait()

    async def _session(self, attempt: int) -> _Outcome:
        """One connection, from connect to loss."""
        if self.chat_name is None:
            name = await self._prompt(PromptScreen("Your name in the chat", placeholder="name"))
            if name is None:
                return _Outcome(
                    "no name chosen; Ctrl+R to choose one", wait_for_user=True, show=False
                )
            self.chat_name = name
        self.post_message(Connecting(attempt))
        try:
            conn = await ClientConnection.connect(
                self.host, self.port, ssl_context=self.ssl_context
            )
        except ConnectError as exc:
            return _Outcome(str(exc))
        try:
            joined = await self._join(conn)
            if isinstance(joined, _Outcome):
                return joined
            self.post_message(Connected(conn, joined))
            while True:
                try:
                    frame = await conn.recv()
                except ConnectionClosed as exc:
                    return _Outcome(str(exc), joined=True)
                self.post_message(FrameReceived(frame))
        finally:
            # Cancelled at exit, or any other way out: say goodbye if still open.
            await conn.close()

    async def _join(self, conn: ClientConnection) -> protocol.Welcome | _Outcome:
        """Send hello until the server welcomes us, asking for a new name or a password."""
        prompted = False
        # After a loss, ask for what was missed: the server replays it without gaps or
        # repeats (an extension; a server without it sends the usual history instead).
        resume_after = self._last_event_id if self._joins else None
        while True:
            assert self.chat_name is not None
            try:
                async with asyncio.timeout(JOIN_TIMEOUT_S):
                    # Lazy members: in a big room a join or leave of each of hundreds
                    # of people is noise here and a quadratic cost on the server.
                    return await conn.hello(
                        self.chat_name,
                        self.password,
                        resume_after=resume_after,
                        lazy_members=True,
                    )
            except TimeoutError:
                return _Outcome(f"no welcome from {self.where} in {JOIN_TIMEOUT_S:g} s")
            except ConnectionClosed as exc:
                # After a slow answer to a prompt the server's handshake timer may have
                # closed the socket; that is no failure, just connect again.
                return _Outcome(str(exc), retry_at_once=prompted, show=not prompted)
            except ServerError as exc:
                if exc.code == ErrorCode.HANDSHAKE_TIMEOUT and prompted:
                    return _Outcome("joining again", retry_at_once=True, show=False)
                self.post_message(JoinRefused(exc.code, exc.message or exc.code))
                if exc.code == ErrorCode.AUTH_FAILED:
                    password = await self._prompt(
                        PromptScreen(
                            "Password",
                            exc.message or "this server needs a password",
                            password=True,
                        )
                    )
                    if password is None:
                        return _Outcome(
                            "a password is needed; Ctrl+R to enter it",
                            wait_for_user=True,
                            show=False,
                        )
                    self.password = password
                    return _Outcome("joining with the password", retry_at_once=True, show=False)
                if exc.code in (ErrorCode.NAME_TAKEN, ErrorCode.INVALID_NAME):
                    name = await self._prompt(
                        PromptScreen(
                            "Choose another name", exc.message or exc.code, value=self.chat_name
                        )
                    )
                    if name is None:
                        return _Outcome(
                            "no name chosen; Ctrl+R to choose one", wait_for_user=True, show=False
                        )
                    self.chat_name = name
                    prompted = True
                    continue
                if exc.code == ErrorCode.UNSUPPORTED_PROTOCOL:
                    return _Outcome(f"the server refused: {exc}", wait_for_user=True)
                return _Outcome(f"the server refused: {exc}")

    async def _prompt(self, screen: PromptScreen) -> str | None:
        result: str | None = await self.push_screen_wait(screen)
        return result

    # ------------------------------------------------------------------ worker messages

    def on_connecting(self, message: Connecting) -> None:
        self.status.set_state("connecting")

    def on_join_refused(self, message: JoinRefused) -> None:
        self._notice(
            Text.assemble(("the server refused to let us in: ", "bold red"), inert(message.reason))
        )

    async def on_connected(self, message: Connected) -> None:
        welcome = message.welcome
        self.conn = message.connection
        self.joined_name = self.chat_name = welcome.name
        lobby = self.lobby
        if room_key(welcome.room) != lobby.key:
            self._rekey(lobby, room_key(welcome.room))
        lobby.name = welcome.room
        lobby.members = list(welcome.members)
        lobby.lazy_above = welcome.lazy_members_above
        lobby.members_at = _clock_now()
        lobby.joined = True
        lobby.ready = False
        self._last_failure = ""
        self._quit_warned = False
        self.status.who = welcome.name
        self.status.set_state("connected")
        if welcome.gap:
            self._notice_in(
                lobby, Text("some events from while you were away are no longer stored", "yellow")
            )
        fresh = [e for e in welcome.history if self._seen.get(e.id) != e.ts]
        if fresh:
            label = "earlier messages" if self._joins == 0 else "while you were away"
            self._add_history(lobby, fresh, label)
        self._joins += 1
        # Back into every other room, each from its own last event: the server replays
        # what was missed there, as hello's resume_after does for the lobby.
        self._requests.clear()
        for conv in self.convs.values():
            if conv is not lobby and not conv.private and conv.joined:
                self._requests.append(
                    _Request(
                        protocol.JoinRequest(room=conv.name, resume_after=conv.last_id),
                        automatic=True,
                    )
                )
        self._show_current()
        await self._pump()

    def on_disconnected(self, message: Disconnected) -> None:
        self.conn = None
        self.in_flight = None
        self._requests.clear()
        self._cancel_request_timer()
        self._cancel_resend()
        for conv in self.convs.values():
            conv.ready = False
            conv.paging = False
        self.status.set_state("disconnected", message.reason)
        self._show_current()
        if message.was_joined:
            notice = Text.assemble(
                ("disconnected: ", "bold red"),
                message.reason,
                ("  (reconnecting by itself; Ctrl+R: now)", "dim"),
            )
            for conv in self.convs.values():
                self._notice_in(conv, notice.copy())
        elif message.reason != self._last_failure:
            self._notice(
                Text.assemble(
                    ("cannot connect: ", "bold red"),
                    message.reason,
                    ("  (retrying by itself; Ctrl+R: now)", "dim"),
                )
            )
        self._last_failure = message.reason if not message.was_joined else ""

    def on_retry_scheduled(self, message: RetryScheduled) -> None:
        if self.conn is not None:
            return
        if message.delay_s is None:
            self.status.set_state("offline", message.why)
            self._notice(Text(message.why, style="italic"))
        else:
            self.status.set_state("disconnected", message.why, retry_in_s=message.delay_s)

    # ------------------------------------------------------------------ frames

    async def on_frame_received(self, message: FrameReceived) -> None:
        frame = message.frame
        answered = self._take_answer(frame)
        match frame:
            case (
                protocol.Message()
                | protocol.Join()
                | protocol.Leave()
                | protocol.Topic()
                | protocol.Nick()
                | protocol.Dm()
            ):
                await self._live_event(frame)
            case protocol.Joined():
                self._joined(frame, switch=answered is not None and not answered.automatic)
            case protocol.History():
                self._older_page(frame)
            case protocol.Members(members=members):
                conv = self.convs.get(room_key(frame.room))
                if conv is not None and not conv.private:
                    conv.members = list(members)
                    conv.members_at = _clock_now()
                    self._members_changed(conv)
                if answered is None:
                    # Unasked: a big room became small, and these are its members now.
                    return
                listing = Text.assemble((f"{len(members)} in #{inert(frame.room)}: ", "bold"))
                for index, name in enumerate(sorted(members, key=str.casefold)):
                    if index:
                        listing.append(", ")
                    listing.append(inert(name), style=name_colour(name))
                self._notice_in(conv if conv is not None else self.current, listing)
            case protocol.Rooms():
                self._rooms_listing(frame)
            case protocol.Error(code=code, message=text):
                await self._server_error(code, text)
            case _:
                pass  # pongs, and answers to requests this client does not make
        if answered is not None:
            await self._pump()

    def _take_answer(self, frame: protocol.ServerFrame) -> _Request | None:
        """If ``frame`` answers the request in flight, that request is done: return it."""
        request = self.in_flight
        if not isinstance(request, _Request) or not _answers(
            frame, request.frame, self.joined_name
        ):
            return None
        self._requests.popleft()
        self.in_flight = None
        self._cancel_request_timer()
        self._cancel_resend()
        return request

    def _mark_seen(self, event: protocol.Event) -> None:
        self._seen[event.id] = event.ts
        if len(self._seen) > SEEN_EVENTS_KEPT:
            del self._seen[next(iter(self._seen))]

    async def _live_event(self, event: protocol.Event) -> None:
        me = self.joined_name
        acked = self._acknowledges(event)
        self._mark_seen(event)
        if isinstance(event, protocol.Dm):
            self._private_event(event, acked)
            if acked is not None:
                await self._pump()
            return
        conv = self.convs.get(room_key(event.room)) if event.room else None
        if conv is None or conv.private:
            # A room already left (its last words may still be on the way), or a rename
            # seen in no room at all.
            if isinstance(event, protocol.Nick):
                self._renamed(event)
                self._show_event(self.current, event)
            return
        # The latest, not the highest: a server restarted without its store counts from 1.
        if conv is self.lobby:
            self._last_event_id = event.id
        else:
            conv.last_id = event.id
        match event:
            case protocol.Join(name=name) if name == me:
                # The room's replay (after a resume) is over: what waits for it may go.
                conv.ready = True
                conv.joins += 1
                verb = "joined" if conv.joins == 1 else "are back in"
                clock = local_time(event.ts)
                when = clock.strftime("%H:%M") if clock else ""
                rule = self._rule(
                    conv, Text(f"you {verb} #{inert(conv.name)} as {inert(name)} · {when}", "dim")
                )
                rule.event_id = event.id
                self._show_rooms()
                await self._pump()
                return
            case protocol.Join(name=name) if conv.ready:
                # Only live events: a replay's comings and goings are older than the
                # member list the welcome or joined brought.
                if name not in conv.members:
                    conv.members.append(name)
                self._members_changed(conv)
            case protocol.Leave(name=name, reason=reason) if (
                name == me and reason == protocol.LeaveReason.PART and conv.ready
            ):
                self._close(conv)
                self._notice(Text.assemble("you left ", (f"#{inert(conv.name)}", "bold")))
                await self._pump()
                return
            case protocol.Leave(name=name) if conv.ready:
                if name in conv.members:
                    conv.members.remove(name)
                self._members_changed(conv)
            case protocol.Nick(old=old, new=new):
                if conv.ready:
                    conv.members = [new if m == old else m for m in conv.members]
                self._renamed(event)
                self._members_changed(conv)
            case protocol.Topic(text=text):
                conv.topic = text
                if conv is self.current:
                    self.status.topic = text
                    self.status.redraw()
        entry = self._show_event(conv, event)
        if isinstance(event, protocol.Message) and event.sender != me:
            self._note_unread(conv, mention=entry.mention)
        if acked is not None:
            await self._pump()

    def _private_event(self, event: protocol.Dm, acked: _Outgoing | None) -> None:
        me = self.joined_name
        self._last_event_id = event.id
        other = event.to if event.sender == me else event.sender
        conv = self.convs.get(private_key(other))
        if conv is None:
            conv = self._add_conversation(other, private=True)
        conv.name = other  # as the server spells it
        self._show_event(conv, event)
        if event.sender != me:
            # A private message is addressed to you: it counts as a mention.
            self._note_unread(conv, mention=True)
        elif acked is not None and acked.origin not in (None, conv.key):
            origin = self.convs.get(acked.origin or "")
            if origin is not None:
                origin.pane.add(event_entry(event, me))
        self._show_rooms()

    def _renamed(self, event: protocol.Nick) -> None:
        """Someone (maybe us) has a new name: follow it in the status and private entries."""
        if event.old == self.joined_name:
            self.joined_name = self.chat_name = self.status.who = event.new
            self.status.redraw()
        conv = self.convs.get(private_key(event.old))
        if conv is not None and private_key(event.new) not in self.convs:
            self._rekey(conv, private_key(event.new))
            conv.name = event.new
            self._show_event(conv, event)
            if conv is self.current:
                self._show_current()
            self._show_rooms()

    def _joined(self, joined: protocol.Joined, *, switch: bool) -> None:
        conv = self.convs.get(room_key(joined.room))
        if conv is None:
            conv = self._add_conversation(joined.room, private=False)
        conv.name = joined.room
        conv.members = list(joined.members)
        conv.lazy_above = joined.lazy_members_above
        conv.members_at = _clock_now()
        conv.topic = joined.topic
        conv.joined = True
        conv.ready = False
        if joined.gap:
            self._notice_in(
                conv, Text("some events from while you were away are no longer stored", "yellow")
            )
        fresh = [e for e in joined.history if self._seen.get(e.id) != e.ts]
        if fresh:
            label = "earlier messages" if conv.joins == 0 else "while you were away"
            self._add_history(conv, fresh, label)
        if switch:
            self.switch_to(conv.key)
        elif conv is self.current:
            self._show_current()
        else:
            self._show_rooms()

    def _add_history(self, conv: Conversation, events: list[protocol.Event], label: str) -> None:
        """Show a welcome's or joined's history in ``conv``, set apart and dimmed."""
        for event in events:
            self._mark_seen(event)
            if conv is self.lobby:
                self._last_event_id = event.id
            else:
                conv.last_id = event.id
            self._acknowledges(event)
        self._rule(conv, Text(label, style="dim"))
        entries, day = history_entries(events, self.joined_name, conv.last_day)
        for entry in entries:
            conv.pane.add(entry)
        if day is not None:
            conv.last_day = day

    def _older_page(self, page: protocol.History) -> None:
        """Put a page of older events above what ``page.room``'s pane shows."""
        if page.room.startswith("@"):
            conv = self.convs.get(private_key(page.room[1:]))
        else:
            conv = self.convs.get(room_key(page.room))
        if conv is None:
            return  # closed while the page was on its way
        conv.paging = False
        oldest = conv.pane.oldest_event_id()
        events = [e for e in page.events if oldest is None or e.id < oldest]
        entries, _ = history_entries(events, self.joined_name, None)
        if not page.more:
            conv.history_done = True
            entries.insert(
                0, PaneEntry(Text(""), Text("beginning of history", style="dim"), rule=True)
            )
        conv.pane.prepend(entries)

    def _rooms_listing(self, frame: protocol.Rooms) -> None:
        self.known_rooms = {room_key(room.name): room for room in frame.rooms}
        count = len(frame.rooms)
        listing = Text.assemble((f"{count} room{'' if count == 1 else 's'} on this server", "bold"))
        width = max((cell_len(inert(room.name)) for room in frame.rooms), default=0) + 1
        for room in sorted(frame.rooms, key=lambda r: r.name.casefold()):
            name = f"#{inert(room.name)}"
            listing.append("\n  ")
            listing.append(name, style="bold")
            listing.append(" " * (width - cell_len(name) + 2))
            plural = " " if room.members == 1 else "s"
            listing.append(f"{room.members:>3} member{plural}")
            conv = self.convs.get(room_key(room.name))
            joined = conv is not None and conv.joined and not conv.private
            listing.append(" ✓ " if joined else "   ", style="green")
            if room.topic:
                listing.append(truncate(inert(room.topic), 60), style="italic")
        listing.append("\n✓ ", style="green")
        listing.append("you are in it; ", style="dim")
        listing.append("/join ROOM", style="bold")
        listing.append(" joins one, or makes a new one", style="dim")
        self._notice(listing)

    # ------------------------------------------------------------------ sending

    def _queue(
        self,
        text: str,
        *,
        room: str = protocol.DEFAULT_ROOM,
        to: str | None = None,
        action: bool = False,
        origin: str | None = None,
    ) -> None:
        self._nonces += 1
        nonce = f"{self._nonce_prefix}-{self._nonces}"
        self.outbox.append(_Outgoing(text, nonce, to, action, room, origin))

    async def _ask(self, frame: protocol.ClientFrame, *, automatic: bool = False) -> None:
        """Send a request that needs a live connection (join, who, nick, topic...)."""
        if self.conn is None:
            self._notice(Text("not connected; try again once reconnected", style="yellow"))
            return
        self._requests.append(_Request(frame, automatic=automatic))
        await self._pump()

    def _sendable(self) -> _Outgoing | None:
        """The outbox's head if its conversation is ready for it; drops what cannot go."""
        while self.outbox:
            head = self.outbox[0]
            if head.to is not None:
                return head if self.lobby.ready else None
            conv = self.convs.get(room_key(head.room))
            if conv is not None and conv.joined:
                return head if conv.ready and self.lobby.ready else None
            self.outbox.popleft()
            self._notice(
                Text.assemble(
                    ("not sent ", "bold red"),
                    f"(you are not in #{inert(head.room)}): ",
                    inert(head.text),
                )
            )
        return None

    async def _pump(self) -> None:
        """Send the next request, or the head of the outbox, if nothing is in flight."""
        conn = self.conn
        if conn is not None and self.in_flight is None:
            frame: protocol.ClientFrame | None = None
            if self._requests:
                request = self.in_flight = self._requests[0]
                frame = request.frame
                self._cancel_request_timer()
                self._request_timer = self.set_timer(
                    REQUEST_TIMEOUT_S, lambda: self._request_timed_out(request)
                )
            else:
                head = self._sendable()
                if head is not None:
                    self.in_flight = head
                    head.sent = True
                    frame = head.frame()
            if frame is not None:
                try:
                    await conn.send(frame)
                except ConnectionClosed:
                    self.in_flight = None  # the worker sees the loss too and reconnects
        self._show_pending()

    def _acknowledges(self, event: protocol.Event) -> _Outgoing | None:
        """If ``event`` is the echo of the outbox's head, take the head off and return it."""
        if not self.outbox or not isinstance(event, protocol.Message | protocol.Dm):
            return None
        head = self.outbox[0]
        if event.sender != self.joined_name or isinstance(event, protocol.Dm) != (
            head.to is not None
        ):
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
            self._cancel_resend()
        self._show_pending()
        return head

    def _cancel_resend(self) -> None:
        if self._resend_timer is not None:
            self._resend_timer.stop()
            self._resend_timer = None

    def _cancel_request_timer(self) -> None:
        if self._request_timer is not None:
            self._request_timer.stop()
            self._request_timer = None

    async def _resend(self) -> None:
        self._resend_timer = None
        self.in_flight = None
        await self._pump()

    async def _request_timed_out(self, request: _Request) -> None:
        self._request_timer = None
        if self.in_flight is not request:
            return
        self._requests.popleft()
        self.in_flight = None
        self._request_failed(request, "timeout", "no answer from the server")
        await self._pump()

    async def _server_error(self, code: str, text: str) -> None:
        flight = self.in_flight
        if code == ErrorCode.RATE_LIMITED and flight is not None:
            # Not delivered; try again once the server's bucket has a token.
            self._cancel_resend()
            self._resend_timer = self.set_timer(RATE_LIMIT_RETRY_S, self._resend)
            return
        if isinstance(flight, _Request):
            self._requests.popleft()
            self.in_flight = None
            self._cancel_request_timer()
            self._request_failed(flight, code, text)
            await self._pump()
            return
        if code in _REFUSED_SENDS and flight is not None:
            unsent = self.outbox.popleft()
            self.in_flight = None
            self._notice(Text.assemble(("not sent: ", "bold red"), inert(text or code)))
            if (
                not self.input_line.value
                and unsent.to is None
                and not unsent.action
                and "\n" not in unsent.text
            ):
                self.input_line.value = unsent.text  # give it back to shorten or fix
            await self._pump()
            return
        self._notice(
            Text.assemble(
                ("server: ", "bold red"), inert(text or code), (f" ({inert(code)})", "dim")
            )
        )

    def _request_failed(self, request: _Request, code: str, text: str) -> None:
        """Say why ``request`` came to nothing, where it matters."""
        reason = Text.assemble(inert(text or code), (f" ({inert(code)})", "dim"))
        where = self.current
        match request.frame:
            case protocol.JoinRequest(room=room):
                conv = self.convs.get(room_key(room))
                if conv is not None and request.automatic:
                    conv.joined = False
                    conv.ready = False
                    self._show_rooms()
                    self._notice_in(
                        conv,
                        Text.assemble(
                            (f"could not rejoin #{inert(room)}: ", "bold red"),
                            reason,
                            (f"  /join {inert(room)} tries again", "dim"),
                        ),
                    )
                    return
                what = f"cannot join #{inert(room)}"
            case protocol.Part(room=room):
                what = f"cannot leave #{inert(room)}"
            case protocol.TopicRequest(room=room):
                what = f"cannot set the topic of #{inert(room)}"
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
                where, what = conv, "no older messages"
            case protocol.Who(room=room):
                what = f"cannot list the members of #{inert(room)}"
            case protocol.RoomsRequest():
                what = "cannot list the rooms"
            case protocol.NickRequest():
                what = "cannot change your name"
            case _:
                what = "request failed"
        self._notice_in(where, Text.assemble((f"{what}: ", "bold red"), reason))

    # ------------------------------------------------------------------ input

    @on(Input.Submitted, "#input")
    async def _submitted(self, event: Input.Submitted) -> None:
        line = event.value  # the input has already started the next line
        if "\n" not in line:
            self.input_line.remember(line)
        await self.run_line(line)

    async def run_line(self, line: str) -> None:
        """Do what a line typed in the current conversation asks: send it, or a command."""
        conv = self.current
        match commands.parse_command(line):
            case commands.SendText(text=text):
                if not self._say(conv, text):
                    return
            case commands.Action(text=text):
                if not self._say(conv, text, action=True):
                    return
            case commands.PrivateMessage(to=to, text=text):
                self._queue(text, to=to, origin=conv.key)
            case commands.Query(name=name, text=text):
                target = self.convs.get(private_key(name))
                if target is None:
                    target = self._add_conversation(name, private=True)
                self.switch_to(target.key)
                if not text:
                    return
                self._queue(text, to=target.name)
            case commands.Join(room=room):
                await self.join_room(room)
                return
            case commands.Part(room=room):
                await self._part(room)
                return
            case commands.Rooms():
                await self._ask(protocol.RoomsRequest())
                return
            case commands.Help():
                self.action_help()
                return
            case commands.Who():
                await self._who(conv)
                return
            case commands.Nick(name=name):
                # The server answers a rename to the same name with nothing at all.
                if unicodedata.normalize("NFC", name) == self.joined_name:
                    self._notice(Text.assemble("you are already called ", _bold(name)))
                    return
                await self._ask(protocol.NickRequest(name=name))
                return
            case commands.SetTopic(text=text):
                if conv.private:
                    self._notice(Text("a private conversation has no topic"))
                    return
                await self._ask(protocol.TopicRequest(room=conv.name, text=text))
                return
            case commands.ShowTopic():
                self._show_topic(conv)
                return
            case commands.Bell(on=on_):
                self._set_bell(on_)
                return
            case commands.Quit():
                await self.action_quit()
                return
            case commands.Clear():
                conv.pane.clear_entries()
                return
            case commands.Usage(hint=hint):
                self._notice(Text.assemble("usage: ", (hint, "bold")))
                return
            case commands.Unknown(name=name):
                self._notice(
                    Text.assemble(
                        (f"/{inert(name)}", "bold"),
                        " is not a command (not sent). ",
                        ("/help", "bold"),
                        " lists them; ",
                        (f"//{inert(name)}", "bold"),
                        " sends it as a message.",
                    )
                )
                return
            case commands.Empty():
                return
        self.pane.jump_to_end()
        await self._pump()

    def _say(self, conv: Conversation, text: str, *, action: bool = False) -> bool:
        """Queue ``text`` for the conversation ``conv``; False when it cannot take it."""
        if conv.private:
            self._queue(text, to=conv.name, action=action)
        elif conv.joined:
            self._queue(text, room=conv.name, action=action)
        else:
            self._notice(
                Text.assemble(
                    ("not sent: ", "bold red"),
                    f"you are not in #{inert(conv.name)}; ",
                    _bold(f"/join {conv.name}"),
                    " to go back",
                )
            )
            return False
        return True

    async def join_room(self, room: str) -> None:
        """Join ``room``, or show it if already in (as IRC clients do)."""
        conv = self.convs.get(room_key(room))
        if conv is not None and conv.joined and not conv.private:
            self.switch_to(conv.key)
            return
        resume_after = conv.last_id if conv is not None else None
        await self._ask(protocol.JoinRequest(room=room, resume_after=resume_after))

    async def _part(self, room: str | None) -> None:
        if room is None:
            conv: Conversation | None = self.current
        elif room.startswith("@"):
            conv = self.convs.get(private_key(room[1:]))
        else:
            conv = self.convs.get(room_key(room)) or self.convs.get(private_key(room))
        if conv is None:
            self._notice(Text(f"you are not in #{inert(room or '')}"))
            return
        if conv is self.lobby:
            self._notice(
                Text.assemble(
                    f"everyone stays in #{inert(conv.name)}: the server puts each connection there"
                )
            )
            return
        if conv.private or not conv.joined or self.conn is None:
            # Nothing to tell the server: a private conversation is only an entry here,
            # and a lost connection already took us out of the room.
            self._close(conv)
            return
        await self._ask(protocol.Part(room=conv.name))

    async def _who(self, conv: Conversation) -> None:
        if conv.private:
            self._notice(Text.assemble("a private conversation with ", _bold(conv.name)))
        elif self.conn is None:
            names = ", ".join(inert(n) for n in sorted(conv.members, key=str.casefold))
            self._notice(Text(f"not connected; last known members: {names or 'none'}"))
        else:
            await self._ask(protocol.Who(room=conv.name))

    def _show_topic(self, conv: Conversation) -> None:
        if conv.private:
            self._notice(Text("a private conversation has no topic"))
        elif conv.topic:
            self._notice(
                Text.assemble(f"topic of #{inert(conv.name)}: ", (inert(conv.topic), "italic"))
            )
        else:
            self._notice(
                Text.assemble(
                    f"#{inert(conv.name)} has no topic; ", _bold("/topic TEXT"), " sets one"
                )
            )

    def _set_bell(self, on_: bool | None) -> None:
        if on_ is not None:
            self.bell_on = on_
        if self.bell_on:
            self._notice(
                Text.assemble(
                    "the bell rings on mentions and private messages; ",
                    _bold("/bell off"),
                    " stops it",
                )
            )
        else:
            self._notice(Text.assemble("the bell is off; ", _bold("/bell on"), " turns it on"))

    def _completions(self, head: str) -> Sequence[str]:
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
            names.discard(self.joined_name or "")
            return sorted(names, key=str.casefold)
        conv = self.current
        if conv.private:
            return [conv.name]
        return conv.members

    # ------------------------------------------------------------------ conversations

    def _conversation(self, name: str, *, private: bool) -> Conversation:
        """A new conversation, last in the list, its pane not yet mounted."""
        self._panes += 1
        pane = MessagePane(id=f"pane-{self._panes}")
        key = private_key(name) if private else room_key(name)
        conv = Conversation(key=key, name=name, private=private, pane=pane)
        self.convs[key] = conv
        return conv

    def _add_conversation(self, name: str, *, private: bool) -> Conversation:
        conv = self._conversation(name, private=private)
        conv.pane.display = False
        self.switcher.mount(conv.pane)
        self._watch_pane(conv.pane)
        self._show_rooms()
        return conv

    def _watch_pane(self, pane: MessagePane) -> None:
        self.watch(pane, "unseen", lambda unseen: self._unseen_changed(pane, unseen))

    def _unseen_changed(self, pane: MessagePane, unseen: int) -> None:
        if pane is self.current.pane:
            self.new_below.show_count(unseen)

    def _rekey(self, conv: Conversation, key: str) -> None:
        """Give ``conv`` a new key, keeping its place in the list."""
        self.convs = {(key if k == conv.key else k): c for k, c in self.convs.items()}
        conv.key = key

    def _close(self, conv: Conversation) -> None:
        """Take ``conv`` off the list; the one before it is shown if it was."""
        keys = list(self.convs)
        index = keys.index(conv.key)
        del self.convs[conv.key]
        if conv is self.current:
            neighbour = list(self.convs.values())[max(0, index - 1)]
            self.switch_to(neighbour.key)
        conv.pane.remove()
        self._show_rooms()

    def switch_to(self, key: str) -> None:
        """Show the conversation ``key``; its unread count is cleared."""
        conv = self.convs.get(key)
        if conv is None:
            return
        if conv is not self.current:
            self.current = conv
            self.switcher.current = conv.pane.id
            self.new_below.pane = conv.pane
        conv.unread = conv.mentions = 0
        self._show_current()
        with contextlib.suppress(KeyError):
            self.room_list.scroll_to_widget(self.room_list.entry(key), animate=False)

    def _note_unread(self, conv: Conversation, *, mention: bool) -> None:
        if mention:
            self._ring()
        if conv is self.current:
            return
        conv.unread += 1
        if mention:
            conv.mentions += 1
        self._show_rooms()

    def _ring(self) -> None:
        now = time.monotonic()
        if self.bell_on and now - self._last_bell >= BELL_MIN_INTERVAL_S:
            self._last_bell = now
            self.bell()

    async def _load_older(self, conv: Conversation) -> None:
        """Ask for the page of events before the oldest ``conv`` shows."""
        if conv.paging or conv.history_done or self.conn is None:
            return
        if not (conv.ready if not conv.private else self.lobby.ready):
            return
        conv.paging = True
        before = conv.pane.oldest_event_id()
        await self._ask(
            protocol.HistoryRequest(
                room=conv.history_room, before=before, limit=HISTORY_PAGE_EVENTS
            ),
            automatic=True,
        )

    async def on_message_pane_reached_top(self, message: MessagePane.ReachedTop) -> None:
        conv = next((c for c in self.convs.values() if c.pane is message.pane), None)
        if conv is not None:
            await self._load_older(conv)

    def on_room_list_chosen(self, message: RoomList.Chosen) -> None:
        self.switch_to(message.key)
        self.input_line.focus()

    # ------------------------------------------------------------------ actions

    async def action_quit(self) -> None:
        """Say bye and leave; with unsent messages, only on the second press."""
        if self.outbox and not self._quit_warned:
            self._quit_warned = True
            count = len(self.outbox)
            self._notice(
                Text.assemble(
                    (
                        f"{count} message{'s are' if count > 1 else ' is'} not sent yet. ",
                        "bold yellow",
                    ),
                    "Press Ctrl+Q again to quit anyway.",
                )
            )
            return
        self._quitting = True
        self._cancel_resend()
        self._cancel_request_timer()
        conn, self.conn = self.conn, None
        if conn is not None:
            await conn.close()
        self.exit(0)

    def action_retry_now(self) -> None:
        """Skip the reconnect wait."""
        if self.conn is None:
            self._retry_now.set()

    def action_switch_by(self, step: int) -> None:
        """Show the next (1) or previous (-1) conversation in the list, wrapping around."""
        if len(self.screen_stack) > 1:
            raise SkipAction()  # a dialog is open: the keys are its input's
        keys = list(self.convs)
        index = keys.index(self.current.key)
        self.switch_to(keys[(index + step) % len(keys)])

    def action_switch_to_number(self, number: int) -> None:
        """Show the conversation numbered ``number`` in the list (from 1)."""
        if len(self.screen_stack) > 1:
            raise SkipAction()
        keys = list(self.convs)
        if 0 < number <= len(keys):
            self.switch_to(keys[number - 1])

    async def action_load_older(self) -> None:
        """Load the page of messages before the oldest shown, and scroll to it."""
        self.pane.scroll_home(animate=False, immediate=True)
        await self._load_older(self.current)

    def action_join_prompt(self) -> None:
        """Ask for a room's name, then join it."""

        async def join(room: str | None) -> None:
            if room:
                await self.join_room(room.removeprefix("#").strip())

        self.push_screen(PromptScreen("Join a room", placeholder="room"), join)

    def action_toggle_bell(self) -> None:
        """Turn the bell on mentions on or off."""
        self._set_bell(not self.bell_on)

    def action_help(self) -> None:
        """Show commands and keys in the pane."""
        width = max(len(usage) for usage in commands.COMMANDS) + 2
        help_text = Text()
        help_text.append("Commands\n", style="bold")
        for usage, what in commands.COMMANDS.items():
            help_text.append(f"  {usage:<{width}}", style="bold")
            help_text.append(f"{what}\n")
        help_text.append("Keys\n", style="bold")
        for keys, what in (
            ("Enter", "send (a pasted block of lines goes as one message)"),
            ("Up/Down", "recall earlier lines"),
            ("Tab", "complete a name, a /command or a #room"),
            ("Alt+←/→", "previous/next room (Alt+↑/↓ too; or click it)"),
            ("Alt+1..9", "go to room number 1..9 in the list"),
            ("PgUp/PgDn", "scroll; PgUp at the top loads older messages"),
            ("Ctrl+Home", "go to the top and load older messages"),
            ("Ctrl+P", "command palette"),
            ("Ctrl+R", "reconnect now"),
            ("Ctrl+Q", "quit (Ctrl+C too)"),
        ):
            help_text.append(f"  {keys:<{width}}", style="bold")
            help_text.append(f"{what}\n")
        help_text.rstrip()
        self.pane.add(PaneEntry(Text(""), help_text))

    async def action_scroll_page(self, direction: int) -> None:
        """Scroll the conversation a page up (-1) or down (1); up at the top loads older."""
        if direction < 0:
            if round(self.pane.scroll_y) == 0:
                await self._load_older(self.current)
            self.pane.scroll_page_up(animate=False)
        else:
            self.pane.scroll_page_down(animate=False)

    # ------------------------------------------------------------------ showing

    def _notice(self, text: Text) -> None:
        """A line from the app itself, in the conversation shown now."""
        self._notice_in(self.current, text)

    def _notice_in(self, conv: Conversation, text: Text) -> None:
        now = time.strftime("%H:%M")
        conv.pane.add(PaneEntry(Text.assemble((now, "dim"), " "), text))

    def _rule(self, conv: Conversation, label: Text) -> PaneEntry:
        return conv.pane.add(PaneEntry(Text(""), label, rule=True))

    def _show_event(self, conv: Conversation, event: protocol.Event) -> PaneEntry:
        moment = local_time(event.ts)
        if moment is not None and moment.date() != conv.last_day:
            conv.last_day = moment.date()
            conv.pane.add(day_rule(conv.last_day))
        return conv.pane.add(event_entry(event, self.joined_name))

    def _members_changed(self, conv: Conversation) -> None:
        if conv is self.current:
            self._show_members()

    def _show_members(self) -> None:
        conv = self.current
        online = self.conn is not None
        me = self.joined_name
        if conv.private:
            names = [conv.name, *([me] if me else [])]
            self.member_list.show(names, me, online=online, title="Private")
            self.status.member_count = None
        else:
            # Over the threshold the server sends no joins and leaves: a snapshot.
            snapshot = conv.lazy_above is not None and len(conv.members) > conv.lazy_above
            self.member_list.show(
                conv.members,
                me,
                online=online and conv.joined,
                note=f"as of {conv.members_at}, /who" if snapshot else "",
            )
            self.status.member_count = len(conv.members)
            if snapshot and not conv.lazy_told:
                conv.lazy_told = True
                self._notice_in(
                    conv,
                    Text(
                        f"more than {conv.lazy_above} members here: joins and leaves are not "
                        "shown, and the member list is as of the time it says; /who refreshes it",
                        "dim",
                    ),
                )
        self.status.redraw()

    def _show_current(self) -> None:
        """Bring the status line, lists and bars in line with the current conversation."""
        conv = self.current
        self.new_below.show_count(conv.pane.unseen)
        self.status.room = conv.label
        self.status.topic = conv.topic
        self._show_members()
        self._show_rooms()
        self._show_pending()

    def _show_rooms(self) -> None:
        self.room_list.show(
            [
                RoomTab(
                    key=conv.key,
                    label=conv.label,
                    unread=conv.unread,
                    mentions=conv.mentions,
                    current=conv is self.current,
                    joined=conv.joined,
                )
                for conv in self.convs.values()
            ]
        )

    def _show_pending(self) -> None:
        labels = [item.label(self.current.key) for item in self.outbox]
        self.pending_view.show(labels, online=self.conn is not None)
        self.status.pending = len(self.outbox)
        self.status.redraw()


def _bold(text: str) -> tuple[str, str]:
    """A ``Text.assemble`` part in bold (made inert: it may hold a name)."""
    return inert(text), "bold"


def _clock_now() -> str:
    """The local time as the message pane shows it: HH:MM."""
    return time.strftime("%H:%M")


if TYPE_CHECKING:

    def _palette_host(app: ChatApp) -> PaletteHost:
        return app  # mypy checks here that the app offers what the palette uses
