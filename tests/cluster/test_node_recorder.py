"""The node helper and the recording client, against chatroom-server without --cluster
(one node is a cluster of one): the checker must find nothing wrong with a real server."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from conftest import TIMEOUT_S

from .checker import check
from .conftest import MakeRecorder, StartNode, StartProxy
from .node import SERVER, Node
from .recorder import text_is

# How long "no answer" is watched for: absence can only be seen over a bounded wait.
QUIET_S = 0.3


async def stored_events(node: Node) -> list[dict[str, Any]]:
    """A single server's stream: its store, exported as wire frames, oldest first."""
    process = await asyncio.create_subprocess_exec(
        SERVER,
        "export",
        "--data-dir",
        str(node.data_dir),
        "--format",
        "jsonl",
        stdout=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(TIMEOUT_S * 2):
        out, _ = await process.communicate()
    assert process.returncode == 0
    return [json.loads(line) for line in out.decode().splitlines() if line.strip()]


async def test_node_starts_and_stops(start_node: StartNode) -> None:
    """A node reports its port, answers, and SIGTERM stops it cleanly (exit 0)."""
    node = await start_node("n1")
    assert node.port > 0 and node.running
    reader, writer = await asyncio.open_connection(*node.address)
    writer.write(b'{"type":"ping","token":"t"}\n')
    async with asyncio.timeout(TIMEOUT_S):
        assert json.loads(await reader.readline()) == {"type": "pong", "token": "t"}
    writer.close()
    assert await node.terminate() == 0


async def test_node_kill_freeze_and_restart(start_node: StartNode, recorders: MakeRecorder) -> None:
    """Frozen, a node answers nothing until thawed; killed, it is gone (SIGKILL);
    restarted, it keeps its data directory, so history survives."""
    node = await start_node("n1")
    ann = recorders("ann", lambda: [node.address])
    await ann.connect()
    nonce = await ann.say("lobby", "before the crash")
    await ann.wait_acked(nonce)
    node.freeze()
    mark = len(ann.received)
    await ann.say("lobby", "while frozen")
    with pytest.raises(TimeoutError):
        await ann.wait_for(text_is("while frozen"), QUIET_S, since=mark)
    node.thaw()
    await ann.wait_for(text_is("while frozen"), since=mark)
    assert await node.kill() == -9
    old_port = node.port
    await node.restart()
    assert node.running and node.starts == 2 and node.port != old_port
    bob = recorders("bob", lambda: [node.address])
    welcome = await bob.connect()
    texts = [event.get("text") for event in welcome["history"]]
    assert "before the crash" in texts and "while frozen" in texts


async def test_a_failed_start_says_why(start_node: StartNode) -> None:
    """A node that cannot start raises with its own error output."""
    with pytest.raises(RuntimeError, match="--history"):
        await start_node("bad", extra=("--history", "-1"))


async def test_two_clients_talk_and_a_resume_loses_nothing(
    start_node: StartNode, recorders: MakeRecorder
) -> None:
    """ann and bob share the lobby and a room and exchange private messages; bob's
    connection drops while ann keeps talking, and he resumes: everything each received
    is exactly what the server stored, by the checker, and bob saw what he missed."""
    node = await start_node("n1")
    ann = recorders("ann", lambda: [node.address])
    bob = recorders("bob", lambda: [node.address])
    await ann.connect()
    await bob.connect()
    await ann.join("dev")
    await bob.join("dev")
    sent = [await ann.say("lobby", "hi all"), await bob.say("dev", "hi dev")]
    sent.append(await ann.dm("bob", "psst"))
    await ann.wait_acked(*sent[0::2])
    await bob.wait_acked(sent[1])
    await bob.wait_for(lambda f: f.get("type") == "dm" and f.get("text") == "psst")
    bob.drop()
    await ann.wait_for(lambda f: f.get("type") == "leave" and f.get("name") == "bob")
    missed = [await ann.say("lobby", "missed 1"), await ann.say("dev", "missed 2")]
    await ann.wait_acked(*missed)
    welcome = await bob.reconnect()
    assert welcome["resumed"] is True and welcome["gap"] is False
    assert len(bob.connections) == 2 and bob.connections[1].hello_resume_after is not None
    assert [(room, after is not None) for room, after in bob.connections[1].joins] == [
        ("dev", True)
    ]
    after = bob.connections[1].frames
    got = [f.get("text") for f in after if f.get("type") in ("message", "dm")]
    assert got == ["missed 1", "missed 2"]
    final = await bob.say("dev", "back")
    await ann.wait_for(text_is("back"))
    await bob.wait_acked(final)
    leave = await ann.part("dev")
    assert leave["reason"] == "part" and "dev" not in ann.rooms
    await bob.wait_for(lambda f: f.get("type") == "leave" and f.get("name") == "ann")
    await bob.close()
    await ann.close()
    stream = await stored_events(node)
    assert check(stream, [ann.record(), bob.record()]) == []
    # And the checker is not blind here: without one event bob got, it objects.
    record = bob.record()
    record.connections[1].frames = [f for f in after if f.get("text") != "missed 2"]
    assert any("missing" in p for p in check(stream, [record]))


async def test_unacknowledged_send_is_sent_again_after_reconnecting(
    start_node: StartNode,
    start_proxy: StartProxy,
    recorders: MakeRecorder,
) -> None:
    """A say lost on the way (the link blackholed, then cut) is sent again, with the
    same nonce, once the client is back: stored once, acknowledged."""
    node = await start_node("n1")
    proxy = await start_proxy(*node.address)
    bob = recorders("bob", [(proxy.host, proxy.port), node.address])
    await bob.connect()
    proxy.blackhole()
    nonce = await bob.say("lobby", "into the void")
    proxy.cut()
    await bob.reconnect()
    assert bob.resent == [nonce]
    await bob.wait_acked(nonce)
    await bob.close()
    stream = await stored_events(node)
    assert [e.get("nonce") for e in stream].count(nonce) == 1
    assert check(stream, [bob.record()]) == []


async def test_send_whose_echo_was_lost_is_not_sent_again(
    start_node: StartNode,
    start_proxy: StartProxy,
    recorders: MakeRecorder,
) -> None:
    """A say that reached the server but whose echo was lost (the link blackholed
    towards the client) comes back in the resume's replay: acknowledged there, not
    sent again, stored once."""
    node = await start_node("n1")
    proxy = await start_proxy(*node.address)
    ann = recorders("ann", [node.address])
    bob = recorders("bob", [(proxy.host, proxy.port), node.address])
    await ann.connect()
    await bob.connect()
    proxy.blackhole(to_target=False)
    nonce = await bob.say("lobby", "echo lost")
    await ann.wait_for(text_is("echo lost"))
    assert nonce not in bob.acked
    proxy.cut()
    await bob.reconnect()
    assert bob.resent == [] and nonce in bob.acked
    await bob.close()
    await ann.close()
    stream = await stored_events(node)
    assert [e.get("nonce") for e in stream].count(nonce) == 1
    assert check(stream, [ann.record(), bob.record()]) == []


async def test_reconnect_skips_a_dead_address(
    start_node: StartNode, recorders: MakeRecorder
) -> None:
    """reconnect() goes on to the next address that answers."""
    dead = await start_node("n1")
    live = await start_node("n2")
    ann = recorders("ann", [live.address, dead.address])
    await ann.connect()
    await dead.kill()
    await ann.reconnect()
    assert [c.address for c in ann.connections] == [f"127.0.0.1:{live.port}"] * 2


async def test_connect_passes_over_a_frozen_node(
    start_node: StartNode, recorders: MakeRecorder
) -> None:
    """A frozen node accepts the connection and never answers: after attempt_s the
    client tries the next address."""
    frozen = await start_node("n1")
    live = await start_node("n2")
    frozen.freeze()
    ann = recorders("ann", [frozen.address, live.address])
    welcome = await ann.connect(attempt_s=QUIET_S)
    assert welcome["name"] == "ann"
    assert [c.address for c in ann.connections] == [
        f"127.0.0.1:{frozen.port}",
        f"127.0.0.1:{live.port}",
    ]
    assert ann.connections[0].frames == []
