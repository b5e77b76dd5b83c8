"""The server console: every event, live, one coloured line each (unless ``--quiet``)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.text import Text

from chatroom.protocol import Dm, Event, Join, Leave, Message, Nick, Topic
from chatroom.text import inert, name_colour

__all__ = ["ConsoleSink", "event_text"]


def event_text(event: Event) -> Text:
    """One event as styled, inert text: ``HH:MM:SS #room name: text``.

    Every untrusted string goes through :func:`inert` into a ``Text`` span; nothing is
    ever parsed as markup.
    """
    clock = event.ts[11:19]
    where = f"#{inert(event.room)}" if event.room else "(private)"
    parts: list[tuple[str, str] | str] = [(clock, "dim"), " ", (where, "dim"), " "]
    match event:
        case Message(sender=sender, text=text, action=True):
            parts += ["* ", (inert(sender), f"bold {name_colour(sender)}"), " ", inert(text)]
        case Message(sender=sender, text=text):
            parts += [(inert(sender), f"bold {name_colour(sender)}"), ": ", inert(text)]
        case Dm(sender=sender, to=to, text=text):
            parts += [
                (inert(sender), f"bold {name_colour(sender)}"),
                " → ",
                (inert(to), f"bold {name_colour(to)}"),
                ": ",
                inert(text),
            ]
        case Topic(sender=sender, text=text):
            parts += [
                (inert(sender), name_colour(sender)),
                (" set the topic: ", "dim"),
                inert(text),
            ]
        case Nick(old=old, new=new):
            parts += [
                (inert(old), name_colour(old)),
                (" is now ", "dim"),
                (inert(new), name_colour(new)),
            ]
        case Join(name=name):
            parts += [("→ ", "green"), (inert(name), name_colour(name)), (" joined", "dim")]
        case Leave(name=name, reason=reason):
            parts += [
                ("← ", "red"),
                (inert(name), name_colour(name)),
                (f" left ({inert(reason)})", "dim"),
            ]
    return Text.assemble(*parts)


class ConsoleSink:
    """An :class:`~chatroom.hub.EventSink` that prints each event on a Rich console."""

    def __init__(self, console: Console, *, log_private: bool = True) -> None:
        self.console = console
        self.log_private = log_private

    def append(self, events: Sequence[Event]) -> None:
        for event in events:
            if not self.log_private and isinstance(event, Dm):
                continue
            # soft_wrap: a long message wraps as the terminal likes, never cropped.
            self.console.print(event_text(event), soft_wrap=True, markup=False, highlight=False)
