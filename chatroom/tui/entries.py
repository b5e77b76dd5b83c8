"""How events read in a pane: each event as an entry, history dimmed and folded, day rules.

These functions touch no widget state, so the same rendering serves live events, history
and older pages. Every untrusted string goes through :func:`~chatroom.text.inert` into a
``rich.text.Text``; nothing is parsed as markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from rich.text import Text

from chatroom import protocol
from chatroom.text import inert, name_colour
from chatroom.tui.conversation import mention_pattern
from chatroom.tui.moderating import kicked_text, mod_text
from chatroom.tui.widgets import PaneEntry

__all__ = [
    "HISTORY_FOLD_RUN",
    "day_rule",
    "event_entry",
    "history_entries",
    "local_time",
]

# Longer runs of joins and leaves in history fold into one line: a busy server's history
# is otherwise a screenful of comings and goings.
HISTORY_FOLD_RUN = 4


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
        case protocol.Leave(name=name, reason=reason, by=str(by), text=text):
            entry = PaneEntry(Text.assemble(clock, " "), kicked_text(name, reason, by, text))
        case protocol.Mod():
            entry = PaneEntry(Text.assemble(clock, " "), mod_text(event))
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
