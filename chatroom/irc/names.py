"""Member and room names as IRC nicks and channels, and text cut to fit IRC lines.

A chat name may hold what a nick may not: spaces, ``.``, ``@``, a leading digit. Each
name has one IRC form, the same every time (no table: it survives restarts), and the
form decodes back to the name, so an IRC user can address everyone:

- a name that is already a nick (letters and digits in any script, ``-`` and
  ``[]\\`_^{|}``, not starting with a digit or ``-``) and holds no ``\\`` is its own form;
- any other name is written with escapes, each starting with ``\\``: a space is ``\\_``,
  a ``\\`` is ``\\\\``, and any other character outside the grammar is ``\\{hex}``, its
  code point. ``Ann Lee`` is ``Ann\\_Lee``, ``j.doe`` is ``j\\{2e}doe``.

The forms are distinct: names of the first kind have no ``\\``, and every escaped form
has one. A channel is ``#`` and its room's form: ``#dev`` is the room ``dev``.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

__all__ = [
    "CHANNEL_PREFIX",
    "NameNotMapped",
    "from_channel",
    "from_nick",
    "split_text",
    "to_channel",
    "to_nick",
]

CHANNEL_PREFIX = "#"
_SPECIALS = frozenset("-[]\\`_^{|}")
_NOT_IN_CHANNELS = frozenset(",\\:")
_ESCAPE = re.compile(r"\\(?:(_)|(\\)|\{([0-9a-fA-F]{1,6})\})")


class NameNotMapped(ValueError):
    """An IRC nick or channel that is no valid form of any name."""


def _nick_char(char: str) -> bool:
    if char in _SPECIALS:
        return char != "\\"
    return unicodedata.category(char)[0] in "LNM"


def _channel_char(char: str) -> bool:
    # A channel's grammar is wider than a nick's: "#c++" and "#1on1" are channels.
    return char not in _NOT_IN_CHANNELS and unicodedata.category(char)[0] in "LNMPS"


def _is_own_form(name: str, channel: bool) -> bool:
    if channel:
        return all(_channel_char(char) for char in name)
    first = name[0]
    if first.isdigit() or first == "-" or unicodedata.category(first)[0] == "M":
        return False
    return all(_nick_char(char) for char in name)


# Every event names its sender and room: a name's form is worked out once, not per event.
@lru_cache(maxsize=4096)
def _encode(name: str, channel: bool) -> str:
    if name and _is_own_form(name, channel):
        return name
    allowed = _channel_char if channel else _nick_char
    out: list[str] = []
    for index, char in enumerate(name):
        if char == " ":
            out.append("\\_")
        elif char == "\\":
            out.append("\\\\")
        elif allowed(char) and (channel or not (index == 0 and (char.isdigit() or char == "-"))):
            out.append(char)
        else:
            out.append(f"\\{{{ord(char):x}}}")
    return "".join(out)


def _decode(form: str, channel: bool) -> str:
    if not form:
        raise NameNotMapped("empty")
    if "\\" not in form:
        if not _is_own_form(form, channel):
            raise NameNotMapped(form)
        return form
    allowed = _channel_char if channel else _nick_char
    out: list[str] = []
    position = 0
    for match in _ESCAPE.finditer(form):
        plain = form[position : match.start()]
        if not all(allowed(char) for char in plain):
            raise NameNotMapped(form)
        out.append(plain)
        space, backslash, code = match.groups()
        if space:
            out.append(" ")
        elif backslash:
            out.append("\\")
        else:
            value = int(code, 16)
            if value > 0x10FFFF or 0xD800 <= value <= 0xDFFF:
                raise NameNotMapped(form)
            out.append(chr(value))
        position = match.end()
    tail = form[position:]
    if not all(allowed(char) for char in tail):
        raise NameNotMapped(form)
    out.append(tail)
    name = "".join(out)
    # Only the one form of each name is accepted: the round trip must be exact.
    if _encode(name, channel) != form:
        raise NameNotMapped(form)
    return name


def to_nick(name: str) -> str:
    """The IRC form of a member's name."""
    return _encode(name, channel=False)


def from_nick(nick: str) -> str:
    """The name an IRC form stands for.

    Raises:
        NameNotMapped: ``nick`` holds what no form holds (a space, a stray ``\\``, ...).
    """
    return _decode(nick, channel=False)


def to_channel(room: str) -> str:
    """The channel of a room: ``#`` and the room's form (wider than a nick's)."""
    return CHANNEL_PREFIX + _encode(room, channel=True)


def from_channel(channel: str) -> str:
    """The room a channel stands for.

    Raises:
        NameNotMapped: not a ``#`` channel, or no valid form of a room's name.
    """
    if not channel.startswith(CHANNEL_PREFIX):
        raise NameNotMapped(channel)
    return _decode(channel[1:], channel=True)


def split_text(text: str, budget: int) -> list[str]:
    """``text`` as IRC lines of at most ``budget`` UTF-8 bytes each: one line per line
    of the text, long ones cut at a space when there is one in the second half of the
    piece, else between characters. Nothing is lost but line ends; an empty text, or an
    empty line inside one, is one space (IRC cannot carry an empty message)."""
    budget = max(budget, 4)
    pieces: list[str] = []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line = line.replace("\0", "")
        if not line:
            pieces.append(" ")
            continue
        while len(line.encode("utf-8")) > budget:
            cut = _cut_point(line, budget)
            space = line.rfind(" ", cut // 2, cut + 1)
            if space > 0:
                pieces.append(line[:space])
                line = line[space + 1 :]
            else:
                pieces.append(line[:cut])
                line = line[cut:]
        if line:
            pieces.append(line)
    return pieces


def _cut_point(line: str, budget: int) -> int:
    """The most characters of ``line`` whose UTF-8 fits ``budget`` bytes (at least 1)."""
    encoded = line.encode("utf-8")[:budget]
    return max(len(encoded.decode("utf-8", "ignore")), 1)
