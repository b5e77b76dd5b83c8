"""The real server on 127.0.0.1 port 0 with real clients: handshake, requests, events."""

from __future__ import annotations

import asyncio
import json
import re
import unicodedata
from typing import Any

import pytest
from conftest import TIMEOUT_S, RawClient, RunningServer, expect

from chatroom import __version__
from chatroom.client import ClientConnection, ConnectionClosed, ServerError
from chatroom.protocol import Join, Leave, Members, Message, Ping, Pong, Welcome

TS_FORMAT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def _line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj).encode() + b"\n"


async def _hello(raw: RawClient, name: str) -> dict[str, Any]:
    await raw.send(_line({"type": "hello", "protocol": 1, "name": name}))
    return await raw.recv()  # type: ignore[return-value]


async def test_welcome_carries_every_contract_field(chat_server: RunningServer) -> None:
    """The welcome has protocol, name, server, room, members and history (even empty),
    account (null without one) and roles, and the member's own join comes next."""
    raw = await chat_server.raw()
    welcome = await _hello(raw, "alice")
    assert welcome == {
        "type": "welcome",
        "protocol": 1,
        "name": "alice",
        "server": f"chatroom/{__version__}",
        "room": "lobby",
        "members": ["alice"],
        "history": [],
        "account": None,
        "roles": [],
    }
    join = await raw.recv()
    assert join is not None
    assert join["type"] == "join" and join["name"] == "alice" and join["room"] == "lobby"
    assert isinstance(join["id"], int) and TS_FORMAT.match(join["ts"])
    raw.close()


async def test_newcomer_gets_history_then_its_own_join(chat_server: RunningServer) -> None:
    """History holds the room's past, oldest first; the newcomer's stream starts with its
    own join; members lists everyone, oldest first."""
    alice = await chat_server.client("alice")
    await alice.say("before bob")
    said = await expect(alice, Message)
    bob = await chat_server.client("bob")
    assert bob.welcome is not None
    assert bob.welcome.members == ("alice", "bob")
    history = bob.welcome.history
    assert [type(e).__name__ for e in history] == ["Join", "Message"]
    assert history[-1] == said
    first = await bob.recv()
    assert isinstance(first, Join) and first.name == "bob" and first.id > said.id
    await alice.close()
    await bob.close()


async def test_history_is_always_present_even_when_empty() -> None:
    """A welcome without events still carries ``history`` as a list (parsed by clients)."""
    welcome = Welcome(name="a", server="s", room="lobby", members=("a",))
    assert json.loads(json.dumps(welcome.to_wire()))["history"] == []


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("", id="empty"),
        pytest.param("x" * 33, id="too-long"),
        pytest.param(" alice", id="leading-space"),
        pytest.param("alice ", id="trailing-space"),
        pytest.param("al\x1bice", id="control"),
        pytest.param("al\u202eice", id="bidi"),
        pytest.param("al\u200bice", id="zero-width"),
        pytest.param("\u3164", id="hangul-filler"),
        pytest.param("\u2800", id="braille-blank"),
        pytest.param("al\u00a0ice", id="nbsp"),
    ],
)
async def test_invalid_name_then_retry_on_same_connection(
    chat_server: RunningServer, name: str
) -> None:
    """An invalid name gets invalid_name; the same connection can then join."""
    raw = await chat_server.raw()
    error = await _hello(raw, name)
    assert error["type"] == "error" and error["code"] == "invalid_name"
    welcome = await _hello(raw, "alice")
    assert welcome["type"] == "welcome" and welcome["name"] == "alice"
    raw.close()


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("alice", id="same"),
        pytest.param("ALICE", id="case"),
        pytest.param("\u0430lice", id="cyrillic-a"),
        pytest.param("\uff41\uff4c\uff49\uff43\uff45", id="fullwidth"),
        pytest.param("aIice", id="capital-i"),
    ],
)
async def test_taken_names_and_look_alikes(chat_server: RunningServer, name: str) -> None:
    """Case variants and look-alikes of a present name get name_taken; a retry with a
    free name on the same connection works."""
    alice = await chat_server.client("alice")
    raw = await chat_server.raw()
    error = await _hello(raw, name)
    assert error["type"] == "error" and error["code"] == "name_taken"
    welcome = await _hello(raw, "bob")
    assert welcome["type"] == "welcome" and welcome["members"] == ["alice", "bob"]
    raw.close()
    await alice.close()


async def test_name_is_stored_nfc(chat_server: RunningServer) -> None:
    """A decomposed name is answered, and shown to others, in NFC."""
    alice = await chat_server.client("alice")
    conn = await chat_server.client("Jose\u0301")
    assert conn.welcome is not None
    assert conn.welcome.name == "Jos\u00e9" == unicodedata.normalize("NFC", "Jose\u0301")
    join = await expect(alice, Join, where=lambda j: j.name != "alice")
    assert join.name == "Jos\u00e9"
    await conn.close()
    await alice.close()


