"""What a line typed into the input means: a message to send, a slash command, or nothing.

:func:`parse_command` is pure, so the rules are tested without a UI; the app only maps
its result to a frame or an action.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "COMMANDS",
    "Action",
    "Clear",
    "Command",
    "Empty",
    "Help",
    "Nick",
    "PrivateMessage",
    "Quit",
    "SendText",
    "SetTopic",
    "Unknown",
    "Usage",
    "Who",
    "parse_command",
]


@dataclass(frozen=True, slots=True)
class SendText:
    """Send ``text`` to the room as it is."""

    text: str


@dataclass(frozen=True, slots=True)
class Action:
    """Send ``text`` as an action (``/me waves`` shows as ``* alice waves``)."""

    text: str


@dataclass(frozen=True, slots=True)
class PrivateMessage:
    """Send ``text`` to ``to`` alone."""

    to: str
    text: str


@dataclass(frozen=True, slots=True)
class Nick:
    """Change my name to ``name``."""

    name: str


@dataclass(frozen=True, slots=True)
class SetTopic:
    """Set the room's topic to ``text``."""

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
class Usage:
    """A command missing what it needs; ``hint`` shows how it is used."""

    hint: str


@dataclass(frozen=True, slots=True)
class Empty:
    """Nothing worth sending: an empty or blank line."""


Command = (
    SendText
    | Action
    | PrivateMessage
    | Nick
    | SetTopic
    | Help
    | Who
    | Quit
    | Clear
    | Unknown
    | Usage
    | Empty
)

# For /help: how each command is typed, and what it does.
COMMANDS: dict[str, str] = {
    "/help": "show this help",
    "/who": "list the people in the room",
    "/me TEXT": "send an action: * you TEXT",
    "/msg NAME TEXT": 'a private message (quote a name with spaces: "Bob Smith")',
    "/nick NAME": "change your name",
    "/topic TEXT": "set the room's topic",
    "/clear": "clear the message pane",
    "/quit": "leave the room and close (also /exit)",
    "//text": "send text that starts with a slash",
}
_NO_ARGUMENT: dict[str, Command] = {
    "help": Help(),
    "?": Help(),
    "who": Who(),
    "names": Who(),
    "clear": Clear(),
    "quit": Quit(),
    "exit": Quit(),
}
_USAGE = {
    "me": "/me TEXT",
    "msg": "/msg NAME TEXT",
    "nick": "/nick NAME",
    "topic": "/topic TEXT",
}


_COMMAND_WORD = re.compile(r"/(\S+)\s*")


def _split_name(rest: str) -> tuple[str, str]:
    """``NAME TEXT`` or ``"NAME WITH SPACES" TEXT`` -> (name, text)."""
    if rest.startswith('"'):
        end = rest.find('"', 1)
        if end > 0:
            return rest[1:end], rest[end + 1 :].lstrip(" ")
    name, _, text = rest.partition(" ")
    return name, text.lstrip(" ")


def parse_command(line: str) -> Command:
    """Classify one line of input.

    A line starting with ``/`` is a command; its word is case-insensitive, and for
    commands without arguments anything after the word is ignored. ``//`` escapes the
    slash, so ``//shrug`` sends ``/shrug``. A blank line is :class:`Empty`. Everything
    else is sent exactly as typed, spaces included.
    """
    if not line.strip():
        return Empty()
    if line.startswith("//"):
        return SendText(line[1:])
    if not line.startswith("/"):
        return SendText(line)
    if line[1:2].isspace() or len(line) == 1:
        return Unknown("")  # a slash and a space reads as a typo, not a command
    match = _COMMAND_WORD.match(line)
    assert match is not None  # a slash followed by a non-space always matches
    name, rest = match.group(1), line[match.end() :]
    word = name.casefold()
    if word in _NO_ARGUMENT:
        return _NO_ARGUMENT[word]
    if word not in _USAGE:
        return Unknown(name)
    if word == "msg":
        name, text = _split_name(rest)
        if not name or not text.strip():
            return Usage(_USAGE[word])
        return PrivateMessage(name, text)
    if not rest.strip():
        return Usage(_USAGE[word])
    if word == "me":
        return Action(rest)
    if word == "nick":
        return Nick(rest.strip())
    return SetTopic(rest)
