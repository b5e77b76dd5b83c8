"""The chat server: an asyncio server, one protocol per connection, limits, shutdown.

Chat state lives in :class:`~chatroom.hub.Hub`; this module owns sockets. Each
connection has one :class:`StreamOutbox`, the only code that writes to its transport,
so frames never interleave.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import logging
import os
import ssl
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, cast

from chatroom import __version__
from chatroom.framing import MAX_FRAME_BYTES, ErrorCode, FrameDecoder, ProtocolError
from chatroom.history import MAX_HISTORY_PAGE, HistoryStore
from chatroom.hub import DEFAULT_HISTORY_EVENTS, LAZY_MEMBERS_ABOVE, EventSink, Hub, Member
from chatroom.names import load_look_alikes
from chatroom.protocol import (
    MAX_TEXT_CHARS,
    PROTOCOL_VERSION,
    Bye,
    DmRequest,
    Error,
    Hello,
    History,
    HistoryRequest,
    JoinRequest,
    LeaveReason,
    Members,
    NickRequest,
    Part,
    Ping,
    Pong,
    Rooms,
    RoomsRequest,
    Say,
    TopicRequest,
    Who,
    encode,
    parse_client_frame,
)
from chatroom.text import inert, truncate

__all__ = ["ChatServer", "ServerConfig", "StreamOutbox"]

log = logging.getLogger(__name__)

# One read takes what the kernel has, up to a frame's worth: fewer wakeups under load,
# and the decoder never holds more than about two frame limits.
READ_CHUNK_BYTES = 64 * 1024
# SendQ bounds as IRC servers set them (ircd-hybrid's default class sendq is 1 MB):
# past the hard bound a reader is dropped at once; above the soft bound for longer than
# the grace period it is dropped too, so a stalled reader cannot sit on 1 MiB forever.
MAX_SENDQ_BYTES = 1024 * 1024
SOFT_SENDQ_BYTES = 256 * 1024
SOFT_SENDQ_GRACE_S = 10.0
# Token bucket per connection, the shape of IRC's flood control (a burst, then a pace).
FLOOD_RATE_PER_S = 5.0
FLOOD_BURST = 10
# Rate-limited frames in a row after which a connection is a flooder and is dropped.
FLOOD_STRIKES = 50
HANDSHAKE_TIMEOUT_S = 10.0
PING_INTERVAL_S = 60.0
PING_TIMEOUT_S = 30.0
MAX_CONNECTIONS = 10_000
MAX_CONNECTIONS_PER_IP = 16
# Slows password guessing to a few tries a second per connection, as sshd's delay does.
AUTH_FAILURE_DELAY_S = 0.5
# How long shutdown waits for each client's buffered bytes to drain before aborting.
SHUTDOWN_DRAIN_S = 2.0
# How long a closed connection's buffered output may take to drain before the socket is
# aborted: a peer that stopped reading would otherwise hold it open for ever, unseen by
# the connection limits (TCP itself never gives up on a zero window).
CLOSE_DRAIN_S = 5.0
# Names and texts in log lines are cut to keep one hostile client from flooding the log.
LOG_TEXT_CHARS = 80


@dataclass
class ServerConfig:
    """Everything a server needs; every field has the documented default."""

    host: str = "0.0.0.0"
    port: int = 5000
    max_frame_bytes: int = MAX_FRAME_BYTES
    max_text_chars: int = MAX_TEXT_CHARS
    max_sendq_bytes: int = MAX_SENDQ_BYTES
    soft_sendq_bytes: int = SOFT_SENDQ_BYTES
    soft_sendq_grace_s: float = SOFT_SENDQ_GRACE_S
    flood_rate: float = FLOOD_RATE_PER_S
    flood_burst: int = FLOOD_BURST
    handshake_timeout_s: float = HANDSHAKE_TIMEOUT_S
    ping_interval_s: float = PING_INTERVAL_S
    ping_timeout_s: float = PING_TIMEOUT_S
    max_connections: int = MAX_CONNECTIONS
    max_per_ip: int = MAX_CONNECTIONS_PER_IP
    # Loopback peers (local bots, an SSH tunnel's end) share one address by nature, so
    # the per-address limit skips them unless told otherwise.
    exempt_loopback: bool = True
    password: str | None = None
    auth_failure_delay_s: float = AUTH_FAILURE_DELAY_S
    history_events: int = DEFAULT_HISTORY_EVENTS
    lazy_members_above: int = LAZY_MEMBERS_ABOVE
    history_store: HistoryStore | None = None
    # Without a store nothing remembers the last id across restarts; the CLI starts
    # from the clock instead, so ids never repeat.
    first_event_id: int = 1
    ssl_context: ssl.SSLContext | None = None
    sinks: list[EventSink] = field(default_factory=list)


class StreamOutbox:
    """A member's outbox: writes to its transport, and enforces its SendQ bound.

    Never awaits: the fan-out loop must not stall on one slow reader. Never raises.
    """

    __slots__ = (
        "_burst",
        "_conn",
        "_fd",
        "_grace_s",
        "_hard_bytes",
        "_over_soft_since",
        "_soft_bytes",
        "_transport",
        "closed",
    )

    def __init__(self, conn: _Connection) -> None:
        self._conn = conn
        assert conn.transport is not None
        self._transport: asyncio.WriteTransport = conn.transport
        self._over_soft_since: float | None = None
        # What is still queued of one big payload sent while the peer had caught up.
        self._burst = 0
        self.closed = False
        # Read once: send() runs for every member on every fan-out, where the attribute
        # hops to reach the config add up.
        config = conn.server.config
        self._soft_bytes = config.soft_sendq_bytes
        self._hard_bytes = config.max_sendq_bytes
        self._grace_s = config.soft_sendq_grace_s
        self._fd = _direct_write_fd(conn.loop, self._transport)

    def send(self, payload: bytes) -> None:
        transport = self._transport
        if self.closed or transport.is_closing():
            # A peer that reset is gone before connection_lost has dropped it. Writing
            # would raise under uvloop (aborting the rest of a fan-out) and make asyncio
            # log a warning per write: thousands for one garbage line after another.
            return
        backlog = transport.get_write_buffer_size()
        if not backlog and self._fd >= 0 and len(payload) <= self._hard_bytes:
            # The fan-out's common case: the peer keeps up, so nothing is queued and no
            # bound applies. Writing the socket ourselves skips the transport's checks,
            # a third of a member's share of a flush. What the kernel does not take
            # goes to the transport, which queues it behind nothing: the order holds.
            self._burst = 0
            self._over_soft_since = None
            try:
                sent = os.write(self._fd, payload)
            except OSError:
                # Full (BlockingIOError): the transport queues it. Reset or broken: the
                # transport's own write meets the same error and closes the connection.
                sent = 0
            if sent == len(payload):
                return
            transport.write(payload[sent:])
            return
        # The bounds judge what the peer has left unread, not the size of what we are
        # about to send: a welcome with a long history, a resume replay or a busy
        # iteration's batch can alone pass either bound. Sent to a peer that had caught
        # up, such a payload is a burst, and the hard bound counts only what piles up on
        # top of what is left of it. (Judged with the payload, 100 long messages made
        # the room unjoinable, and one busy iteration dropped every member at once.)
        self._burst = min(self._burst, backlog)
        if backlog + len(payload) - self._burst > self._hard_bytes:
            if backlog > self._soft_bytes:
                self._conn.drop(LeaveReason.SLOW_CONSUMER)
                return
            self._burst = backlog + len(payload)
        if backlog > self._soft_bytes:
            now = self._conn.loop.time()
            if self._over_soft_since is None:
                self._over_soft_since = now
            elif now - self._over_soft_since > self._grace_s:
                self._conn.drop(LeaveReason.SLOW_CONSUMER)
                return
        elif self._over_soft_since is not None:
            self._over_soft_since = None
        self._transport.write(payload)

    def close(self, reason: LeaveReason) -> None:
        self._conn.drop(reason)


def _direct_write_fd(loop: asyncio.AbstractEventLoop, transport: asyncio.WriteTransport) -> int:
    """The socket's descriptor when :class:`StreamOutbox` may write it while the
    transport has nothing queued, else -1.

    Only asyncio's own selector transport over plain TCP qualifies: it writes at once
    when its buffer is empty and keeps no state about the socket's send side beyond
    that buffer. TLS must go through its transport; uvloop queues inside libuv.
    """
    if not isinstance(loop, asyncio.SelectorEventLoop):
        return -1
    if transport.get_extra_info("sslcontext") is not None:
        return -1
    sock = transport.get_extra_info("socket")
    return -1 if sock is None else int(sock.fileno())


def _password_matches(given: str | None, expected: str) -> bool:
    """Constant time, length included: compare_digest on the passwords themselves would
    return early when their lengths differ."""
    return hmac.compare_digest(
        hashlib.sha256((given or "").encode("utf-8", "surrogatepass")).digest(),
        hashlib.sha256(expected.encode("utf-8", "surrogatepass")).digest(),
    )


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


# Every connection reads into this one buffer: a read is decoded before the loop reads
# anything else, so nothing is ever left in it, and no connection holds a buffer of its
# own while it is idle.
_READ_BUFFER = bytearray(READ_CHUNK_BYTES)
_READ_VIEW = memoryview(_READ_BUFFER)


class _Connection(asyncio.BufferedProtocol):
    """One client connection: its input, handshake, timers and rate limit.

    A protocol rather than a stream and a task: what the loop reads is decoded and
    handled in the same callback, so it joins the flush of that loop iteration, and a
    read costs no task wake-up (several microseconds each, at thousands a second).
    """

    # Slots: ten thousand idle connections each hold one of these.
    __slots__ = (
        "_admitted",
        "_auth_pending",
        "_close_timer",
        "_timer",
        "closing",
        "decoder",
        "last_received",
        "loop",
        "member",
        "outbox",
        "peer",
        "peer_host",
        "ping_sent_at",
        "server",
        "strikes",
        "tokens",
        "tokens_at",
        "transport",
    )

    def __init__(self, server: ChatServer) -> None:
        self.server = server
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.peer_host = "local"
        self.peer = "local"
        self.decoder = FrameDecoder(server.config.max_frame_bytes)
        self.member: Member | None = None
        self.closing = False
        self._admitted = False
        self._auth_pending = False
        now = self.loop.time()
        self.last_received = now
        self.ping_sent_at: float | None = None
        self.tokens = float(server.config.flood_burst)
        self.tokens_at = now
        self.strikes = 0
        self._timer: asyncio.TimerHandle | None = None
        self._close_timer: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------------ lifecycle

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not derive from asyncio's; they have the same methods.
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            self.peer_host = str(peer[0])
            self.peer = f"{self.peer_host}:{peer[1]}"
        self.outbox = StreamOutbox(self)
        if self.server._admit_connection(self):
            self._admitted = True
            self._arm_timer(self.loop.time() + self.server.config.handshake_timeout_s)
        else:
            self.closing = True
            self.outbox.closed = True

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None:
            log.debug("%s connection lost: %s", self.peer, exc)
        self.drop(LeaveReason.DISCONNECTED)
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        if self._admitted:
            self._admitted = False
            self.server._forget_connection(self)

    def get_buffer(self, sizehint: int) -> memoryview:
        # Never more than what completes a frame at the limit: the decoder then holds
        # at most the limit, whatever the peer sends.
        room_left = self.server.config.max_frame_bytes - self.decoder.buffered_bytes
        return _READ_VIEW[: min(READ_CHUNK_BYTES, max(room_left, 1))]

    def buffer_updated(self, nbytes: int) -> None:
        if self.closing:
            return
        self.last_received = self.loop.time()
        self.decoder.receive_data(bytes(_READ_VIEW[:nbytes]))
        self._handle_frames()

    def eof_received(self) -> bool:
        if self.closing:
            return False
        self.decoder.receive_data(b"")
        self._handle_frames()
        if self._auth_pending:
            return True  # the refusal is on its way; it closes the connection
        self.drop(LeaveReason.DISCONNECTED)
        return False

    # ------------------------------------------------------------------ output

    def reply(self, frame: Error | Members | Ping | Pong | History | Rooms) -> None:
        """Send a frame to this connection alone, at once."""
        self.outbox.send(encode(frame))

    def error(self, code: ErrorCode, message: str) -> None:
        self.reply(Error(code=code.value, message=message))

    def drop(self, reason: LeaveReason) -> None:
        """End this connection: tell its rooms why, then close (or abort) the socket."""
        # Before the closing check: a shutdown marks connections closing without dropping
        # them, and their timers must not outlive them.
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.closing:
            return
        self.closing = True
        self.outbox.closed = True
        if self.member is not None:
            self.server.hub.leave(self.member, reason)
            self._log_member("left", reason.value)
        transport = self.transport
        assert transport is not None
        if reason in (LeaveReason.SLOW_CONSUMER, LeaveReason.TIMEOUT):
            # A graceful close waits for the buffer to drain, which a stalled reader
            # never lets happen: drop the bytes and the socket now.
            transport.abort()
        elif not transport.is_closing():
            transport.close()
            # The connection (and its place in the limits) lasts until the socket has
            # closed: within CLOSE_DRAIN_S, or it is aborted.
            self._close_timer = self.loop.call_later(CLOSE_DRAIN_S, transport.abort)

    def _log_member(self, what: str, detail: str = "") -> None:
        if self.member is not None:
            name = truncate(inert(self.member.name), LOG_TEXT_CHARS)
            log.debug("%s %s %s %s", self.peer, name, what, detail)

    # ------------------------------------------------------------------ timers

    def _arm_timer(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        # One timer per connection, re-armed lazily: reads only stamp last_received, so
        # the hot path never creates or cancels a timer.
        self._timer = None
        if self.closing:
            return
        config = self.server.config
        now = self.loop.time()
        if self.member is None:
            if self._auth_pending:
                return  # the refusal closes it
            self.error(ErrorCode.HANDSHAKE_TIMEOUT, "no valid hello in time; closing")
            self.drop(LeaveReason.TIMEOUT)
            return
        if self.ping_sent_at is not None:
            if self.last_received >= self.ping_sent_at:
                self.ping_sent_at = None
            elif now - self.ping_sent_at >= config.ping_timeout_s:
                self.drop(LeaveReason.TIMEOUT)
                return
            else:
                self._arm_timer(self.ping_sent_at + config.ping_timeout_s)
                return
        quiet_until = self.last_received + config.ping_interval_s
        if now >= quiet_until:
            self.ping_sent_at = now
            self.reply(Ping(token=f"t{int(now * 1000)}"))
            self._arm_timer(now + config.ping_timeout_s)
        else:
            self._arm_timer(quiet_until)

    # ------------------------------------------------------------------ input

    def _handle_frames(self) -> None:
        try:
            self._drain_frames()
        except Exception:
            # A bug must cost this connection, never the server or anyone else.
            log.exception("connection %s failed; it is closed, the server goes on", self.peer)
            self.drop(LeaveReason.DISCONNECTED)

    def _drain_frames(self) -> None:
        while not self.closing and not self._auth_pending:
            try:
                obj = self.decoder.next_frame()
                if obj is None:
                    return
                frame = parse_client_frame(obj)
            except ProtocolError as exc:
                # A broken line costs a token like any frame: otherwise garbage sent as
                # fast as the link allows gets an error each, unlimited, and is never
                # kicked as a flooder.
                if exc.fatal or self._admit(None):
                    self.error(exc.code, exc.detail)
                if exc.fatal:
                    self.drop(LeaveReason.DISCONNECTED)
                continue
            if not self._admit(frame):
                continue
            try:
                self._dispatch(frame)
            except ProtocolError as exc:
                self.error(exc.code, exc.detail)

    def _admit(self, frame: Any) -> bool:
        """The token bucket: True when the frame may go on."""
        config = self.server.config
        if config.flood_rate <= 0 or isinstance(frame, Pong):
            return True
        now = self.loop.time()
        self.tokens = min(
            float(config.flood_burst), self.tokens + (now - self.tokens_at) * config.flood_rate
        )
        self.tokens_at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            self.strikes = 0
            return True
        self.strikes += 1
        if self.strikes > FLOOD_STRIKES:
            self.error(ErrorCode.RATE_LIMITED, "flooding; disconnected")
            self.drop(LeaveReason.KICKED)
            return False
        self.error(
            ErrorCode.RATE_LIMITED,
            f"slow down: at most {config.flood_rate:g} frames per second "
            f"after a burst of {config.flood_burst}",
        )
        return False

    def _dispatch(self, frame: Any) -> None:
        hub = self.server.hub
        match frame:
            case Ping(token=token):
                self.reply(Pong(token=token))
            case Pong():
                pass  # last_received already moved; that is all a pong is for
            case Bye():
                self.drop(LeaveReason.QUIT)
            case Hello() if self.member is not None:
                raise ProtocolError(ErrorCode.BAD_REQUEST, "already joined")
            case Hello():
                self._hello(frame)
            case _ if self.member is None:
                raise ProtocolError(ErrorCode.NOT_JOINED, f"send hello before {frame.TYPE}")
            case Say(text=text, nonce=nonce, room=room, action=action):
                hub.say(self.member, text, room, nonce=nonce, action=action)
            case HistoryRequest(room=room, before=before, limit=limit):
                page = min(limit, MAX_HISTORY_PAGE)
                events, more = hub.history_page(self.member, room, before, page)
                self.reply(History(room=room, events=tuple(events), more=more))
            case JoinRequest(room=room, resume_after=resume_after):
                hub.join_room(self.member, room, resume_after=resume_after)
            case Part(room=room):
                hub.part(self.member, room)
            case RoomsRequest():
                self.reply(Rooms(rooms=tuple(hub.rooms())))
            case TopicRequest(room=room, text=text):
                hub.set_topic(self.member, room, text)
            case DmRequest(to=to, text=text, nonce=nonce, action=action):
                hub.dm(self.member, to, text, nonce=nonce, action=action)
            case NickRequest(name=name):
                hub.rename(self.member, name)
            case Who(room=room):
                self.reply(Members(room=room, members=tuple(hub.members(room))))

    def _hello(self, hello: Hello) -> None:
        config = self.server.config
        if hello.protocol != PROTOCOL_VERSION:
            raise ProtocolError(
                ErrorCode.UNSUPPORTED_PROTOCOL,
                f"this server speaks protocol {PROTOCOL_VERSION}, not {hello.protocol}",
            )
        if config.password is not None and not _password_matches(hello.password, config.password):
            # Nothing more is read from it until the refusal, after the delay.
            self._auth_pending = True
            assert self.transport is not None
            self.transport.pause_reading()
            self.loop.call_later(config.auth_failure_delay_s, self._refuse_auth)
            return
        self.member = self.server.hub.join(
            hello.name, self.outbox, resume_after=hello.resume_after, lazy=hello.lazy_members
        )
        self.ping_sent_at = None
        self._arm_timer(self.loop.time() + config.ping_interval_s)
        self._log_member("joined")

    def _refuse_auth(self) -> None:
        if not self.closing:
            self.error(ErrorCode.AUTH_FAILED, "wrong or missing password")
            self.drop(LeaveReason.DISCONNECTED)


class ChatServer:
    """A running chat server: call :meth:`start`, then :meth:`close` to shut down.

    Args:
        config: limits and options.
        hub: the chat state; by default a fresh :class:`Hub` recording to
            ``config.sinks``.
    """

    def __init__(self, config: ServerConfig | None = None, hub: Hub | None = None) -> None:
        self.config = config or ServerConfig()
        self.hub = hub or Hub(
            server_name=f"chatroom/{__version__}",
            sinks=self.config.sinks,
            history_events=self.config.history_events,
            max_text_chars=self.config.max_text_chars,
            store=self.config.history_store,
            first_id=self.config.first_event_id,
            lazy_members_above=self.config.lazy_members_above,
        )
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._per_ip: dict[str, int] = {}
        self._closed = asyncio.Event()
        self._drained = asyncio.Event()

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """(host, port) of every listening socket, once started."""
        if self._server is None:
            return []
        return [sock.getsockname()[:2] for sock in self._server.sockets]

    @property
    def connection_count(self) -> int:
        """Open connections, joined or not."""
        return len(self._connections)

    async def start(self) -> None:
        """Bind and listen. Raises ``OSError`` when the address is taken or invalid."""
        load_look_alikes()
        host: str | None = self.config.host
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self),
            host=host or None,
            port=self.config.port,
            ssl=self.config.ssl_context,
            reuse_address=True,
            # The TLS handshake counts against the same deadline as the hello.
            ssl_handshake_timeout=self.config.handshake_timeout_s
            if self.config.ssl_context
            else None,
        )

    def _admit_connection(self, conn: _Connection) -> bool:
        """Count a new connection in, or refuse it (with an error) past the limits."""
        config = self.config
        assert conn.transport is not None
        if self._closed.is_set():
            conn.transport.abort()
            return False
        if len(self._connections) >= config.max_connections:
            conn.error(ErrorCode.SERVER_FULL, "the server is full; try again later")
            conn.transport.close()
            return False
        exempt = config.exempt_loopback and _is_loopback(conn.peer_host)
        if not exempt and self._per_ip.get(conn.peer_host, 0) >= config.max_per_ip:
            conn.error(
                ErrorCode.TOO_MANY_CONNECTIONS,
                f"at most {config.max_per_ip} connections from one address",
            )
            conn.transport.close()
            return False
        self._connections.add(conn)
        if not exempt:
            self._per_ip[conn.peer_host] = self._per_ip.get(conn.peer_host, 0) + 1
        return True

    def _forget_connection(self, conn: _Connection) -> None:
        self._connections.discard(conn)
        if conn.peer_host in self._per_ip:
            left = self._per_ip[conn.peer_host] - 1
            if left:
                self._per_ip[conn.peer_host] = left
            else:
                del self._per_ip[conn.peer_host]
        if self._closed.is_set() and not self._connections:
            self._drained.set()

    async def close(self) -> None:
        """Shut down: every member gets ``leave`` reason ``shutdown``, sinks get the last
        batch, sockets close (aborted after :data:`SHUTDOWN_DRAIN_S`), tasks end."""
        if self._closed.is_set():
            return
        self._closed.set()
        if self._server is not None:
            self._server.close()
        self.hub.shutdown()
        for conn in list(self._connections):
            conn.closing = True
            conn.outbox.closed = True
            if conn.transport is not None:
                conn.transport.close()
        await self._wait_drained()
        for conn in list(self._connections):
            if conn.transport is not None:
                conn.transport.abort()
        # An aborted transport reports connection_lost in the next loop iteration.
        await self._wait_drained()
        if self._server is not None:
            await self._server.wait_closed()

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
