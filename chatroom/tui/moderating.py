"""Accounts and moderation in the client: the slash commands, their requests, their text.

``/register /login /password /kick /ban /unban /bans /mute /unmute /op /deop /voice
/devoice /mode /invite``, parsed by :func:`parse_moderation` (pure, like
:func:`chatroom.tui.commands.parse_command`) and turned into the wire's requests by
:func:`request_for` for the conversation they are typed in. Lines that carry a password
are never kept in the input history (:func:`is_secret`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rich.text import Text

from chatroom import protocol
from chatroom.text import inert, name_colour

__all__ = [
    "MODERATION_COMMANDS",
    "MODERATION_WORDS",
    "SECRET_COMMANDS",
    "Account",
    "Moderation",
    "Sanction",
    "is_secret",
    "kicked_text",
    "mod_text",
    "parse_moderation",
    "request_for",
    "role_prefix",
]

# For /help, beside the others.
MODERATION_COMMANDS: dict[str, str] = {
    "/register PASSWORD": "register your name as an account (8 to 256 characters)",
    "/login PASSWORD": "log in to the account of your name (reconnects)",
    "/password OLD NEW": "change your account's password (your other sessions end)",
    "/kick NAME [REASON]": "put NAME out of this room (ops)",
    "/ban [-s] NAME [TIME] [REASON]": "keep NAME out of this room, or the server with -s "
    "(staff); TIME like 600, 10m, 2h, 1d; none: until /unban",
    "/unban [-s] NAME": "lift a ban",
    "/bans [-s]": "list this room's bans, or the server's",
    "/mute NAME [TIME] [REASON]": "NAME stays but may not speak here",
    "/unmute NAME": "lift a mute",
    "/op NAME": "make NAME an op of this room (/deop takes it back)",
    "/voice NAME": "let NAME speak in a moderated room (/devoice takes it back)",
    "/mode moderated on|off": "change this room's modes, several at once: also "
    "invite on|off, key WORD|off, registered on|off, slow SECONDS",
    "/invite NAME": "let NAME into this room past invite-only and its key",
}
MODERATION_WORDS = frozenset(
    {usage.split()[0][1:] for usage in MODERATION_COMMANDS} | {"deop", "devoice"}
)
SECRET_COMMANDS = frozenset({"register", "login", "password"})
_ROLES = {"op": "op", "deop": "none", "voice": "voice", "devoice": "none"}
_UNITS_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"(\d{1,12})([smhdw]?)")
_ON_OFF = {"on": True, "off": False, "yes": True, "no": False, "+": True, "-": False}


@dataclass(frozen=True, slots=True)
class Account:
    """``/register``, ``/login`` or ``/password``: ``secret`` is the password (the new
    one for /password), never shown."""

    what: str
    secret: str = field(repr=False)
    old: str = field(default="", repr=False)


@dataclass(frozen=True, slots=True)
class Sanction:
    """``/kick /ban /unban /bans /mute /unmute /op /deop /voice /devoice /invite``."""

    what: str
    name: str = ""
    server: bool = False
    duration_s: int | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Modes:
    """``/mode``: the settings to change, as the ``mode`` request's fields."""

    settings: tuple[tuple[str, object], ...]


Moderation = Account | Sanction | Modes


def is_secret(line: str) -> bool:
    """Whether ``line`` carries a password: kept out of the input history."""
    word = line[1:].split(maxsplit=1)[0].casefold() if line.startswith("/") else ""
    return bool(word) and word in SECRET_COMMANDS


def _name_and_rest(rest: str) -> tuple[str, str]:
    rest = rest.strip()
    if rest.startswith('"'):
        end = rest.find('"', 1)
        if end > 0:
            return rest[1:end], rest[end + 1 :].strip()
    name, _, tail = rest.partition(" ")
    return name, tail.strip()


def _duration(word: str) -> int | None:
    match = _DURATION.fullmatch(word.casefold())
    return None if match is None else int(match[1]) * _UNITS_S[match[2]]


