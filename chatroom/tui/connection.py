"""The connection worker's loop: connect, say hello, post frames as messages, reconnect.

Given several servers (nodes of one cluster), it tries them in order and, after a loss,
goes straight on to the next one: only when every server failed in a round does it
back off. Event ids are the cluster's, so resuming on another node is exact.

The app runs :meth:`Connector.run` in its one connection worker; everything the loop
learns reaches the app as a message (:mod:`chatroom.tui.messages`), never as a call.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from textual import Logger
from textual.message import Message

from chatroom import protocol
from chatroom.address import format_address
from chatroom.client import ClientConnection, ConnectError, ConnectionClosed, ServerError
from chatroom.framing import ErrorCode
from chatroom.tui.messages import (
    Connected,
    Connecting,
    Disconnected,
    FrameReceived,
    JoinRefused,
    RetryScheduled,
)
from chatroom.tui.model import ChatModel
from chatroom.tui.widgets import PromptScreen

__all__ = [
    "JOIN_TIMEOUT_S",
    "RECONNECT_INITIAL_S",
    "RECONNECT_MAX_S",
    "ConnectionHost",
    "Connector",
    "backoff_delay",
]

# Reconnect pacing: 1 s doubling to 30 s, as most chat and MQTT clients do, with jitter so
# that everyone dropped by one server restart does not come back in the same instant.
RECONNECT_INITIAL_S = 1.0
RECONNECT_MAX_S = 30.0
RECONNECT_JITTER = 0.2
# A server that accepts the socket but never answers the hello is as good as gone.
JOIN_TIMEOUT_S = 15.0


def backoff_delay(
    failures: int,
    *,
    initial_s: float = RECONNECT_INITIAL_S,
    max_s: float = RECONNECT_MAX_S,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before attempt number ``failures + 1`` (``failures`` >= 1).

    ``initial_s`` doubled per failure, capped at ``max_s``, then moved by up to
    ±:data:`RECONNECT_JITTER` of itself (never above ``max_s``).
    """
    base = min(max_s, initial_s * 2.0 ** max(0, failures - 1))
    jittered = base * (1 + RECONNECT_JITTER * (2 * rand() - 1))
    return max(0.0, min(max_s, jittered))


@dataclass
class _Outcome:
    """How one connection attempt ended, and what the worker does next."""

    reason: str
    joined: bool = False
    retry_at_once: bool = False
    wait_for_user: bool = False
    show: bool = True


class ConnectionHost(Protocol):
    """What the loop needs of the app: where to connect, who to be, where to post."""

    ssl_context: ssl.SSLContext | None
    chat_name: str | None
    password: str | None
    account_password: str | None
    reconnect_initial_s: float

    # The servers to try, the preferred one first.
    @property
    def addresses(self) -> Sequence[tuple[str, int]]: ...

    @property
    def model(self) -> ChatModel: ...
    @property
    def log(self) -> Logger: ...
    def post_message(self, message: Message) -> bool: ...
    async def prompt(self, screen: PromptScreen) -> str | None: ...


