"""What a line typed into the input means: a message to send, a slash command, or nothing.

:func:`parse_command` is pure, so the rules are tested without a UI; the app only maps
its result to a frame or an action.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from chatroom.tui.moderating import (
    MODERATION_COMMANDS,
    MODERATION_WORDS,
    SECRET_COMMANDS,
    Moderation,
    is_secret,
    parse_moderation,
)

__all__ = [
    "COMMANDS",
    "COMMAND_WORDS",
    "SECRET_COMMANDS",
    "Action",
    "Bell",
    "Clear",
    "Command",
    "Empty",
    "Help",
    "Join",
    "Nick",
    "Part",
    "PrivateMessage",
    "Query",
    "Quit",
    "Rooms",
    "SendText",
    "SetTopic",
    "ShowTopic",
    "Unknown",
    "Usage",
    "Who",
    "is_secret",
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
class Query:
    """Open the private conversation with ``name``; send ``text`` there if there is any."""

    name: str
    text: str = ""


@dataclass(frozen=True, slots=True)
class SetTopic:
    """Set the room's topic to ``text``."""

    text: str


@dataclass(frozen=True, slots=True)
class ShowTopic:
    """Show the current room's topic."""


@dataclass(frozen=True, slots=True)
class Join:
    """Join ``room`` (its name without a leading ``#``), or switch to it if already in."""

    room: str


@dataclass(frozen=True, slots=True)
class Part:
    """Leave ``room``, or the current one when None (a private conversation just closes)."""

    room: str | None = None


@dataclass(frozen=True, slots=True)
class Rooms:
    """Ask the server for its rooms."""


@dataclass(frozen=True, slots=True)
class Bell:
    """Turn the bell on mentions on or off; None only asks how it is set."""

    on: bool | None


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
    Moderation
    | SendText
    | Action
    | PrivateMessage
    | Query
    | Nick
    | SetTopic
    | ShowTopic
    | Join
    | Part
    | Rooms
    | Bell
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
    **MODERATION_COMMANDS,
    "/help": "show this help",
    "/join ROOM": "join a room (made if new) and switch to it; a leading # is fine",
    "/part [ROOM]": "leave this room (or ROOM); in a private conversation, close it",
    "/rooms": "list the server's rooms with their members and topics (also /list)",
    "/who": "list the people in this room",
    "/msg NAME TEXT": 'a private message (quote a name with spaces: "Bob Smith")',
    "/query NAME [TEXT]": "open the private conversation with NAME and switch to it",
    "/me TEXT": "send an action: * you TEXT",
    "/topic [TEXT]": "show this room's topic, or set it to TEXT",
    "/nick NAME": "change your name",
    "/bell on|off": "ring the terminal bell on mentions and private messages, or not",
    "/clear": "clear this conversation's pane",
    "/quit": "leave the chat and close (also /exit)",
    "//text": "send text that starts with a slash",
}
# What Tab completes a leading /word to: the commands as /help lists them, no aliases.
COMMAND_WORDS: tuple[str, ...] = tuple(
    dict.fromkeys(usage.split()[0] for usage in COMMANDS if not usage.startswith("//"))
)
_NO_ARGUMENT: dict[str, Command] = {
    "help": Help(),
    "?": Help(),
    "who": Who(),
    "names": Who(),
    "rooms": Rooms(),
    "list": Rooms(),
    "clear": Clear(),
    "quit": Quit(),
    "exit": Quit(),
}
_USAGE = {
    "me": "/me TEXT",
    "msg": "/msg NAME TEXT",
    "query": "/query NAME [TEXT]",
    "nick": "/nick NAME",
    "topic": "/topic [TEXT]",
    "join": "/join ROOM",
    "j": "/join ROOM",
    "part": "/part [ROOM]",
    "leave": "/part [ROOM]",
    "close": "/part [ROOM]",
    "bell": "/bell on|off",
}
_BELL_WORDS = {"on": True, "off": False}
_USAGE.update({usage.split()[0][1:]: usage for usage in MODERATION_COMMANDS})
for _role in ("deop", "devoice"):
    _USAGE[_role] = f"/{_role} NAME"


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
    if word in MODERATION_WORDS:
        return parse_moderation(word, rest) or Usage(_USAGE[word])
    if word not in _USAGE:
        return Unknown(name)
    if word == "msg":
        name, text = _split_name(rest)
        if not name or not text.strip():
            return Usage(_USAGE[word])
        return PrivateMessage(name, text)
    if word == "query":
        name, text = _split_name(rest)
        if not name:
            return Usage(_USAGE[word])
        return Query(name, text if text.strip() else "")
    if word in ("part", "leave", "close"):
        # IRC users type rooms with a #; here the # is how rooms are shown, not their name.
        room = rest.strip().removeprefix("#").strip()
        return Part(room or None)
    if word == "topic":
        return SetTopic(rest) if rest.strip() else ShowTopic()
    if word == "bell":
        setting = rest.strip().casefold()
        if not setting:
            return Bell(None)
        if setting not in _BELL_WORDS:
            return Usage(_USAGE[word])
        return Bell(_BELL_WORDS[setting])
    if not rest.strip():
        return Usage(_USAGE[word])
    if word in ("join", "j"):
        room = rest.strip().removeprefix("#").strip()
        return Join(room) if room else Usage(_USAGE[word])
    if word == "me":
        return Action(rest)
    return Nick(rest.strip())
