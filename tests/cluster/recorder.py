"""A chat client for tests that records every frame and resumes as the real clients do."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import Callable, Sequence
from typing import Any

from conftest import TIMEOUT_S

from chatroom.framing import FrameDecoder

from .checker import ClientRecord, ConnectionRecord, is_event

__all__ = ["Address", "ConnectionLost", "RecordingClient", "Refused", "text_is"]

Address = tuple[str, int]
# Servers send welcomes with up to a hundred long messages: as the real client allows.
_MAX_FRAME_BYTES = 16 * 1024 * 1024
_READ_CHUNK_BYTES = 64 * 1024
# Between hellos refused with name_taken while a node still holds our old session.
_NAME_TAKEN_RETRY_S = 0.05


def text_is(text: str) -> Callable[[dict[str, Any]], bool]:
    """A :meth:`RecordingClient.wait_for` match: a message or dm with this text."""
    return lambda frame: frame.get("type") in ("message", "dm") and frame.get("text") == text


class ConnectionLost(Exception):
    """The connection ended while waiting for an answer."""


class Refused(Exception):
    """The server answered a request with an error frame; ``frame`` is that error."""

    def __init__(self, frame: dict[str, Any]) -> None:
        super().__init__(f"{frame.get('code')}: {frame.get('message')}")
        self.frame = frame


class _Connection:
    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, record: ConnectionRecord
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.record = record
        self.task: asyncio.Task[None] | None = None
        self.closed = False


class RecordingClient:
    """Talks NDJSON to one node at a time and keeps everything it received.

    Resumes like chatroom's own clients: the lobby and private messages from the latest
    event id seen there (hello's ``resume_after``), every other room from its own latest
    id (``join`` with ``resume_after``), and after the rooms are back it sends again,
    with the same nonce, each message not yet acknowledged (its echo not received,
    live or in a replay).

    Args:
        name: the name to say hello with.
        addresses: where the nodes are, or a function giving them now (nodes that
            restart get new ports); :meth:`reconnect` goes to the next one.
    """

    def __init__(
        self, name: str, addresses: Sequence[Address] | Callable[[], Sequence[Address]]
    ) -> None:
        self.name = name
        self.me = name
        self._addresses = addresses
        self._next = 0
        self.connections: list[ConnectionRecord] = []
        #: (connection number from 1, frame) for everything received, in order.
        self.received: list[tuple[int, dict[str, Any]]] = []
        #: Rooms to be in (casefolded -> as spelled), the lobby excluded.
        self.rooms: dict[str, str] = {}
        self.lobby = "lobby"
        self.hello_cursor: int | None = None
        #: The last welcome's ``session`` (cluster mode), sent back in the next hello.
        self.session: str | None = None
        self.room_cursors: dict[str, int] = {}
        #: Every say/dm sent, by nonce, and which are acknowledged.
        self.sent: dict[str, dict[str, Any]] = {}
        self.acked: set[str] = set()
        self.resent: list[str] = []
        self._prefix = secrets.token_hex(4)
        self._nonces = 0
        self._conn: _Connection | None = None
        self._readers: list[asyncio.Task[None]] = []
        self._changed = asyncio.Event()

    # ------------------------------------------------------------------ connecting

    def addresses(self) -> list[Address]:
        found = self._addresses() if callable(self._addresses) else self._addresses
        return list(found)

    async def connect(
        self, timeout_s: float = TIMEOUT_S * 2, attempt_s: float = TIMEOUT_S
    ) -> dict[str, Any]:
        """Connect to the first address that answers, from the next one on; say hello
        (resuming when this client had a welcome before), rejoin the rooms, send again
        what is unacknowledged. Returns the welcome.

        An address that refuses the connection, closes it, or has not let us in after
        ``attempt_s`` (a frozen node accepts connections and answers nothing) is left
        for the next one.

        Raises:
            TimeoutError: no node let us in within ``timeout_s``.
            Refused: a hello refused otherwise than with ``name_taken``.
        """
        async with asyncio.timeout(timeout_s):
            while True:
                addresses = self.addresses()
                address = addresses[self._next % len(addresses)]
                try:
                    # Only this attempt's own timeout is caught here: the outer one
                    # surfaces as TimeoutError outside this block.
                    async with asyncio.timeout(attempt_s):
                        welcome = await self._hello(address)
                    break
                except (OSError, ConnectionLost, TimeoutError):
                    self.drop()
                    self._next += 1
        for key, room in list(self.rooms.items()):
            await self._join(room, self.room_cursors.get(key))
        for nonce, request in list(self.sent.items()):
            if nonce not in self.acked and self._can_send(request):
                self.resent.append(nonce)
                await self._send(request)
        return welcome

    @property
    def connected(self) -> bool:
        """Whether the current connection is still open (as far as this end knows)."""
        return self._conn is not None and not self._conn.closed

    async def reconnect(self, timeout_s: float = TIMEOUT_S * 2) -> dict[str, Any]:
        """Drop the current connection (if any) and :meth:`connect` to the next address."""
        self.drop()
        self._next += 1
        return await self.connect(timeout_s)

    def _can_send(self, request: dict[str, Any]) -> bool:
        room = request.get("room")
        return room is None or room.casefold() in (self.lobby.casefold(), *self.rooms)

    async def _hello(self, address: Address) -> dict[str, Any]:
        reader, writer = await asyncio.open_connection(*address)
        record = ConnectionRecord(f"{address[0]}:{address[1]}", self.hello_cursor)
        self.connections.append(record)
        conn = _Connection(reader, writer, record)
        self._conn = conn
        conn.task = asyncio.create_task(self._read(conn, len(self.connections)))
        self._readers.append(conn.task)
        hello: dict[str, Any] = {"type": "hello", "protocol": 1, "name": self.name}
        if self.hello_cursor is not None:
            hello["resume_after"] = self.hello_cursor
        if self.session is not None:
            # Any node then ends our old session at once, as the real clients do.
            hello["session"] = self.session
        # The node may still have our old session (it has not noticed the drop): wait
        # for it to let go, as a person retrying would.
        while True:
            mark = len(self.received)
            await self._send(hello)
            answer = await self._answer(lambda f: f.get("type") in ("welcome", "error"), mark)
            if answer.get("type") == "welcome":
                break
            if answer.get("code") == "unavailable":
                # The node cannot serve now (cut off, rejoining): try the next one.
                raise ConnectionLost(f"{self.name}: {answer.get('message')}")
            if answer.get("code") != "name_taken":
                raise Refused(answer)
            await asyncio.sleep(_NAME_TAKEN_RETRY_S)
        self.me = answer["name"]
        self.session = answer.get("session")
        self.lobby = answer.get("room", "lobby")
        await self._answer(self._own_join(self.lobby), mark)
        return answer

    def drop(self) -> None:
        """Lose the connection without a word, as a network failure would."""
        conn = self._conn
        if conn is not None and not conn.closed:
            conn.writer.transport.abort()
            conn.closed = True

    async def close(self) -> None:
        """Say bye and wait for the node to close the connection."""
        conn = self._conn
        if conn is None or conn.closed:
            return
        with contextlib.suppress(OSError):
            await self._send({"type": "bye"})
            async with asyncio.timeout(TIMEOUT_S):
                assert conn.task is not None
                await asyncio.shield(conn.task)
        self.drop()

    async def aclose(self) -> None:
        """Tear down: nothing left running, whatever state the connection is in."""
        self.drop()
        for task in self._readers:
            task.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)

    # ------------------------------------------------------------------ requests

    async def _send(self, frame: dict[str, Any]) -> None:
        conn = self._conn
        if conn is None or conn.closed:
            raise ConnectionLost("not connected")
        conn.writer.write(json.dumps(frame, separators=(",", ":")).encode() + b"\n")
        await conn.writer.drain()

    def _nonce(self) -> str:
        self._nonces += 1
        return f"{self._prefix}-{self._nonces}"

    async def say(self, room: str, text: str) -> str:
        """Send a message with a fresh nonce; returns the nonce (see :meth:`wait_acked`)."""
        nonce = self._nonce()
        request = {"type": "say", "room": room, "text": text, "nonce": nonce}
        self.sent[nonce] = request
        await self._send(request)
        return nonce

    async def dm(self, to: str, text: str) -> str:
        """Send a private message with a fresh nonce; returns the nonce."""
        nonce = self._nonce()
        request = {"type": "dm", "to": to, "text": text, "nonce": nonce}
        self.sent[nonce] = request
        await self._send(request)
        return nonce

    async def join(self, room: str) -> dict[str, Any]:
        """Join ``room`` and wait for its ``joined`` and our own join; returns ``joined``."""
        self.rooms[room.casefold()] = room
        return await self._join(room, None)

    async def _join(self, room: str, resume_after: int | None) -> dict[str, Any]:
        request: dict[str, Any] = {"type": "join", "room": room}
        if resume_after is not None:
            request["resume_after"] = resume_after
        assert self._conn is not None
        self._conn.record.joins.append((room, resume_after))
        mark = len(self.received)
        await self._send(request)
        key = room.casefold()
        joined = await self._answer(
            lambda f: (
                f.get("type") == "error"
                or (f.get("type") == "joined" and str(f.get("room")).casefold() == key)
            ),
            mark,
        )
        if joined.get("type") == "error":
            raise Refused(joined)
        await self._answer(self._own_join(room), mark)
        return joined

    async def part(self, room: str) -> dict[str, Any]:
        """Leave ``room``; returns our own ``leave`` (reason ``part``)."""
        self.rooms.pop(room.casefold(), None)
        mark = len(self.received)
        await self._send({"type": "part", "room": room})
        return await self._answer(
            lambda f: (
                f.get("type") == "error"
                or (
                    f.get("type") == "leave"
                    and f.get("name") == self.me
                    and str(f.get("room")).casefold() == room.casefold()
                )
            ),
            mark,
        )

    async def request(
        self, frame: dict[str, Any], answer: Callable[[dict[str, Any]], bool]
    ) -> dict[str, Any]:
        """Send any request (``who``, ``rooms``, ``nick``, ``topic``...) and return the
        first frame after it on this connection that matches ``answer`` or is an error."""
        mark = len(self.received)
        await self._send(frame)
        return await self._answer(lambda f: f.get("type") == "error" or answer(f), mark)

    def _own_join(self, room: str) -> Callable[[dict[str, Any]], bool]:
        key = room.casefold()
        return lambda f: (
            f.get("type") == "join"
            and f.get("name") == self.me
            and str(f.get("room")).casefold() == key
        )

    async def _answer(
        self, match: Callable[[dict[str, Any]], bool], since: int, timeout_s: float = TIMEOUT_S
    ) -> dict[str, Any]:
        """The first frame on the current connection from ``since`` on that matches.

        Raises:
            ConnectionLost: the connection ended first.
        """
        conn = self._conn
        number = len(self.connections)
        async with asyncio.timeout(timeout_s):
            while True:
                for index in range(since, len(self.received)):
                    on, frame = self.received[index]
                    if on == number and match(frame):
                        return frame
                since = len(self.received)
                if conn is None or conn.closed:
                    raise ConnectionLost(f"{self.name}: connection {number} ended")
                await self._changed.wait()

    # ------------------------------------------------------------------ waiting

    async def wait_for(
        self,
        match: Callable[[dict[str, Any]], bool],
        timeout_s: float = TIMEOUT_S,
        since: int = 0,
    ) -> dict[str, Any]:
        """The first frame received (from index ``since`` of :attr:`received`, on any
        connection) that matches; waits for one to come."""
        async with asyncio.timeout(timeout_s):
            while True:
                for index in range(since, len(self.received)):
                    if match(self.received[index][1]):
                        return self.received[index][1]
                since = len(self.received)
                await self._changed.wait()

    async def wait_until(self, condition: Callable[[], bool], timeout_s: float = TIMEOUT_S) -> None:
        """Wait until ``condition()`` holds; it is tried again on every frame received."""
        async with asyncio.timeout(timeout_s):
            while not condition():
                await self._changed.wait()

    async def wait_acked(self, *nonces: str, timeout_s: float = TIMEOUT_S) -> None:
        await self.wait_until(lambda: self.acked.issuperset(nonces), timeout_s)

    def texts(self, room: str | None = None) -> list[str]:
        """Texts of the messages (of ``room``, or private messages with ``room=""``)
        received live or replayed, in order."""
        wanted = None if room is None else room.casefold()
        return [
            frame["text"]
            for _, frame in self.received
            if frame.get("type") in ("message", "dm")
            and (wanted is None or str(frame.get("room", "")).casefold() == wanted)
        ]

    def record(self) -> ClientRecord:
        """What the checker needs."""
        return ClientRecord(self.name, self.connections, set(self.acked))

    # ------------------------------------------------------------------ reading

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _read(self, conn: _Connection, number: int) -> None:
        decoder = FrameDecoder(_MAX_FRAME_BYTES)
        try:
            while data := await conn.reader.read(_READ_CHUNK_BYTES):
                decoder.receive_data(data)
                while (frame := decoder.next_frame()) is not None:
                    conn.record.frames.append(frame)
                    self.received.append((number, frame))
                    self._take(frame)
                    if frame.get("type") == "ping" and not conn.closed:
                        pong = {"type": "pong", "token": frame.get("token", "")}
                        conn.writer.write(json.dumps(pong).encode() + b"\n")
                    self._notify()
        except OSError:
            pass
        finally:
            conn.closed = True
            self._notify()

    def _take(self, frame: dict[str, Any]) -> None:
        """Follow what the frame means for cursors, acknowledgements and our name."""
        kind = frame.get("type")
        if kind in ("welcome", "joined") and not frame.get("resumed"):
            for event in frame.get("history", ()):
                if isinstance(event, dict):
                    self._event(event)
        elif is_event(frame):
            self._event(frame)

    def _event(self, event: dict[str, Any]) -> None:
        nonce = event.get("nonce")
        if nonce in self.sent:
            self.acked.add(nonce)
        if event.get("type") == "nick" and event.get("old") == self.me:
            self.me = str(event["new"])
        room = str(event.get("room", "")).casefold()
        # The latest, not the highest, as chatroom's own client does.
        if event.get("type") == "dm" or room == self.lobby.casefold():
            self.hello_cursor = event["id"]
        elif room in self.rooms:
            self.room_cursors[room] = event["id"]
