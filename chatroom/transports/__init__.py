"""Transports: each carries sessions over one wire format, and only translates.

A transport reads bytes, decodes its wire format into client frames, feeds them to its
connection's :class:`~chatroom.session.Session`, and writes what it is given: replies
from the session, and events from the hub through its outbox. Limits live in the session
and in :mod:`chatroom.limits`, so they hold the same whatever the transport.

- :mod:`chatroom.transports.ndjson`: newline-delimited JSON over TCP (or TLS).
- :mod:`chatroom.transports.websocket`: the same frames over a WebSocket, for browsers.
- :mod:`chatroom.transports.irc`: the IRC client protocol, on a port of its own.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["Connection"]


class Connection(Protocol):
    """What the listener needs of each open connection, whatever its transport."""

    def shutdown(self) -> None:
        """The server is stopping: read nothing more, close after what is queued."""

    def abort(self) -> None:
        """Close at once, dropping what is queued."""
