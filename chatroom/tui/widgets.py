"""The chat window's parts: room list, message pane, member list, status line, input, prompt.

Everything shown here that came from the network has already been through
:func:`chatroom.text.inert` and arrives as ``rich.text.Text``; nothing is parsed as markup.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import ClassVar

from rich.console import RenderableType
from rich.rule import Rule
from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.screen import ModalScreen
from textual.widgets import Input, RichLog, Static

from chatroom.text import inert, name_colour, truncate
from chatroom.tui.commands import COMMAND_WORDS

__all__ = [
    "ChatInput",
    "MemberList",
    "MessagePane",
    "NewBelowBar",
    "PaneEntry",
    "PendingView",
    "PromptScreen",
    "RoomEntry",
    "RoomList",
    "RoomTab",
    "StatusLine",
]

# Entries kept for re-wrapping on resize; the oldest scroll away. Re-rendering this many on
# a resize takes a fraction of a second, which a resize can afford.
MAX_PANE_ENTRIES = 2000
# Rendered lines kept; a few long multi-line messages can fill many lines.
MAX_PANE_LINES = 10_000
# The status line is one line: long parts are cut there (the pane has them whole).
STATUS_TOPIC_CHARS = 40
STATUS_DETAIL_CHARS = 48


@dataclass
class PaneEntry:
    """One line (or wrapped block) of the conversation: a prefix column and a body."""

    prefix: Text
    body: Text
    mention: bool = False
    rule: bool = False
    # The event shown (the first of a folded run): where paging back continues from.
    event_id: int | None = None
    # The local day a day rule announces.
    day: date | None = None

    @property
    def text(self) -> Text:
        """The whole entry as one ``Text`` (what a reader sees, spans included)."""
        return Text.assemble(self.prefix, self.body)


class MessagePane(RichLog):
    """One conversation's scrolling pane; follows new entries unless the reader scrolled up."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"message-pane--mention"}

    following: reactive[bool] = reactive(True)
    unseen: reactive[int] = reactive(0)

    class ReachedTop(Message):
        """The reader scrolled to the top of the pane (time to load older messages)."""

        def __init__(self, pane: MessagePane) -> None:
            super().__init__()
            self.pane = pane

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(
            wrap=True, markup=False, highlight=False, min_width=1, max_lines=MAX_PANE_LINES, id=id
        )
        # Not a bounded deque: older pages are added at the left, and a full deque would
        # drop the newest entries to make room for them.
        self.entries: deque[PaneEntry] = deque()
        #: The day live entries belong to: a new one starts with a day rule.
        self.last_day: date = datetime.now().astimezone().date()
        self._render_width = 0
        self._reflowing = False
        self.can_focus = False

    # ------------------------------------------------------------------ adding

    def add(self, entry: PaneEntry) -> PaneEntry:
        """Append ``entry``; scroll to it only if the reader is at the bottom."""
        self.entries.append(entry)
        if len(self.entries) > MAX_PANE_ENTRIES:
            self.entries.popleft()
        if self._render_width:
            self._write_entry(entry, scroll_end=self.following)
        if not self.following and not entry.rule:
            self.unseen += 1
        return entry

    def prepend(self, entries: Sequence[PaneEntry]) -> None:
        """Put older ``entries`` above everything, keeping what the reader sees in place."""
        if not entries:
            return
        top = self.entries[0] if self.entries else None
        last_day = next((e.day for e in reversed(entries) if e.day is not None), None)
        # A day rule the page already announces above would say the same thing twice.
        drop_rule = top is not None and top.rule and top.day is not None and top.day == last_day
        if drop_rule:
            self.entries.popleft()
        self.entries.extendleft(reversed(entries))
        if not self._render_width:
            return
        below = self.lines[1:] if drop_rule else self.lines
        scroll_y = self.scroll_y - (1 if drop_rule and self.scroll_y else 0)
        self._reflowing = True
        try:
            self.lines = []
            for entry in entries:
                self._write_entry(entry, scroll_end=False)
            added = len(self.lines)
            self.lines.extend(below)
            self._line_cache.clear()
            self._start_line = 0
            self.virtual_size = Size(self._widest_line_width, len(self.lines))
            self.scroll_to(y=scroll_y + added, animate=False, immediate=True)
        finally:
            self._reflowing = False
        self.refresh()

    def oldest_event_id(self) -> int | None:
        """The id of the oldest event shown, or None when the pane shows none."""
        return next((e.event_id for e in self.entries if e.event_id is not None), None)

    def clear_entries(self) -> None:
        """Forget everything shown."""
        self.entries.clear()
        self.clear()
        self.unseen = 0
        self.following = True

    def plain_lines(self) -> list[str]:
        """The rendered lines as plain text (what the terminal would show, unstyled)."""
        return [strip.text.rstrip() for strip in self.lines]

    def jump_to_end(self) -> None:
        """Scroll to the newest entry and follow again."""
        self.following = True
        self.unseen = 0
        self.scroll_end(animate=False, immediate=True, x_axis=False)

    # ------------------------------------------------------------------ rendering

    def _renderable(self, entry: PaneEntry) -> RenderableType:
        if entry.rule:
            return Rule(entry.body, style="dim", characters="─")
        grid = Table.grid(expand=True)
        grid.add_column(no_wrap=True)
        grid.add_column(ratio=1, overflow="fold")
        grid.add_row(entry.prefix, entry.body, style=self._mention_style if entry.mention else None)
        return grid

    @property
    def _mention_style(self) -> Style:
        # The tcss colour is translucent ($warning 25%); a Rich style cannot be, so blend
        # it over the pane's own background here.
        tint = self.get_component_styles("message-pane--mention").background
        return Style(bgcolor=(self.background_colors[1] + tint).rich_color)

    def _write_entry(self, entry: PaneEntry, *, scroll_end: bool) -> None:
        self.write(self._renderable(entry), width=self._render_width, scroll_end=scroll_end)

    def on_resize(self, event: events.Resize) -> None:
        width = self.scrollable_content_region.width
        if width <= 0 or width == self._render_width:
            return
        # RichLog renders once at write time; a chat pane must re-wrap when the width
        # changes, so it keeps its entries and renders them again.
        self._size_known = True
        self._render_width = width
        self._reflowing = True
        try:
            self.lines.clear()
            self._line_cache.clear()
            self._start_line = 0
            self._widest_line_width = 0
            for entry in self.entries:
                self._write_entry(entry, scroll_end=False)
        finally:
            self._reflowing = False
        if self.following:
            self.scroll_end(animate=False, x_axis=False)

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if self._reflowing:
            return
        at_end = round(new_value) >= self.max_scroll_y
        if at_end:
            self.following = True
            self.unseen = 0
        elif new_value < old_value:
            # Only a move up lets go of the bottom: new content arriving leaves
            # scroll_y where it was, which must not count as the reader scrolling away.
            self.following = False
        if round(new_value) == 0 and old_value > new_value:
            self.post_message(self.ReachedTop(self))

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        # At the top already, scrolling moves nothing, so no scroll_y change reports it.
        if round(self.scroll_y) == 0:
            self.post_message(self.ReachedTop(self))


