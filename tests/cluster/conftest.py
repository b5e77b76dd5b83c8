"""Fixtures for cluster tests: Redis servers, fault proxies and nodes, always cleaned up."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from .fault_proxy import FaultProxy
from .node import Node
from .recorder import Address, RecordingClient
from .redis_server import RedisServer, redis_available

StartRedis = Callable[..., Awaitable[RedisServer]]
StartProxy = Callable[[str, int], Awaitable[FaultProxy]]
StartNode = Callable[..., Awaitable[Node]]
MakeRecorder = Callable[[str, Sequence[Address] | Callable[[], Sequence[Address]]], RecordingClient]


def need_redis_server() -> None:
    """Skip without redis-server, except on CI, where a missing one is a broken setup
    (``.ci/run`` installs it) and must not pass as a green run that tested nothing."""
    if redis_available():
        return
    if os.environ.get("CI"):
        pytest.fail("redis-server is not installed, and CI is set: .ci/run should install it")
    pytest.skip("redis-server is not installed")


@pytest.fixture
async def start_redis(tmp_path: Path) -> AsyncIterator[StartRedis]:
    """Start redis-server processes (``aof=True`` for an fsynced append-only file)."""
    need_redis_server()
    started: list[RedisServer] = []

    async def start(*, aof: bool = False) -> RedisServer:
        server = RedisServer(tmp_path / f"redis-{len(started)}", aof=aof)
        started.append(server)
        await server.start()
        return server

    try:
        yield start
    finally:
        for server in started:
            await server.cleanup()


@pytest.fixture
async def redis_server(start_redis: StartRedis) -> RedisServer:
    """One redis-server without persistence."""
    return await start_redis()


@pytest.fixture
async def start_proxy() -> AsyncIterator[StartProxy]:
    """Start fault proxies in front of host:port."""
    started: list[FaultProxy] = []

    async def start(host: str, port: int) -> FaultProxy:
        proxy = await FaultProxy(host, port).start()
        started.append(proxy)
        return proxy

    try:
        yield start
    finally:
        for proxy in started:
            await proxy.close()


@pytest.fixture
async def start_node(tmp_path: Path) -> AsyncIterator[StartNode]:
    """Start chatroom-server processes; see :class:`Node` for the arguments."""
    started: list[Node] = []

    async def start(node_id: str = "n1", **kwargs: Any) -> Node:
        node = Node(tmp_path / f"node-{node_id}", node_id, **kwargs)
        started.append(node)
        await node.start()
        return node

    try:
        yield start
    finally:
        for node in started:
            await node.cleanup()


@pytest.fixture
async def recorders() -> AsyncIterator[MakeRecorder]:
    """Make recording clients (name, addresses); torn down whatever their state."""
    made: list[RecordingClient] = []

    def make(
        name: str, addresses: Sequence[Address] | Callable[[], Sequence[Address]]
    ) -> RecordingClient:
        client = RecordingClient(name, addresses)
        made.append(client)
        return client

    try:
        yield make
    finally:
        for client in made:
            await client.aclose()
