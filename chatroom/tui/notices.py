"""The app's own lines in a pane: listings, help, and why a request or a send failed.

Each function returns a ``rich.text.Text``; every untrusted part (names, rooms, topics,
server words) goes through :func:`~chatroom.text.inert` first and is never markup.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rich.cells import cell_len
from rich.text import Text

from chatroom import protocol
from chatroom.text import inert, name_colour, truncate
from chatroom.tui import commands
from chatroom.tui.conversation import Conversation

__all__ = [
    "bell",
    "bold",
    "help_text",
    "lazy_note",
    "members_listing",
    "rejoin_failed",
    "request_failed",
    "rooms_listing",
    "topic",
    "unknown_command",
]

_KEYS = (
    ("Enter", "send (a pasted block of lines goes as one message)"),
    ("Up/Down", "recall earlier lines"),
    ("Tab", "complete a name, a /command or a #room"),
    ("Alt+←/→", "previous/next room (Alt+↑/↓ too; or click it)"),
    ("Alt+1..9", "go to room number 1..9 in the list"),
    ("PgUp/PgDn", "scroll; PgUp at the top loads older messages"),
    ("Ctrl+Home", "go to the top and load older messages"),
    ("Ctrl+P", "command palette"),
    ("Ctrl+R", "reconnect now"),
    ("Ctrl+Q", "quit (Ctrl+C too)"),
)


def bold(text: str) -> tuple[str, str]:
    """A ``Text.assemble`` part in bold (made inert: it may hold a name)."""
    return inert(text), "bold"


def help_text() -> Text:
    """Commands and keys, as /help and F1 show them."""
    width = max(len(usage) for usage in commands.COMMANDS) + 2
    text = Text()
    text.append("Commands\n", style="bold")
    for usage, what in commands.COMMANDS.items():
        text.append(f"  {usage:<{width}}", style="bold")
        text.append(f"{what}\n")
    text.append("Keys\n", style="bold")
    for keys, what in _KEYS:
        text.append(f"  {keys:<{width}}", style="bold")
        text.append(f"{what}\n")
    text.rstrip()
    return text


def members_listing(room: str, members: Sequence[str]) -> Text:
    """The answer to /who: how many, then each name in its colour."""
    listing = Text.assemble((f"{len(members)} in #{inert(room)}: ", "bold"))
    for index, name in enumerate(sorted(members, key=str.casefold)):
        if index:
            listing.append(", ")
        listing.append(inert(name), style=name_colour(name))
    return listing


def bans_listing(bans: protocol.Bans) -> Text:
    """The answer to /bans: each ban's name, who set it, until when, and why."""
    where = f"#{inert(bans.room)}" if bans.room is not None else "the server"
    listing = Text.assemble((f"{len(bans.bans)} banned from {where}", "bold"))
    for ban in bans.bans:
        listing.append("\n  ")
        listing.append(inert(ban.name), style=f"bold {name_colour(ban.name)}")
        listing.append(f" by {inert(ban.by)}, until {inert(ban.until or 'lifted')}", style="dim")
        if ban.reason:
            listing.append(f": {inert(ban.reason)}", style="italic")
    return listing


def rooms_listing(rooms: Sequence[protocol.RoomInfo], in_room: Callable[[str], bool]) -> Text:
    """The answer to /rooms: each room's members and topic, ticked where we are in it."""
    count = len(rooms)
    listing = Text.assemble((f"{count} room{'' if count == 1 else 's'} on this server", "bold"))
    width = max((cell_len(inert(room.name)) for room in rooms), default=0) + 1
    for room in sorted(rooms, key=lambda r: r.name.casefold()):
        name = f"#{inert(room.name)}"
        listing.append("\n  ")
        listing.append(name, style="bold")
        listing.append(" " * (width - cell_len(name) + 2))
        plural = " " if room.members == 1 else "s"
        listing.append(f"{room.members:>3} member{plural}")
        listing.append(" ✓ " if in_room(room.name) else "   ", style="green")
        if room.topic:
            listing.append(truncate(inert(room.topic), 60), style="italic")
    listing.append("\n✓ ", style="green")
    listing.append("you are in it; ", style="dim")
    listing.append("/join ROOM", style="bold")
    listing.append(" joins one, or makes a new one", style="dim")
    return listing


def lazy_note(conv: Conversation) -> Text:
    """Said once in a room over the lazy-members threshold."""
    return Text(
        f"more than {conv.lazy_above} members here: joins and leaves are not "
        "shown, and the member list is as of the time it says; /who refreshes it",
        "dim",
    )


def request_failed(frame: protocol.ClientFrame, code: str, text: str) -> Text:
    """Why the request ``frame`` came to nothing."""
    reason = Text.assemble(inert(text or code), (f" ({inert(code)})", "dim"))
    match frame:
        case protocol.JoinRequest(room=room):
            what = f"cannot join #{inert(room)}"
        case protocol.Part(room=room):
            what = f"cannot leave #{inert(room)}"
        case protocol.TopicRequest(room=room):
            what = f"cannot set the topic of #{inert(room)}"
        case protocol.HistoryRequest():
            what = "no older messages"
        case protocol.Who(room=room):
            what = f"cannot list the members of #{inert(room)}"
        case protocol.RoomsRequest():
            what = "cannot list the rooms"
        case protocol.NickRequest():
            what = "cannot change your name"
        case _:
            what = "request failed"
    return Text.assemble((f"{what}: ", "bold red"), reason)


def rejoin_failed(room: str, code: str, text: str) -> Text:
    """A room we were in could not be rejoined after a reconnect."""
    reason = Text.assemble(inert(text or code), (f" ({inert(code)})", "dim"))
    return Text.assemble(
        (f"could not rejoin #{inert(room)}: ", "bold red"),
        reason,
        (f"  /join {inert(room)} tries again", "dim"),
    )


def topic(conv: Conversation) -> Text:
    """The answer to /topic without text: the topic, or how to set one."""
    if conv.private:
        return Text("a private conversation has no topic")
    if conv.topic:
        return Text.assemble(f"topic of #{inert(conv.name)}: ", (inert(conv.topic), "italic"))
    return Text.assemble(f"#{inert(conv.name)} has no topic; ", bold("/topic TEXT"), " sets one")


def bell(on: bool) -> Text:
    """What /bell says: whether the bell rings, and how to change that."""
    if on:
        return Text.assemble(
            "the bell rings on mentions and private messages; ", bold("/bell off"), " stops it"
        )
    return Text.assemble("the bell is off; ", bold("/bell on"), " turns it on")


def unknown_command(name: str) -> Text:
    """A /word that is no command: not sent, and how to send it anyway."""
    return Text.assemble(
        (f"/{inert(name)}", "bold"),
        " is not a command (not sent). ",
        ("/help", "bold"),
        " lists them; ",
        (f"//{inert(name)}", "bold"),
        " sends it as a message.",
    )