class NewBelowBar(Static):
    """A one-line note that new messages arrived below while the reader scrolled up."""

    def __init__(self, pane: MessagePane, *, id: str | None = None) -> None:
        super().__init__("", markup=False, id=id)
        #: The pane shown now; the app points this at the current conversation's pane.
        self.pane = pane

    def show_count(self, unseen: int) -> None:
        """Show how many entries are below the view (hidden at zero)."""
        self.display = unseen > 0
        plural = "" if unseen == 1 else "s"
        self.update(Text(f"↓ {unseen} new message{plural} below: PgDn or click to jump"))

    def on_click(self) -> None:
        self.pane.jump_to_end()


@dataclass(frozen=True)
class RoomTab:
    """What the room list shows of one conversation."""

    key: str
    label: str
    unread: int = 0
    mentions: int = 0
    current: bool = False
    # A room left by the server's doing (a failed rejoin): shown dim.
    joined: bool = True


class RoomEntry(Static):
    """One line of the room list: its Alt number, its label and its unread count."""

    def __init__(self, key: str) -> None:
        super().__init__("", markup=False, classes="room-entry")
        self.key = key
        self.tab: RoomTab | None = None
        #: The line as plain text (what a reader sees, unstyled).
        self.plain = ""

    def show(self, tab: RoomTab, number: int) -> None:
        self.tab = tab
        grid = Table.grid(expand=True)
        grid.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
        grid.add_column(no_wrap=True, justify="right")
        shortcut = f"{number} " if number <= 9 else "  "
        label = Text.assemble((shortcut, "dim"), inert(tab.label))
        if not tab.joined:
            label.stylize("dim strike")
        count = Text()
        if tab.mentions:
            # The mark for "someone wants you", beyond a plain count.
            count = Text(f"!{tab.unread}", style="bold red")
        elif tab.unread:
            count = Text(str(tab.unread), style="bold yellow")
        grid.add_row(label, count)
        self.plain = f"{label.plain} {count.plain}".rstrip()
        self.update(grid)
        self.set_class(tab.current, "-current")
        self.set_class(tab.mentions > 0, "-mention")
        self.set_class(tab.unread > 0, "-unread")

    def on_click(self) -> None:
        self.post_message(RoomList.Chosen(self.key))


