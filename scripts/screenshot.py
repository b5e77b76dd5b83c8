"""Make docs/screenshot.svg and docs/screenshot-rooms.svg: the app in use against a real server.

    python scripts/screenshot.py [OUTPUT.svg]

A server on 127.0.0.1 (any free port), two other people as real client connections, and
alice in the app, typing through the same keys a person would press. The first picture is
a room with a topic, while the lobby and a private conversation wait with unread
messages; the second is the list of the server's rooms. The second file is written next
to the first, named ``screenshot-rooms.svg``.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.pilot import Pilot

from chatroom import protocol
from chatroom.client import ClientConnection
from chatroom.server import ChatServer, ServerConfig
from chatroom.tui import ChatApp

SIZE = (120, 30)
TIMEOUT_S = 10.0


async def until(pilot: Pilot[Any], condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(TIMEOUT_S):
        while not condition():
            await pilot.pause()


async def heard(conn: ClientConnection, text: str) -> None:
    """Read ``conn`` until an event with ``text`` arrives (so each turn follows the last)."""
    async with asyncio.timeout(TIMEOUT_S):
        while True:
            frame = await conn.recv()
            if isinstance(frame, protocol.Message | protocol.Topic) and text in frame.text:
                return


async def joined(conn: ClientConnection, room: str) -> None:
    """Read ``conn`` until its own join event in ``room`` arrives."""
    async with asyncio.timeout(TIMEOUT_S):
        while True:
            frame = await conn.recv()
            if isinstance(frame, protocol.Join) and frame.room == room:
                return


async def type_line(pilot: Pilot[Any], line: str) -> None:
    await pilot.press(*line, "enter")


async def main() -> tuple[str, str]:
    server = ChatServer(ServerConfig(host="127.0.0.1", port=0, flood_rate=0))
    await server.start()
    host, port = server.addresses[0]
    bob = await ClientConnection.connect(host, port)
    await bob.hello("bob")
    carol = await ClientConnection.connect(host, port)
    await carol.hello("carol")
    for conn in (bob, carol):
        await conn.send(protocol.JoinRequest(room="dev"))
        await joined(conn, "dev")
    await bob.send(
        protocol.TopicRequest(room="dev", text="release on Friday · reconnect fix first")
    )
    await heard(carol, "release on Friday")
    await bob.send(protocol.Say(text="morning! is the release still on for friday?", room="dev"))
    await heard(carol, "release still on")
    await carol.send(protocol.Say(text="yes, once the reconnect fix lands", room="dev"))
    await heard(bob, "reconnect fix lands")
    await bob.send(protocol.JoinRequest(room="ops"))
    await joined(bob, "ops")
    await bob.send(protocol.TopicRequest(room="ops", text="on call: bob"))
    await heard(bob, "on call")

    app = ChatApp(host, port, name="alice")
    async with app.run_test(size=SIZE) as pilot:

        def shown(text: str) -> bool:
            return any(text in e.text.plain for e in app.pane.entries)

        await until(pilot, lambda: shown("you joined #lobby"))
        await type_line(pilot, "/join #dev")
        await until(pilot, lambda: shown("you joined #dev"))
        await bob.send(
            protocol.Say(text="hi alice! you were fixing the reconnect, right?", room="dev")
        )
        await until(pilot, lambda: shown("fixing the reconnect"))
        await type_line(pilot, "yes: each room resumes where it left off, nothing twice")
        await heard(bob, "nothing twice")
        await carol.send(protocol.Say(text="cheers", room="dev", action=True))
        await carol.send(
            protocol.Say(
                text="and markup stays literal: [bold red]not red[/] \x1b[31mnot red either",
                room="dev",
            )
        )
        await until(pilot, lambda: shown("not red either"))
        await bob.say("coffee in the kitchen, anyone?")
        await carol.say("on my way")
        await carol.send(protocol.DmRequest(to="alice", text="alice, can you look at my patch?"))
        await until(pilot, lambda: any(t.label == "@carol" for t in app.room_list.tabs))
        await until(pilot, lambda: app.room_list.tabs[0].unread == 2)
        await pilot.press(*"see you at the demo, b", "tab")
        await pilot.pause()
        conversation = app.export_screenshot(title="chatroom")

        app.input_line.value = ""
        await type_line(pilot, "/rooms")
        await until(pilot, lambda: shown("rooms on this server"))
        await pilot.pause()
        rooms = app.export_screenshot(title="chatroom: /rooms")
        await pilot.press("ctrl+q")
    for conn in (bob, carol):
        await conn.close()
    await server.close()
    return conversation, rooms


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/screenshot.svg")
    second = target.with_name("screenshot-rooms.svg")
    conversation, rooms = asyncio.run(main())
    target.write_text(conversation, encoding="utf-8")
    second.write_text(rooms, encoding="utf-8")
    print(f"wrote {target} and {second}")
