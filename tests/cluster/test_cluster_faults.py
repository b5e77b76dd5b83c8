"""Cluster mode under faults: nodes killed, frozen and cut off from Redis, Redis killed
and restarted with and without its data. Every test ends with the checker: what each
client received is exactly the stream's events for where it was, and every
acknowledged message is in the stream once."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from typing import Any

from conftest import TIMEOUT_S

from .checker import check
from .conftest import MakeRecorder, StartNode, StartProxy, StartRedis
from .node import Node
from .recorder import Address, RecordingClient, text_is
from .redis_server import RedisServer

# Short leases keep the tests short; long enough that a busy CI machine renews in time.
LEASE_S = 2.0
LEASE = ("--cluster-lease", str(LEASE_S))


def _check(stream: Sequence[dict[str, Any]], nodes: list[Node], *clients: RecordingClient) -> None:
    problems = check([entry["event"] for entry in stream], [c.record() for c in clients])
    assert problems == [], "\n".join([*problems, *(node.describe() for node in nodes)])


def _left(name: str, reason: str | None = None) -> Any:
    return lambda f: (
        f.get("type") == "leave"
        and f.get("name") == name
        and (reason is None or f.get("reason") == reason)
    )


async def _http_get(address: tuple[str, int], path: str) -> tuple[int, str]:
    """GET ``path`` from a node's HTTP side: the status and the body."""
    reader, writer = await asyncio.open_connection(*address)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {address[0]}\r\n\r\n".encode())
        async with asyncio.timeout(TIMEOUT_S):
            head = (await reader.readuntil(b"\r\n\r\n")).decode()
            length = int(
                next(
                    line.split(":", 1)[1]
                    for line in head.split("\r\n")
                    if line.lower().startswith("content-length:")
                )
            )
            body = (await reader.readexactly(length)).decode()
    finally:
        writer.close()
    return int(head.split()[1]), body


# Where a recording client connects: a list, or a function giving the addresses now.
Addresses = Sequence[Address] | Callable[[], Sequence[Address]]


async def _ann_and_bob(
    recorders: MakeRecorder, ann_at: Addresses, bob_at: Addresses
) -> tuple[RecordingClient, RecordingClient]:
    """ann and bob, connected, each with the addresses to try."""
    ann = recorders("ann", ann_at)
    bob = recorders("bob", bob_at)
    await ann.connect()
    await bob.connect()
    return ann, bob


async def _nodes(start_node: StartNode, url: str, count: int) -> list[Node]:
    return [await start_node(f"n{i + 1}", redis_url=url, extra=LEASE) for i in range(count)]


def _addresses(nodes: list[Node], first: int) -> Any:
    """The nodes' addresses now (a restarted node has a new port), ``first`` first."""
    return lambda: [node.address for node in nodes[first:] + nodes[:first]]


async def _talk(speakers: list[RecordingClient], room: str, label: str) -> None:
    """Each speaker says one line and sees everyone's."""
    nonces = [await speaker.say(room, f"{label} from {speaker.name}") for speaker in speakers]
    for speaker, nonce in zip(speakers, nonces, strict=True):
        await speaker.wait_acked(nonce)
    for listener in speakers:
        for speaker in speakers:
            await listener.wait_for(text_is(f"{label} from {speaker.name}"))


async def _say_surely(client: RecordingClient, room: str, text: str) -> None:
    """Say ``text`` as a real client would through an outage: when the node closes the
    connection before the acknowledgement, reconnect (which resends it once)."""
    if not client.connected:
        await client.reconnect(timeout_s=LEASE_S * 6)
    nonce = await client.say(room, text)
    for _ in range(3):
        await client.wait_until(lambda: nonce in client.acked or not client.connected)
        if nonce in client.acked:
            return
        await client.reconnect(timeout_s=LEASE_S * 6)
    await client.wait_acked(nonce)


async def test_killing_nodes_at_random_moments_loses_and_doubles_nothing(
    redis_server: RedisServer, start_node: StartNode, recorders: MakeRecorder
) -> None:
    """Three rounds: a random node is SIGKILLed while messages are in flight; its
    clients resume on the other node, resend what was not acknowledged, and the
    killed node comes back and serves again."""
    rng = random.Random(1802)
    nodes = await _nodes(start_node, redis_server.url, 2)
    clients = [
        recorders(name, _addresses(nodes, index % 2))
        for index, name in enumerate(("ann", "bob", "cat", "dan"))
    ]
    for client in clients:
        await client.connect()
        await client.join("dev")
    await _talk(clients, "dev", "hello")
    for round_number in range(3):
        victim = nodes[rng.randrange(2)]
        # Some messages are on their way when the node dies: sent, not yet acknowledged.
        for client in rng.sample(clients, 3):
            await client.say(rng.choice(["dev", "lobby"]), f"in flight {round_number}")
        await victim.kill()
        for client in clients:
            if not client.connected or client.connections[-1].address.endswith(f":{victim.port}"):
                await client.reconnect(timeout_s=TIMEOUT_S * 2)
        await victim.start()
        for client in clients:
            await client.wait_acked(*client.sent, timeout_s=TIMEOUT_S * 2)
        await _talk(clients, "dev", f"after round {round_number}")
    for client in clients:
        await client.close()
    _check(await redis_server.stream(), nodes, *clients)