class RoomList(VerticalScroll):
    """The rooms and private conversations, numbered for Alt+1..9, with unread counts."""

    class Chosen(Message):
        """The reader clicked the conversation ``key``."""

        def __init__(self, key: str) -> None:
            super().__init__()
            self.key = key

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.can_focus = False
        self.tabs: tuple[RoomTab, ...] = ()
        self._entries: dict[str, RoomEntry] = {}

    def show(self, tabs: Sequence[RoomTab]) -> None:
        """Show ``tabs`` in this order, adding and removing lines as needed."""
        self.tabs = tuple(tabs)
        keys = [tab.key for tab in tabs]
        for key in [k for k in self._entries if k not in keys]:
            self._entries.pop(key).remove()
        for index, tab in enumerate(tabs):
            entry = self._entries.get(tab.key)
            if entry is None:
                # Before the next line that already exists: a renamed conversation keeps
                # its place.
                later = (self._entries.get(t.key) for t in tabs[index + 1 :])
                before = next((e for e in later if e is not None), None)
                entry = self._entries[tab.key] = RoomEntry(tab.key)
                if before is None:
                    self.mount(entry)
                else:
                    self.mount(entry, before=before)
            entry.show(tab, index + 1)
        self.border_title = "Rooms"

    def entry(self, key: str) -> RoomEntry:
        """The line showing ``key`` (for clicks in tests and for scrolling it into view)."""
        return self._entries[key]


