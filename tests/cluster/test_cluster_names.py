"""Names, presence, sessions and nonces across cluster nodes: races for one name,
look-alikes, the same ``who`` and ``rooms`` everywhere, exactly-once resends and
session takeover, against a real redis-server and real node processes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from conftest import TIMEOUT_S, RawClient

from .checker import check
from .conftest import MakeRecorder, StartNode
from .node import Node
from .recorder import Address, RecordingClient, text_is
from .redis_server import RedisServer

Frame = dict[str, Any]
ROUNDS = 10
# "\u0430lice", with a Cyrillic a (U+0430), looks like "alice" and is not equal to it.
CYRILLIC_A = "\u0430"


# ---------------------------------------------------------------------- raw helpers


async def connect(address: Address) -> RawClient:
    reader, writer = await asyncio.open_connection(*address)
    return RawClient(reader, writer)


async def send(client: RawClient, **frame: Any) -> None:
    await client.send(json.dumps(frame).encode() + b"\n")


async def until(client: RawClient, match: Callable[[Frame], bool]) -> Frame:
    """The next frame that matches; fails when the connection ends first."""
    async with asyncio.timeout(TIMEOUT_S):
        while True:
            try:
                frame = await client.recv()
            except ConnectionError:
                frame = None
            assert frame is not None, "the connection ended while waiting"
            if match(frame):
                return frame


def answer_to_hello(frame: Frame) -> bool:
    return frame.get("type") in ("welcome", "error")


async def hello(address: Address, name: str, session: str | None = None) -> tuple[RawClient, Frame]:
    """A new connection and the answer to its hello (welcome or error)."""
    client = await connect(address)
    frame: Frame = {"type": "hello", "protocol": 1, "name": name}
    if session is not None:
        frame["session"] = session
    await send(client, **frame)
    return client, await until(client, answer_to_hello)


async def joined(
    address: Address, name: str, session: str | None = None
) -> tuple[RawClient, Frame]:
    client, welcome = await hello(address, name, session)
    assert welcome["type"] == "welcome", welcome
    return client, welcome


async def race_hellos(pairs: list[tuple[Address, str]]) -> list[tuple[RawClient, Frame]]:
    """Connect all, write every hello, then read every answer: the hellos meet."""
    clients = [await connect(address) for address, _ in pairs]
    for client, (_, name) in zip(clients, pairs, strict=True):
        client.writer.write(json.dumps({"type": "hello", "protocol": 1, "name": name}).encode())
    for client in clients:
        client.writer.write(b"\n")
    answers = [await until(client, answer_to_hello) for client in clients]
    return list(zip(clients, answers, strict=True))


def own_nick_or_error(old: str) -> Callable[[Frame], bool]:
    return lambda f: f.get("type") == "error" or (f.get("type") == "nick" and f.get("old") == old)


async def events(redis_server: RedisServer) -> list[Frame]:
    return [entry["event"] for entry in await redis_server.stream()]


async def start_nodes(start_node: StartNode, redis_server: RedisServer, count: int) -> list[Node]:
    return [await start_node(f"n{i + 1}", redis_url=redis_server.url) for i in range(count)]


# ---------------------------------------------------------------------- 1. one name


async def test_one_name_cluster_wide_under_races(
    redis_server: RedisServer, start_node: StartNode
) -> None:
    """The same name, or look-alikes of it, asked for on two nodes at once: one hello
    wins, the others get name_taken; two renames to one new name at once: one wins."""
    nodes = await start_nodes(start_node, redis_server, 2)
    n1, n2 = nodes[0].address, nodes[1].address
    keep: list[RawClient] = []
    for i in range(ROUNDS):
        name = f"racer{i}"
        answers = await race_hellos([(n1, name), (n2, name)])
        kinds = sorted((a["type"], a.get("code")) for _, a in answers)
        assert kinds == [("error", "name_taken"), ("welcome", None)], (i, answers)
        keep += [c for c, a in answers if a["type"] == "welcome"]
        joins = [e for e in await events(redis_server) if e["type"] == "join"]
        assert [e["name"] for e in joins].count(name) == 1

    for i in range(ROUNDS):
        spellings = [f"alice{i}", f"ALICE{i}", f"{CYRILLIC_A}lice{i}"]
        # Rotate which spelling goes to which node, so each wins and loses on each.
        order = spellings[i % 3 :] + spellings[: i % 3]
        answers = await race_hellos(list(zip([n1, n2, n1], order, strict=True)))
        welcomes = [a for _, a in answers if a["type"] == "welcome"]
        refusals = [a.get("code") for _, a in answers if a["type"] == "error"]
        assert len(welcomes) == 1 and refusals == ["name_taken"] * 2, (i, answers)
        winner = next(c for c, a in answers if a["type"] == "welcome")
        await send(winner, type="bye")
        assert await winner.closed()
        joined_names = {e["name"] for e in await events(redis_server) if e["type"] == "join"}
        assert len(joined_names & set(spellings)) == 1

    # A rename to a name (or a look-alike of one) held on the other node.
    holder, _ = await joined(n1, "holder")
    mover, _ = await joined(n2, "mover")
    for wanted in ("holder", "HOLDER", "hoIder"):
        await send(mover, type="nick", name=wanted)
        refusal = await until(mover, own_nick_or_error("mover"))
        assert refusal.get("code") == "name_taken", (wanted, refusal)
    await send(holder, type="nick", name=f"{CYRILLIC_A}lice-x")
    assert (await until(holder, own_nick_or_error("holder")))["type"] == "nick"
    await send(mover, type="nick", name="alice-X")
    assert (await until(mover, own_nick_or_error("mover"))).get("code") == "name_taken"

    # Two renames to one new name at once, on two nodes.
    names = {holder: f"{CYRILLIC_A}lice-x", mover: "mover"}
    for i in range(ROUNDS):
        target = f"crown{i}"
        for client in (holder, mover):
            await send(client, type="nick", name=target)
        results = {c: await until(c, own_nick_or_error(names[c])) for c in (holder, mover)}
        won = [c for c, r in results.items() if r["type"] == "nick"]
        lost = [r.get("code") for r in results.values() if r["type"] == "error"]
        assert len(won) == 1 and lost == ["name_taken"], (i, results)
        names[won[0]] = target
        nicks = [e for e in await events(redis_server) if e["type"] == "nick"]
        assert [e["new"] for e in nicks].count(target) == 1, nicks
    for client in (*keep, holder, mover):
        client.close()


# ---------------------------------------------------------------------- 2. presence


async def test_presence_is_the_same_on_every_node_after_churn(
    redis_server: RedisServer, start_node: StartNode, recorders: MakeRecorder
) -> None:
    """A dozen members on three nodes come, go (bye, and one dropped), rename, move
    between rooms and create one room at once as "Zed" and "zed"; then ``who`` of every
    room and ``rooms`` answer the same on every node, as expected."""
    nodes = await start_nodes(start_node, redis_server, 3)
    model: dict[str, list[str]] = {"lobby": []}

    async def member(name: str, node: int) -> RecordingClient:
        client = recorders(name, [nodes[node].address])
        await client.connect()
        model["lobby"].append(name)
        return client

    async def join(client: RecordingClient, room: str) -> None:
        await client.join(room)
        model.setdefault(room, []).append(client.me)

    async def part(client: RecordingClient, room: str) -> None:
        assert (await client.part(room))["type"] == "leave"
        model[room].remove(client.me)

    async def rename(client: RecordingClient, new: str) -> None:
        old = client.me
        reply = await client.request({"type": "nick", "name": new}, own_nick(old))
        assert reply["type"] == "nick", reply
        for names in model.values():
            names[:] = [new if n == old else n for n in names]

    observers = [await member(f"obs{i}", i) for i in range(3)]
    people = [await member(f"m{i}", i % 3) for i in range(12)]
    for i, person in enumerate(people):
        await join(person, ("dev", "ops", "fun")[i % 3])
        if i % 2 == 0:
            await join(person, ("ops", "fun", "dev")[i % 3])
    await join(people[1], "quiet")
    await part(people[1], "quiet")
    await part(people[0], "lobby")
    await part(people[4], "fun")
    await rename(people[2], "em-two")
    await rename(people[5], "M5-renamed")
    topic = {"type": "topic", "room": "dev", "text": "ship it"}
    assert (await people[3].request(topic, is_type("topic")))["type"] == "topic"
    # Two people create one room at once, spelled differently, from two nodes.
    await asyncio.gather(people[6].join("Zed"), people[7].join("zed"))
    await people[8].close()
    await people[9].close()
    people[10].drop()
    gone = {people[i].me for i in (8, 9, 10)}
    watcher = observers[0]
    await watcher.wait_until(
        lambda: (
            gone
            <= {
                f["name"]
                for _, f in watcher.received
                if f.get("type") == "leave" and f["room"] == "lobby"
            }
        )
    )
    for names in model.values():
        names[:] = [n for n in names if n not in gone]
    # Everything above is in the stream: a message after it reaches every node last.
    barrier = await people[11].say("lobby", "barrier")
    for observer in observers:
        await observer.wait_for(text_is("barrier"))
    await people[11].wait_acked(barrier)

    stream = await events(redis_server)
    zed_joins = [e for e in stream if e["type"] == "join" and e["room"].casefold() == "zed"]
    model[zed_joins[0]["room"]] = [e["name"] for e in zed_joins]
    expected_who = {room: names for room, names in model.items()}
    expected_rooms = [
        {"name": room, "members": len(names), "topic": "ship it" if room == "dev" else ""}
        for room, names in sorted(model.items(), key=lambda item: item[0].casefold())
        if names
    ]
    views = []
    for observer in observers:
        who = {}
        for room in model:
            answer = await observer.request({"type": "who", "room": room}, is_type("members"))
            who[room] = answer.get("members")
        listing = await observer.request({"type": "rooms"}, is_type("rooms"))
        views.append((who, listing.get("rooms")))
    for client in (*observers, *people):
        await client.close()
    problems = check(await events(redis_server), [c.record() for c in (*observers, *people)])
    assert problems == [], "\n".join(problems)

    for node, (who, listing) in zip(nodes, views, strict=True):
        assert who == expected_who, (node.node_id, who, expected_who)
        assert folded(listing) == folded(expected_rooms), (node.node_id, listing)
    # A room keeps the spelling of its first join in the one order, on every node.
    for node, (_, listing) in zip(nodes, views, strict=True):
        assert listing == expected_rooms, (node.node_id, listing, expected_rooms)


def folded(rooms: list[Frame]) -> list[Frame]:
    return [{**room, "name": room["name"].casefold()} for room in rooms]


def own_nick(old: str) -> Callable[[Frame], bool]:
    return lambda f: f.get("type") == "nick" and f.get("old") == old


def is_type(kind: str) -> Callable[[Frame], bool]:
    return lambda f: f.get("type") == kind


# ---------------------------------------------------------------------- 3. nonces


async def test_a_resent_nonce_on_another_node_is_stored_once(
    redis_server: RedisServer, start_node: StartNode
) -> None:
    """ann's say and dm, acknowledged on n1, are sent again with the same nonces from
    n2 after she takes her session over: each is acknowledged with its first id and
    stored once, and bob gets the private message once."""
    nodes = await start_nodes(start_node, redis_server, 2)
    n1, n2 = nodes[0].address, nodes[1].address
    ann, welcome = await joined(n1, "ann")
    bob, _ = await joined(n2, "bob")
    await until(ann, lambda f: f.get("type") == "join" and f.get("name") == "bob")
    say = {"type": "say", "room": "lobby", "text": "only once", "nonce": "ann-1"}
    dm = {"type": "dm", "to": "bob", "text": "psst, once", "nonce": "ann-2"}
    first: dict[str, Frame] = {}
    for request in (say, dm):
        await send(ann, **request)
        first[request["nonce"]] = await until(ann, with_nonce(request["nonce"]))
    assert welcome.get("session"), welcome

    again, _ = await joined(n2, "ann", session=welcome["session"])
    echoes = []
    for request in (say, dm):
        await send(again, **request)
        echo = await until(again, with_nonce(request["nonce"]))
        assert echo["id"] == first[request["nonce"]]["id"], (echo, first)
        echoes.append(echo)
    # Nothing more for bob than one copy: a later dm comes right after the first one.
    await send(again, type="dm", to="bob", text="after", nonce="ann-3")
    await until(again, with_nonce("ann-3"))
    got: list[Frame] = []
    while not got or got[-1].get("text") != "after":
        got.append(await until(bob, is_type("dm")))
    assert [f["nonce"] for f in got] == ["ann-2", "ann-3"], got

    stream = await events(redis_server)
    for nonce in ("ann-1", "ann-2", "ann-3"):
        assert [e.get("nonce") for e in stream].count(nonce) == 1, (nonce, stream)
    # The acknowledgement of a resend is the stored event, as docs/protocol.md says.
    by_id = {e["id"]: e for e in stream}
    for echo in echoes:
        assert echo == by_id[echo["id"]], (echo, by_id[echo["id"]])
    for client in (ann, bob, again):
        client.close()


def with_nonce(nonce: str) -> Callable[[Frame], bool]:
    return lambda f: f.get("type") in ("message", "dm") and f.get("nonce") == nonce


# ---------------------------------------------------------------------- 4. takeover


async def test_a_session_token_takes_the_name_over_from_another_node(
    redis_server: RedisServer, start_node: StartNode
) -> None:
    """bob, still connected to n2, says hello on n1 with his token: welcomed at once,
    the others see him leave (timeout) and join again, n2 closes his old connection.
    Made-up and stale tokens take nothing over."""
    nodes = await start_nodes(start_node, redis_server, 2)
    n1, n2 = nodes[0].address, nodes[1].address
    ann, _ = await joined(n1, "ann")
    first, welcome = await joined(n2, "bob")
    await until(ann, lambda f: f.get("type") == "join" and f.get("name") == "bob")
    carol, carols = await joined(n1, "carol")
    await send(carol, type="bye")
    assert await carol.closed()

    second, answer = await hello(n1, "bob", session=welcome["session"])
    assert answer["type"] == "welcome", answer
    assert answer.get("session") not in (None, welcome["session"]), answer
    leave = await until(ann, lambda f: f.get("name") == "bob")
    assert (leave["type"], leave.get("reason")) == ("leave", "timeout"), leave
    rejoin = await until(ann, lambda f: f.get("name") == "bob")
    assert rejoin["type"] == "join", rejoin
    assert await first.closed()

    for node, token in ((n2, "x" * 24), (n1, carols["session"]), (n2, welcome["session"])):
        intruder, refusal = await hello(node, "bob", session=token)
        assert refusal.get("code") == "name_taken", (token, refusal)
        intruder.close()
    await send(second, type="who")
    members = await until(second, is_type("members"))
    assert members["members"] == ["ann", "bob"], members
    leaves = [e for e in await events(redis_server) if e["type"] == "leave"]
    assert [(e["name"], e["reason"]) for e in leaves] == [("carol", "quit"), ("bob", "timeout")]
    for client in (ann, second):
        client.close()


async def test_a_refused_takeover_leaves_the_old_session_alone(
    redis_server: RedisServer, start_node: StartNode
) -> None:
    """A hello with bob's live token but a name someone else holds is refused
    (name_taken), and a refused hello changes nothing: bob stays connected and in."""
    nodes = await start_nodes(start_node, redis_server, 2)
    ann, _ = await joined(nodes[0].address, "ann")
    bob, welcome = await joined(nodes[1].address, "bob")
    other, refusal = await hello(nodes[0].address, "ann", session=welcome["session"])
    assert refusal.get("code") == "name_taken", refusal
    other.close()
    stream = await events(redis_server)
    assert [(e["type"], e["name"]) for e in stream] == [("join", "ann"), ("join", "bob")], stream
    await send(bob, type="who")
    members = await until(bob, lambda f: f.get("type") in ("members", "leave"))
    assert members == {"type": "members", "room": "lobby", "members": ["ann", "bob"]}
    for client in (ann, bob):
        client.close()


# ---------------------------------------------------------------------- 5. no cluster


async def test_a_single_server_hands_out_no_session(start_node: StartNode) -> None:
    node = await start_node("solo")
    client, welcome = await joined(node.address, "ann")
    assert welcome["type"] == "welcome" and "session" not in welcome, welcome
    client.close()
