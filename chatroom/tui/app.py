"""The Textual chat app: one worker owns the connection; the app renders a ChatModel.

The app is in several conversations at once: the lobby, the rooms it joined and private
conversations. Their state (members, topics, unread counts, resume cursors, what waits to
be sent) lives in :class:`~chatroom.tui.model.ChatModel`; the app feeds it frames and
commands, renders the changes it records, and keeps one pane per conversation (in a
``ContentSwitcher``) with the room list beside it to switch between them.
"""

# Over 700 lines because a Textual app is one class: its bindings, actions, message
# handlers, the command dispatch of typed lines and the rendering of each model change
# are all methods of it. The state, the connection loop, event rendering and the app's
# own texts already live in model.py, connection.py, entries.py and notices.py.

from __future__ import annotations

import contextlib
import math
import ssl
import time
import unicodedata
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, ClassVar, cast

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
from chatroom.address import format_address
from chatroom.client import ClientConnection, ConnectionClosed
from chatroom.text import inert
from chatroom.tui import changes, commands, moderating, notices
from chatroom.tui.connection import (
    JOIN_TIMEOUT_S,
    RECONNECT_INITIAL_S,
    RECONNECT_MAX_S,
    Connector,
    backoff_delay,
)
from chatroom.tui.conversation import Conversation, Outgoing, Request
from chatroom.tui.entries import day_rule, event_entry, history_entries, local_time
from chatroom.tui.messages import (
    Connected,
    Connecting,
    Disconnected,
    FrameReceived,
    JoinRefused,
    RetryScheduled,
)
from chatroom.tui.model import HISTORY_PAGE_EVENTS, ChatModel
from chatroom.tui.notices import bold
from chatroom.tui.palette import ChatCommands
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

if TYPE_CHECKING:
    from chatroom.tui.connection import ConnectionHost
    from chatroom.tui.palette import PaletteHost

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

# The server refills 5 tokens a second (protocol-v1 default), so one is back in 0.2 s.
RATE_LIMIT_RETRY_S = 0.3
# Every request but a message is answered within a round trip; one that never is must not
# hold up everything typed after it for longer than this.
REQUEST_TIMEOUT_S = 10.0
# A burst of mentions (a replay after a reconnect, someone flooding) rings once, not once
# per line.
BELL_MIN_INTERVAL_S = 1.0


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