class MemberList(VerticalScroll):
    """Who is in the room, one name a line in its own colour; you are marked."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._names = Static("", markup=False, id="member-names")
        self.names: tuple[str, ...] = ()
        self.can_focus = False

    def compose(self) -> ComposeResult:
        yield self._names

    def show(
        self,
        names: Iterable[str],
        me: str | None,
        *,
        prefix: Callable[[str], str] = lambda name: "",
        online: bool = True,
        title: str = "Members",
        note: str = "",
    ) -> None:
        """Show ``names`` sorted, under ``note`` (dim) if any, each after its role's
        ``prefix`` (``@`` op, ``+`` voice); dimmed and titled as stale when not ``online``."""
        self.names = tuple(sorted(set(names), key=str.casefold))
        lines = Text(note, style="dim italic")
        for index, name in enumerate(self.names):
            if index or note:
                lines.append("\n")
            lines.append(prefix(name), style="bold")
            lines.append(inert(name), style=f"bold {name_colour(name)}" if online else "dim")
            if me is not None and name.casefold() == me.casefold():
                lines.append(" (you)", style="dim")
        self._names.update(lines)
        self.set_class(not online, "-offline")
        self.border_title = f"{title} · {len(self.names)}" if online else f"{title} (offline)"


class StatusLine(Static):
    """One line: connection state, where, as whom, conversation, members, topic, pending."""

    def __init__(self, where: str, *, tls: bool, id: str | None = None) -> None:
        super().__init__("", markup=False, id=id)
        self.where = where
        self.tls = tls
        self.state = "not connected"
        self.who: str | None = None
        # The current conversation as the room list labels it (#dev, @bob).
        self.room = ""
        # None for a private conversation, where a count says nothing.
        self.member_count: int | None = 0
        self.pending = 0
        self.detail = ""
        self.topic = ""
        self.retry_at: float | None = None

    def on_mount(self) -> None:
        # The retry countdown ticks once a second; nothing else here changes by itself.
        self.set_interval(1.0, self._tick)
        self.redraw()

    def _tick(self) -> None:
        if self.retry_at is not None:
            self.redraw()

    def set_state(self, state: str, detail: str = "", *, retry_in_s: float | None = None) -> None:
        """Change the connection state (``connecting``, ``connected``, ``disconnected``...)."""
        self.state = state
        self.detail = detail
        self.retry_at = None if retry_in_s is None else time.monotonic() + retry_in_s
        self.redraw()

    def redraw(self) -> None:
        """Rebuild the line from the current fields."""
        marks = {
            "connected": ("●", "bold green"),
            "connecting": ("◌", "bold yellow"),
            "disconnected": ("○", "bold red"),
        }
        mark, style = marks.get(self.state, ("○", "dim"))
        line = Text.assemble((f"{mark} {self.state}", style), "  ")
        if self.who:
            line.append(inert(self.who), style=f"bold {name_colour(self.who)}")
            line.append(" @ ")
        line.append(inert(self.where))
        if self.tls:
            line.append(" (TLS)", style="dim")
        if self.state == "connected":
            if self.room:
                line.append(f"  {inert(self.room)}", style="bold")
            if self.member_count is not None:
                plural = "" if self.member_count == 1 else "s"
                line.append(f"  {self.member_count} member{plural}")
            if self.topic:
                line.append("  ")
                line.append(truncate(inert(self.topic), STATUS_TOPIC_CHARS), style="italic")
        if self.retry_at is not None:
            left = max(0, round(self.retry_at - time.monotonic()))
            line.append(f"  retry in {left} s (Ctrl+R: now)", style="dim")
        if self.pending:
            line.append(f"  {self.pending} pending", style="bold yellow")
        if self.detail:
            # The whole reason is in the pane; here it only has to be recognisable.
            line.append("  ")
            line.append(truncate(self.detail, STATUS_DETAIL_CHARS), style="italic")
        self.update(line)


class PendingView(Static):
    """Messages typed but not yet acknowledged by the server, shown dim until they are."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", markup=False, id=id)

    def show(self, texts: Sequence[str], *, online: bool) -> None:
        """List ``texts`` (hidden when there are none)."""
        self.display = bool(texts)
        note = "sending…" if online else "pending: sent when reconnected"
        lines = Text(style="dim")
        for index, text in enumerate(texts):
            if index:
                lines.append("\n")
            lines.append("⋯ ")
            lines.append(inert(text))
        lines.append(f"\n({note})", style="italic")
        self.update(lines)


