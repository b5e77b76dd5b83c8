"""chatroom-tui --plain with a cluster's addresses: when its node dies mid-session it
resumes on the next one, prints what it missed once, and its lines arrive once."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from conftest import TIMEOUT_S

from .checker import check
from .conftest import MakeRecorder, StartNode
from .recorder import text_is
from .redis_server import RedisServer

TUI = str(Path(sys.executable).parent / "chatroom-tui")


async def test_plain_mode_resumes_on_the_next_node_when_its_node_dies(
    redis_server: RedisServer, start_node: StartNode, recorders: MakeRecorder
) -> None:
    nodes = [
        await start_node("n1", redis_url=redis_server.url),
        await start_node("n2", redis_url=redis_server.url),
    ]
    quinn = recorders("quinn", [nodes[1].address])
    await quinn.connect()
    addresses = ",".join(f"{host}:{port}" for host, port in (n.address for n in nodes))
    plain = await asyncio.create_subprocess_exec(
        TUI,
        "--plain",
        addresses,
        "--name",
        "pat",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert plain.stdin is not None and plain.stdout is not None and plain.stderr is not None
    printed: list[str] = []

    async def until_printed(text: str) -> None:
        assert plain.stdout is not None
        async with asyncio.timeout(TIMEOUT_S):
            while not any(text in line for line in printed):
                line = (await plain.stdout.readline()).decode()
                assert line, "chatroom-tui --plain ended early"
                printed.append(line)

    try:
        await quinn.wait_for(lambda f: f.get("type") == "join" and f.get("name") == "pat")
        plain.stdin.write(b"one, on node 1\n")
        await quinn.wait_for(text_is("one, on node 1"))
        # A line on its way as the node dies: stored before or resent after, once.
        plain.stdin.write(b"two, in flight\n")
        await plain.stdin.drain()
        await nodes[0].kill()
        await quinn.say("lobby", "said while pat moves")
        await quinn.wait_for(text_is("two, in flight"))
        plain.stdin.write(b"three, after the move\n")
        await quinn.wait_for(text_is("three, after the move"))
        await until_printed("said while pat moves")
        await quinn.say("lobby", "welcome back")
        await until_printed("welcome back")
        plain.stdin.close()
        async with asyncio.timeout(TIMEOUT_S):
            rest, errors = await plain.communicate()
        printed.extend(rest.decode().splitlines(keepends=True))
        assert plain.returncode == 0, errors.decode()
        assert "resumed on" in errors.decode()
    finally:
        if plain.returncode is None:
            plain.kill()
            await plain.wait()
    texts = ("one, on node 1", "two, in flight", "said while pat moves", "three, after the move")
    for text in texts:
        assert sum(text in line for line in printed) == 1, (text, printed)
    await quinn.close()
    stream = await redis_server.stream()
    stored = [e["event"].get("text") for e in stream]
    assert all(stored.count(text) == 1 for text in texts), stored
    assert check([entry["event"] for entry in stream], [quinn.record()]) == []
