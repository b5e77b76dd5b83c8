"""TLS with a throwaway CA, mismatched transports, and the server password."""

from __future__ import annotations

import asyncio
import hmac
import ssl
from collections.abc import Iterator
from typing import Any

import pytest
import trustme
from conftest import TIMEOUT_S, StartServer, expect

import chatroom.session as session_module
from chatroom.client import ClientConnection, ConnectError, ConnectionClosed, ServerError
from chatroom.protocol import Message


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_ssl(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture(scope="module")
def client_ssl(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


async def test_tls_round_trip(
    start_server: StartServer, server_ssl: ssl.SSLContext, client_ssl: ssl.SSLContext
) -> None:
    """Clients that trust the CA join a TLS server and chat; the link really is TLS."""
    running = await start_server(flood_rate=0, ssl_context=server_ssl)
    alice = await ClientConnection.connect(running.host, running.port, ssl_context=client_ssl)
    bob = await ClientConnection.connect(running.host, running.port, ssl_context=client_ssl)
    await alice.hello("alice")
    await bob.hello("bob")
    await alice.say("over TLS")
    assert (await expect(bob, Message)).text == "over TLS"
    assert alice._writer.get_extra_info("ssl_object") is not None
    await alice.close()
    await bob.close()


async def test_untrusted_certificate_is_a_clear_connect_error(
    start_server: StartServer, server_ssl: ssl.SSLContext
) -> None:
    """A client that does not trust the server's CA fails to connect, saying why."""
    running = await start_server(ssl_context=server_ssl)
    with pytest.raises(ConnectError) as caught:
        await ClientConnection.connect(
            running.host, running.port, ssl_context=ssl.create_default_context()
        )
    message = str(caught.value)
    assert "does not trust" in message and f"{running.host}:{running.port}" in message
    assert "--ca" in message


async def test_wrong_hostname_is_a_clear_connect_error(
    start_server: StartServer, ca: trustme.CA
) -> None:
    """A certificate for another host is refused with the reason in the message."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("chat.example").configure_cert(context)
    running = await start_server(ssl_context=context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    with pytest.raises(ConnectError) as caught:
        await ClientConnection.connect(running.host, running.port, ssl_context=client_context)
    assert "mismatch" in str(caught.value)


async def test_plain_client_on_tls_port_gets_a_clear_close(
    start_server: StartServer, server_ssl: ssl.SSLContext
) -> None:
    """A plain-text client on the TLS port is closed at once, and told to try TLS."""
    running = await start_server(ssl_context=server_ssl)
    conn = await ClientConnection.connect(running.host, running.port)
    async with asyncio.timeout(TIMEOUT_S):
        with pytest.raises(ConnectionClosed) as caught:
            await conn.hello("alice")
    assert "--tls" in str(caught.value)
    await conn.close()


async def test_tls_client_on_plain_port_gets_a_clear_connect_error(
    start_server: StartServer, client_ssl: ssl.SSLContext
) -> None:
    """A TLS client on a plain port fails at once with 'does not speak TLS'."""
    running = await start_server()
    async with asyncio.timeout(TIMEOUT_S):
        with pytest.raises(ConnectError) as caught:
            await ClientConnection.connect(running.host, running.port, ssl_context=client_ssl)
    assert "does not speak TLS" in str(caught.value)


async def test_tls_handshake_counts_against_the_deadline(
    start_server: StartServer, server_ssl: ssl.SSLContext
) -> None:
    """A TCP connection that never starts (or never finishes) the TLS handshake is
    closed after the handshake timeout and leaves no connection behind."""
    running = await start_server(ssl_context=server_ssl, handshake_timeout_s=0.2)
    silent = await running.raw()
    half = await running.raw()
    await half.send(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # a ClientHello's start
    assert await silent.closed()
    assert await half.closed()
    assert running.server.connection_count == 0
    silent.close()
    half.close()


async def test_tls_connection_past_the_handshake_gets_hello_deadline(
    start_server: StartServer, server_ssl: ssl.SSLContext, client_ssl: ssl.SSLContext
) -> None:
    """After TLS is up, the hello deadline still applies."""
    running = await start_server(ssl_context=server_ssl, handshake_timeout_s=0.3)
    conn = await ClientConnection.connect(running.host, running.port, ssl_context=client_ssl)
    async with asyncio.timeout(TIMEOUT_S):
        frame = await conn.recv()
        assert getattr(frame, "code", None) == "handshake_timeout"
        with pytest.raises(ConnectionClosed):
            await conn.recv()


# ---------------------------------------------------------------------------- password


@pytest.fixture
def compare_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[Any, Any]]]:
    calls: list[tuple[Any, Any]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(session_module.hmac, "compare_digest", spy)
    yield calls


async def test_right_password_joins(
    start_server: StartServer, compare_calls: list[tuple[Any, Any]]
) -> None:
    """The right password joins, compared with hmac.compare_digest."""
    running = await start_server(password="s3cret ☃", auth_failure_delay_s=0.05)
    conn = await ClientConnection.connect(running.host, running.port)
    welcome = await conn.hello("alice", password="s3cret ☃")
    assert welcome.name == "alice"
    assert len(compare_calls) == 1
    await conn.close()


@pytest.mark.parametrize("password", [None, "", "wrong", "s3cre", "s3cret!", "S3CRET"])
async def test_wrong_or_missing_password_is_refused_after_the_delay(
    start_server: StartServer, password: str | None, compare_calls: list[tuple[Any, Any]]
) -> None:
    """A wrong or missing password gets auth_failed, no sooner than the delay, then the
    connection is closed; lengths are not leaked (the compared values are equal-sized)."""
    delay = 0.1
    running = await start_server(password="s3cret", auth_failure_delay_s=delay)
    conn = await ClientConnection.connect(running.host, running.port)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ServerError) as caught:
        await conn.hello("mallory", password=password)
    assert caught.value.code == "auth_failed"
    assert loop.time() - started >= delay * 0.9
    with pytest.raises(ConnectionClosed):
        async with asyncio.timeout(TIMEOUT_S):
            await conn.recv()
    assert running.server.hub.members() == []
    assert compare_calls and all(len(a) == len(b) for a, b in compare_calls)


async def test_password_failure_touches_no_member(start_server: StartServer) -> None:
    """Members never see a refused joiner: no join, no leave."""
    running = await start_server(password="pw", auth_failure_delay_s=0.01, flood_rate=0)
    member = await ClientConnection.connect(running.host, running.port)
    await member.hello("member", password="pw")
    intruder = await ClientConnection.connect(running.host, running.port)
    with pytest.raises(ServerError):
        await intruder.hello("intruder", password="no")
    await member.say("sync")
    frames = [await member.recv()]
    async with asyncio.timeout(TIMEOUT_S):
        while not isinstance(frames[-1], Message):
            frames.append(await member.recv())
    assert [type(f).__name__ for f in frames] == ["Join", "Message"]
    await member.close()