async def test_a_frozen_node_loses_its_members_and_serves_again_after_thawing(
    redis_server: RedisServer, start_node: StartNode, recorders: MakeRecorder
) -> None:
    """n2 frozen past its lease: n1's members see its member leave (timeout) once;
    thawed, n2 finds its lease gone, closes its stale connections, and serves anew."""
    nodes = await _nodes(start_node, redis_server.url, 2)
    ann, bob = await _ann_and_bob(recorders, [nodes[0].address], [nodes[1].address])
    await ann.wait_for(lambda f: f.get("type") == "join" and f.get("name") == "bob")
    nodes[1].freeze()
    await ann.wait_for(_left("bob", "timeout"), timeout_s=LEASE_S * 4)
    # Read by n2 only when it thaws, after its lease is gone: the script refuses it.
    await bob.say("lobby", "sent to a frozen node")
    nodes[1].thaw()
    await bob.wait_until(lambda: not bob.connected, timeout_s=LEASE_S * 4)
    cat = recorders("cat", [nodes[1].address])
    await cat.connect(timeout_s=LEASE_S * 4)
    nonce = await cat.say("lobby", "n2 is back")
    await cat.wait_acked(nonce)
    await ann.wait_for(text_is("n2 is back"))
    await ann.close()
    await cat.close()
    stream = await redis_server.stream()
    leaves = [e for e in stream if e["event"]["type"] == "leave" and e["event"]["name"] == "bob"]
    assert len(leaves) == 1, leaves
    assert all(e["event"].get("text") != "sent to a frozen node" for e in stream)
    _check(stream, nodes, ann, bob, cat)


async def test_a_node_cut_off_from_redis_closes_its_clients_and_rejoins_when_healed(
    redis_server: RedisServer,
    start_node: StartNode,
    start_proxy: StartProxy,
    recorders: MakeRecorder,
) -> None:
    """n2 reaches Redis through a proxy that stops forwarding: within the lease n2 closes
    its clients, which move to n1 and keep talking; healed, n2 serves again."""
    proxy = await start_proxy(redis_server.host, redis_server.port)
    n1 = await start_node("n1", redis_url=redis_server.url, extra=LEASE)
    n2 = await start_node("n2", redis_url=proxy.url, extra=LEASE)
    nodes = [n1, n2]
    ann, bob = await _ann_and_bob(recorders, [n1.address], [n2.address, n1.address])
    await _talk([ann, bob], "lobby", "before")
    assert (await _http_get(n2.address, "/healthz"))[0] == 200
    proxy.blackhole()
    await bob.wait_until(lambda: not bob.connected, timeout_s=LEASE_S * 3)
    # A load balancer's health check now steers newcomers away from n2.
    status, body = await _http_get(n2.address, "/healthz")
    assert status == 503 and "cannot reach the cluster" in body
    await bob.reconnect(timeout_s=LEASE_S * 4)
    await _talk([ann, bob], "lobby", "while n2 is cut off")
    await proxy.heal()
    cat = recorders("cat", [n2.address])
    await cat.connect(timeout_s=LEASE_S * 6)
    await _talk([ann, bob, cat], "lobby", "healed")
    assert (await _http_get(n2.address, "/healthz"))[0] == 200
    metrics = (await _http_get(n2.address, "/metrics"))[1]
    assert "chatroom_cluster_serving 1.0" in metrics
    assert "chatroom_cluster_cut_offs_total 1.0" in metrics
    for client in (ann, bob, cat):
        await client.close()
    _check(await redis_server.stream(), nodes, ann, bob, cat)


async def test_redis_killed_and_restarted_with_its_aof_loses_nothing(
    start_redis: StartRedis, start_node: StartNode, recorders: MakeRecorder
) -> None:
    """SIGKILL Redis (append-only file, fsync always) and start it again: clients that
    were closed meanwhile come back, ids go on, and nothing acknowledged is lost."""
    redis = await start_redis(aof=True)
    nodes = await _nodes(start_node, redis.url, 2)
    ann, bob = await _ann_and_bob(recorders, _addresses(nodes, 0), _addresses(nodes, 1))
    await _talk([ann, bob], "lobby", "before")
    before = await redis.stream()
    await redis.kill()
    await redis.restart()
    # A node closes the clients whose sends it could not confirm, or all of them when
    # its lease ran out meanwhile; they come back and resend.
    for client in (ann, bob):
        await _say_surely(client, "lobby", f"after from {client.name}")
    for client in (ann, bob):
        for speaker in (ann, bob):
            await client.wait_for(text_is(f"after from {speaker.name}"))
    after = await redis.stream()
    assert after[: len(before)] == before
    assert min(e["id"] for e in after[len(before) :]) > max(e["id"] for e in before)
    for client in (ann, bob):
        await client.close()
    _check(await redis.stream(), nodes, ann, bob)