class ChatApp(App[int]):
    """A terminal chat client for one chatroom server, or one cluster of them.

    Args:
        host: the server's host name or address.
        port: its TCP port.
        name: the name to join as; None asks for one in the app.
        password: the server's password, if it has one (asked for when refused).
        ssl_context: a client TLS context, or None for plain TCP.
        bell: ring the terminal bell on mentions and private messages.
        more_addresses: other servers of the same cluster, tried in this order after
            ``host:port`` when it cannot be reached or is lost.
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
        more_addresses: Sequence[tuple[str, int]] = (),
    ) -> None:
        super().__init__()
        _read_alt_digits_as_alt()
        self.addresses = list(dict.fromkeys([(host, port), *more_addresses]))
        # The server of the current (or last) connection attempt.
        self.host = host
        self.port = port
        self.chat_name = name
        self.password = password
        # The account's password, once asked for: kept in memory for reconnects only.
        self.account_password: str | None = None
        self.ssl_context = ssl_context
        self.bell_on = bell
        self.conn: ClientConnection | None = None
        self.model = ChatModel()
        self.connector = Connector(self)
        self._request_timer: Timer | None = None
        self._resend_timer: Timer | None = None
        # Why connecting failed, each said once until a connection works: with several
        # servers the reasons take turns, and repeating them every round is noise.
        self._failures_told: set[str] = set()
        self._last_bell = -math.inf
        self._quit_warned = False
        where = format_address(host, port)
        self.where = where
        self.sub_title = where
        # Kept as attributes, not queried: handlers still run while the app shuts down,
        # when a query for them would fail.
        self.status = StatusLine(where, tls=ssl_context is not None, id="status")
        self.member_list = MemberList(id="members")
        self.pending_view = PendingView(id="pending")
        self.room_list = RoomList(id="rooms")
        self.input_line = ChatInput(self.model.completions, id="input")
        self._panes = 0
        #: Each conversation's pane (a conversation is hashed by identity).
        self.panes: dict[Conversation, MessagePane] = {}
        lobby_pane = self._new_pane(self.model.lobby)
        self.switcher = ContentSwitcher(lobby_pane, id="panes", initial=lobby_pane.id)
        self.new_below = NewBelowBar(lobby_pane, id="new-below")

    # The model's state under the names the app has always had (tests and the palette).

    @property
    def convs(self) -> dict[str, Conversation]:
        """Every conversation by key, in the room list's order."""
        return self.model.convs

    @property
    def current(self) -> Conversation:
        """The conversation shown now."""
        return self.model.current

    @property
    def lobby(self) -> Conversation:
        """The room every connection is in (the server's default room)."""
        return self.model.lobby

    @property
    def outbox(self) -> deque[Outgoing]:
        """Messages typed and not yet acknowledged, oldest first."""
        return self.model.outbox

    @property
    def joined_name(self) -> str | None:
        """Our name as the server last confirmed it."""
        return self.model.me

    @property
    def known_rooms(self) -> dict[str, protocol.RoomInfo]:
        """Rooms from the last /rooms answer."""
        return self.model.known_rooms

    @property
    def pane(self) -> MessagePane:
        """The pane shown now (the current conversation's)."""
        return self.panes[self.model.current]

    @property
    def members(self) -> list[str]:
        """The current conversation's members as last known."""
        return self.current.members

    def pane_of(self, conv: Conversation) -> MessagePane:
        """The pane that shows ``conv``."""
        return self.panes[conv]

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
        self._watch_pane(self.pane)
        self._show_current()
        others = ", ".join(format_address(*address) for address in self.addresses[1:])
        self._notice(
            Text.assemble(
                (f"chatroom {__version__}", "bold"),
                f" · connecting to {inert(self.where)}… ",
                (f"(then {inert(others)}) " if others else "", "dim"),
                ("F1 or /help for help, Ctrl+P for the command palette", "dim"),
            )
        )
        self.input_line.focus()
        self._connection_loop()

    # ------------------------------------------------------------------ the connection worker

    @work(exclusive=True, group="connection", exit_on_error=False)
    async def _connection_loop(self) -> None:
        """Run the connector: a worker that may raise must never end the app."""
        await self.connector.run()

    async def prompt(self, screen: PromptScreen) -> str | None:
        """Show ``screen`` and wait for its answer (None: cancelled)."""
        result: str | None = await self.push_screen_wait(screen)
        return result

    # ------------------------------------------------------------------ worker messages

    def on_connecting(self, message: Connecting) -> None:
        if message.address is not None:
            self.host, self.port = message.address
            self.where = self.sub_title = self.status.where = message.where
        self.status.set_state("connecting")

    def on_join_refused(self, message: JoinRefused) -> None:
        self._notice(
            Text.assemble(("the server refused to let us in: ", "bold red"), inert(message.reason))
        )

    async def on_connected(self, message: Connected) -> None:
        welcome = message.welcome
        self.conn = message.connection
        self.chat_name = welcome.name
        self._failures_told.clear()
        self._quit_warned = False
        self.status.who = welcome.name
        self.status.set_state("connected")
        self.model.welcomed(welcome)
        self._render()
        self._show_current()
        await self._pump()

    def on_disconnected(self, message: Disconnected) -> None:
        self.conn = None
        self.model.lost()
        self._cancel_request_timer()
        self._cancel_resend()
        self.status.set_state("disconnected", message.reason)
        self._render()
        self._show_current()
        moving = (
            Text.assemble("; ", ("trying ", "bold"), (f"{inert(message.next_where)}…", "bold"))
            if message.next_where
            else Text("")
        )
        if message.was_joined:
            notice = Text.assemble(
                ("disconnected: ", "bold red"),
                inert(message.reason),
                moving,
                ("  (reconnecting by itself; Ctrl+R: now)", "dim"),
            )
            for conv in self.convs.values():
                self._notice_in(conv, notice.copy())
        elif message.reason not in self._failures_told:
            self._notice(
                Text.assemble(
                    ("cannot connect: ", "bold red"),
                    inert(message.reason),
                    moving,
                    ("  (retrying by itself; Ctrl+R: now)", "dim"),
                )
            )
        if message.was_joined:
            self._failures_told.clear()
        else:
            self._failures_told.add(message.reason)

    def on_retry_scheduled(self, message: RetryScheduled) -> None:
        if self.conn is not None:
            return
        if message.delay_s is None:
            self.status.set_state("offline", message.why)
            self._notice(Text(message.why, style="italic"))
        else:
            self.status.set_state("disconnected", message.why, retry_in_s=message.delay_s)

    async def on_frame_received(self, message: FrameReceived) -> None:
        settled = self.model.receive(message.frame)
        if self.model.in_flight is None:
            # Whatever the timers were for is answered or acknowledged.
            self._cancel_request_timer()
            self._cancel_resend()
        self._render()
        if settled:
            await self._pump()

    # ------------------------------------------------------------------ sending

    async def _pump(self) -> None:
        """Send the next request, or the head of the outbox, if nothing is in flight."""
        conn = self.conn
        item = self.model.next_to_send() if conn is not None else None
        if conn is not None and item is not None:
            if isinstance(item, Request):
                request = item
                self._cancel_request_timer()
                self._request_timer = self.set_timer(
                    REQUEST_TIMEOUT_S, lambda: self._request_timed_out(request)
                )
            frame = item.frame if isinstance(item, Request) else item.frame()
            try:
                await conn.send(frame)
            except ConnectionClosed:
                self.model.send_failed()  # the worker sees the loss too and reconnects
        self._render()
        self._show_pending()

    async def _ask(self, frame: protocol.ClientFrame) -> None:
        """Send a request that needs a live connection (join, who, nick, topic...)."""
        if not self.model.ask(frame):
            self._notice(Text("not connected; try again once reconnected", style="yellow"))
            return
        await self._pump()

    async def _moderate(self, conv: Conversation, command: moderating.Moderation) -> None:
        """An account or moderation command: its request, for the room it is typed in."""
        needs_room = not isinstance(command, moderating.Account) and not (
            isinstance(command, moderating.Sanction) and command.server
        )
        if needs_room and conv.private:
            self._notice(Text("type that in the room it is about"))
            return
        frame = moderating.request_for(command, conv.name)
        if frame is not None:
            await self._ask(frame)

    async def _login(self, password: str) -> None:
        """Log in to the account of our name: join again with its password."""
        self.account_password = password
        self._notice(Text("logging in: joining again with the account's password"))
        conn, self.conn = self.conn, None
        if conn is not None:
            await conn.close()
        self.connector.retry_now.set()

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
        self.model.resend()
        await self._pump()

    async def _request_timed_out(self, request: Request) -> None:
        self._request_timer = None
        if self.model.request_timed_out(request):
            self._render()
            await self._pump()

    # ------------------------------------------------------------------ input

    @on(Input.Submitted, "#input")
    async def _submitted(self, event: Input.Submitted) -> None:
        line = event.value  # the input has already started the next line
        if "\n" not in line and not commands.is_secret(line):
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
                self.model.queue(text, to=to, origin=conv.key)
            case commands.Query(name=name, text=text):
                target = self.model.open_private(name)
                self._render()
                if not text:
                    return
                self.model.queue(text, to=target.name)
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
                    self._notice(Text.assemble("you are already called ", bold(name)))
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
                self._notice(notices.topic(conv))
                return
            case commands.Bell(on=on_):
                self._set_bell(on_)
                return
            case commands.Quit():
                await self.action_quit()
                return
            case commands.Clear():
                self.panes[conv].clear_entries()
                return
            case commands.Usage(hint=hint):
                self._notice(Text.assemble("usage: ", (hint, "bold")))
                return
            case commands.Unknown(name=name):
                self._notice(notices.unknown_command(name))
                return
            case commands.Empty():
                return
            case moderating.Account(what="login", secret=secret):
                await self._login(secret)
                return
            case moderating.Account() | moderating.Sanction() | moderating.Modes() as asked:
                await self._moderate(conv, asked)
                return
        self.pane.jump_to_end()
        await self._pump()

    def _say(self, conv: Conversation, text: str, *, action: bool = False) -> bool:
        """Queue ``text`` for the conversation ``conv``; False when it cannot take it."""
        if self.model.say(conv, text, action=action):
            return True
        self._notice(
            Text.assemble(
                ("not sent: ", "bold red"),
                f"you are not in #{inert(conv.name)}; ",
                bold(f"/join {conv.name}"),
                " to go back",
            )
        )
        return False

    async def join_room(self, room: str) -> None:
        """Join ``room``, or show it if already in (as IRC clients do)."""
        if not self.model.join(room):
            self._notice(Text("not connected; try again once reconnected", style="yellow"))
            return
        await self._pump()

    async def _part(self, room: str | None) -> None:
        conv = self.model.find(room)
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
            self.model.close(conv)
            self._render()
            return
        await self._ask(protocol.Part(room=conv.name))

    async def _who(self, conv: Conversation) -> None:
        if conv.private:
            self._notice(Text.assemble("a private conversation with ", bold(conv.name)))
        elif self.conn is None:
            names = ", ".join(inert(n) for n in sorted(conv.members, key=str.casefold))
            self._notice(Text(f"not connected; last known members: {names or 'none'}"))
        else:
            await self._ask(protocol.Who(room=conv.name))

    def _set_bell(self, on_: bool | None) -> None:
        if on_ is not None:
            self.bell_on = on_
        self._notice(notices.bell(self.bell_on))

    # ------------------------------------------------------------------ conversations

    def _new_pane(self, conv: Conversation) -> MessagePane:
        """A pane for ``conv``, not yet mounted."""
        self._panes += 1
        pane = self.panes[conv] = MessagePane(id=f"pane-{self._panes}")
        return pane

    def _watch_pane(self, pane: MessagePane) -> None:
        self.watch(pane, "unseen", lambda unseen: self._unseen_changed(pane, unseen))

    def _unseen_changed(self, pane: MessagePane, unseen: int) -> None:
        if pane is self.pane:
            self.new_below.show_count(unseen)

    def switch_to(self, key: str) -> None:
        """Show the conversation ``key``; its unread count is cleared."""
        self.model.switch_to(key)
        self._render()

    def _ring(self) -> None:
        now = time.monotonic()
        if self.bell_on and now - self._last_bell >= BELL_MIN_INTERVAL_S:
            self._last_bell = now
            self.bell()

    async def _load_older(self, conv: Conversation) -> None:
        """Ask for the page of events before the oldest ``conv`` shows."""
        if self.model.load_older(conv, self.panes[conv].oldest_event_id()):
            await self._pump()

    async def on_message_pane_reached_top(self, message: MessagePane.ReachedTop) -> None:
        conv = next((c for c, pane in self.panes.items() if pane is message.pane), None)
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
        self.connector.quitting = True
        self._cancel_resend()
        self._cancel_request_timer()
        conn, self.conn = self.conn, None
        if conn is not None:
            await conn.close()
        self.exit(0)

    def action_retry_now(self) -> None:
        """Skip the reconnect wait."""
        if self.conn is None:
            self.connector.retry_now.set()

    def action_switch_by(self, step: int) -> None:
        """Show the next (1) or previous (-1) conversation in the list, wrapping around."""
        if len(self.screen_stack) > 1:
            raise SkipAction()  # a dialog is open: the keys are its input's
        self.model.switch_by(step)
        self._render()

    def action_switch_to_number(self, number: int) -> None:
        """Show the conversation numbered ``number`` in the list (from 1)."""
        if len(self.screen_stack) > 1:
            raise SkipAction()
        self.model.switch_to_number(number)
        self._render()

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
        self.pane.add(PaneEntry(Text(""), notices.help_text()))

    async def action_scroll_page(self, direction: int) -> None:
        """Scroll the conversation a page up (-1) or down (1); up at the top loads older."""
        if direction < 0:
            if round(self.pane.scroll_y) == 0:
                await self._load_older(self.current)
            self.pane.scroll_page_up(animate=False)
        else:
            self.pane.scroll_page_down(animate=False)

    # ------------------------------------------------------------------ rendering the model

    def _render(self) -> None:
        """Show what changed in the model since the last call."""
        for change in self.model.take_changes():
            self._render_change(change)

    def _render_change(self, change: changes.Change) -> None:
        me = self.joined_name
        match change:
            case changes.Added(conv=conv):
                pane = self._new_pane(conv)
                pane.display = False
                self.switcher.mount(pane)
                self._watch_pane(pane)
                self._show_rooms()
            case changes.Closed(conv=conv):
                self.panes.pop(conv).remove()
            case changes.Switched(conv=conv):
                pane = self.panes[conv]
                if self.switcher.current != pane.id:
                    self.switcher.current = pane.id
                    self.new_below.pane = pane
                self._show_current()
                with contextlib.suppress(KeyError):
                    self.room_list.scroll_to_widget(self.room_list.entry(conv.key), animate=False)
            case changes.CurrentUpdated():
                self._show_current()
            case changes.RoomsChanged():
                self._show_rooms()
            case changes.MembersChanged(conv=conv) if conv is self.current:
                self._show_members()
            case changes.TopicChanged(conv=conv) if conv is self.current:
                self.status.topic = conv.topic
                self.status.redraw()
            case changes.PendingChanged():
                self._show_pending()
            case changes.NameChanged(name=name):
                self.chat_name = self.status.who = name
                self.status.redraw()
            case changes.Mentioned():
                self._ring()
            case changes.Shown(conv=conv, event=event) if conv in self.panes:
                self._show_event(conv, event)
            case changes.Echoed(conv=conv, event=event) if conv in self.panes:
                self.panes[conv].add(event_entry(event, me))
            case changes.OwnJoin(conv=conv, event=event):
                verb = "joined" if conv.joins == 1 else "are back in"
                clock = local_time(event.ts)
                when = clock.strftime("%H:%M") if clock else ""
                said = f"you {verb} #{inert(conv.name)} as {inert(event.name)} · {when}"
                self._rule(conv, Text(said, "dim")).event_id = event.id
            case changes.HistoryShown(conv=conv, events=events, again=again):
                label = "while you were away" if again else "earlier messages"
                self._rule(conv, Text(label, style="dim"))
                pane = self.panes[conv]
                entries, day = history_entries(events, me, pane.last_day)
                for entry in entries:
                    pane.add(entry)
                if day is not None:
                    pane.last_day = day
            case changes.OlderShown(conv=conv, events=events, beginning=beginning) if (
                conv in self.panes
            ):
                entries, _ = history_entries(events, me, None)
                if beginning:
                    entries.insert(
                        0, PaneEntry(Text(""), Text("beginning of history", style="dim"), rule=True)
                    )
                self.panes[conv].prepend(entries)
            case changes.Gap(conv=conv):
                self._notice_in(
                    conv,
                    Text("some events from while you were away are no longer stored", "yellow"),
                )
            case changes.Left(conv=conv):
                self._notice(Text.assemble("you left ", (f"#{inert(conv.name)}", "bold")))
            case changes.Unsent(item=item):
                self._notice(
                    Text.assemble(
                        ("not sent ", "bold red"),
                        f"(you are not in #{inert(item.room)}): ",
                        inert(item.text),
                    )
                )
            case changes.SendRefused(item=item, code=code, text=text):
                self._notice(Text.assemble(("not sent: ", "bold red"), inert(text or code)))
                self._give_back(item)
            case changes.RateLimited():
                self._cancel_resend()
                self._resend_timer = self.set_timer(RATE_LIMIT_RETRY_S, self._resend)
            case changes.RequestFailed(where=where, request=request, code=code, text=text):
                if where in self.panes:
                    self._notice_in(where, notices.request_failed(request.frame, code, text))
            case changes.RejoinFailed(conv=conv, code=code, text=text):
                self._notice_in(conv, notices.rejoin_failed(conv.name, code, text))
            case changes.ServerNotice(code=code, text=text):
                self._notice(
                    Text.assemble(
                        ("server: ", "bold red"), inert(text or code), (f" ({inert(code)})", "dim")
                    )
                )
            case changes.MembersListed(where=where, room=room, members=members):
                self._notice_in(where, notices.members_listing(room, members))
            case changes.AccountRegistered(account=account):
                self._notice(Text.assemble("account ", bold(account), ": its password is set"))
            case changes.BansListed(where=where, bans=bans):
                self._notice_in(where, notices.bans_listing(bans))
            case changes.RoomsListed(rooms=rooms):
                self._notice(notices.rooms_listing(rooms, self.model.in_room))

    def _give_back(self, unsent: Outgoing) -> None:
        """Put a refused message back in an empty input, to shorten or fix."""
        if (
            not self.input_line.value
            and unsent.to is None
            and not unsent.action
            and "\n" not in unsent.text
        ):
            self.input_line.value = unsent.text

    def _notice(self, text: Text) -> None:
        """A line from the app itself, in the conversation shown now."""
        self._notice_in(self.current, text)

    def _notice_in(self, conv: Conversation, text: Text) -> None:
        now = time.strftime("%H:%M")
        self.panes[conv].add(PaneEntry(Text.assemble((now, "dim"), " "), text))

    def _rule(self, conv: Conversation, label: Text) -> PaneEntry:
        return self.panes[conv].add(PaneEntry(Text(""), label, rule=True))

    def _show_event(self, conv: Conversation, event: protocol.Event) -> PaneEntry:
        pane = self.panes[conv]
        moment = local_time(event.ts)
        if moment is not None and moment.date() != pane.last_day:
            pane.last_day = moment.date()
            pane.add(day_rule(pane.last_day))
        return pane.add(event_entry(event, self.joined_name))

    def _show_members(self) -> None:
        conv = self.current
        online = self.conn is not None
        me = self.joined_name
        if conv.private:
            names = [conv.name, *([me] if me else [])]
            self.member_list.show(names, me, online=online, title="Private")
            self.status.member_count = None
        else:
            snapshot = conv.snapshot
            self.member_list.show(
                conv.members,
                me,
                prefix=lambda name: moderating.role_prefix(name, conv.ops, conv.voices),
                online=online and conv.joined,
                note=f"as of {conv.members_at}, /who" if snapshot else "",
            )
            self.status.member_count = len(conv.members)
            if snapshot and not conv.lazy_told:
                conv.lazy_told = True
                self._notice_in(conv, notices.lazy_note(conv))
        self.status.redraw()

    def _show_current(self) -> None:
        """Bring the status line, lists and bars in line with the current conversation."""
        conv = self.current
        self.new_below.show_count(self.pane.unseen)
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


if TYPE_CHECKING:
    # mypy checks here that the app offers what the palette and the connector use.
    def _palette_host(app: ChatApp) -> PaletteHost:
        return app

    def _connection_host(app: ChatApp) -> ConnectionHost:
        return app
