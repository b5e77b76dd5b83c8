"""Rooms and private conversations: what the app keeps for each, and how events read.

Each entry of the room list is a :class:`Conversation` with its own pane, members, topic,
unread counts and resume cursor. The functions here turn events into pane entries; they
touch no widget state, so the same rendering serves live events, history and older pages.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from rich.text import Text

from chatroom import protocol
from chatroom.text import inert, name_colour
from chatroom.tui.widgets import MessagePane, PaneEntry

__all__ = [
    "HISTORY_FOLD_RUN",
    "Conversation",
    "day_rule",
    "event_entry",
    "history_entries",
    "local_time",
    "mention_pattern",
    "private_key",
    "room_key",
]

# Longer runs of joins and leaves in history fold into one line: a busy server's history
# is otherwise a screenful of comings and goings.
HISTORY_FOLD_RUN = 4


def _fold(name: str) -> str:
    return unicodedata.normalize("NFC", name).casefold()


def room_key(name: str) -> str:
    """The key of a room: names compare case-insensitively after NFC, as on the server."""
    return "#" + _fold(name)


def private_key(name: str) -> str:
    """The key of the private conversation with ``name`` (never equal to a room's key)."""
    return "@" + _fold(name)


@dataclass(eq=False)
class Conversation:
    """A room the app is in, or a private conversation, with the pane that shows it."""

    key: str
    #: The room's name as stored, or the other person's name.
    name: str
    private: bool
    pane: MessagePane
    members: list[str] = field(default_factory=list)
    #: The server leaves out others' joins and leaves above this many members (we ask it
    #: to: hello.lazy_members); the list is then as of ``members_at`` (HH:MM).
    lazy_above: int | None = None
    members_at: str = ""
    #: The "joins and leaves are not shown here" notice was given.
    lazy_told: bool = False
    topic: str = ""
    #: In the room, or meaning to be: rejoined after a reconnect. False after a failed
    #: rejoin (the entry stays, dimmed, with what it showed).
    joined: bool = True
    #: Our own join came on this connection: any replay is over, sends may go.
    ready: bool = False
    #: The last live event of the room: where a rejoin resumes.
    last_id: int | None = None
    #: How many times our own join came (the first says "joined", later ones "are back").
    joins: int = 0
    unread: int = 0
    mentions: int = 0
    #: A page of older events was asked for and has not come.
    paging: bool = False
    #: The server said there is nothing older.
    history_done: bool = False
    last_day: date = field(default_factory=lambda: datetime.now().astimezone().date())

    @property
    def label(self) -> str:
        """How the room list shows it: ``#dev``, ``@bob`` (untrusted: inert it to show)."""
        return ("@" if self.private else "#") + self.name

    @property
    def history_room(self) -> str:
        """The ``room`` of a history request for it: private pages are ``@name``."""
        return "@" + self.name if self.private else self.name


def local_time(ts: str) -> datetime | None:
    """A wire timestamp in local time, or None if it is not one."""
    try:
        return datetime.fromisoformat(ts.replace("Z", "+00:00")).astimezone()
    except ValueError:
        return None


def _clock(ts: str) -> Text:
    moment = local_time(ts)
    return Text(moment.strftime("%H:%M") if moment else inert(ts[11:16]), "dim")


def _name(name: str) -> tuple[str, str]:
    """A name as a ``Text.assemble`` part: inert, bold, in its colour."""
    return inert(name), f"bold {name_colour(name)}"


def mention_pattern(me: str | None, text: str) -> re.Pattern[str] | None:
    """The pattern of ``me`` as a word in ``text``, or None when ``text`` does not name me."""
    if not me:
        return None
    pattern = re.compile(rf"(?<!\w){re.escape(inert(me))}(?!\w)", re.IGNORECASE)
    return pattern if pattern.search(inert(text, keep_newlines=True)) else None


def day_rule(day: date) -> PaneEntry:
    """The rule that starts a new day in a pane."""
    return PaneEntry(Text(""), Text(day.strftime("%A %d %B %Y"), style="dim"), rule=True, day=day)


def event_entry(event: protocol.Event, me: str | None, *, history: bool = False) -> PaneEntry:
    """One event as a pane entry; ``history`` dims it and never marks it as a mention."""
    clock = _clock(event.ts)
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
            mention = mention_pattern(me, text) if sender != me else None
            if mention is not None:
                body.highlight_regex(mention, "bold underline")
            entry = PaneEntry(Text.assemble(*parts), body, mention=bool(mention) and not history)
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
                Text.assemble(("← ", "red"), (inert(name), name_colour(name)), f" left ({why})"),
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
    entry.event_id = event.id
    if history:
        entry.prefix.stylize("dim")
        entry.body.stylize("dim")
    return entry


def _fold_entry(run: Sequence[protocol.Event]) -> PaneEntry:
    joins = sum(isinstance(e, protocol.Join) for e in run)
    summary = f"{joins} joins and {len(run) - joins} leaves"
    entry = PaneEntry(Text.assemble(_clock(run[-1].ts), " "), Text(summary, "dim italic"))
    entry.event_id = run[0].id
    return entry


def history_entries(
    events: Sequence[protocol.Event], me: str | None, last_day: date | None
) -> tuple[list[PaneEntry], date | None]:
    """Past events as dim entries, with day rules where the day changes after
    ``last_day`` (None: before the first event too); long runs of joins and leaves fold
    into one line. Returns the entries and the last day seen."""
    entries: list[PaneEntry] = []
    run: list[protocol.Event] = []

    def dated(event: protocol.Event) -> None:
        nonlocal last_day
        moment = local_time(event.ts)
        if moment is not None and moment.date() != last_day:
            last_day = moment.date()
            entries.append(day_rule(last_day))

    def flush_run() -> None:
        if len(run) > HISTORY_FOLD_RUN:
            dated(run[0])
            entries.append(_fold_entry(run))
        else:
            for event in run:
                dated(event)
                entries.append(event_entry(event, me, history=True))
        run.clear()

    for event in events:
        if isinstance(event, protocol.Join | protocol.Leave):
            run.append(event)
            continue
        flush_run()
        dated(event)
        entries.append(event_entry(event, me, history=True))
    flush_run()
    return entries, last_day
