"""Rooms, private messages, topics and nicks, over real sockets."""

from __future__ import annotations

import asyncio
from typing import Any

from conftest import TIMEOUT_S, RunningServer, StartServer, expect

from chatroom.client import ClientConnection
from chatroom.protocol import (
    Dm,
    DmRequest,
    Error,
    Join,
    Joined,
    JoinRequest,
    Leave,
    Members,
    Message,
    Nick,
    NickRequest,
    Part,
    Rooms,
    RoomsRequest,
    Say,
    Topic,
    TopicRequest,
    Who,
)


async def _in_room(conn: ClientConnection, room: str) -> Joined:
    await conn.send(JoinRequest(room=room))
    return await expect(conn, Joined)


async def test_join_a_room_and_talk_there_only(chat_server: RunningServer) -> None:
    """Members who join a room get its members, then their own join; messages said there
    reach its members and nobody in the lobby only."""
    alice = await chat_server.client("alice")
    bob = await chat_server.client("bob")
    carol = await chat_server.client("carol")
    joined = await _in_room(alice, "dev")
    assert joined.members == ("alice",)
    assert (await expect(alice, Join, where=lambda j: j.room == "dev")).name == "alice"
    joined = await _in_room(bob, "DEV")
    assert joined.room == "dev", "room names compare case-insensitively"
    assert joined.members == ("alice", "bob")
    await expect(alice, Join, where=lambda j: j.room == "dev" and j.name == "bob")

    await alice.send(Say(text="in dev", room="dev"))
    await alice.say("in lobby")
    got = await expect(bob, Message, where=lambda m: m.room == "dev")
    assert got.text == "in dev"
    lobby_for_carol = await expect(carol, Message)
    assert (lobby_for_carol.room, lobby_for_carol.text) == ("lobby", "in lobby")
    for conn in (alice, bob, carol):
        await conn.close()


async def test_part_tells_the_room_and_the_parter(chat_server: RunningServer) -> None:
    """Parting sends leave with reason part to the room and to the parting member, after
    which the member no longer receives the room's messages or may speak there."""
    alice = await chat_server.client("alice")
    bob = await chat_server.client("bob")
    await _in_room(alice, "dev")
    await _in_room(bob, "dev")
    await bob.send(Part(room="dev"))
    for conn in (alice, bob):
        leave = await expect(conn, Leave, where=lambda e: e.room == "dev")
        assert (leave.name, leave.reason) == ("bob", "part")
    await bob.send(Say(text="still here?", room="dev"))
    error = await expect(bob, Error)
    assert error.code == "not_joined"
    await alice.send(Who(room="dev"))
    members = await expect(alice, Members)
    assert members.members == ("alice",)
    for conn in (alice, bob):
        await conn.close()


async def test_rooms_lists_rooms_with_counts_and_topics(chat_server: RunningServer) -> None:
    """rooms answers every room with its member count and topic; a topic change reaches
    the room's members as an event and later joiners in joined.topic."""
    alice = await chat_server.client("alice")
    await _in_room(alice, "dev")
    await alice.send(TopicRequest(room="dev", text="shipping [b]friday[/b]"))
    topic = await expect(alice, Topic)
    assert (topic.room, topic.sender, topic.text) == ("dev", "alice", "shipping [b]friday[/b]")
    await alice.send(RoomsRequest())
    rooms = await expect(alice, Rooms)
    by_name = {room.name: room for room in rooms.rooms}
    assert by_name["dev"].members == 1
    assert by_name["dev"].topic == "shipping [b]friday[/b]"
    assert by_name["lobby"].members == 1
    bob = await chat_server.client("bob")
    assert (await _in_room(bob, "dev")).topic == "shipping [b]friday[/b]"
    for conn in (alice, bob):
        await conn.close()


async def test_dm_reaches_both_parties_and_nobody_else(chat_server: RunningServer) -> None:
    """A private message is delivered to its sender and recipient only; an unknown
    recipient gets no_such_member."""
    alice = await chat_server.client("alice")
    bob = await chat_server.client("bob")
    eve = await chat_server.client("eve")
    await alice.send(DmRequest(to="BOB", text="psst", nonce="d1"))
    for conn in (alice, bob):
        dm = await expect(conn, Dm)
        assert (dm.sender, dm.to, dm.text) == ("alice", "bob", "psst")
    assert dm.nonce == "d1"
    await alice.send(DmRequest(to="nobody", text="hello?"))
    assert (await expect(alice, Error)).code == "no_such_member"
    # Eve sees the next public message, and nothing private before it.
    await alice.say("public")
    seen: list[Any] = []
    async with asyncio.timeout(TIMEOUT_S):
        while not (seen and isinstance(seen[-1], Message)):
            seen.append(await eve.recv())
    assert seen[-1].text == "public"
    assert not any(isinstance(frame, Dm) for frame in seen)
    lines = chat_server.transcript_path.read_text()
    assert "<alice -> bob> psst" in lines
    for conn in (alice, bob, eve):
        await conn.close()


