"""The listener: binds, accepts, counts connections against the caps, shuts down.

Chat state lives in :class:`~chatroom.hub.Hub`, each member's protocol state in its
:class:`~chatroom.session.Session`, and the bytes of each wire format in
:mod:`chatroom.transports`. This module owns the listening sockets, the registry of open
connections and the order of a clean shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Iterable, Set
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chatroom import __version__
from chatroom.accounts import AccountStore
from chatroom.authority import Authority
from chatroom.framing import MAX_FRAME_BYTES, ErrorCode
from chatroom.history import HistoryStore
from chatroom.hub import DEFAULT_HISTORY_EVENTS, LAZY_MEMBERS_ABOVE, EventSink, Hub
from chatroom.limits import (
    FLOOD_BURST,
    FLOOD_RATE_PER_S,
    MAX_CONNECTIONS,
    MAX_CONNECTIONS_PER_IP,
    MAX_SENDQ_BYTES,
    SOFT_SENDQ_BYTES,
    SOFT_SENDQ_GRACE_S,
    ConnectionCounter,
)
from chatroom.names import load_look_alikes
from chatroom.protocol import MAX_TEXT_CHARS, Error
from chatroom.session import (
    HANDSHAKE_TIMEOUT_S,
    PING_INTERVAL_S,
    PING_TIMEOUT_S,
    SessionLimits,
)
from chatroom.transports import Connection
from chatroom.transports.base import SessionCarrier
from chatroom.transports.http import StaticFiles
from chatroom.transports.ndjson import READ_CHUNK_BYTES, NdjsonConnection, StreamOutbox

if TYPE_CHECKING:
    from chatroom.cluster.engine import Engine
    from chatroom.metrics import Ops

__all__ = [
    "FLOOD_BURST",
    "FLOOD_RATE_PER_S",
    "HANDSHAKE_TIMEOUT_S",
    "MAX_CONNECTIONS",
    "MAX_CONNECTIONS_PER_IP",
    "MAX_SENDQ_BYTES",
    "PING_INTERVAL_S",
    "PING_TIMEOUT_S",
    "READ_CHUNK_BYTES",
    "ChatServer",
    "ServerConfig",
    "StreamOutbox",
    "display_addresses",
]

log = logging.getLogger(__name__)

# How long shutdown waits for each client's buffered bytes to drain before aborting.
SHUTDOWN_DRAIN_S = 2.0
# Password hashes at once: each holds Argon2's 19 MiB and a core for tens of ms, so a
# burst of logins queues here instead of taking the machine's memory and cores.
HASH_WORKERS = 2


@dataclass
class ServerConfig(SessionLimits):
    """Everything a server needs; every field has the documented default. The
    session's limits (rate, deadlines, password) are inherited from SessionLimits."""

    host: str = "0.0.0.0"
    port: int = 5000
    max_frame_bytes: int = MAX_FRAME_BYTES
    max_text_chars: int = MAX_TEXT_CHARS
    max_sendq_bytes: int = MAX_SENDQ_BYTES
    soft_sendq_bytes: int = SOFT_SENDQ_BYTES
    soft_sendq_grace_s: float = SOFT_SENDQ_GRACE_S
    max_connections: int = MAX_CONNECTIONS
    max_per_ip: int = MAX_CONNECTIONS_PER_IP
    # Loopback peers (local bots, an SSH tunnel's end) share one address by nature, so
    # the per-address limit skips them unless told otherwise.
    exempt_loopback: bool = True
    history_events: int = DEFAULT_HISTORY_EVENTS
    lazy_members_above: int = LAZY_MEMBERS_ABOVE
    history_store: HistoryStore | None = None
    # Without a store nothing remembers the last id across restarts; the CLI starts
    # from the clock instead, so ids never repeat.
    first_event_id: int = 1
    ssl_context: ssl.SSLContext | None = None
    # The web app and its WebSocket on the same port (HTTP is told apart by its first
    # bytes), and the page origins besides the server's own that may open a WebSocket.
    web: bool = True
    allow_origins: list[str] = field(default_factory=list)
    sinks: list[EventSink] = field(default_factory=list)
    # /metrics and /healthz on the same port, to loopback and these networks (CIDR).
    metrics: bool = True
    metrics_allow: list[str] = field(default_factory=list)
    # The IRC gateway's own listener (None: off), TLS when ssl_context is set, and the
    # server's name in IRC numerics (None: the machine's host name).
    irc_host: str = "0.0.0.0"
    irc_port: int | None = None
    irc_server_name: str | None = None
    # Accounts, roles and moderation; None: names are first come, first served.
    accounts: AccountStore | None = None
    # Cluster mode: redis://HOST:PORT/DB shared by every node (None: a single server),
    # this node's id among them, and its lease's life in seconds.
    cluster_url: str | None = None
    node_id: str = "node"
    cluster_lease_s: float = 5.0


