"""The command palette's chat actions: join, leave, switch, list, who, help, bell, quit.

The palette shows what a provider yields as markup unless it is already ``Content``, so
every title here is built as ``Content`` from inert text, and help lines are escaped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from functools import partial
from typing import Any, Protocol, cast

from textual.command import DiscoveryHit, Hit, Hits, Matcher, Provider
from textual.content import Content
from textual.markup import escape

from chatroom import protocol
from chatroom.text import inert
from chatroom.tui.conversation import Conversation

__all__ = ["ChatCommands", "PaletteHost"]

_Action = tuple[str, str, Callable[[], Any]]


def _highlight(matcher: Matcher, title: str) -> Content:
    """``title`` as plain content with the matched letters styled (never parsed as markup)."""
    content = Content(title)
    _, offsets = matcher.fuzzy_search.match(matcher.query, title)
    for offset in offsets:
        if not title[offset].isspace():
            content = content.stylize(matcher.match_style, offset, offset + 1)
    return content


class PaletteHost(Protocol):
    """What the palette needs of the app: its conversations and the actions it offers.

    The palette sees the app through this alone, so it never imports the app module (which
    imports the palette for ``COMMANDS``).
    """

    @property
    def convs(self) -> Mapping[str, Conversation]: ...
    @property
    def current(self) -> Conversation: ...
    @property
    def lobby(self) -> Conversation: ...
    @property
    def known_rooms(self) -> Mapping[str, protocol.RoomInfo]: ...
    @property
    def bell_on(self) -> bool: ...
    def action_join_prompt(self) -> None: ...
    def switch_to(self, key: str) -> None: ...
    async def join_room(self, room: str) -> None: ...
    async def run_line(self, line: str) -> None: ...
    def action_help(self) -> None: ...
    def action_toggle_bell(self) -> None: ...
    def action_retry_now(self) -> None: ...
    async def action_quit(self) -> None: ...


class ChatCommands(Provider):
    """The chat's actions for the command palette (Ctrl+P), one entry per room to switch."""

    def _actions(self) -> Iterator[_Action]:
        app = cast("PaletteHost", self.app)
        current = app.current
        yield (
            "Join a room…",
            "type its name; a new name makes a new room",
            app.action_join_prompt,
        )
        for conv in app.convs.values():
            if conv is not current:
                unread = f"{conv.unread} unread" if conv.unread else "no unread messages"
                yield f"Switch to {inert(conv.label)}", unread, partial(app.switch_to, conv.key)
        for key, room in app.known_rooms.items():
            if key not in app.convs:
                plural = "" if room.members == 1 else "s"
                yield (
                    f"Join #{inert(room.name)}",
                    f"{room.members} member{plural}",
                    partial(app.join_room, room.name),
                )
        if current is not app.lobby:
            verb = "Close" if current.private else "Leave"
            yield f"{verb} {inert(current.label)}", "/part", partial(app.run_line, "/part")
        yield (
            "List rooms",
            "/rooms: the server's rooms, members and topics",
            partial(app.run_line, "/rooms"),
        )
        if not current.private:
            yield f"Who is in {inert(current.label)}", "/who", partial(app.run_line, "/who")
        yield "Help", "commands and keys", app.action_help
        if app.bell_on:
            yield "Turn the bell off", "/bell off: no bell on mentions", app.action_toggle_bell
        else:
            yield "Turn the bell on", "/bell on: ring on mentions", app.action_toggle_bell
        yield "Reconnect now", "Ctrl+R: skip the wait before the next attempt", app.action_retry_now
        yield "Quit", "Ctrl+Q: say goodbye and close", app.action_quit

    async def discover(self) -> Hits:
        for title, help_text, command in self._actions():
            yield DiscoveryHit(Content(title), command, text=title, help=escape(help_text))

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, command in self._actions():
            score = matcher.match(title)
            if score > 0:
                yield Hit(
                    score, _highlight(matcher, title), command, text=title, help=escape(help_text)
                )
