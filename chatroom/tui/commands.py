"""What a line typed into the input means: a message to send, a slash command, or nothing.

:func:`parse_command` is pure, so the rules are tested without a UI; the app and the
plain client only map its result to a frame or an action.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "COMMANDS",
    "Clear",
    "Command",
    "Empty",
    "Help",
    "Quit",
    "SendText",
    "Unknown",
    "Who",
    "parse_command",
]


@dataclass(frozen=True, slots=True)
class SendText:
    """Send ``text`` to the room as it is."""

    text: str


@dataclass(frozen=True, slots=True)
class Help:
    """Show the commands and keys."""


@dataclass(frozen=True, slots=True)
class Who:
    """Ask the server who is in the room."""


@dataclass(frozen=True, slots=True)
class Quit:
    """Leave the room and close the client."""


@dataclass(frozen=True, slots=True)
class Clear:
    """Clear the message pane (the server is not involved)."""


@dataclass(frozen=True, slots=True)
class Unknown:
    """A ``/word`` that is no command; ``name`` is the word without the slash."""

    name: str


@dataclass(frozen=True, slots=True)
class Empty:
    """Nothing worth sending: an empty or blank line."""


Command = SendText | Help | Who | Quit | Clear | Unknown | Empty

# Command word -> (what it does, for /help). Aliases point at the same factory below.
COMMANDS: dict[str, str] = {
    "help": "show this help",
    "who": "list the people in the room",
    "clear": "clear the message pane",
    "quit": "leave the room and close (also /exit)",
}
_FACTORIES: dict[str, Command] = {
    "help": Help(),
    "?": Help(),
    "who": Who(),
    "names": Who(),
    "clear": Clear(),
    "quit": Quit(),
    "exit": Quit(),
}


def parse_command(line: str) -> Command:
    """Classify one line of input.

    A line starting with ``/`` is a command (its word is case-insensitive; anything after
    the word is ignored); ``//`` escapes that, so ``//shrug`` sends ``/shrug``. A blank
    line is :class:`Empty`. Everything else is sent exactly as typed, spaces included.
    """
    if not line.strip():
        return Empty()
    if line.startswith("//"):
        return SendText(line[1:])
    if not line.startswith("/"):
        return SendText(line)
    word = line[1:].split(maxsplit=1)[0] if line[1:].strip() else ""
    if line[1:2].isspace():
        word = ""  # "/ who" is not /who; a slash and a space read as a typo, not a command
    return _FACTORIES.get(word.casefold(), Unknown(word))
