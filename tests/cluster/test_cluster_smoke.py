"""Cluster mode end to end: nodes sharing one Redis are one chat, and the checker finds
nothing wrong with what clients got. Skipped until chatroom-server has --cluster."""

from __future__ import annotations

import functools
import subprocess

import pytest
from conftest import TIMEOUT_S

from .checker import check
from .conftest import MakeRecorder, StartNode
from .node import SERVER, Node
from .recorder import RecordingClient, text_is
from .redis_server import RedisServer


@functools.cache
def cluster_supported() -> bool:
    result = subprocess.run(
        [SERVER, "--help"], capture_output=True, text=True, timeout=TIMEOUT_S * 2, check=False
    )
    return "--cluster" in result.stdout


pytestmark = pytest.mark.skipif(
    not cluster_supported(), reason="chatroom-server has no --cluster option yet"
)


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