class ChatServer:
    """A running chat server: call :meth:`start`, then :meth:`close` to shut down.

    Args:
        config: limits and options.
        hub: the chat state; by default a fresh :class:`Hub` recording to
            ``config.sinks``.
    """

    def __init__(self, config: ServerConfig | None = None, hub: Hub | None = None) -> None:
        self.config = config = config or ServerConfig()
        self.engine: Engine | None = None
        if hub is None and config.cluster_url is not None:
            hub = self._cluster_hub(config)
        self.hub = hub or Hub(**_hub_options(config))
        self.session_limits: SessionLimits = config
        if config.accounts is not None:
            Authority(self.hub, config.accounts, auth_failure_delay_s=config.auth_failure_delay_s)
        self.jobs = ThreadPoolExecutor(HASH_WORKERS, thread_name_prefix="chatroom-hash")
        self._server: asyncio.Server | None = None
        self._irc_server: asyncio.Server | None = None
        self._connections: set[Connection] = set()
        self._counter = ConnectionCounter(
            config.max_connections, config.max_per_ip, exempt_loopback=config.exempt_loopback
        )
        self._closed = asyncio.Event()
        self._drained = asyncio.Event()
        self.static_files = StaticFiles()
        self.ops: Ops | None = None
        if config.metrics:
            # Imported here: a server without metrics never loads prometheus-client.
            from chatroom.metrics import Ops

            self.ops = Ops(self, config.metrics_allow)

    def _cluster_hub(self, config: ServerConfig) -> Hub:
        # Imported here: a single server never loads redis.
        from chatroom.cluster.engine import Engine
        from chatroom.cluster.hub import ClusterHub

        hub = ClusterHub(node_id=config.node_id, **_hub_options(config))
        assert config.cluster_url is not None
        self.engine = Engine(
            config.cluster_url, config.node_id, hub, lease_s=config.cluster_lease_s
        )
        return hub

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """(host, port) of every listening socket, once started."""
        if self._server is None:
            return []
        return [sock.getsockname()[:2] for sock in self._server.sockets]

    @property
    def irc_addresses(self) -> list[tuple[str, int]]:
        """(host, port) of every IRC listening socket, once started with IRC on."""
        if self._irc_server is None:
            return []
        return [sock.getsockname()[:2] for sock in self._irc_server.sockets]

    @property
    def connection_count(self) -> int:
        """Open connections, joined or not."""
        return len(self._connections)

    @property
    def connections(self) -> Set[Connection]:
        """The open connections (a live view: copy it before closing any)."""
        return self._connections

    @property
    def serving(self) -> bool:
        """Whether the listener is accepting connections."""
        return self._server is not None and self._server.is_serving() and not self.closing

    def apply_limits(self) -> None:
        """Make limits changed in ``config`` (a reload) hold from now on: for new
        connections, and for open ones too (their flood pace and SendQ bounds)."""
        config = self.config
        self._counter.max_total = config.max_connections
        self._counter.max_per_ip = config.max_per_ip
        self.hub.max_text_chars = config.max_text_chars
        for conn in self._connections:
            if isinstance(conn, SessionCarrier):
                conn.refresh_limits()

    @property
    def closing(self) -> bool:
        """Whether shutdown has begun: new connections are aborted."""
        return self._closed.is_set()

    async def start(self) -> None:
        """Bind and listen. Raises ``OSError`` when the address is taken or invalid, and
        in cluster mode ``ClusterUnavailable`` when Redis cannot be reached."""
        load_look_alikes()
        if self.engine is not None:
            await self.engine.start()
        host: str | None = self.config.host
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: NdjsonConnection(self),
            host=host or None,
            port=self.config.port,
            ssl=self.config.ssl_context,
            reuse_address=True,
            # The TLS handshake counts against the same deadline as the hello.
            ssl_handshake_timeout=self.config.handshake_timeout_s
            if self.config.ssl_context
            else None,
        )
        if self.ops is not None:
            self.ops.start()
        if self.config.irc_port is not None:
            try:
                await self._start_irc()
            except OSError:
                self._server.close()
                raise

    async def _start_irc(self) -> None:
        # Imported here: a server without the gateway never loads it.
        from chatroom.transports.irc import IrcConnection, server_info

        config = self.config
        if not config.irc_server_name:
            config.irc_server_name = socket.gethostname() or "chatroom"
        info = server_info(config.irc_server_name)
        assert config.irc_port is not None
        self._irc_server = await asyncio.get_running_loop().create_server(
            lambda: IrcConnection(self, info),
            host=config.irc_host or None,
            port=config.irc_port,
            ssl=config.ssl_context,
            reuse_address=True,
            ssl_handshake_timeout=config.handshake_timeout_s if config.ssl_context else None,
        )

    def admit(self, conn: Connection, host: str) -> Error | None:
        """Count a new connection from ``host`` in (None), or say why it is refused:
        the transport sends the error and closes."""
        refusal = self._counter.refusal(host)
        if refusal == "total":
            return Error(
                code=ErrorCode.SERVER_FULL.value, message="the server is full; try again later"
            )
        if refusal == "per_ip":
            return Error(
                code=ErrorCode.TOO_MANY_CONNECTIONS.value,
                message=f"at most {self.config.max_per_ip} connections from one address",
            )
        self._connections.add(conn)
        return None

    def replace(self, old: Connection, new: Connection) -> None:
        """``new`` carries on the connection ``old`` admitted, in its place."""
        self._connections.discard(old)
        self._connections.add(new)

    def forget(self, conn: Connection, host: str) -> None:
        """A connection :meth:`admit` counted in has closed."""
        self._connections.discard(conn)
        self._counter.release(host)
        if self._closed.is_set() and not self._connections:
            self._drained.set()

    async def close(self) -> None:
        """Shut down: every member gets ``leave`` reason ``shutdown``, sinks get the last
        batch, sockets close (aborted after :data:`SHUTDOWN_DRAIN_S`), tasks end."""
        if self._closed.is_set():
            return
        self._closed.set()
        if self.ops is not None:
            self.ops.close()
        if self._server is not None:
            self._server.close()
        if self._irc_server is not None:
            self._irc_server.close()
        if self.engine is not None:
            # The members' leaves go through the cluster, so the other nodes hear of them.
            await self.engine.stop()
        self.hub.shutdown()
        for conn in list(self._connections):
            conn.shutdown()
        await self._wait_drained()
        for conn in list(self._connections):
            conn.abort()
        # An aborted transport reports connection_lost in the next loop iteration.
        await self._wait_drained()
        if self._server is not None:
            await self._server.wait_closed()
        if self._irc_server is not None:
            await self._irc_server.wait_closed()
        self.jobs.shutdown(wait=False, cancel_futures=True)

    async def _wait_drained(self) -> None:
        """Until every connection has closed, for at most SHUTDOWN_DRAIN_S."""
        if self._connections:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(SHUTDOWN_DRAIN_S):
                    await self._drained.wait()

    async def __aenter__(self) -> ChatServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


def _hub_options(config: ServerConfig) -> dict[str, Any]:
    """What a hub is built with from the server's configuration, cluster or not."""
    return {
        "server_name": f"chatroom/{__version__}",
        "sinks": config.sinks,
        "history_events": config.history_events,
        "max_text_chars": config.max_text_chars,
        "store": config.history_store,
        "first_id": config.first_event_id,
        "lazy_members_above": config.lazy_members_above,
    }


def display_addresses(bind_host: str, port: int, interface_hosts: Iterable[str]) -> list[str]:
    """``HOST:PORT`` strings people can paste into ``chatroom-tui`` to reach this server."""
    wildcard = bind_host in ("", "0.0.0.0", "::")
    hosts = list(interface_hosts) if wildcard else [bind_host]
    if bind_host == "0.0.0.0":
        hosts = [host for host in hosts if ":" not in host]
    elif bind_host == "::":
        # asyncio sets IPV6_V6ONLY on the sockets it binds, so "::" serves IPv6 alone.
        hosts = [host for host in hosts if ":" in host]
    return [f"[{host}]:{port}" if ":" in host else f"{host}:{port}" for host in hosts]
