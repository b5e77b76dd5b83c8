"""The fault proxy in front of a real redis-server: pass, delay, blackhole, cut, heal."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aioredis
import redis.exceptions
from conftest import TIMEOUT_S

from .conftest import StartProxy
from .fault_proxy import FaultProxy
from .redis_server import RedisServer

# How long "no answer" is watched for: absence can only be seen over a bounded wait.
QUIET_S = 0.3


class Line:
    """A raw RESP connection: one inline command out, one reply line in."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, proxy: FaultProxy) -> Line:
        return cls(*await asyncio.open_connection(proxy.host, proxy.port))

    async def send(self, command: bytes) -> None:
        self.writer.write(command + b"\r\n")
        await self.writer.drain()

    async def reply(self, timeout_s: float = TIMEOUT_S) -> bytes:
        async with asyncio.timeout(timeout_s):
            return await self.reader.readline()

    def close(self) -> None:
        self.writer.transport.abort()


@pytest.fixture
async def proxy(redis_server: RedisServer, start_proxy: StartProxy) -> FaultProxy:
    return await start_proxy(redis_server.host, redis_server.port)


async def test_pass_forwards_both_ways(proxy: FaultProxy) -> None:
    """Through the proxy a redis client works as if connected directly."""
    assert proxy.url == f"redis://127.0.0.1:{proxy.port}/0"
    line = await Line.open(proxy)
    await line.send(b"SET k hello")
    assert await line.reply() == b"+OK\r\n"
    await line.send(b"GET k")
    assert await line.reply() == b"$5\r\n"
    assert await line.reply() == b"hello\r\n"
    line.close()


async def test_redis_client_through_proxy(proxy: FaultProxy, redis_server: RedisServer) -> None:
    """redis.asyncio, given the proxy's URL, talks to the server behind it; a
    blackhole makes it time out, a cut makes it fail, and after heal it works again."""
    client = aioredis.Redis.from_url(proxy.url, socket_timeout=QUIET_S)
    try:
        assert await client.ping()
        await client.set("k", "v")
        assert await redis_server.client().get("k") == b"v"
        proxy.blackhole()
        with pytest.raises(redis.exceptions.TimeoutError):
            await client.ping()
        proxy.cut()
        with pytest.raises(redis.exceptions.ConnectionError):
            await client.ping()
        await proxy.heal()
        assert await client.ping()
    finally:
        await client.aclose()


async def test_blackhole_holds_traffic_until_heal(proxy: FaultProxy) -> None:
    """Blackholed, a PING gets no answer and the connection stays open; healed, the
    held PING reaches Redis and its PONG comes back: held, not dropped."""
    line = await Line.open(proxy)
    await line.send(b"PING")
    assert await line.reply() == b"+PONG\r\n"
    proxy.blackhole()
    await line.send(b"PING")
    with pytest.raises(TimeoutError):
        await line.reply(QUIET_S)
    assert not line.reader.at_eof()
    await proxy.heal()
    assert await line.reply() == b"+PONG\r\n"
    line.close()


async def test_blackhole_accepts_new_connections_but_forwards_nothing(
    proxy: FaultProxy,
) -> None:
    """A partition: connecting still works (the proxy's side answers), PING does not."""
    proxy.blackhole()
    line = await Line.open(proxy)
    await line.send(b"PING")
    with pytest.raises(TimeoutError):
        await line.reply(QUIET_S)
    await proxy.heal()
    assert await line.reply() == b"+PONG\r\n"
    line.close()


async def test_one_way_blackhole(proxy: FaultProxy, redis_server: RedisServer) -> None:
    """Blackholed towards the client only: the command reaches Redis and takes
    effect, but the reply is held."""
    line = await Line.open(proxy)
    proxy.blackhole(to_target=False)
    await line.send(b"SET k written")
    direct = redis_server.client()
    async with asyncio.timeout(TIMEOUT_S):
        # Polling on purpose: the write's only sign is the key appearing in Redis.
        while await direct.get("k") is None:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    with pytest.raises(TimeoutError):
        await line.reply(QUIET_S)
    await proxy.heal()
    assert await line.reply() == b"+OK\r\n"
    line.close()


async def test_cut_resets_and_refuses_until_heal(proxy: FaultProxy) -> None:
    """Cut: open connections end at once and new ones are refused; healed, on the same
    port, PING works again."""
    line = await Line.open(proxy)
    await line.send(b"PING")
    assert await line.reply() == b"+PONG\r\n"
    port = proxy.port
    proxy.cut()
    with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
        # A reset or an end of stream, whichever the kernel reports first.
        reply = await line.reply()
        if not reply:
            raise asyncio.IncompleteReadError(reply, None)
    with pytest.raises(ConnectionRefusedError):
        await Line.open(proxy)
    await proxy.heal()
    assert proxy.port == port
    again = await Line.open(proxy)
    await again.send(b"PING")
    assert await again.reply() == b"+PONG\r\n"
    again.close()


async def test_delay_adds_latency_both_ways(proxy: FaultProxy) -> None:
    """delay(d): a round trip takes at least 2d (d each way); heal takes it away."""
    line = await Line.open(proxy)
    delay_s = 0.15
    proxy.delay(delay_s)
    started = time.monotonic()
    await line.send(b"PING")
    assert await line.reply() == b"+PONG\r\n"
    assert time.monotonic() - started >= 2 * delay_s
    await proxy.heal()
    started = time.monotonic()
    await line.send(b"PING")
    assert await line.reply() == b"+PONG\r\n"
    assert time.monotonic() - started < delay_s
    line.close()


async def test_delay_keeps_order_and_throughput(proxy: FaultProxy) -> None:
    """Many commands under delay: every reply, in order, in about one delay, not one
    delay per command."""
    line = await Line.open(proxy)
    delay_s = 0.1
    proxy.delay(delay_s)
    started = time.monotonic()
    for n in range(50):
        await line.send(b"ECHO " + str(n).encode())
    replies = []
    for _ in range(50):
        assert (await line.reply()).startswith(b"$")
        replies.append(int(await line.reply()))
    assert replies == list(range(50))
    assert time.monotonic() - started < 10 * delay_s
    line.close()


async def test_target_down_resets_clients(
    start_proxy: StartProxy, redis_server: RedisServer
) -> None:
    """With Redis gone, a connection through the proxy is reset, as a direct one would be."""
    proxy = await start_proxy(redis_server.host, redis_server.port)
    await redis_server.kill()
    line = await Line.open(proxy)
    with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
        reply = await line.reply()
        if not reply:
            raise asyncio.IncompleteReadError(reply, None)
    await proxy.wait_until(lambda: proxy.accepted == 1 and not proxy.links, TIMEOUT_S)


async def test_wait_until_sees_connections(proxy: FaultProxy) -> None:
    """A test can wait for a node to (re)connect through the proxy."""
    line = await Line.open(proxy)
    await proxy.wait_until(lambda: len(proxy.links) == 1, TIMEOUT_S)
    line.close()
    await proxy.wait_until(lambda: not proxy.links, TIMEOUT_S)
    assert proxy.accepted == 1
