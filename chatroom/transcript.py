"""The transcript: one human-readable line per event, rotated by size, safe to ``tail -f``.

Each batch of events (one loop iteration's worth) is written with a single ``write`` on
an unbuffered file, so the bytes are in the kernel before any client is sent the events:
they survive a SIGKILL of the server. Untrusted text goes through :func:`inert`, so no
message can forge a line or send escape sequences to whoever tails the file.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from chatroom.protocol import Dm, Event, Join, Leave, Message, Mod, Nick, Topic
from chatroom.text import inert

__all__ = [
    "DEFAULT_TRANSCRIPT_BACKUPS",
    "DEFAULT_TRANSCRIPT_MAX_BYTES",
    "DEFAULT_TRANSCRIPT_NAME",
    "Transcript",
    "format_event_line",
    "mod_line",
]

log = logging.getLogger(__name__)

DEFAULT_TRANSCRIPT_NAME = "chatroom-transcript.log"
# 10 MiB and 5 backups: logrotate-sized files that an editor still opens, 60 MiB at most.
DEFAULT_TRANSCRIPT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_TRANSCRIPT_BACKUPS = 5


def _no_room(event: Event) -> str:
    """Where an event of no room happened: a private message, or the whole server."""
    return "(server)" if isinstance(event, Mod) else "(private)"


def mod_line(event: Mod) -> str:
    """A moderation action in words, inert: ``alice bans bob until ...: reason``."""
    what = f"{inert(event.by)} {inert(event.action)} {inert(event.target)}"
    if event.role is not None:
        what += f" ({inert(event.role)})"
    if event.action == "mode":
        modes = [
            name
            for name, on in (
                ("invite-only", event.invite_only),
                ("key", event.key_set),
                ("moderated", event.moderated),
                ("registered-only", event.registered_only),
            )
            if on
        ]
        if event.slow_s:
            modes.append(f"slow {event.slow_s} s")
        what += ": " + (", ".join(modes) or "open")
    if event.until is not None:
        what += f" until {inert(event.until)}"
    if event.reason:
        what += f": {inert(event.reason)}"
    return what


def format_event_line(event: Event) -> str:
    """One transcript line for ``event``, newline included: time, room, who, what."""
    where = f"#{inert(event.room)}" if event.room else _no_room(event)
    match event:
        case Message(sender=sender, text=text, action=True):
            body = f"* {inert(sender)} {inert(text)}"
        case Message(sender=sender, text=text):
            body = f"<{inert(sender)}> {inert(text)}"
        case Join(name=name):
            body = f"--> {inert(name)} joined"
        case Leave(name=name, reason=reason, by=str(by), text=text):
            why = f": {inert(text)}" if text else ""
            body = f"<-- {inert(name)} was {inert(reason)} by {inert(by)}{why}"
        case Leave(name=name, reason=reason):
            body = f"<-- {inert(name)} left ({inert(reason)})"
        case Mod():
            body = f"-!- {mod_line(event)}"
        case Topic(sender=sender, text=text):
            body = f"-!- {inert(sender)} set the topic: {inert(text)}"
        case Nick(old=old, new=new):
            body = f"-!- {inert(old)} is now known as {inert(new)}"
        case Dm(sender=sender, to=to, text=text, action=True):
            body = f"* {inert(sender)} -> {inert(to)}: {inert(text)}"
        case Dm(sender=sender, to=to, text=text):
            body = f"<{inert(sender)} -> {inert(to)}> {inert(text)}"
    return f"{event.ts} {where} {body}\n"


class Transcript:
    """An :class:`~chatroom.hub.EventSink` that appends lines to a rotating file.

    A failed write (full disk, file removed from an unwritable directory...) is reported
    loudly once, retried on the next batch by reopening, and never raised: the chat goes
    on without its log rather than not at all.
    """

    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int = DEFAULT_TRANSCRIPT_MAX_BYTES,
        backups: int = DEFAULT_TRANSCRIPT_BACKUPS,
        log_private: bool = True,
    ) -> None:
        self.path = path
        self.log_private = log_private
        self.max_bytes = max_bytes
        self.backups = backups
        self._fd: int | None = None
        self._size = 0
        self._failing = False
        self._open()

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        self._size = os.fstat(self._fd).st_size

    def move_to(self, path: Path) -> None:
        """Write to ``path`` from now on (a reload named another file).

        Raises:
            OSError: it cannot be opened; the old file is still the one written.
        """
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        self.close()
        self.path = path
        self._fd = fd
        self._size = os.fstat(fd).st_size

    def close(self) -> None:
        """Close the file; later appends reopen it."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def append(self, events: Sequence[Event]) -> None:
        """Write one line per event in a single write, rotating first when due."""
        data = "".join(
            [
                format_event_line(event)
                for event in events
                if self.log_private or not isinstance(event, Dm)
            ]
        ).encode("utf-8")
        if not data:
            return
        try:
            if self._fd is None:
                self._open()
            if self.max_bytes > 0 and self._size > 0 and self._size + len(data) > self.max_bytes:
                self._rotate()
            assert self._fd is not None
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            self._size += len(data)
        except OSError as exc:
            self.close()
            if not self._failing:
                self._failing = True
                log.error(
                    "cannot write the transcript %s: %s; events are NOT being recorded",
                    self.path,
                    exc.strerror or exc,
                )
            return
        if self._failing:
            self._failing = False
            log.warning("the transcript %s is being written again", self.path)

    def _rotate(self) -> None:
        self.close()
        if self.backups <= 0:
            self.path.unlink(missing_ok=True)
        else:
            for number in range(self.backups - 1, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{number}")
                if older.exists():
                    older.replace(self.path.with_name(f"{self.path.name}.{number + 1}"))
            self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        self._open()
