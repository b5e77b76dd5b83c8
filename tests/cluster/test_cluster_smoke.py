"""Cluster mode end to end: nodes sharing one Redis are one chat, and the checker finds
nothing wrong with what clients got. Skipped until chatroom-server has --cluster."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from conftest import TIMEOUT_S

from .checker import check
from .conftest import MakeRecorder, StartNode
from .node import Node
from .recorder import RecordingClient, text_is
from .redis_server import RedisServer, free_port


async def _check(redis_server: RedisServer, nodes: list[Node], *clients: RecordingClient) -> None:
    entries = await redis_server.stream()
    problems = check([entry["event"] for entry in entries], [c.record() for c in clients])
    assert problems == [], "\n".join([*problems, *(node.describe() for node in nodes)])


async def test_two_nodes_are_one_chat(
    redis_server: RedisServer,
    start_node: StartNode,
    recorders: MakeRecorder,
) -> None:
    """ann on n1 and bob on n2 see each other's joins, messages in the lobby and in a
    room, and private messages; the stream holds each event once, from its node."""
    nodes = [
        await start_node("n1", redis_url=redis_server.url),
        await start_node("n2", redis_url=redis_server.url),
    ]
    ann = recorders("ann", [nodes[0].address])
    bob = recorders("bob", [nodes[1].address])
    await ann.connect()
    await bob.connect()
    await ann.join("dev")
    await bob.join("dev")
    await ann.wait_for(lambda f: f.get("type") == "join" and f.get("name") == "bob")
    nonces = [await ann.say("lobby", "from n1"), await ann.say("dev", "dev from n1")]
    nonces.append(await ann.dm("bob", "private from n1"))
    bob_nonce = await bob.say("lobby", "from n2")
    for text in ("from n1", "dev from n1", "private from n1"):
        await bob.wait_for(text_is(text))
    await ann.wait_for(text_is("from n2"))
    await ann.wait_acked(*nonces)
    await bob.wait_acked(bob_nonce)
    await bob.close()
    await ann.wait_for(lambda f: f.get("type") == "leave" and f.get("name") == "bob")
    await ann.close()
    entries = await redis_server.stream()
    assert {entry["node"] for entry in entries} == {"n1", "n2"}
    await _check(redis_server, nodes, ann, bob)


async def test_a_client_of_a_killed_node_resumes_on_another(
    redis_server: RedisServer,
    start_node: StartNode,
    recorders: MakeRecorder,
) -> None:
    """n2 is killed; bob reconnects to n1 with resume_after and gets what ann said in
    the meantime, nothing twice, and his unacknowledged message is stored once."""
    nodes = [
        await start_node("n1", redis_url=redis_server.url),
        await start_node("n2", redis_url=redis_server.url),
    ]
    ann = recorders("ann", [nodes[0].address])
    bob = recorders("bob", [nodes[1].address, nodes[0].address])
    await ann.connect()
    await bob.connect()
    await ann.join("dev")
    await bob.join("dev")
    first = await ann.say("dev", "before")
    await bob.wait_for(text_is("before"))
    await ann.wait_acked(first)
    await nodes[1].kill()
    during = [await ann.say("dev", "during 1"), await ann.say("lobby", "during 2")]
    await ann.wait_acked(*during)
    # The cluster may hold bob's name until it notices n2 is gone: allow for that.
    await bob.reconnect(timeout_s=TIMEOUT_S * 4)
    for text in ("during 1", "during 2"):
        await bob.wait_for(text_is(text))
    back = await bob.say("dev", "back")
    await ann.wait_for(text_is("back"))
    await bob.wait_acked(back)
    await bob.close()
    await ann.close()
    await _check(redis_server, nodes, ann, bob)


async def _ask(address: tuple[str, int], name: str, *requests: dict[str, object]) -> list[Any]:
    """Say hello as ``name``, send each request, and return the welcome and each answer."""
    reader, writer = await asyncio.open_connection(*address)
    answers: list[Any] = []
    try:
        async with asyncio.timeout(TIMEOUT_S):
            for frame in ({"type": "hello", "protocol": 1, "name": name}, *requests):
                writer.write(json.dumps(frame).encode() + b"\n")
                while True:
                    answer = json.loads(await reader.readline())
                    if answer["type"] in ("welcome", "members", "rooms", "error"):
                        answers.append(answer)
                        break
    finally:
        writer.close()
    return answers


async def test_a_node_started_late_knows_who_is_where_and_what_was_said(
    redis_server: RedisServer,
    start_node: StartNode,
    recorders: MakeRecorder,
) -> None:
    """n3 starts after people joined, talked and set a topic on n1 and n2: its members
    lists (in join order), rooms, topics and recent history are the other nodes'."""
    nodes = [
        await start_node("n1", redis_url=redis_server.url),
        await start_node("n2", redis_url=redis_server.url),
    ]
    people = [
        recorders(name, [nodes[i % 2].address]) for i, name in enumerate(["zed", "amy", "kim"])
    ]
    for person in people:
        await person.connect()
        await person.join("dev")
    acked = [await people[0].say("lobby", "said before n3"), await people[1].say("dev", "dev line")]
    await people[0].wait_acked(acked[0])
    await people[1].wait_acked(acked[1])
    nodes.append(await start_node("n3", redis_url=redis_server.url))
    requests = (
        {"type": "who", "room": "lobby"},
        {"type": "who", "room": "dev"},
        {"type": "rooms"},
    )
    answers = [await _ask(node.address, f"probe{i}", *requests) for i, node in enumerate(nodes)]
    for answer in answers:
        welcome, lobby, dev, rooms = answer
        assert welcome["type"] == "welcome"
        assert [e.get("text") for e in welcome["history"] if e["type"] == "message"] == [
            "said before n3"
        ]
        assert dev["members"] == ["zed", "amy", "kim"]
        # The probes come and go; the earlier ones may still be leaving.
        assert [m for m in lobby["members"] if not m.startswith("probe")] == ["zed", "amy", "kim"]
        assert {room["name"] for room in rooms["rooms"]} == {"dev", "lobby"}
        assert [room["members"] for room in rooms["rooms"] if room["name"] == "dev"] == [3]
    for person in people:
        await person.close()


