"""The Textual chat app: one worker owns the connection, handlers update the widgets."""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import secrets
import ssl
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.timer import Timer
from textual.widgets import Footer, Input

from chatroom import __version__, protocol
from chatroom.client import ClientConnection, ConnectError, ConnectionClosed, ServerError
from chatroom.framing import ErrorCode
from chatroom.text import inert, name_colour
from chatroom.tui import commands
from chatroom.tui.messages import (
    Connected,
    Connecting,
    Disconnected,
    FrameReceived,
    JoinRefused,
    RetryScheduled,
)
from chatroom.tui.widgets import (
    ChatInput,
    MemberList,
    MessagePane,
    NewBelowBar,
    PaneEntry,
    PendingView,
    PromptScreen,
    StatusLine,
)

__all__ = [
    "JOIN_TIMEOUT_S",
    "RATE_LIMIT_RETRY_S",
    "RECONNECT_INITIAL_S",
    "RECONNECT_MAX_S",
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
# Ids of events already shown, so a reconnect's history does not repeat them (for servers
# without resume; with it the server sends each event once).
SEEN_EVENTS_KEPT = 1000
# Longer runs of joins and leaves in a welcome's history fold into one line: a busy
# server's history is otherwise a screenful of comings and goings.
HISTORY_FOLD_RUN = 4
# Request errors that mean the request in flight went nowhere and never will.
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
    sent: bool = field(default=False, compare=False)

    def frame(self) -> protocol.Say | protocol.DmRequest:
        if self.to is not None:
            return protocol.DmRequest(
                to=self.to, text=self.text, nonce=self.nonce, action=self.action
            )
        return protocol.Say(text=self.text, nonce=self.nonce, action=self.action)

    def label(self) -> str:
        """How the pending list shows it (untrusted parts are made inert by the view)."""
        text = f"* {self.text}" if self.action else self.text
        return f"→ {self.to}: {text}" if self.to is not None else text


def _local_time(ts: str) -> datetime | None:
    try:
        return datetime.fromisoformat(ts.replace("Z", "+00:00")).astimezone()
    except ValueError:
        return None


def _name(name: str) -> tuple[str, str]:
    """A name as a ``Text.assemble`` part: inert, bold, in its colour."""
    return inert(name), f"bold {name_colour(name)}"


class ChatApp(App[int]):
    """A terminal chat client for one chatroom server.

    Args:
        host: the server's host name or address.
        port: its TCP port.
        name: the name to join as; None asks for one in the app.
        password: the server's password, if it has one (asked for when refused).
        ssl_context: a client TLS context, or None for plain TCP.
    """

    CSS_PATH = "chat.tcss"
    TITLE = "chatroom"
    ENABLE_COMMAND_PALETTE = False

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+q", "quit", "Quit", priority=True),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
        Binding("ctrl+r", "retry_now", "Reconnect"),
        Binding("f1", "help", "Help"),
        Binding("pageup", "scroll_page(-1)", "Scroll up", show=False),
        Binding("pagedown", "scroll_page(1)", "Scroll down", show=False),
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
    ) -> None:
        super().__init__()
        self.host = host
        self.port = port
        self.chat_name = name
        self.password = password
        self.ssl_context = ssl_context
        self.conn: ClientConnection | None = None
        self.joined_name: str | None = None
        self.room = ""
        self.topic = ""
        self.members: list[str] = []
        # Typed and not yet acknowledged. Only the head is ever on the wire, and only
        # once the room's replay is over (``_replay_done``): one at a time keeps the order and
        # makes a rate_limited answer unambiguous; the nonce makes a resend after a
        # reconnect exactly-once.
        self.outbox: deque[_Outgoing] = deque()
        self.in_flight: _Outgoing | None = None
        self._replay_done = False
        self._nonce_prefix = secrets.token_hex(4)
        self._nonces = 0
        self._resend_timer: Timer | None = None
        self._retry_now = asyncio.Event()
        self._seen: dict[int, str] = {}
        self._last_event_id: int | None = None
        self._last_day: date = datetime.now().astimezone().date()
        self._last_failure = ""
        self._joins = 0
        self._quitting = False
        self._quit_warned = False
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.where = where
        self.sub_title = where
        # Kept as attributes, not queried: handlers still run while the app shuts down,
        # when a query for them would fail.
        self.status = StatusLine(where, tls=ssl_context is not None, id="status")
        self.pane = MessagePane(id="messages")
        self.member_list = MemberList(id="members")
        self.pending_view = PendingView(id="pending")
        self.input_line = ChatInput(lambda: self.members, id="input")

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield self.status
        with Horizontal(id="main"):
            with Vertical(id="conversation"):
                yield self.pane
                yield NewBelowBar(self.pane, id="new-below")
                yield self.pending_view
            yield self.member_list
        yield self.input_line
        yield Footer()

    def on_mount(self) -> None:
        self.watch(self.pane, "unseen", self.query_one("#new-below", NewBelowBar).show_count)
        self.member_list.show([], None, online=False)
        self._show_pending()
        self._notice(
            Text.assemble(
                (f"chatroom {__version__}", "bold"),
                f" · connecting to {self.where}… ",
                ("F1 or /help for help", "dim"),
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
            name = await self._ask(PromptScreen("Your name in the chat", placeholder="name"))
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
                    return await conn.hello(
                        self.chat_name, self.password, resume_after=resume_after
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
                    password = await self._ask(
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
                    name = await self._ask(
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

    async def _ask(self, screen: PromptScreen) -> str | None:
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
        self._replay_done = False
        self.joined_name = self.chat_name = welcome.name
        self.room = welcome.room
        self.members = list(welcome.members)
        self._last_failure = ""
        self._quit_warned = False
        status = self.status
        status.who = welcome.name
        status.room = welcome.room
        status.member_count = len(self.members)
        status.set_state("connected")
        self.member_list.show(self.members, welcome.name)
        if welcome.gap:
            self._notice(
                Text("some events from while you were away are no longer stored", "yellow")
            )
        fresh = [e for e in welcome.history if self._seen.get(e.id) != e.ts]
        if fresh:
            label = "earlier messages" if self._joins == 0 else "while you were away"
            self._rule(Text(label, style="dim"))
            self._show_history(fresh)
        self._joins += 1

    def _show_history(self, events: list[protocol.Event]) -> None:
        """Show past events dimmed; long runs of joins and leaves fold into one line."""
        run: list[protocol.Event] = []

        def flush_run() -> None:
            if len(run) > HISTORY_FOLD_RUN:
                joins = sum(isinstance(e, protocol.Join) for e in run)
                for event in run:
                    self._seen[event.id] = event.ts
                    self._last_event_id = event.id
                moment = _local_time(run[-1].ts)
                clock = moment.strftime("%H:%M") if moment else ""
                summary = f"{joins} joins and {len(run) - joins} leaves"
                self.pane.add(PaneEntry(Text(f"{clock} ", "dim"), Text(summary, "dim italic")))
            else:
                for event in run:
                    self._show_event(event, history=True)
            run.clear()

        for event in events:
            if isinstance(event, protocol.Join | protocol.Leave):
                run.append(event)
                continue
            flush_run()
            self._acknowledges(event)
            self._show_event(event, history=True)
        flush_run()

    async def on_frame_received(self, message: FrameReceived) -> None:
        frame = message.frame
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
            case protocol.Members(members=members):
                self.members = list(members)
                self._members_changed()
                listing = Text.assemble((f"{len(members)} in #{inert(frame.room)}: ", "bold"))
                for index, name in enumerate(sorted(members, key=str.casefold)):
                    if index:
                        listing.append(", ")
                    listing.append(inert(name), style=name_colour(name))
                self._notice(listing)
            case protocol.Error(code=code, message=text):
                await self._server_error(code, text)
            case _:
                pass  # pongs, and answers to requests this client does not make

    async def _live_event(self, event: protocol.Event) -> None:
        me = self.joined_name
        acked = self._acknowledges(event)
        match event:
            case protocol.Join(name=name) if name == me:
                # The replay of missed events (after a resume) is over: send what waits.
                self._replay_done = True
            case protocol.Join(name=name):
                if name not in self.members:
                    self.members.append(name)
                self._members_changed()
            case protocol.Leave(name=name):
                if name in self.members:
                    self.members.remove(name)
                self._members_changed()
            case protocol.Nick(old=old, new=new):
                self.members = [new if m == old else m for m in self.members]
                if old == me:
                    self.joined_name = self.chat_name = self.status.who = new
                self._members_changed()
            case protocol.Topic(text=text):
                self.topic = self.status.topic = text
                self.status.redraw()
        self._show_event(event)
        if acked or isinstance(event, protocol.Join):
            await self._pump()

    def on_disconnected(self, message: Disconnected) -> None:
        self.conn = None
        self.in_flight = None
        self._replay_done = False
        self._cancel_resend()
        self.status.set_state("disconnected", message.reason)
        self.member_list.show(self.members, self.joined_name, online=False)
        self._show_pending()
        if message.was_joined:
            self._notice(
                Text.assemble(
                    ("disconnected: ", "bold red"),
                    message.reason,
                    ("  (reconnecting by itself; Ctrl+R: now)", "dim"),
                )
            )
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

    # ------------------------------------------------------------------ sending

    def _queue(self, text: str, *, to: str | None = None, action: bool = False) -> None:
        self._nonces += 1
        self.outbox.append(_Outgoing(text, f"{self._nonce_prefix}-{self._nonces}", to, action))

    async def _pump(self) -> None:
        """Send the head of the outbox if the connection is ready and nothing is in flight."""
        conn = self.conn
        if conn is not None and self._replay_done and self.in_flight is None and self.outbox:
            head = self.in_flight = self.outbox[0]
            head.sent = True
            try:
                await conn.send(head.frame())
            except ConnectionClosed:
                self.in_flight = None  # the worker sees the loss too and reconnects
        self._show_pending()

    def _acknowledges(self, event: protocol.Event) -> bool:
        """If ``event`` is the echo of the outbox's head, take the head off; say so."""
        if not self.outbox or not isinstance(event, protocol.Message | protocol.Dm):
            return False
        head = self.outbox[0]
        if event.sender != self.joined_name or isinstance(event, protocol.Dm) != (
            head.to is not None
        ):
            return False
        if event.nonce is not None:
            matches = event.nonce == head.nonce
        else:
            # A server that does not echo nonces: the text of our own, unseen message.
            matches = head.sent and event.text == head.text
        if not matches:
            return False
        self.outbox.popleft()
        self.in_flight = None
        self._cancel_resend()
        self._show_pending()
        return True

    def _cancel_resend(self) -> None:
        if self._resend_timer is not None:
            self._resend_timer.stop()
            self._resend_timer = None

    async def _resend(self) -> None:
        self._resend_timer = None
        self.in_flight = None
        await self._pump()

    async def _server_error(self, code: str, text: str) -> None:
        if code == ErrorCode.RATE_LIMITED and self.in_flight is not None:
            # Not delivered; try again once the server's bucket has a token. If the error
            # was about something else, the echo arrives first and cancels this.
            self._cancel_resend()
            self._resend_timer = self.set_timer(RATE_LIMIT_RETRY_S, self._resend)
            return
        if code in _REFUSED_SENDS and self.in_flight is not None:
            unsent = self.outbox.popleft()
            self.in_flight = None
            self._notice(Text.assemble(("not sent: ", "bold red"), inert(text or code)))
            if not self.input_line.value and unsent.to is None and not unsent.action:
                self.input_line.value = unsent.text  # give it back to shorten or fix
            await self._pump()
            return
        self._notice(
            Text.assemble(
                ("server: ", "bold red"), inert(text or code), (f" ({inert(code)})", "dim")
            )
        )

    async def _request(self, frame: protocol.ClientFrame) -> None:
        """Send a request that needs a live connection (who, nick, topic)."""
        if self.conn is None:
            self._notice(Text("not connected; try again once reconnected", style="yellow"))
            return
        with contextlib.suppress(ConnectionClosed):
            await self.conn.send(frame)

    # ------------------------------------------------------------------ input

    @on(Input.Submitted, "#input")
    async def _submitted(self, event: Input.Submitted) -> None:
        line = event.value
        self.input_line.clear()
        self.input_line.remember(line)
        match commands.parse_command(line):
            case commands.SendText(text=text):
                self._queue(text)
            case commands.Action(text=text):
                self._queue(text, action=True)
            case commands.PrivateMessage(to=to, text=text):
                self._queue(text, to=to)
            case commands.Help():
                self.action_help()
                return
            case commands.Who():
                if self.conn is None:
                    names = ", ".join(inert(n) for n in sorted(self.members, key=str.casefold))
                    self._notice(Text(f"not connected; last known members: {names or 'none'}"))
                else:
                    await self._request(protocol.Who(room=self.room or protocol.DEFAULT_ROOM))
                return
            case commands.Nick(name=name):
                await self._request(protocol.NickRequest(name=name))
                return
            case commands.SetTopic(text=text):
                await self._request(
                    protocol.TopicRequest(room=self.room or protocol.DEFAULT_ROOM, text=text)
                )
                return
            case commands.Quit():
                await self.action_quit()
                return
            case commands.Clear():
                self.pane.clear_entries()
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
        conn, self.conn = self.conn, None
        if conn is not None:
            await conn.close()
        self.exit(0)

    def action_retry_now(self) -> None:
        """Skip the reconnect wait."""
        if self.conn is None:
            self._retry_now.set()

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
            ("Enter", "send"),
            ("Up/Down", "recall earlier lines"),
            ("Tab", "complete a member's name"),
            ("PgUp/PgDn", "scroll the conversation"),
            ("Ctrl+R", "reconnect now"),
            ("Ctrl+Q", "quit (Ctrl+C too)"),
        ):
            help_text.append(f"  {keys:<{width}}", style="bold")
            help_text.append(f"{what}\n")
        help_text.rstrip()
        self.pane.add(PaneEntry(Text(""), help_text))

    def action_scroll_page(self, direction: int) -> None:
        """Scroll the conversation a page up (-1) or down (1)."""
        if direction < 0:
            self.pane.scroll_page_up(animate=False)
        else:
            self.pane.scroll_page_down(animate=False)

    # ------------------------------------------------------------------ showing

    def _notice(self, text: Text) -> None:
        now = datetime.now().strftime("%H:%M")
        self.pane.add(PaneEntry(Text.assemble((now, "dim"), " "), text))

    def _rule(self, label: Text) -> None:
        self.pane.add(PaneEntry(Text(""), label, rule=True))

    def _members_changed(self) -> None:
        self.status.member_count = len(self.members)
        self.status.redraw()
        self.member_list.show(self.members, self.joined_name, online=self.conn is not None)

    def _show_pending(self) -> None:
        labels = [item.label() for item in self.outbox]
        self.pending_view.show(labels, online=self.conn is not None)
        self.status.pending = len(self.outbox)
        self.status.redraw()

    def _mentions_me(self, text: str) -> re.Pattern[str] | None:
        me = self.joined_name
        if not me:
            return None
        pattern = re.compile(rf"(?<!\w){re.escape(inert(me))}(?!\w)", re.IGNORECASE)
        return pattern if pattern.search(inert(text, keep_newlines=True)) else None

    def _show_event(self, event: protocol.Event, *, history: bool = False) -> None:
        self._seen[event.id] = event.ts
        if len(self._seen) > SEEN_EVENTS_KEPT:
            del self._seen[next(iter(self._seen))]
        # The latest, not the highest: a server restarted without its store counts from 1.
        self._last_event_id = event.id
        moment = _local_time(event.ts)
        if moment is not None and moment.date() != self._last_day:
            self._last_day = moment.date()
            self._rule(Text(moment.strftime("%A %d %B %Y"), style="dim"))
        clock = Text(moment.strftime("%H:%M") if moment else inert(event.ts[11:16]), "dim")
        me = self.joined_name
        entry: PaneEntry
        match event:
            case (
                protocol.Message(sender=sender, text=text, action=action)
                | protocol.Dm(sender=sender, text=text, action=action)
            ):
                parts: list[Text | tuple[str, str] | str] = [clock, " "]
                if isinstance(event, protocol.Dm):
                    parts += [("private ", "bold magenta"), _name(sender), " → ", _name(event.to)]
                else:
                    parts.append(_name(sender))
                parts.append(" " if action else ": ")
                if action:
                    parts.insert(2, "* ")
                body = Text(inert(text, keep_newlines=True), style="italic" if action else "")
                mention = self._mentions_me(text) if sender != me else None
                if mention is not None:
                    body.highlight_regex(mention, "bold underline")
                entry = PaneEntry(
                    Text.assemble(*parts), body, mention=bool(mention) and not history
                )
            case protocol.Join(name=name) if name == me and not history:
                verb = "joined" if self._joins <= 1 else "are back in"
                self._rule(
                    Text(f"you {verb} #{inert(event.room)} as {inert(name)} · {clock}", "dim")
                )
                return
            case protocol.Join(name=name):
                entry = PaneEntry(
                    Text.assemble(clock, " "),
                    Text.assemble(("→ ", "green"), (inert(name), name_colour(name)), " joined"),
                )
                entry.body.stylize("dim")
            case protocol.Leave(name=name, reason=reason):
                why = "the server is shutting down" if reason == "shutdown" else inert(reason)
                entry = PaneEntry(
                    Text.assemble(clock, " "),
                    Text.assemble(
                        ("← ", "red"), (inert(name), name_colour(name)), f" left ({why})"
                    ),
                )
                entry.body.stylize("dim")
            case protocol.Nick(old=old, new=new):
                entry = PaneEntry(
                    Text.assemble(clock, " "),
                    Text.assemble(
                        (inert(old), name_colour(old)),
                        " is now known as ",
                        (inert(new), name_colour(new)),
                    ),
                )
                entry.body.stylize("dim")
            case protocol.Topic(sender=sender, text=text):
                entry = PaneEntry(
                    Text.assemble(clock, " "),
                    Text.assemble(_name(sender), " set the topic: ", (inert(text), "italic")),
                )
        if history:
            entry.prefix.stylize("dim")
            entry.body.stylize("dim")
        self.pane.add(entry)