class Connector:
    """Connects, joins and reads for the app; on a loss, backs off and does it again."""

    def __init__(self, app: ConnectionHost) -> None:
        self.app = app
        #: Set to skip the wait before the next attempt (Ctrl+R).
        self.retry_now = asyncio.Event()
        #: Set when the app quits: the loop ends instead of connecting again.
        self.quitting = False
        #: Which of ``app.addresses`` the next (or current) attempt is for.
        self.index = 0

    @property
    def where(self) -> str:
        """The server of the current attempt, as ``HOST:PORT``."""
        return format_address(*self.app.addresses[self.index])

    async def run(self) -> None:
        """Connect, join, read frames into messages; on loss, back off and do it again."""
        failures = 0
        attempt = 1
        # Servers not yet found failing in this round: while one is left, the next
        # attempt goes to it at once; the backoff waits only after a whole round failed.
        untried = len(self.app.addresses)
        while not self.quitting:
            self.retry_now.clear()
            try:
                outcome = await self._session(attempt)
            except Exception as exc:  # a bug here must cost a reconnect, never the app
                self.app.log.error("connection worker failed", exc)
                outcome = _Outcome(f"internal error: {exc!r}")
            if self.quitting:
                return
            if outcome.joined:
                failures = 0
                untried = len(self.app.addresses)
            # The server answered but needs something of the user, or asked us to join
            # again: the same server, since another node of the cluster would say the same.
            stay = outcome.retry_at_once or outcome.wait_for_user
            moving = False
            if not stay:
                untried -= 1
                self.index = (self.index + 1) % len(self.app.addresses)
                moving = untried > 0
            if outcome.show:
                self.app.post_message(
                    Disconnected(
                        outcome.reason,
                        was_joined=outcome.joined,
                        next_where=self.where if moving else None,
                    )
                )
            attempt += 1
            if outcome.retry_at_once or moving:
                continue
            if outcome.wait_for_user:
                self.app.post_message(RetryScheduled(None, outcome.reason))
                await self.retry_now.wait()
                continue
            untried = len(self.app.addresses)
            failures += 1
            delay = backoff_delay(failures, initial_s=self.app.reconnect_initial_s)
            self.app.post_message(RetryScheduled(delay, outcome.reason))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self.retry_now.wait()

    async def _session(self, attempt: int) -> _Outcome:
        """One connection, from connect to loss."""
        if self.app.chat_name is None:
            name = await self.app.prompt(PromptScreen("Your name in the chat", placeholder="name"))
            if name is None:
                return _Outcome(
                    "no name chosen; Ctrl+R to choose one", wait_for_user=True, show=False
                )
            self.app.chat_name = name
        host, port = self.app.addresses[self.index]
        self.app.post_message(Connecting(attempt, (host, port)))
        try:
            conn = await ClientConnection.connect(host, port, ssl_context=self.app.ssl_context)
        except ConnectError as exc:
            return _Outcome(str(exc))
        try:
            joined = await self._join(conn)
            if isinstance(joined, _Outcome):
                return joined
            self.app.post_message(Connected(conn, joined))
            while True:
                try:
                    frame = await conn.recv()
                except ConnectionClosed as exc:
                    return _Outcome(str(exc), joined=True)
                self.app.post_message(FrameReceived(frame))
        finally:
            # Cancelled at exit, or any other way out: say goodbye if still open.
            await conn.close()

    async def _account_password(self, wrong: bool) -> _Outcome:
        """The name is registered: ask for its account's password (or another name)."""
        password = await self.app.prompt(
            PromptScreen(
                "Account password",
                "wrong password; try again" if wrong else "this name is registered",
                password=True,
            )
        )
        if password is None:
            self.app.account_password = None
            return _Outcome(
                "the name is registered; Ctrl+R to log in, or choose another name",
                wait_for_user=True,
                show=False,
            )
        self.app.account_password = password
        return _Outcome("logging in", retry_at_once=True, show=False)

    async def _join(self, conn: ClientConnection) -> protocol.Welcome | _Outcome:
        """Send hello until the server welcomes us, asking for a new name or a password."""
        prompted = False
        # After a loss, ask for what was missed: the server replays it without gaps or
        # repeats (an extension; a server without it sends the usual history instead).
        resume_after = self.app.model.resume_after()
        while True:
            assert self.app.chat_name is not None
            try:
                async with asyncio.timeout(JOIN_TIMEOUT_S):
                    # Lazy members: in a big room a join or leave of each of hundreds
                    # of people is noise here and a quadratic cost on the server.
                    return await conn.hello(
                        self.app.chat_name,
                        self.app.password,
                        resume_after=resume_after,
                        lazy_members=True,
                        account_password=self.app.account_password,
                        session=self.app.model.session_token,
                    )
            except TimeoutError:
                return _Outcome(f"no welcome from {self.where} in {JOIN_TIMEOUT_S:g} s")
            except ConnectionClosed as exc:
                # After a slow answer to a prompt the server's handshake timer may have
                # closed the socket; that is no failure, just connect again.
                return _Outcome(str(exc), retry_at_once=prompted, show=not prompted)
            except ServerError as exc:
                if exc.code == ErrorCode.HANDSHAKE_TIMEOUT and prompted:
                    return _Outcome("joining again", retry_at_once=True, show=False)
                self.app.post_message(JoinRefused(exc.code, exc.message or exc.code))
                if exc.code == ErrorCode.NAME_REGISTERED or (
                    exc.code == ErrorCode.AUTH_FAILED and self.app.account_password is not None
                ):
                    return await self._account_password(exc.code == ErrorCode.AUTH_FAILED)
                if exc.code == ErrorCode.AUTH_FAILED:
                    password = await self.app.prompt(
                        PromptScreen(
                            "Password",
                            exc.message or "this server needs a password",
                            password=True,
                        )
                    )
                    if password is None:
                        return _Outcome(
                            "a password is needed; Ctrl+R to enter it",
                            wait_for_user=True,
                            show=False,
                        )
                    self.app.password = password
                    return _Outcome("joining with the password", retry_at_once=True, show=False)
                if exc.code in (ErrorCode.NAME_TAKEN, ErrorCode.INVALID_NAME):
                    name = await self.app.prompt(
                        PromptScreen(
                            "Choose another name", exc.message or exc.code, value=self.app.chat_name
                        )
                    )
                    if name is None:
                        return _Outcome(
                            "no name chosen; Ctrl+R to choose one", wait_for_user=True, show=False
                        )
                    self.app.chat_name = name
                    prompted = True
                    continue
                if exc.code == ErrorCode.UNSUPPORTED_PROTOCOL:
                    return _Outcome(f"the server refused: {exc}", wait_for_user=True)
                return _Outcome(f"the server refused: {exc}")
