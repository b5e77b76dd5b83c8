"""Make docs/web-{desktop,phone}-{light,dark}.png: the web app in use in a real Chromium.

    python scripts/web_screenshots.py [OUTPUT_DIR]

A server on 127.0.0.1 (any free port), two other people as real client connections,
and ann in the browser, typing as a person would: a room with a topic and a
conversation, while the lobby waits with unread messages. Needs Debian's chromium and
the test extras (Playwright).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from playwright.async_api import async_playwright, expect

from chatroom import protocol
from chatroom.client import ClientConnection
from chatroom.server import ChatServer, ServerConfig

TIMEOUT_S = 10.0
SIZES = {"desktop": (1200, 720), "phone": (390, 780)}


async def heard(conn: ClientConnection, text: str) -> None:
    """Read ``conn`` until an event with ``text`` arrives (so each turn follows the last)."""
    async with asyncio.timeout(TIMEOUT_S):
        while True:
            frame = await conn.recv()
            if isinstance(frame, protocol.Message | protocol.Topic) and text in frame.text:
                return


async def scene(browser: Any, out: Path, size: str, scheme: str) -> None:
    server = ChatServer(ServerConfig(host="127.0.0.1", port=0, flood_rate=0))
    await server.start()
    host, port = server.addresses[0]
    width, height = SIZES[size]
    context = await browser.new_context(
        viewport={"width": width, "height": height}, color_scheme=scheme
    )
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_S * 1000)
    try:
        bob = await ClientConnection.connect(host, port)
        await bob.hello("bob")
        carol = await ClientConnection.connect(host, port)
        await carol.hello("carol")
        await bob.say("morning all")
        await page.goto(f"http://{host}:{port}/")
        await page.get_by_role("textbox", name="Name").fill("ann")
        await page.get_by_role("button", name="Join").click()
        box = page.get_by_role("textbox", name="Message")
        await box.fill("/join dev")
        await box.press("Enter")
        await bob.send(protocol.JoinRequest(room="dev"))
        await carol.send(protocol.JoinRequest(room="dev"))
        await bob.send(protocol.TopicRequest(room="dev", text="release 0.2 on Friday"))
        await heard(bob, "release 0.2")
        await bob.send(protocol.Say(text="the build is green again", room="dev"))
        await heard(carol, "build is green")
        await box.fill("nice, thanks bob! I'll tag it after lunch")
        await box.press("Enter")
        await heard(carol, "tag it after lunch")
        await carol.send(
            protocol.Say(text="ann: can you check the <script> escaping first?", room="dev")
        )
        await heard(bob, "escaping first")
        await bob.send(protocol.Say(text="grabs coffee", room="dev", action=True))
        await heard(carol, "grabs coffee")
        await carol.say("lunch at 12:30?")
        await heard(bob, "lunch at")
        await expect(
            page.get_by_role("log", name="Messages").get_by_role("listitem")
        ).to_have_count(8)
        await page.screenshot(path=str(out / f"web-{size}-{scheme}.png"))
        await bob.close()
        await carol.close()
    finally:
        await context.close()
        await server.close()


async def main(out: Path) -> None:
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        for size in SIZES:
            for scheme in ("light", "dark"):
                await scene(browser, out, size, scheme)
        await browser.close()


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent.parent / "docs"
    asyncio.run(main(target))
