"""The browser app across a cluster, in Debian's Chromium: a page whose node dies goes on
on the next node of ``?servers=``, resumes, and shows nothing twice."""

from __future__ import annotations

from typing import Any

from test_browser import (
    browser,
    connected,
    messages,
    new_page,
    playwright_api,
    say,
    shows,
    submit_name,
)

from .checker import check
from .conftest import MakeRecorder, StartNode
from .recorder import text_is
from .redis_server import RedisServer, free_port

# The Chromium fixture of the browser tests, used here by its name.
__all__ = ["browser"]


async def test_a_page_moves_to_the_next_node_when_its_node_dies(
    browser: Any,
    redis_server: RedisServer,
    start_node: StartNode,
    recorders: MakeRecorder,
) -> None:
    """alice's page on node 1 with ?servers=node1,node2; node 1 is killed: the page says
    it is connected to node 2, resumes, her next line reaches bob on node 2, his reaches
    her, and her line from before shows once."""
    ports = [free_port(), free_port()]
    origins = [f"http://127.0.0.1:{port}" for port in ports]
    nodes = [
        await start_node(
            f"n{i + 1}",
            redis_url=redis_server.url,
            # Each node lets the other's pages in (and its pages reach the other).
            extra=("--bind", f"127.0.0.1:{port}", "--allow-origin", origins[1 - i]),
        )
        for i, port in enumerate(ports)
    ]
    bob = recorders("bob", [nodes[1].address])
    await bob.connect()
    page = await new_page(browser)
    await page.goto(f"{origins[0]}/?servers=127.0.0.1:{ports[0]},127.0.0.1:{ports[1]}")
    await submit_name(page, "alice")
    await connected(page)
    await say(page, "one, from node 1")
    await bob.wait_for(text_is("one, from node 1"))
    await nodes[0].kill()
    status = page.get_by_role("status", name="Connection")
    await playwright_api.expect(status).to_have_text(f"Connected to 127.0.0.1:{ports[1]}")
    await say(page, "two, from node 2")
    await bob.wait_for(text_is("two, from node 2"))
    await bob.say("lobby", "three, from bob")
    await shows(page, "three, from bob")
    for text in ("one, from node 1", "two, from node 2"):
        await playwright_api.expect(messages(page).filter(has_text=text)).to_have_count(1)
    await bob.close()
    stream = await redis_server.stream()
    problems = check([entry["event"] for entry in stream], [bob.record()])
    assert problems == [], problems
    texts = [e["event"].get("text") for e in stream if e["event"]["type"] == "message"]
    assert texts.count("two, from node 2") == 1
