"""Messages the connection worker posts to the app; handlers turn them into widget updates.

Named in the past tense: each one reports something that already happened on the network.
"""

from __future__ import annotations

from textual.message import Message

from chatroom import protocol
from chatroom.address import format_address
from chatroom.client import ClientConnection

__all__ = [
    "Connected",
    "Connecting",
    "Disconnected",
    "FrameReceived",
    "JoinRefused",
    "RetryScheduled",
]


class Connecting(Message):
    """The worker started opening a connection to ``address`` (host, port); ``attempt``
    counts from 1 after a loss."""

    def __init__(self, attempt: int, address: tuple[str, int] | None = None) -> None:
        super().__init__()
        self.attempt = attempt
        self.address = address
        #: ``HOST:PORT`` as people write it ("" when unknown).
        self.where = format_address(*address) if address is not None else ""


class Connected(Message):
    """The server accepted our ``hello``: the connection is live and joined."""

    def __init__(self, connection: ClientConnection, welcome: protocol.Welcome) -> None:
        super().__init__()
        self.connection = connection
        self.welcome = welcome


class FrameReceived(Message):
    """A frame arrived from the server (pings are already answered and never posted)."""

    def __init__(self, frame: protocol.ServerFrame) -> None:
        super().__init__()
        self.frame = frame


class JoinRefused(Message):
    """The server refused our ``hello``; ``code`` is its error code, ``reason`` its words."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__()
        self.code = code
        self.reason = reason


class Disconnected(Message):
    """The connection ended, or could not be made; ``reason`` says why in plain words.

    ``next_where`` is the other server the worker goes on to at once, if there is one.
    """

    def __init__(self, reason: str, *, was_joined: bool, next_where: str | None = None) -> None:
        super().__init__()
        self.reason = reason
        self.was_joined = was_joined
        self.next_where = next_where


class RetryScheduled(Message):
    """The worker will try to connect again after ``delay_s`` (unless retried sooner).

    ``delay_s`` is None when it will not retry by itself (it waits for the user).
    """

    def __init__(self, delay_s: float | None, why: str = "") -> None:
        super().__init__()
        self.delay_s = delay_s
        self.why = why
