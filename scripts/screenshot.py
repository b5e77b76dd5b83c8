"""Make docs/screenshot.svg: the app in use against a real server, people talking.

    python scripts/screenshot.py [OUTPUT.svg]

A server on 127.0.0.1 (any free port), two other people as real client connections, and
alice in the app, typing through the same keys a person would press.
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

SIZE = (110, 30)
TIMEOUT_S = 10.0


async def until(pilot: Pilot[Any], condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(TIMEOUT_S):
        while not condition():
            await pilot.pause()


async def heard(conn: ClientConnection, text: str) -> None:
    """Read ``conn`` until a message with ``text`` arrives (so each turn follows the last)."""
    async with asyncio.timeout(TIMEOUT_S):
        while True:
            frame = await conn.recv()
            if isinstance(frame, protocol.Message) and text in frame.text:
                return


async def main() -> str:
    server = ChatServer(ServerConfig(host="127.0.0.1", port=0, flood_rate=0))
    await server.start()
    host, port = server.addresses[0]
    bob = await ClientConnection.connect(host, port)
    await bob.hello("bob")
    carol = await ClientConnection.connect(host, port)
    await carol.hello("carol")
    await bob.say("morning! is the release still on for friday?")
    await heard(carol, "release")
    await carol.say("yes, once the reconnect fix lands")

    app = ChatApp(host, port, name="alice")
    async with app.run_test(size=SIZE) as pilot:
        shown = lambda text: any(text in e.text.plain for e in app.pane.entries)  # noqa: E731
        await until(pilot, lambda: shown("you joined"))
        await bob.say("hi alice! you were fixing the reconnect, right?")
        await until(pilot, lambda: shown("fixing the reconnect"))
        await pilot.press(*"yes: it backs off 1 s to 30 s and resends what you typed", "enter")
        await heard(bob, "backs off")
        await carol.send(protocol.Say(text="cheers", action=True))
        await carol.say("and markup stays literal: [bold red]not red[/] \x1b[31mnot red either")
        await until(pilot, lambda: shown("not red either"))
        await pilot.press(*"/who", "enter")
        await until(pilot, lambda: shown("3 in #lobby"))
        await pilot.press(*"see you at the demo, b", "tab")
        await pilot.pause()
        svg = app.export_screenshot(title="chatroom")
        await pilot.press("ctrl+q")
    for conn in (bob, carol):
        await conn.close()
    await server.close()
    return svg


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/screenshot.svg")
    target.write_text(asyncio.run(main()), encoding="utf-8")
    print(f"wrote {target}")