async def test_nick_renames_in_every_shared_room(chat_server: RunningServer) -> None:
    """A nick change reaches each room the member is in, the new name is used from then
    on, and a taken or invalid name is refused without a change."""
    alice = await chat_server.client("alice")
    bob = await chat_server.client("bob")
    await _in_room(alice, "dev")
    await _in_room(bob, "dev")
    await alice.send(NickRequest(name="bob"))
    assert (await expect(alice, Error)).code == "name_taken"
    await alice.send(NickRequest(name="bad\x1bname"))
    assert (await expect(alice, Error)).code == "invalid_name"
    await alice.send(NickRequest(name="alicia"))
    rooms_told = set()
    for _ in range(2):
        nick = await expect(bob, Nick)
        assert (nick.old, nick.new) == ("alice", "alicia")
        rooms_told.add(nick.room)
    assert rooms_told == {"lobby", "dev"}
    await alice.say("renamed")
    assert (await expect(bob, Message)).sender == "alicia"
    # The old name is free again.
    carol = await chat_server.client("alice")
    assert carol.welcome is not None and carol.welcome.name == "alice"
    for conn in (alice, bob, carol):
        await conn.close()


async def test_action_messages_are_marked(chat_server: RunningServer) -> None:
    """say with action true comes back as a message with action true (for /me)."""
    alice = await chat_server.client("alice")
    await alice.send(Say(text="waves", action=True))
    message = await expect(alice, Message)
    assert (message.text, message.action) == ("waves", True)
    lines = chat_server.transcript_path.read_text()
    assert "* alice waves" in lines
    await alice.close()


async def test_invalid_room_names_are_refused(chat_server: RunningServer) -> None:
    """Room names follow the name rules: an empty or control-laden name is refused."""
    alice = await chat_server.client("alice")
    for bad in ("", " dev", "dev\u202e", "x" * 33):
        await alice.send(JoinRequest(room=bad))
        assert (await expect(alice, Error)).code == "invalid_room"
    await alice.close()


async def test_a_member_disconnecting_leaves_every_room(chat_server: RunningServer) -> None:
    """An abrupt disconnect produces a leave (disconnected) in each of the member's rooms."""
    alice = await chat_server.client("alice")
    bob = await chat_server.client("bob")
    await _in_room(alice, "dev")
    await _in_room(bob, "dev")
    await bob.close(send_bye=False)
    rooms = set()
    for _ in range(2):
        leave = await expect(alice, Leave, where=lambda e: e.name == "bob")
        assert leave.reason == "disconnected"
        rooms.add(leave.room)
    assert rooms == {"lobby", "dev"}
    await alice.close()


async def test_lazy_members_are_spared_joins_and_leaves_in_big_rooms(
    start_server: StartServer,
) -> None:
    """Over the server's threshold a client that asked for lazy members gets messages and
    its own join, not the others' joins and leaves; `who` still lists everyone. A client
    that did not ask gets every event, as protocol v1 says."""
    running = await start_server(lazy_members_above=2)
    plain = await running.client("plain")
    lazy = await ClientConnection.connect(running.host, running.port)
    async with asyncio.timeout(TIMEOUT_S):
        welcome = await lazy.hello("lazy", lazy_members=True)
    assert welcome.lazy_members_above == 2
    assert (await expect(lazy, Join)).name == "lazy"
    # Three members: over the threshold. The join that took it there is still sent.
    third = await running.client("third")
    await expect(plain, Join, where=lambda j: j.name == "third")
    fourth = await running.client("fourth")
    await fourth.close()
    await expect(plain, Leave, where=lambda j: j.name == "fourth")
    await third.say("three of us")
    seen = []
    async with asyncio.timeout(TIMEOUT_S):
        while not isinstance(frame := await lazy.recv(), Message):
            seen.append(frame)
    assert frame.text == "three of us"
    assert [f.name for f in seen if isinstance(f, Join | Leave)] == ["third"], seen
    await lazy.send(Who())
    members = await expect(lazy, Members)
    assert sorted(members.members) == ["lazy", "plain", "third"]
    assert (await expect(plain, Message)).text == "three of us"
    for conn in (plain, lazy, third):
        await conn.close()