async def test_name_freed_after_leave(chat_server: RunningServer) -> None:
    """Once a member has left, its name (any case) can be taken again."""
    first = await chat_server.client("alice")
    await first.close()
    observer = await chat_server.client("obs")
    again = await chat_server.client("Alice")
    assert again.welcome is not None and again.welcome.name == "Alice"
    await again.close()
    await observer.close()


async def test_unsupported_protocol_then_retry(chat_server: RunningServer) -> None:
    """protocol 2 gets unsupported_protocol; protocol 1 on the same connection works."""
    raw = await chat_server.raw()
    await raw.send(_line({"type": "hello", "protocol": 2, "name": "alice"}))
    assert (await raw.expect("error"))["code"] == "unsupported_protocol"
    welcome = await _hello(raw, "alice")
    assert welcome["type"] == "welcome"
    raw.close()


async def test_hello_after_welcome_is_bad_request(chat_server: RunningServer) -> None:
    """A second hello gets bad_request and the member stays joined."""
    raw = await chat_server.raw()
    await _hello(raw, "alice")
    await raw.expect("join")
    await raw.send(_line({"type": "hello", "protocol": 1, "name": "other"}))
    assert (await raw.expect("error"))["code"] == "bad_request"
    await raw.send(_line({"type": "who"}))
    assert (await raw.expect("members"))["members"] == ["alice"]
    raw.close()


@pytest.mark.parametrize(
    "frame",
    [{"type": "say", "text": "x"}, {"type": "who"}],
)
async def test_requests_before_hello_are_not_joined(
    chat_server: RunningServer, frame: dict[str, Any]
) -> None:
    """say/who before welcome get not_joined; the connection stays and can join."""
    raw = await chat_server.raw()
    await raw.send(_line(frame))
    assert (await raw.expect("error"))["code"] == "not_joined"
    assert (await _hello(raw, "alice"))["type"] == "welcome"
    raw.close()


async def test_ping_and_pong_are_allowed_before_hello(chat_server: RunningServer) -> None:
    """ping before hello gets its pong; pong before hello gets nothing (no error)."""
    raw = await chat_server.raw()
    await raw.send(b'{"type":"pong","token":"x"}\n{"type":"ping","token":"early"}\n')
    assert await raw.recv() == {"type": "pong", "token": "early"}
    raw.close()


async def test_bye_before_hello_closes(chat_server: RunningServer) -> None:
    """bye is accepted before hello: the server closes the connection."""
    raw = await chat_server.raw()
    await raw.send(b'{"type":"bye"}\n')
    assert await raw.closed()


@pytest.mark.parametrize(
    ("line", "code"),
    [
        pytest.param(b'{"type":"shout","text":"x"}\n', "unknown_type", id="unknown-type"),
        pytest.param(b'{"text":"no type"}\n', "bad_request", id="missing-type"),
        pytest.param(b'{"type":42}\n', "bad_request", id="type-not-string"),
        pytest.param(b'{"type":"say"}\n', "bad_request", id="missing-text"),
        pytest.param(b'{"type":"say","text":42}\n', "bad_request", id="text-not-string"),
        pytest.param(b'{"type":"ping","token":[1]}\n', "bad_request", id="token-not-string"),
        pytest.param(b'{"type":"say","text":"\\ud800"}\n', "bad_request", id="lone-surrogate"),
        pytest.param(b"not json\n", "bad_frame", id="not-json"),
        pytest.param(b"[1,2]\n", "bad_frame", id="not-object"),
        pytest.param(b'{"type":"say","text":"\xff"}\n', "bad_frame", id="not-utf8"),
    ],
)
async def test_request_errors_keep_the_connection(
    chat_server: RunningServer, line: bytes, code: str
) -> None:
    """Each request error gets its code, reaches no one else, and the member carries on."""
    raw = await chat_server.raw()
    await _hello(raw, "alice")
    await raw.expect("join")
    other = await chat_server.client("bob")
    await raw.send(line)
    error = await raw.expect("error")
    assert error["code"] == code and isinstance(error["message"], str)
    await raw.send(_line({"type": "say", "text": "still here"}))
    message = await raw.expect("message")
    assert message["text"] == "still here"
    # bob saw only the chat: no message from the broken request, nothing else.
    seen = await expect(other, Message)
    assert seen.text == "still here"
    raw.close()
    await other.close()


async def test_fan_out_reaches_every_member_including_sender(chat_server: RunningServer) -> None:
    """A message goes to every member, the sender too (its acknowledgement), identical."""
    clients = [await chat_server.client(f"user{i}") for i in range(5)]
    await clients[2].say("hello, room")
    copies = [await expect(c, Message) for c in clients]
    assert all(copy == copies[0] for copy in copies)
    assert copies[0].sender == "user2" and copies[0].text == "hello, room"
    assert TS_FORMAT.match(copies[0].ts)
    for conn in clients:
        await conn.close()


async def test_text_is_delivered_exactly_as_sent(chat_server: RunningServer) -> None:
    """Newlines, controls, escapes, bidi and non-BMP text arrive byte for byte."""
    alice = await chat_server.client("alice")
    bob = await chat_server.client("bob")
    text = "line1\nline2\r\n\x1b[31m\u202e \u2028\u0085 😀 [bold]x[/bold] \\u0041"
    await alice.say(text)
    assert (await expect(bob, Message)).text == text
    await alice.close()
    await bob.close()


