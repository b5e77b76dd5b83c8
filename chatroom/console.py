"""The server console: every event, live, one coloured line each (unless ``--quiet``)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence

from rich.console import Console
from rich.text import Text

from chatroom.protocol import Dm, Event, Join, Leave, Message, Mod, Nick, Topic
from chatroom.text import inert, name_colour
from chatroom.transcript import mod_line

__all__ = ["ConsoleSink", "event_text"]

# Events waiting for the console before new ones are skipped: a few seconds of a busy
# room, a few MiB at most.
CONSOLE_QUEUE_EVENTS = 10_000
# How long shutdown waits for the console to print what is queued.
CONSOLE_CLOSE_S = 2.0


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
        case Leave(name=name, reason=reason, by=str(by), text=text):
            parts += [
                ("← ", "red"),
                (inert(name), name_colour(name)),
                (f" was {inert(reason)} by {inert(by)}", "dim"),
                f": {inert(text)}" if text else "",
            ]
        case Mod():
            parts += [("⚑ ", "yellow"), mod_line(event)]
        case Leave(name=name, reason=reason):
            parts += [
                ("← ", "red"),
                (inert(name), name_colour(name)),
                (f" left ({inert(reason)})", "dim"),
            ]
    return Text.assemble(*parts)


class ConsoleSink:
    """An :class:`~chatroom.hub.EventSink` that prints each event on a Rich console.

    Printing happens on a thread of its own, fed through a bounded queue: a terminal
    paused with Ctrl-S, or a pipe nobody reads, would otherwise block the event loop and
    stall the whole chat. When the queue is full, events are counted and skipped, and the
    console says how many it missed. The transcript, not the console, is the record.
    """

    def __init__(self, console: Console, *, log_private: bool = True) -> None:
        self.console = console
        self.log_private = log_private
        self._queue: queue.Queue[Event | None] = queue.Queue(maxsize=CONSOLE_QUEUE_EVENTS)
        self._skipped = 0
        self._skipped_lock = threading.Lock()
        self._thread = threading.Thread(target=self._print_events, name="console", daemon=True)
        self._thread.start()

    def append(self, events: Sequence[Event]) -> None:
        for event in events:
            if not self.log_private and isinstance(event, Dm):
                continue
            try:
                self._queue.put_nowait(event)
            except queue.Full:
                with self._skipped_lock:
                    self._skipped += 1

    def close(self, timeout_s: float = CONSOLE_CLOSE_S) -> None:
        """Print what is queued (waiting at most ``timeout_s``), then stop the thread."""
        try:
            self._queue.put(None, timeout=timeout_s)
        except queue.Full:
            return  # the console is stuck; the daemon thread dies with the process
        self._thread.join(timeout_s)

    def _print_events(self) -> None:
        while (event := self._queue.get()) is not None:
            with self._skipped_lock:
                skipped, self._skipped = self._skipped, 0
            if skipped:
                self.console.print(
                    f"({skipped} events not shown: the console fell behind; "
                    "the transcript has them)",
                    style="yellow",
                    markup=False,
                    highlight=False,
                )
            # soft_wrap: a long message wraps as the terminal likes, never cropped.
            self.console.print(event_text(event), soft_wrap=True, markup=False, highlight=False)