class ChatInput(Input):
    """The message line: Enter sends, Up/Down recall, Tab completes names and commands."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "history_back", "Previous line", show=False),
        Binding("down", "history_forward", "Next line", show=False),
        Binding("tab", "complete", "Complete", show=True),
    ]

    def __init__(self, names: Callable[[str], Sequence[str]], *, id: str | None = None) -> None:
        """``names(head)`` gives what a word typed after ``head`` may complete to."""
        super().__init__(
            placeholder="Type a message, /help for commands", id=id, select_on_focus=False
        )
        self.history: list[str] = []
        self._history_index = 0
        self._draft = ""
        self._names = names
        self._completion: _Completion | None = None

    async def _on_key(self, event: events.Key) -> None:
        if event.key == "enter":
            # Submitted here, in key order. Input's own Enter binding runs once the key
            # has bubbled up to the app, and by then the keys typed after it are in the
            # value: two lines typed fast went out as one message, twice.
            event.stop()
            event.prevent_default()
            self._submit(self.value)
            return
        await super()._on_key(event)

    def _submit(self, line: str) -> None:
        """Hand ``line`` to the app and start the next one empty, before any later key."""
        self.value = ""
        self.post_message(self.Submitted(self, line))

    def remember(self, line: str) -> None:
        """Add a submitted line to the recall history (no repeats in a row)."""
        if line and (not self.history or self.history[-1] != line):
            self.history.append(line)
        self._history_index = len(self.history)
        self._draft = ""

    def _recall(self, index: int) -> None:
        self._history_index = index
        self.value = self.history[index] if index < len(self.history) else self._draft
        self.cursor_position = len(self.value)

    def action_history_back(self) -> None:
        if self._history_index == 0:
            return
        if self._history_index == len(self.history):
            self._draft = self.value
        self._recall(self._history_index - 1)

    def action_history_forward(self) -> None:
        if self._history_index < len(self.history):
            self._recall(self._history_index + 1)

    def _on_paste(self, event: events.Paste) -> None:
        # Input keeps only the first line of a paste. A chat message may have many, so a
        # pasted block goes out whole, as one message, with what was typed around it.
        text = event.text.replace("\r\n", "\n").replace("\r", "\n")
        if text.endswith("\n"):
            text = text[:-1]  # a copied line usually brings its newline along
        event.stop()
        event.prevent_default()
        start, end = sorted(self.selection)
        if "\n" not in text:
            self.replace(text, start, end)
            return
        self._submit(self.value[:start] + text + self.value[end:])

    def action_complete(self) -> None:
        """Complete a /command, or a name (or #room after /join); Tab again cycles."""
        state = self._completion
        if state is not None and state.shown == self.value:
            state.index = (state.index + 1) % len(state.matches)
        else:
            before, after = self.value[: self.cursor_position], self.value[self.cursor_position :]
            word = re.split(r"\s", before)[-1]
            head = before[: len(before) - len(word)]
            folded = word.casefold()
            if not head and word.startswith("/") and not word.startswith("//"):
                matches = [c for c in COMMAND_WORDS if c.startswith(folded)]
                suffix = " "
            else:
                matches = [
                    n
                    for n in self._names(head)
                    if n.casefold().startswith(folded)
                    or (n.startswith("#") and n[1:].casefold().startswith(folded))
                ]
                # At the start of a line a name addresses someone, as IRC clients do it.
                suffix = ": " if not head else " "
            if not matches:
                self._completion = None
                return
            if after.startswith(" "):
                suffix = suffix.rstrip(" ")
            state = self._completion = _Completion(head, after, suffix, matches)
        completed = state.head + state.matches[state.index] + state.suffix
        self.value = completed + state.after
        self.cursor_position = len(completed)
        state.shown = self.value


@dataclass
class _Completion:
    """Where a run of Tab presses started and which names it cycles through."""

    head: str
    after: str
    suffix: str
    matches: list[str]
    index: int = 0
    shown: str = ""


class PromptScreen(ModalScreen[str | None]):
    """A small dialog asking for one value (a name, a password); Esc cancels."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(
        self,
        title: str,
        reason: str = "",
        *,
        value: str = "",
        password: bool = False,
        placeholder: str = "",
    ) -> None:
        super().__init__()
        self._title = title
        self._reason = reason
        self._value = value
        self._password = password
        self._placeholder = placeholder

    def compose(self) -> ComposeResult:
        with Vertical(id="prompt"):
            yield Static(Text(self._title, style="bold"), markup=False, id="prompt-title")
            if self._reason:
                # The reason is the server's words: untrusted text.
                yield Static(
                    Text(inert(self._reason), style="italic"), markup=False, id="prompt-reason"
                )
            yield Input(
                self._value,
                placeholder=self._placeholder,
                password=self._password,
                id="prompt-input",
            )
            yield Static(Text("Enter: continue   Esc: cancel", style="dim"), markup=False)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        value = event.value if self._password else event.value.strip()
        if value:
            self.dismiss(value)

    def action_cancel(self) -> None:
        self.dismiss(None)
