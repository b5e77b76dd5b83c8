"""An asyncio client connection: connect, hello, receive frames, send requests. No UI.

The TUI, the plain line mode, the tests and the benchmark all talk to the server through
:class:`ClientConnection`. It answers server pings by itself, so a caller that only reads
events stays connected.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator

from chatroom.framing import ErrorCode, FrameDecoder, ProtocolError
from chatroom.protocol import (
    Bye,
    ClientFrame,
    Error,
    Hello,
    Ping,
    Pong,
    Say,
    ServerFrame,
    Welcome,
    Who,
    encode,
    parse_server_frame,
)

__all__ = [
    "CONNECT_TIMEOUT_S",
    "MAX_SERVER_FRAME_BYTES",
    "ClientConnection",
    "ConnectError",
    "ConnectionClosed",
    "ServerError",
]

# A welcome carries up to a hundred messages of up to 4,000 characters, JSON-escaped:
# a few MiB at worst. The server is trusted more than clients are, but not unboundedly.
MAX_SERVER_FRAME_BYTES = 16 * 1024 * 1024
CONNECT_TIMEOUT_S = 10.0
_READ_CHUNK_BYTES = 64 * 1024


class ConnectError(Exception):
    """The server could not be reached; the message says why in plain words."""


class ConnectionClosed(Exception):
    """The connection ended; the message says how."""


class ServerError(Exception):
    """The server answered a request with an ``error`` frame."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{message} ({code})" if message else code)
        self.code = code
        self.message = message


def describe_connect_error(exc: BaseException, host: str, port: int, *, tls: bool) -> str:
    """A one-line, human explanation of why connecting failed."""
    where = f"{host}:{port}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            f"the server at {where} has a certificate this machine does not trust "
            f"({exc.verify_message}); pass --ca FILE, or --insecure for a self-signed test"
        )
    if isinstance(exc, ssl.SSLError):
        reason = exc.reason or str(exc)
        if "WRONG_VERSION_NUMBER" in str(reason).upper() or "record layer" in str(exc):
            return f"{where} does not speak TLS; try without --tls"
        return f"TLS failed with {where}: {reason}"
    if isinstance(exc, ConnectionRefusedError):
        return f"nothing is listening at {where} (is the server running, and is the port right?)"
    if isinstance(exc, TimeoutError):
        return (
            f"no answer from {where} within {CONNECT_TIMEOUT_S:g} s (firewall, or wrong address?)"
        )
    if isinstance(exc, OSError) and exc.strerror:
        return f"cannot reach {where}: {exc.strerror}"
    return f"cannot reach {where}: {exc}"