async def test_ids_strictly_increase_and_are_never_reused(chat_server: RunningServer) -> None:
    """Across joins, messages, leaves and rejoins, an observer sees strictly increasing
    ids, each event once."""
    observer = await chat_server.client("observer")
    for round_ in range(3):
        a = await chat_server.client("a")
        b = await chat_server.client("b")
        await a.say(f"a{round_}")
        await b.say(f"b{round_}")
        await expect(a, Message, where=lambda m: m.sender == "b")
        await a.close()
        await b.close()
    await observer.say("done")
    seen: list[Any] = []
    async with asyncio.timeout(TIMEOUT_S):
        while not (seen and isinstance(seen[-1], Message) and seen[-1].text == "done"):
            seen.append(await observer.recv())
    ids = [event.id for event in seen]
    assert ids == sorted(set(ids))
    assert len(seen) == 1 + 3 * 6 + 1  # own join, 3 rounds of join+join+say+say+leave+leave, done
    await observer.close()


async def test_each_member_sees_the_same_order(chat_server: RunningServer) -> None:
    """Concurrent senders: every member receives the same events in the same id order."""
    clients = [await chat_server.client(f"u{i}") for i in range(4)]

    async def chatter(index: int) -> None:
        for n in range(20):
            await clients[index].say(f"u{index}-{n}")

    await asyncio.gather(*(chatter(i) for i in range(len(clients))))
    streams = []
    for conn in clients:
        got: list[Message] = []
        async with asyncio.timeout(TIMEOUT_S):
            while len(got) < 80:
                frame = await conn.recv()
                if isinstance(frame, Message):
                    got.append(frame)
        streams.append([(m.id, m.sender, m.text) for m in got])
    assert all(stream == streams[0] for stream in streams)
    assert [i for i, _, _ in streams[0]] == sorted(i for i, _, _ in streams[0])
    for conn in clients:
        await conn.close()


async def test_bye_gives_leave_quit(chat_server: RunningServer) -> None:
    """bye: others see leave reason quit, and the server closes the connection."""
    alice = await chat_server.client("alice")
    raw = await chat_server.raw()
    await _hello(raw, "bob")
    await raw.send(b'{"type":"bye"}\n')
    assert await raw.closed()
    leave = await expect(alice, Leave)
    assert (leave.name, leave.reason) == ("bob", "quit")
    await alice.close()


async def test_abrupt_disconnect_gives_leave_disconnected(chat_server: RunningServer) -> None:
    """A connection that just goes away (RST, no bye) leaves with reason disconnected."""
    alice = await chat_server.client("alice")
    raw = await chat_server.raw()
    await _hello(raw, "bob")
    raw.writer.transport.abort()
    leave = await expect(alice, Leave)
    assert (leave.name, leave.reason) == ("bob", "disconnected")
    await alice.close()


async def test_eof_mid_frame_gives_leave_disconnected(chat_server: RunningServer) -> None:
    """A half-sent frame then EOF: the partial line is not a frame, reason disconnected."""
    alice = await chat_server.client("alice")
    raw = await chat_server.raw()
    await _hello(raw, "bob")
    await raw.send(b'{"type":"say","text":"never finished')
    raw.writer.write_eof()
    leave = await expect(alice, Leave)
    assert (leave.name, leave.reason) == ("bob", "disconnected")
    raw.close()
    await alice.close()


async def test_who_lists_members(chat_server: RunningServer) -> None:
    """who is answered with the room's members, oldest first."""
    alice = await chat_server.client("alice")
    bob = await chat_server.client("bob")
    await bob.who()
    members = await expect(bob, Members)
    assert members == Members(room="lobby", members=("alice", "bob"))
    await alice.close()
    await bob.close()


async def test_ping_is_answered_with_its_token(chat_server: RunningServer) -> None:
    """ping gets pong with the same token; a ping without token gets an empty token."""
    raw = await chat_server.raw()
    await _hello(raw, "alice")
    await raw.send(b'{"type":"ping","token":"t1 \\u263a"}\n{"type":"ping"}\n')
    assert await raw.expect("pong") == {"type": "pong", "token": "t1 \u263a"}
    assert await raw.expect("pong") == {"type": "pong", "token": ""}
    raw.close()


async def test_client_connection_api(chat_server: RunningServer) -> None:
    """ClientConnection: hello refusal raises ServerError and allows a retry; recv after
    the server closes raises ConnectionClosed; pong frames come through recv."""
    alice = await chat_server.client("alice")
    conn = await ClientConnection.connect(chat_server.host, chat_server.port)
    with pytest.raises(ServerError) as caught:
        await conn.hello("ALICE")
    assert caught.value.code == "name_taken"
    await conn.hello("bob")
    await conn.send(Ping(token="x"))
    assert await expect(conn, Pong) == Pong(token="x")
    await conn.close()
    with pytest.raises(ConnectionClosed):
        await conn.recv()
    with pytest.raises(ConnectionClosed):
        await conn.say("after close")
    await alice.close()