async def test_an_irc_client_on_one_node_talks_with_a_member_of_another(
    redis_server: RedisServer,
    start_node: StartNode,
    recorders: MakeRecorder,
) -> None:
    """The IRC gateway of n1 and an NDJSON member of n2: each sees the other's line."""
    irc_port = free_port()
    nodes = [
        await start_node(
            "n1", redis_url=redis_server.url, extra=("--irc", f"127.0.0.1:{irc_port}")
        ),
        await start_node("n2", redis_url=redis_server.url),
    ]
    bob = recorders("bob", [nodes[1].address])
    await bob.connect()
    reader, writer = await asyncio.open_connection("127.0.0.1", irc_port)

    async def line_with(text: str) -> str:
        async with asyncio.timeout(TIMEOUT_S):
            while True:
                line = (await reader.readline()).decode()
                assert line, "the gateway closed the connection"
                if line.startswith("PING"):
                    writer.write(("PONG" + line[4:]).encode())
                if text in line:
                    return line

    try:
        writer.write(b"NICK ircann\r\nUSER a 0 * :Ann\r\n")
        await line_with(" 001 ")
        await line_with("JOIN")
        writer.write(b"PRIVMSG #lobby :hello from IRC on n1\r\n")
        await bob.wait_for(text_is("hello from IRC on n1"))
        await bob.say("lobby", "hello from n2")
        assert (await line_with("hello from n2")).startswith(":bob!")
    finally:
        writer.close()
    await bob.close()


async def test_nodes_without_history_keep_the_clusters_small_ids(
    redis_server: RedisServer,
    start_node: StartNode,
    recorders: MakeRecorder,
) -> None:
    """--no-history nodes (whose own ids would start at a clock reading) count from the
    cluster's counter: the first events are 1, 2, 3..., and a resume still works."""
    nodes = [
        await start_node(f"n{i}", redis_url=redis_server.url, extra=("--no-history",))
        for i in (1, 2)
    ]
    ann = recorders("ann", [nodes[0].address])
    bob = recorders("bob", [nodes[1].address, nodes[0].address])
    await ann.connect()
    await bob.connect()
    nonce = await ann.say("lobby", "small ids")
    await bob.wait_for(text_is("small ids"))
    await ann.wait_acked(nonce)
    await nodes[1].kill()
    await bob.reconnect()
    await ann.close()
    await bob.close()
    ids = [entry["id"] for entry in await redis_server.stream()]
    assert ids[:3] == [1, 2, 3], ids
    await _check(redis_server, nodes, ann, bob)