async def test_redis_restarted_empty_never_reuses_an_id_and_resumes_report_a_gap(
    redis_server: RedisServer, start_node: StartNode, recorders: MakeRecorder
) -> None:
    """Redis loses everything: every node starts over on the new data set, the new ids
    are above all the old ones, and a resume from before the loss says ``gap``."""
    nodes = await _nodes(start_node, redis_server.url, 2)
    ann, bob = await _ann_and_bob(recorders, _addresses(nodes, 0), _addresses(nodes, 1))
    await _talk([ann, bob], "lobby", "before")
    before = await redis_server.stream()
    await redis_server.restart(empty=True)
    for client in (ann, bob):
        await client.wait_until(lambda c=client: not c.connected, timeout_s=LEASE_S * 3)
        welcome = await client.reconnect(timeout_s=LEASE_S * 6)
        assert welcome.get("resumed") is True and welcome.get("gap") is True, welcome
    await _talk([ann, bob], "lobby", "after")
    after = await redis_server.stream()
    assert after, "the new data set has the new events"
    assert min(e["id"] for e in after) > max(e["id"] for e in before)
    for client in (ann, bob):
        await client.close()
    _check(before + await redis_server.stream(), nodes, ann, bob)


async def test_a_node_stopped_with_sigterm_says_goodbye_and_exits_promptly(
    redis_server: RedisServer, start_node: StartNode, recorders: MakeRecorder
) -> None:
    """SIGTERM: the node's members leave (reason shutdown) through the cluster, so the
    other nodes' members are told at once, and the process exits 0 within seconds even
    with its stream reader blocked in Redis."""
    nodes = await _nodes(start_node, redis_server.url, 2)
    ann, bob = await _ann_and_bob(
        recorders, [nodes[0].address], [nodes[1].address, nodes[0].address]
    )
    await _talk([ann, bob], "lobby", "before")
    async with asyncio.timeout(5):
        assert await nodes[1].terminate() == 0
    await ann.wait_for(_left("bob", "shutdown"))
    await bob.reconnect()
    await _talk([ann, bob], "lobby", "after")
    for client in (ann, bob):
        await client.close()
    _check(await redis_server.stream(), nodes, ann, bob)


async def test_a_node_on_a_slow_link_to_redis_keeps_the_one_order(
    redis_server: RedisServer,
    start_node: StartNode,
    start_proxy: StartProxy,
    recorders: MakeRecorder,
) -> None:
    """n2 reaches Redis through 30 ms each way: its members' lines arrive later, but
    everyone sees every line once, in the stream's order, and each sender's own lines
    in the order sent."""
    proxy = await start_proxy(redis_server.host, redis_server.port)
    proxy.delay(0.03)
    nodes = [
        await start_node("n1", redis_url=redis_server.url, extra=LEASE),
        await start_node("n2", redis_url=proxy.url, extra=LEASE),
    ]
    ann, bob = await _ann_and_bob(recorders, [nodes[0].address], [nodes[1].address])
    sent = {client.name: [f"{client.name} {i}" for i in range(10)] for client in (ann, bob)}
    nonces = []
    for i in range(10):
        for client in (ann, bob):
            nonces.append((client, await client.say("lobby", sent[client.name][i])))
    for client, nonce in nonces:
        await client.wait_acked(nonce)
    for client in (ann, bob):
        for lines in sent.values():
            await client.wait_for(text_is(lines[-1]))
            got = [text for text in client.texts("lobby") if text in lines]
            assert got == lines
    for client in (ann, bob):
        await client.close()
    _check(await redis_server.stream(), nodes, ann, bob)


async def test_redis_down_longer_than_a_lease_every_node_rejoins(
    start_redis: StartRedis, start_node: StartNode, recorders: MakeRecorder
) -> None:
    """Redis (with its AOF) stays down past the lease: every node closes its clients
    and, when Redis is back, joins again as a new incarnation; the old incarnations'
    members leave once each, the clients come back and talk, nothing is lost."""
    redis = await start_redis(aof=True)
    nodes = await _nodes(start_node, redis.url, 2)
    ann, bob = await _ann_and_bob(recorders, _addresses(nodes, 0), _addresses(nodes, 1))
    await _talk([ann, bob], "lobby", "before")
    await redis.kill()
    for client in (ann, bob):
        await client.wait_until(lambda c=client: not c.connected, timeout_s=LEASE_S * 3)
    await redis.restart()
    for client in (ann, bob):
        await client.reconnect(timeout_s=LEASE_S * 8)
    await _talk([ann, bob], "lobby", "after")
    for client in (ann, bob):
        await client.close()
    stream = await redis.stream()
    for name in ("ann", "bob"):
        mine = [e["event"] for e in stream if e["event"].get("name") == name]
        joins = [e for e in mine if e["type"] == "join"]
        timeouts = [e for e in mine if e["type"] == "leave" and e["reason"] == "timeout"]
        # Joined before and after; the old session ended once (reaped or taken over).
        assert (len(joins), len(timeouts)) == (2, 1), mine
    _check(stream, nodes, ann, bob)
