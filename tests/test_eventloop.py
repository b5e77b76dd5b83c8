"""The server's event loop: epoll with exact short waits."""

from __future__ import annotations

import asyncio
import selectors
import socket

import pytest
from conftest import TIMEOUT_S

from chatroom import eventloop

pytestmark = pytest.mark.skipif(not hasattr(selectors, "EpollSelector"), reason="epoll is Linux's")


def test_a_short_wait_still_reports_what_is_ready() -> None:
    """The exact wait goes through select() on the epoll descriptor, then epoll itself:
    a socket that is ready is reported, one that is not is not."""
    selector = eventloop.PreciseEpollSelector()
    ready_sock, peer = socket.socketpair()
    idle_sock, idle_peer = socket.socketpair()
    try:
        selector.register(ready_sock, selectors.EVENT_READ, "ready")
        selector.register(idle_sock, selectors.EVENT_READ, "idle")
        assert selector.select(0.0003) == []
        peer.send(b"x")
        events = selector.select(0.0003)
        assert [(key.data, mask) for key, mask in events] == [("ready", selectors.EVENT_READ)]
        # A ready socket ends a long wait at once, as epoll's own would.
        assert [key.data for key, _ in selector.select(TIMEOUT_S)] == ["ready"]
    finally:
        selector.close()
        for sock in (ready_sock, peer, idle_sock, idle_peer):
            sock.close()


def test_the_loop_runs_sub_millisecond_timers_and_io() -> None:
    """chatroom-server's loop: a 0.2 ms timer fires, and a socket is read to its end."""
    loop = eventloop.new_event_loop()
    assert isinstance(loop, asyncio.SelectorEventLoop)

    async def main() -> bytes:
        fired = asyncio.Event()
        asyncio.get_running_loop().call_later(0.0002, fired.set)
        async with asyncio.timeout(TIMEOUT_S):
            await fired.wait()
        ours, theirs = socket.socketpair()
        with theirs:
            theirs.sendall(b"hi")
        reader, writer = await asyncio.open_connection(sock=ours)
        async with asyncio.timeout(TIMEOUT_S):
            data = await reader.read()
        writer.close()
        return data

    try:
        assert loop.run_until_complete(main()) == b"hi"
    finally:
        loop.close()


def test_only_short_waits_take_the_exact_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """A wait under EXACT_WAIT_BELOW_S is spent in select() on the epoll descriptor
    (which counts microseconds); a longer one is left to epoll, and so is a poll."""
    waits: list[tuple[list[int], float]] = []
    real_select = eventloop.select.select

    def spy(rlist: list[int], wlist: list[int], xlist: list[int], timeout: float) -> object:
        waits.append((rlist, timeout))
        return real_select(rlist, wlist, xlist, timeout)

    monkeypatch.setattr(eventloop.select, "select", spy)
    selector = eventloop.PreciseEpollSelector()
    try:
        selector.select(0.0003)
        selector.select(0)
        selector.select(eventloop.EXACT_WAIT_BELOW_S * 2)
        assert waits == [([selector.fileno()], 0.0003)]
    finally:
        selector.close()