def parse_moderation(word: str, rest: str) -> Moderation | None:
    """The command ``/word rest``, or None when it is missing what it needs."""
    if word in SECRET_COMMANDS:
        parts = rest.split()
        if word == "password":
            return Account(word, parts[1], parts[0]) if len(parts) == 2 else None
        return Account(word, rest.strip()) if rest.strip() else None
    server = False
    if word in ("ban", "unban", "bans"):
        head, _, tail = rest.strip().partition(" ")
        if head == "-s":
            server, rest = True, tail
    if word == "bans":
        return Sanction(word, server=server)
    if word == "mode":
        return _modes(rest)
    name, tail = _name_and_rest(rest)
    if not name:
        return None
    duration = None
    if word in ("ban", "mute") and tail:
        first, _, after = tail.partition(" ")
        duration = _duration(first)
        if duration is not None:
            tail = after.strip()
    if word in _ROLES:
        return Sanction(word, name)
    return Sanction(word, name, server, duration, tail)


def _modes(rest: str) -> Modes | None:
    words = rest.split()
    if not words or len(words) % 2:
        return None
    settings: list[tuple[str, object]] = []
    for setting, value in zip(words[::2], words[1::2], strict=True):
        setting = setting.casefold()
        if setting == "key":
            settings.append(("key", "" if value.casefold() == "off" else value))
        elif setting == "slow":
            seconds = _duration(value)
            if seconds is None:
                return None
            settings.append(("slow_s", seconds))
        elif setting in ("invite", "moderated", "registered") and value.casefold() in _ON_OFF:
            field_name = {"invite": "invite_only", "registered": "registered_only"}.get(
                setting, setting
            )
            settings.append((field_name, _ON_OFF[value.casefold()]))
        else:
            return None
    return Modes(tuple(settings))


def request_for(command: Moderation, room: str) -> protocol.ClientFrame | None:
    """The request for ``command`` typed in ``room`` (None: /login, which reconnects)."""
    match command:
        case Account(what="register", secret=secret):
            return protocol.Register(password=secret)
        case Account(what="password", secret=secret, old=old):
            return protocol.PasswordChange(old_password=old, password=secret)
        case Account():
            return None
        case Modes(settings=settings):
            return protocol.Mode(room, **dict(settings))  # type: ignore[arg-type]
        case Sanction(what="kick", name=name, reason=reason):
            return protocol.Kick(room=room, name=name, reason=reason)
        case Sanction(what="ban", name=name, server=server, duration_s=duration, reason=reason):
            where = None if server else room
            return protocol.Ban(name=name, room=where, duration_s=duration, reason=reason)
        case Sanction(what="unban", name=name, server=server):
            return protocol.Unban(name=name, room=None if server else room)
        case Sanction(what="bans", server=server):
            return protocol.BansRequest(room=None if server else room)
        case Sanction(what="mute", name=name, duration_s=duration, reason=reason):
            return protocol.Mute(room=room, name=name, duration_s=duration, reason=reason)
        case Sanction(what="unmute", name=name):
            return protocol.Unmute(room=room, name=name)
        case Sanction(what="invite", name=name):
            return protocol.Invite(room=room, name=name)
        case Sanction(what=what, name=name):
            return protocol.RoleRequest(room=room, name=name, role=_ROLES[what])
    return None


def role_prefix(name: str, ops: set[str], voices: set[str]) -> str:
    """``@`` for an op, ``+`` for a voiced member, as IRC clients show them."""
    if name in ops:
        return "@"
    if name in voices:
        return "+"
    return ""


def mod_text(event: protocol.Mod) -> Text:
    """A moderation event in words; every name and reason inert."""
    from chatroom.transcript import mod_line

    return Text.assemble(("⚑ ", "yellow"), (mod_line(event), "italic"))


def kicked_text(name: str, reason: str, by: str | None, text: str | None) -> Text:
    """``bob was kicked by alice: text``, for the room and for bob himself."""
    parts: list[str | tuple[str, str]] = [("← ", "red"), (inert(name), name_colour(name))]
    parts.append(f" was {inert(reason)}")
    if by is not None:
        parts += [" by ", (inert(by), f"bold {name_colour(by)}")]
    if text:
        parts += [": ", (inert(text), "italic")]
    return Text.assemble(*parts)
