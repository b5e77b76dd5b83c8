"""The chat port's HTTP side: the web app's files and the protocol over a WebSocket,
with real sockets and the websockets library's own client."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import TIMEOUT_S, RunningServer, StartServer, expect, wait_for
from websockets.asyncio.client import ClientConnection as WsClient
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Frame, Opcode

from chatroom.protocol import Join, Leave, Message
from chatroom.transports.http import (
    CONTENT_SECURITY_POLICY,
    StaticFiles,
    content_security_policy,
)


def _url(running: RunningServer) -> str:
    return f"ws://{running.host}:{running.port}/ws"


@asynccontextmanager
async def ws_client(running: RunningServer, **kwargs: Any) -> AsyncIterator[WsClient]:
    async with asyncio.timeout(TIMEOUT_S), connect(_url(running), **kwargs) as ws:
        yield ws


class WsFrames:
    """The frames of a WebSocket member, checking that each message is whole NDJSON."""

    def __init__(self, ws: WsClient) -> None:
        self.ws = ws
        self.messages: list[str] = []
        self._frames: list[dict[str, Any]] = []

    async def next(self) -> dict[str, Any]:
        async with asyncio.timeout(TIMEOUT_S):
            while not self._frames:
                message = await self.ws.recv()
                assert isinstance(message, str)
                assert message.endswith("\n")
                self.messages.append(message)
                self._frames.extend(json.loads(line) for line in message.splitlines())
        return self._frames.pop(0)

    async def expect(self, type_: str, **fields: Any) -> dict[str, Any]:
        while True:
            frame = await self.next()
            if frame["type"] == type_ and all(frame.get(k) == v for k, v in fields.items()):
                return frame

    async def send(self, **frame: Any) -> None:
        await self.ws.send(json.dumps(frame))


async def _http(running: RunningServer, request: bytes) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection(running.host, running.port)
    try:
        writer.write(request)
        async with asyncio.timeout(TIMEOUT_S):
            data = await reader.read()
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


# ---------------------------------------------------------------------------- the session


async def test_websocket_and_ndjson_members_talk_in_one_room(chat_server: RunningServer) -> None:
    """A WebSocket member joins with the same hello, is welcomed, and talks with an
    NDJSON member both ways; every server message is whole NDJSON frames."""
    nd = await chat_server.client("nd")
    async with ws_client(chat_server) as ws:
        member = WsFrames(ws)
        await member.send(type="hello", protocol=1, name="web")
        welcome = await member.expect("welcome")
        assert welcome["name"] == "web" and welcome["members"] == ["nd", "web"]
        await member.expect("join", name="web")
        await member.send(type="say", text="from the browser", nonce="n1")
        echo = await member.expect("message", text="from the browser")
        assert echo["nonce"] == "n1" and echo["from"] == "web"
        heard = await expect(nd, Message, where=lambda m: m.text == "from the browser")
        assert heard.id == echo["id"]
        await nd.say("from the terminal")
        await member.expect("message", text="from the terminal", **{"from": "nd"})
    await nd.close()


async def test_a_flush_reaches_a_websocket_member_as_one_message(
    chat_server: RunningServer,
) -> None:
    """Events that share a flush share a WebSocket message: a burst of messages from an
    NDJSON member arrives in fewer messages than frames, each frame whole."""
    nd = await chat_server.client("nd")
    async with ws_client(chat_server) as ws:
        member = WsFrames(ws)
        await member.send(type="hello", protocol=1, name="web")
        await member.expect("join", name="web")
        count = len(member.messages)
        await asyncio.gather(*(nd.say(f"burst {n}") for n in range(50)))
        texts = []
        while len(texts) < 50:
            frame = await member.expect("message")
            texts.append(frame["text"])
        assert texts == [f"burst {n}" for n in range(50)]
        assert len(member.messages) - count < 50
    await nd.close()


async def test_errors_and_limits_are_the_sessions(start_server: StartServer) -> None:
    """Bad JSON, a binary message and an unknown type get the NDJSON error codes; the
    rate limit answers rate_limited; the connection stays."""
    running = await start_server(flood_rate=1, flood_burst=3)
    async with ws_client(running) as ws:
        member = WsFrames(ws)
        await ws.send("{not json")
        assert (await member.expect("error"))["code"] == "bad_frame"
        await ws.send(b'{"type":"ping"}')
        assert (await member.expect("error"))["code"] == "bad_frame"
        await ws.send('{"type":"dance"}')
        assert (await member.expect("error"))["code"] == "unknown_type"
        await ws.send('{"type":"ping","token":"x"}')
        assert (await member.expect("error"))["code"] == "rate_limited"


async def test_a_message_is_one_frame_whatever_its_whitespace(
    chat_server: RunningServer,
) -> None:
    """JSON with a newline between tokens is one frame in a WebSocket message; text
    that is not valid Unicode is bad_request, as over NDJSON."""
    async with ws_client(chat_server) as ws:
        member = WsFrames(ws)
        await ws.send('{"type":"ping",\n "token":"spread"}')
        assert (await member.expect("pong"))["token"] == "spread"
        await ws.send('{"type":"ping","token":"\\ud800"}')
        assert (await member.expect("error"))["code"] == "bad_request"


async def test_an_oversized_message_closes_with_1009(start_server: StartServer) -> None:
    """A client message over the frame limit closes the WebSocket with 1009; others in
    the room see the member leave."""
    running = await start_server(flood_rate=0, max_frame_bytes=4096)
    nd = await running.client("nd")
    async with ws_client(running, max_size=None) as ws:
        member = WsFrames(ws)
        await member.send(type="hello", protocol=1, name="big")
        await member.expect("join", name="big")
        await ws.send(json.dumps({"type": "say", "text": "x" * 5000}))
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(TIMEOUT_S):
                while True:
                    await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    leave = await expect(nd, Leave, where=lambda f: f.name == "big")
    assert leave.reason == "disconnected"
    await nd.close()


async def test_no_hello_in_time_closes_the_websocket(start_server: StartServer) -> None:
    """The handshake deadline counts from the TCP accept, whatever the transport."""
    running = await start_server(handshake_timeout_s=0.3)
    async with ws_client(running) as ws:
        member = WsFrames(ws)
        error = await member.expect("error")
        assert error["code"] == "handshake_timeout"
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(TIMEOUT_S):
                await ws.recv()
    await wait_for(lambda: running.server.connection_count == 0)


async def test_a_quiet_websocket_is_pinged_with_websocket_pings(
    start_server: StartServer,
) -> None:
    """A quiet member gets WebSocket pings, which the client library answers by itself
    (no JSON pong): it is pinged again and again and never dropped."""
    running = await start_server(ping_interval_s=0.05, ping_timeout_s=0.2)
    async with ws_client(running) as ws:
        member = WsFrames(ws)
        await member.send(type="hello", protocol=1, name="idle")
        await member.expect("join", name="idle")
        (conn,) = running.server._connections
        pings: set[float] = set()

        def pinged_again() -> bool:
            # White-box: a new ping is sent only after the last one was answered.
            if conn.session.ping_sent_at is not None:
                pings.add(conn.session.ping_sent_at)
            return len(pings) >= 4

        await wait_for(pinged_again)
        assert not conn.session.closing
        assert running.server.hub.members() == ["idle"]


async def test_shutdown_tells_websocket_members_and_closes_with_1001(
    start_server: StartServer,
) -> None:
    """On shutdown a WebSocket member gets its leave (shutdown), then a close frame
    going away (1001)."""
    running = await start_server()
    async with ws_client(running) as ws:
        member = WsFrames(ws)
        await member.send(type="hello", protocol=1, name="web")
        await member.expect("join", name="web")
        await running.server.close()
        leave = await member.expect("leave", name="web")
        assert leave["reason"] == "shutdown"
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(TIMEOUT_S):
                await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001


async def test_websocket_connections_count_against_the_per_address_cap(
    start_server: StartServer,
) -> None:
    """The per-address cap counts WebSocket and NDJSON connections alike."""
    running = await start_server(max_per_ip=2, exempt_loopback=False)
    async with ws_client(running), ws_client(running):
        raw = await running.raw()
        refusal = await raw.expect("error")
        assert refusal["code"] == "too_many_connections"
        raw.close()


# ---------------------------------------------------------------------------- Origin


@pytest.mark.parametrize(
    "origin", ["http://evil.example", "http://127.0.0.1:1", "https://127.0.0.1", "null"]
)
async def test_a_foreign_origin_is_refused(chat_server: RunningServer, origin: str) -> None:
    """A page from another origin cannot open a chat connection: 403, no session."""
    with pytest.raises(InvalidStatus) as refused:
        async with ws_client(chat_server, origin=origin):
            pass
    assert refused.value.response.status_code == 403


async def test_the_servers_own_origin_and_allowed_ones_may_connect(
    start_server: StartServer,
) -> None:
    """The origin of the host the page was loaded from is accepted, and so are the
    origins --allow-origin names."""
    running = await start_server(allow_origins=["https://chat.example.org"])
    own = f"http://{running.host}:{running.port}"
    for origin in (own, "https://chat.example.org"):
        async with ws_client(running, origin=origin) as ws:
            member = WsFrames(ws)
            await member.send(type="ping", token="t")
            assert (await member.expect("pong"))["token"] == "t"


# ---------------------------------------------------------------------------- files


@pytest.fixture
def web_root(tmp_path: Path) -> Path:
    root = tmp_path / "web"
    (root / "lib").mkdir(parents=True)
    (root / "index.html").write_text("<!doctype html><title>chat</title>")
    (root / "lib" / "store.js").write_text("export const x = 1;\n")
    (root / "notes.secret").write_text("not for the web")
    (tmp_path / "outside.txt").write_text("outside")
    return root


async def test_the_app_is_served_with_a_strict_policy(
    chat_server: RunningServer, web_root: Path
) -> None:
    """GET / is the app's page, with a Content-Security-Policy and nosniff; a module
    is served with its JavaScript type."""
    chat_server.server.static_files = StaticFiles(web_root)
    status, headers, body = await _http(chat_server, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 200 and body == b"<!doctype html><title>chat</title>"
    assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "'unsafe-inline'" not in CONTENT_SECURITY_POLICY
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["content-type"] == "text/html; charset=utf-8"
    status, headers, body = await _http(
        chat_server, b"GET /lib/store.js?v=1 HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    assert status == 200 and headers["content-type"].startswith("text/javascript")


@pytest.mark.parametrize(
    "path",
    [
        "/../outside.txt",
        "/lib/../../outside.txt",
        "/%2e%2e/outside.txt",
        "//outside.txt",
        "/lib/",
        "/lib",
        "/notes.secret",
        "/.hidden.js",
        "/lib%2fstore.js",
        "/index.html/",
        "/nothing.js",
    ],
)
async def test_no_traversal_no_listing_no_other_files(
    chat_server: RunningServer, web_root: Path, path: str
) -> None:
    """Paths outside the app, directories and files of other types are 404, never a
    listing or another file's bytes."""
    chat_server.server.static_files = StaticFiles(web_root)
    request = f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    status, headers, body = await _http(chat_server, request)
    assert status == 404 and b"outside" not in body and b"secret" not in body
    assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY


async def test_the_page_may_connect_only_to_the_clusters_other_nodes(
    start_server: StartServer, web_root: Path
) -> None:
    """With --allow-origin naming the other nodes, the page may open their WebSocket
    (?servers= moves there), in the page's scheme, and no other host's."""
    running = await start_server(
        allow_origins=["http://node2.lan:5000", "https://Node3.example/", "http://x; script-src *"]
    )
    running.server.static_files = StaticFiles(web_root)
    status, headers, _ = await _http(running, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 200
    policy = headers["content-security-policy"]
    directives = {d.split()[0]: d.split()[1:] for d in policy.split("; ")}
    assert directives["connect-src"] == ["'self'", "ws://node2.lan:5000", "wss://node3.example"]
    assert directives["script-src"] == ["'self'"]
    assert policy == content_security_policy(running.server.config.allow_origins)


def test_the_policy_without_other_nodes_is_the_strict_one() -> None:
    """No --allow-origin: connections to this host only, as before clusters."""
    assert content_security_policy() == CONTENT_SECURITY_POLICY
    assert "connect-src 'self';" in CONTENT_SECURITY_POLICY
    assert content_security_policy(["[::1]:5000", "ftp://a.b", "http://a b"]) == (
        CONTENT_SECURITY_POLICY
    )
    assert "connect-src 'self' ws://[::1]:5000;" in content_security_policy(["http://[::1]:5000"])


async def test_other_methods_are_refused(chat_server: RunningServer, web_root: Path) -> None:
    """POST gets 405; HEAD gets the headers without the body."""
    chat_server.server.static_files = StaticFiles(web_root)
    status, headers, _ = await _http(
        chat_server, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
    )
    assert status == 405 and headers["allow"] == "GET, HEAD"
    status, headers, body = await _http(chat_server, b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 200 and body == b"" and int(headers["content-length"]) > 0


async def test_an_http_request_split_byte_by_byte_is_still_http(
    chat_server: RunningServer, web_root: Path
) -> None:
    """The first bytes decide the protocol even when they arrive one at a time."""
    chat_server.server.static_files = StaticFiles(web_root)
    reader, writer = await asyncio.open_connection(chat_server.host, chat_server.port)
    for byte in b"GET / HTTP/1.1\r\nHost: x\r\n\r\n":
        writer.write(bytes([byte]))
        await writer.drain()
    async with asyncio.timeout(TIMEOUT_S):
        data = await reader.read()
    writer.close()
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")


async def test_ndjson_split_byte_by_byte_and_garbage_stay_ndjson(
    chat_server: RunningServer,
) -> None:
    """A hello sent a byte at a time is NDJSON; a first line that starts like a method
    but is not one is NDJSON garbage, answered bad_frame."""
    raw = await chat_server.raw()
    for byte in b'{"type":"hello","protocol":1,"name":"slow"}\n':
        await raw.send(bytes([byte]))
    assert (await raw.expect("welcome"))["name"] == "slow"
    other = await chat_server.raw()
    await other.send(b"GETTING STARTED\n")
    assert (await other.expect("error"))["code"] == "bad_frame"
    raw.close()
    other.close()


async def test_without_web_an_http_request_is_ndjson_garbage(start_server: StartServer) -> None:
    """With the web side and the metrics off (--no-web --no-metrics), HTTP gets the
    NDJSON answer to garbage. (With metrics on, /metrics and /healthz answer and
    every other path is a 404: see test_ops_metrics.)"""
    running = await start_server(web=False, metrics=False)
    raw = await running.raw()
    await raw.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await raw.expect("error"))["code"] == "bad_frame"
    raw.close()


async def test_a_websocket_member_that_never_reads_is_dropped_as_a_slow_consumer(
    start_server: StartServer,
) -> None:
    """The SendQ bound holds over WebSocket as over NDJSON: a member that stops reading
    while the room talks is dropped with slow_consumer, and the talkers lose nothing."""
    running = await start_server(
        flood_rate=0, max_sendq_bytes=64 * 1024, soft_sendq_bytes=16 * 1024
    )
    talker = await running.client("talker")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (running.host, running.port))
    reader, writer = await asyncio.open_connection(sock=sock)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET /ws HTTP/1.1\r\nHost: {running.host}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    async with asyncio.timeout(TIMEOUT_S):
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
    hello = json.dumps({"type": "hello", "protocol": 1, "name": "sleeper"}).encode()
    writer.write(Frame(Opcode.TEXT, hello).serialize(mask=True, extensions=[]))
    await writer.drain()
    await expect(talker, Join, where=lambda j: j.name == "sleeper")
    sent = 0
    while "sleeper" in running.server.hub.members():
        await talker.say(f"{sent} " + "x" * 3900)
        await expect(talker, Message, where=lambda m, n=sent: m.text.startswith(f"{n} "))
        sent += 1
        assert sent < 5_000
    leave = await expect(talker, Leave, where=lambda f: f.name == "sleeper")
    assert leave.reason == "slow_consumer"
    writer.close()
    await talker.close()