class ClientConnection:
    """One connection to a chat server.

    Build it with :meth:`connect`, join with :meth:`hello`, then read with :meth:`recv`
    or :meth:`events` and write with :meth:`send`. After :class:`ConnectionClosed` the
    object is finished.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        max_frame_bytes: int = MAX_SERVER_FRAME_BYTES,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._decoder = FrameDecoder(max_frame_bytes)
        self._closed = False
        self.welcome: Welcome | None = None

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None = None,
        timeout_s: float = CONNECT_TIMEOUT_S,
    ) -> ClientConnection:
        """Open a TCP (or TLS) connection.

        Raises:
            ConnectError: with a one-line reason a person can act on.
        """
        try:
            async with asyncio.timeout(timeout_s):
                reader, writer = await asyncio.open_connection(
                    host,
                    port,
                    ssl=ssl_context,
                    limit=_READ_CHUNK_BYTES,
                    server_hostname=host if ssl_context else None,
                )
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            raise ConnectError(
                describe_connect_error(exc, host, port, tls=ssl_context is not None)
            ) from exc
        return cls(reader, writer)

    @property
    def closed(self) -> bool:
        """True once the connection has ended or been closed."""
        return self._closed

    async def send(self, frame: ClientFrame) -> None:
        """Write one frame.

        Raises:
            ConnectionClosed: the connection is gone.
        """
        if self._closed:
            raise ConnectionClosed("the connection is closed")
        try:
            self._writer.write(encode(frame))
            await self._writer.drain()
        except (ConnectionError, OSError) as exc:
            self._closed = True
            raise ConnectionClosed(f"the connection was lost ({exc})") from exc

    async def hello(
        self,
        name: str,
        password: str | None = None,
        *,
        resume_after: int | None = None,
        lazy_members: bool = False,
        account_password: str | None = None,
        session: str | None = None,
    ) -> Welcome:
        """Join as ``name``. On a refusal the connection stays open for another try.

        With ``resume_after`` (the id of the last event seen before a disconnect) the
        server replays what was missed as ordinary frames after the welcome. With
        ``lazy_members`` big rooms send no joins and leaves of others. ``session``: the
        last welcome's, so that a cluster hands our name back at once.

        Raises:
            ServerError: the server refused (``name_taken``, ``invalid_name``...).
            ConnectionClosed: the server closed instead of answering.
        """
        await self.send(
            Hello(
                name=name,
                password=password,
                resume_after=resume_after,
                lazy_members=lazy_members,
                account_password=account_password,
                session=session,
            )
        )
        while True:
            try:
                frame = await self.recv()
            except ConnectionClosed as exc:
                # A chat server answers every hello, even to refuse it; one that closes
                # silently is most often a TLS server spoken to in plain text.
                if self._writer.get_extra_info("ssl_object") is None:
                    raise ConnectionClosed(
                        f"{exc} without answering hello; if it serves TLS, connect with --tls"
                    ) from exc
                raise
            if isinstance(frame, Welcome):
                self.welcome = frame
                return frame
            if isinstance(frame, Error):
                raise ServerError(frame.code, frame.message)

    async def say(self, text: str, *, nonce: str | None = None) -> None:
        """Send a message to the room; a ``nonce`` comes back in its message event."""
        await self.send(Say(text=text, nonce=nonce))

    async def who(self) -> None:
        """Ask for the member list (the answer arrives as a ``members`` frame)."""
        await self.send(Who())

    async def recv(self) -> ServerFrame:
        """The next frame from the server; pings are answered and not returned.

        Frames of types this client does not know are skipped, as the protocol asks.

        Raises:
            ConnectionClosed: the server closed the connection or it was lost.
        """
        while True:
            try:
                obj = self._decoder.next_frame()
            except ProtocolError as exc:
                if exc.fatal:
                    await self.close(send_bye=False)
                    raise ConnectionClosed(f"the server sent a broken frame: {exc.detail}") from exc
                continue
            if obj is not None:
                try:
                    frame = parse_server_frame(obj)
                except ProtocolError as exc:
                    if exc.code is ErrorCode.UNKNOWN_TYPE:
                        continue  # an extension this client predates
                    continue  # a malformed frame from the server: skip it, keep going
                if isinstance(frame, Ping):
                    with contextlib.suppress(ConnectionClosed):
                        await self.send(Pong(token=frame.token))
                    continue
                return frame
            if self._closed:
                raise ConnectionClosed("the connection is closed")
            try:
                data = await self._reader.read(_READ_CHUNK_BYTES)
            except (ConnectionError, OSError) as exc:
                data = b""
                reason = f"the connection was lost ({exc})"
            else:
                reason = "the server closed the connection"
            if not data:
                self._closed = True
                self._writer.close()
                raise ConnectionClosed(reason)
            self._decoder.receive_data(data)

    async def events(self) -> AsyncIterator[ServerFrame]:
        """Every frame until the connection ends (then the iteration simply stops)."""
        while True:
            try:
                yield await self.recv()
            except ConnectionClosed:
                return

    async def close(self, *, send_bye: bool = True) -> None:
        """Say ``bye`` (unless told not to) and close the socket. Safe to call twice."""
        if not self._closed and send_bye:
            with contextlib.suppress(ConnectionClosed):
                await self.send(Bye())
        self._closed = True
        self._writer.close()
        with contextlib.suppress(ConnectionError, OSError, ssl.SSLError, TimeoutError):
            async with asyncio.timeout(1.0):
                await self._writer.wait_closed()
