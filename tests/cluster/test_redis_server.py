"""The Redis helper: a real redis-server that starts, stops, loses data and freezes."""

from __future__ import annotations

import asyncio
import json

import pytest
from conftest import TIMEOUT_S

from .conftest import StartRedis
from .redis_server import EVENTS_STREAM, RedisServer, parse_entry, ping


async def _append(server: RedisServer, *event_ids: int) -> None:
    """Append events as a node would, node n1 for odd ids and n0 for even ones."""
    async with server.client().pipeline(transaction=False) as pipe:
        for event_id in event_ids:
            event = {"type": "message", "id": event_id, "ts": "t", "room": "lobby", "from": "a"}
            fields = {"id": str(event_id), "event": json.dumps(event), "node": f"n{event_id % 2}"}
            pipe.xadd(EVENTS_STREAM, fields)  # type: ignore[arg-type]
        await pipe.execute()


async def test_starts_and_answers(redis_server: RedisServer) -> None:
    """It listens on 127.0.0.1 at the port its URL names, and answers PING."""
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    assert await redis_server.client().ping()


async def test_stream_reads_entries_in_order(redis_server: RedisServer) -> None:
    """stream() gives every entry, oldest first, parsed, across XRANGE pages."""
    await _append(redis_server, *range(1, 1206))
    entries = await redis_server.stream()
    assert [entry["id"] for entry in entries] == list(range(1, 1206))
    assert entries[0]["event"]["id"] == 1 and entries[0]["node"] == "n1"
    assert entries[1]["node"] == "n0"


async def test_stream_is_empty_without_events(redis_server: RedisServer) -> None:
    """No stream yet: no entries, not an error."""
    assert await redis_server.stream() == []


def test_malformed_entries_are_errors() -> None:
    """An entry whose id disagrees with its event, or that lacks a field, is refused."""
    with pytest.raises(ValueError, match="has 3"):
        parse_entry(b"1-0", {b"id": b"2", b"event": b'{"id":3}', b"node": b"n1"})
    with pytest.raises(ValueError, match="no field node"):
        parse_entry(b"1-0", {b"id": b"3", b"event": b'{"id":3}'})
    good = parse_entry("1-0", {"id": "3", "event": '{"id":3}', "node": "n1"})
    assert good == {"entry": "1-0", "id": 3, "event": {"id": 3}, "node": "n1"}


async def test_stop_and_start_keeps_data(redis_server: RedisServer) -> None:
    """A clean restart on the same port keeps the data (it is saved on the way down)."""
    port = redis_server.port
    await _append(redis_server, 1)
    await redis_server.restart()
    assert redis_server.port == port
    assert [entry["id"] for entry in await redis_server.stream()] == [1]


async def test_restart_empty_loses_data(redis_server: RedisServer) -> None:
    """restart(empty=True) is Redis losing everything: the stream is gone."""
    await _append(redis_server, 1)
    await redis_server.restart(empty=True)
    assert await redis_server.stream() == []


async def test_kill_without_aof_loses_data(redis_server: RedisServer) -> None:
    """SIGKILL without an AOF: what was only in memory is gone after a start."""
    await _append(redis_server, 1)
    await redis_server.kill()
    assert not redis_server.running
    assert not await ping(redis_server.host, redis_server.port, TIMEOUT_S)
    await redis_server.start()
    assert await redis_server.stream() == []


async def test_kill_with_aof_keeps_acknowledged_writes(start_redis: StartRedis) -> None:
    """With appendfsync always, every acknowledged write survives a SIGKILL."""
    server = await start_redis(aof=True)
    await _append(server, 1, 2, 3)
    await server.kill()
    await server.start()
    assert [entry["id"] for entry in await server.stream()] == [1, 2, 3]


async def test_freeze_and_thaw(redis_server: RedisServer) -> None:
    """Frozen, it accepts nothing it answers; thawed, the held command is answered."""
    client = redis_server.client(socket_timeout=TIMEOUT_S)
    assert await client.ping()
    redis_server.freeze()

    async def answered() -> bool:
        return bool(await client.ping())

    pending = asyncio.create_task(answered())
    # The absence of an answer can only be seen by waiting a bounded while for one.
    done, _ = await asyncio.wait([pending], timeout=0.3)
    assert not done
    redis_server.thaw()
    async with asyncio.timeout(TIMEOUT_S):
        assert await pending


async def test_cleanup_kills_a_frozen_server(start_redis: StartRedis) -> None:
    """Teardown works whatever state it finds: frozen included."""
    server = await start_redis()
    server.freeze()
    await server.cleanup()
    assert not server.running
