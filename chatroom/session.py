"""One member's protocol state, whatever transport carries it. No sockets, no awaits.

A transport decodes its wire format into client frames and feeds them to
:meth:`Session.receive` with the time it read them; the session checks the hello and the
password, applies the rate limit, keeps the handshake and ping deadlines, and dispatches
to the hub. What it has to say goes back through its :class:`Link`: replies to this peer
alone, and the end of the connection. Events reach the member through the hub, which
writes to the transport's outbox directly. Timers are a single deadline the session
reports (:attr:`Session.deadline`); the transport arms one timer at it and calls
:meth:`Session.on_deadline` when it passes.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from chatroom.authority import Authority, ModRequest, banned_error
from chatroom.framing import ErrorCode, ProtocolError
from chatroom.history import MAX_HISTORY_PAGE
from chatroom.hub import Hub, Member, Outbox, WireFormat
from chatroom.limits import FLOOD_BURST, FLOOD_RATE_PER_S, TokenBucket
from chatroom.moderation import BannedError, Identity, address_key
from chatroom.names import check_name, name_keys
from chatroom.protocol import (
    PROTOCOL_VERSION,
    Ban,
    BansRequest,
    Bye,
    ClientFrame,
    DmRequest,
    Error,
    Hello,
    History,
    HistoryRequest,
    Invite,
    JoinRequest,
    Kick,
    LeaveReason,
    Members,
    Mode,
    Mute,
    NickRequest,
    Part,
    PasswordChange,
    Ping,
    Pong,
    Register,
    Registered,
    RoleRequest,
    Rooms,
    RoomsRequest,
    Say,
    TopicRequest,
    Unban,
    Unmute,
    Who,
)
from chatroom.protocol import Bans as BansReply
from chatroom.text import inert, truncate

__all__ = [
    "AUTH_FAILURE_DELAY_S",
    "HANDSHAKE_TIMEOUT_S",
    "PING_INTERVAL_S",
    "PING_TIMEOUT_S",
    "Link",
    "Reply",
    "Session",
    "SessionLimits",
    "password_matches",
]

log = logging.getLogger("chatroom.server")

HANDSHAKE_TIMEOUT_S = 10.0
PING_INTERVAL_S = 60.0
PING_TIMEOUT_S = 30.0
# Slows password guessing to a few tries a second per connection, as sshd's delay does.
AUTH_FAILURE_DELAY_S = 0.5
# Names in log lines are cut to keep one hostile client from flooding the log.
LOG_TEXT_CHARS = 80

Reply = Error | Members | Ping | Pong | History | Rooms | Registered | BansReply
T = TypeVar("T")
# The server ended these sessions, not the peer: each is worth a line in the log.
_DROPPED = frozenset({LeaveReason.SLOW_CONSUMER, LeaveReason.TIMEOUT, LeaveReason.KICKED})


@dataclass
class SessionLimits:
    """The per-member limits a session enforces; every field has the documented default."""

    flood_rate: float = FLOOD_RATE_PER_S
    flood_burst: int = FLOOD_BURST
    handshake_timeout_s: float = HANDSHAKE_TIMEOUT_S
    ping_interval_s: float = PING_INTERVAL_S
    ping_timeout_s: float = PING_TIMEOUT_S
    password: str | None = None
    auth_failure_delay_s: float = AUTH_FAILURE_DELAY_S


class Link(Protocol):
    """What a session needs of the connection that carries it."""

    # The wire format the hub writes this member's events in; None: NDJSON.
    wire: WireFormat | None

    def send_reply(self, frame: Reply) -> None:
        """Send ``frame`` to this peer alone, at once, in the transport's wire format."""

    def pause_reading(self) -> None:
        """Read nothing more from the peer until the connection closes."""

    def close(self, reason: LeaveReason) -> None:
        """End the connection: abort it for ``slow_consumer`` and ``timeout`` (a graceful
        close waits for a reader that has stopped), else close it after what is queued."""

    def run_job(self, job: Callable[[], T], done: Callable[[T, float], None]) -> None:
        """Run ``job`` off the event loop (password hashing); then, on the loop, call
        ``done`` with its result and the time."""


def password_matches(given: str | None, expected: str) -> bool:
    """Constant time, length included: compare_digest on the passwords themselves would
    return early when their lengths differ."""
    return hmac.compare_digest(
        hashlib.sha256((given or "").encode("utf-8", "surrogatepass")).digest(),
        hashlib.sha256(expected.encode("utf-8", "surrogatepass")).digest(),
    )


class Session:
    """A member's protocol state: hello, password, rate limit, deadlines, dispatch.

    State after each call: :attr:`closing` once the connection is to end (nothing more
    is to be fed to it), :attr:`accepting` while further frames may be fed, and
    :attr:`deadline` the time :meth:`on_deadline` is next due (None: never).

    Args:
        hub: the chat state it joins.
        limits: the limits it enforces.
        link: where replies and the close go.
        outbox: where the hub writes this member's events.
        now: the time the connection was accepted, on the transport's clock.
        peer: ``host:port`` for log lines.
    """

    # Slots: ten thousand idle members each hold one of these.
    __slots__ = (
        "_account_verified",
        "_auth_pending",
        "_hub",
        "_limits",
        "_link",
        "_login_pending",
        "_outbox",
        "bucket",
        "closing",
        "deadline",
        "last_received",
        "member",
        "peer",
        "ping_sent_at",
    )

    def __init__(
        self,
        hub: Hub,
        limits: SessionLimits,
        link: Link,
        outbox: Outbox,
        *,
        now: float,
        peer: str = "local",
    ) -> None:
        self._hub = hub
        self._limits = limits
        self._link = link
        self._outbox = outbox
        self.peer = peer
        self.member: Member | None = None
        self.closing = False
        self._auth_pending = False
        # A hello's account password is being checked on a worker thread.
        self._login_pending = False
        # An account whose password this connection proved before its hello (IRC's
        # SASL): a hello for its name needs no account_password.
        self._account_verified: str | None = None
        self.last_received = now
        self.ping_sent_at: float | None = None
        self.bucket = TokenBucket(limits.flood_rate, limits.flood_burst, now)
        self.deadline: float | None = now + limits.handshake_timeout_s

    @property
    def accepting(self) -> bool:
        """Whether the transport may feed it more frames (not while a refusal waits)."""
        return not (self.closing or self._auth_pending)

    # ------------------------------------------------------------------ input

    def receive(self, frame: ClientFrame, now: float) -> None:
        """Handle one decoded frame; errors are answered, never raised."""
        if not self._admit(frame, now):
            return
        try:
            self._dispatch(frame, now)
        except BannedError as exc:
            self._link.send_reply(banned_error(exc))
        except ProtocolError as exc:
            self.error(exc.code, exc.detail)

    def receive_error(self, exc: ProtocolError, now: float) -> None:
        """Answer what the transport could not decode; a fatal error ends the connection.

        A broken line costs a token like any frame: otherwise garbage sent as fast as the
        link allows gets an error each, unlimited, and is never kicked as a flooder.
        """
        if exc.fatal or self._admit(None, now):
            self.error(exc.code, exc.detail)
        if exc.fatal:
            self.drop(LeaveReason.DISCONNECTED)

    def end_of_input(self) -> bool:
        """The peer will send nothing more. True: keep the connection open until the
        pending refusal has gone out; False: it is dropped."""
        if self.closing:
            return False
        if self._auth_pending:
            return True
        self.drop(LeaveReason.DISCONNECTED)
        return False

    def on_deadline(self, now: float) -> None:
        """The deadline passed: refuse a wrong password, time out a silent handshake,
        ping a quiet peer, or drop one that did not answer its ping."""
        self.deadline = None
        if self.closing:
            return
        limits = self._limits
        if self._auth_pending:
            self.error(ErrorCode.AUTH_FAILED, "wrong or missing password")
            self.drop(LeaveReason.DISCONNECTED)
            return
        if self.member is None:
            self.error(ErrorCode.HANDSHAKE_TIMEOUT, "no valid hello in time; closing")
            self.drop(LeaveReason.TIMEOUT)
            return
        # Reads only stamp last_received, so the read path never moves the deadline:
        # it is checked here, when due, and moved on if the peer was heard from since.
        if self.ping_sent_at is not None:
            if self.last_received >= self.ping_sent_at:
                self.ping_sent_at = None
            elif now - self.ping_sent_at >= limits.ping_timeout_s:
                self.drop(LeaveReason.TIMEOUT)
                return
            else:
                self.deadline = self.ping_sent_at + limits.ping_timeout_s
                return
        quiet_until = self.last_received + limits.ping_interval_s
        if now >= quiet_until:
            self.ping_sent_at = now
            self._link.send_reply(Ping(token=f"t{int(now * 1000)}"))
            self.deadline = now + limits.ping_timeout_s
        else:
            self.deadline = quiet_until

    # ------------------------------------------------------------------ the end

    def drop(self, reason: LeaveReason) -> None:
        """End the session: its rooms are told why, then the link closes. Idempotent."""
        self.deadline = None
        if self.closing:
            return
        self.closing = True
        self._hub.stats.sessions_ended[reason.value] += 1
        if self.member is not None:
            self._hub.leave(self.member, reason)
            if self._hub.authority is not None:
                self._hub.authority.forget(self.member)
            if reason in _DROPPED:
                name = truncate(inert(self.member.name), LOG_TEXT_CHARS)
                log.info(
                    "%s %s was dropped: %s",
                    self.peer,
                    name,
                    reason.value,
                    extra={
                        "event": "dropped",
                        "peer": self.peer,
                        "member": name,
                        "reason": reason.value,
                    },
                )
            else:
                self._log_member("left", reason.value)
        self._link.close(reason)

    def detach(self) -> None:
        """Stop without leaving: the server is shutting down and the hub has already
        told everyone."""
        self.closing = True
        self.deadline = None

    def error(self, code: ErrorCode, message: str) -> None:
        self._link.send_reply(Error(code=code.value, message=message))

    def _log_member(self, what: str, detail: str = "") -> None:
        if self.member is not None:
            name = truncate(inert(self.member.name), LOG_TEXT_CHARS)
            log.debug("%s %s %s %s", self.peer, name, what, detail)

    # ------------------------------------------------------------------ internals

    def _admit(self, frame: ClientFrame | None, now: float) -> bool:
        """The token bucket: True when the frame may go on. A pong is free: it only
        answers the server's own ping."""
        if type(frame) is Pong or self.bucket.take(now):
            return True
        self._hub.stats.rate_limited += 1
        if self.bucket.flooding:
            self.error(ErrorCode.RATE_LIMITED, "flooding; disconnected")
            self.drop(LeaveReason.KICKED)
            return False
        limits = self._limits
        self.error(
            ErrorCode.RATE_LIMITED,
            f"slow down: at most {limits.flood_rate:g} frames per second "
            f"after a burst of {limits.flood_burst}",
        )
        return False

    def _dispatch(self, frame: ClientFrame, now: float) -> None:
        hub = self._hub
        member = self.member
        match frame:
            case Ping(token=token):
                self._link.send_reply(Pong(token=token))
            case Pong():
                pass  # last_received already moved; that is all a pong is for
            case Bye():
                self.drop(LeaveReason.QUIT)
            case Hello() if member is not None or self._login_pending:
                raise ProtocolError(ErrorCode.BAD_REQUEST, "already joined")
            case Hello():
                self._hello(frame, now)
            case _ if member is None:
                raise ProtocolError(ErrorCode.NOT_JOINED, f"send hello before {frame.TYPE}")
            case Say(text=text, nonce=nonce, room=room, action=action):
                if hub.authority is not None:
                    hub.authority.before_say(member, room, now)
                hub.say(member, text, room, nonce=nonce, action=action)
            case HistoryRequest(room=room, before=before, limit=limit):
                page = min(limit, MAX_HISTORY_PAGE)
                events, more = hub.history_page(member, room, before, page)
                self._link.send_reply(History(room=room, events=tuple(events), more=more))
            case JoinRequest(room=room, resume_after=resume_after, key=key):
                self._join_room(member, room, resume_after, key)
            case Part(room=room):
                hub.part(member, room)
            case RoomsRequest():
                self._link.send_reply(Rooms(rooms=tuple(hub.rooms())))
            case TopicRequest(room=room, text=text):
                hub.set_topic(member, room, text)
            case DmRequest(to=to, text=text, nonce=nonce, action=action):
                hub.dm(member, to, text, nonce=nonce, action=action)
            case NickRequest(name=name):
                if hub.authority is not None:
                    hub.authority.before_rename(member, name)
                hub.rename(member, name)
            case Who(room=room):
                ops, voices = hub.room_roles(hub.room_name(room))
                members = tuple(hub.members(room))
                self._link.send_reply(Members(room=room, members=members, ops=ops, voices=voices))
            case (
                Register()
                | PasswordChange()
                | RoleRequest()
                | Kick()
                | Ban()
                | Unban()
                | BansRequest()
                | Mute()
                | Unmute()
                | Mode()
                | Invite()
            ):
                self._moderate(member, frame, now)

    def _hello(self, hello: Hello, now: float) -> None:
        limits = self._limits
        if hello.protocol != PROTOCOL_VERSION:
            raise ProtocolError(
                ErrorCode.UNSUPPORTED_PROTOCOL,
                f"this server speaks protocol {PROTOCOL_VERSION}, not {hello.protocol}",
            )
        if limits.password is not None and not password_matches(hello.password, limits.password):
            # Nothing more is read from it until the refusal, after the delay.
            self._auth_pending = True
            self._link.pause_reading()
            self.deadline = now + limits.auth_failure_delay_s
            return
        authority = self._hub.authority
        if authority is None:
            self._join(hello, now, None, "")
            return
        name = check_name(hello.name)
        account = authority.account_for(name)
        address = address_key(self.peer.rsplit(":", 1)[0])
        if hello.account_password is None:
            if account is not None and account == self._account_verified:
                self._admit_hello(hello, now, Identity(name, name_keys(name), account, address))
                return
            if account is not None:
                raise ProtocolError(
                    ErrorCode.NAME_REGISTERED,
                    "that name is registered: hello needs its account_password",
                )
            self._admit_hello(hello, now, Identity(name, name_keys(name), None, address))
            return
        # The answer comes from a worker thread; frames meanwhile get not_joined.
        self._login_pending = True

        def checked(ok: bool, at: float) -> None:
            self._login_pending = False
            if self.closing:
                return
            if not ok:
                self._auth_pending = True
                self._link.pause_reading()
                self.deadline = max(at, now + authority.failure_delay(account, now))
                return
            try:
                self._admit_hello(hello, at, Identity(name, name_keys(name), account, address))
            except ProtocolError as exc:  # name_taken: the hello may be retried
                self.error(exc.code, exc.detail)

        authority.login(account, hello.account_password, address, now, self._link, checked)

    def authenticate(
        self, raw_name: str, password: str, now: float, done: Callable[[str | None, float], None]
    ) -> None:
        """Check an account's password before the hello (IRC logs in with SASL before it
        registers), with the hello's throttle and dummy hash. ``done(account, at)``: the
        account, or None no earlier than ``at``, the time a wrong hello is refused at."""
        authority = self._hub.authority
        if authority is None or self.member is not None or self._login_pending:
            done(None, now)
            return
        try:
            account = authority.account_for(check_name(raw_name))
        except ProtocolError:
            account = None  # an impossible name is checked like a name without an account
        address = address_key(self.peer.rsplit(":", 1)[0])
        self._login_pending = True

        def checked(ok: bool, at: float) -> None:
            self._login_pending = False
            if self.closing:
                return
            if ok and account is not None:
                self._account_verified = account
                done(account, at)
                return
            done(None, max(at, now + authority.failure_delay(account, now)))

        authority.login(account, password, address, now, self._link, checked)

    def _admit_hello(self, hello: Hello, now: float, who: Identity) -> None:
        authority = self._hub.authority
        assert authority is not None
        try:
            authority.check_hello(who)
        except BannedError as exc:
            self._link.send_reply(banned_error(exc))
            self.drop(LeaveReason.KICKED)
            return
        self._join(hello, now, who.account, who.address)

    def _join(self, hello: Hello, now: float, account: str | None, address: str) -> None:
        authority = self._hub.authority
        self.member = self._hub.join(
            hello.name,
            self._outbox,
            resume_after=hello.resume_after,
            lazy=hello.lazy_members,
            wire=self._link.wire,
            account=account,
            roles=authority.roles_of(account) if authority is not None else (),
            session=hello.session,
            refused=self._join_refused,
        )
        if authority is not None:
            authority.joined(self.member, account, address)
        self.ping_sent_at = None
        self.deadline = now + self._limits.ping_interval_s
        self._log_member("joined")

    def _join_refused(self, exc: ProtocolError) -> None:
        """A hub that decides later (a cluster node's) turned the hello down: the hello
        may be tried again, or, when the node cannot serve, elsewhere."""
        self.member = None
        if self.closing:
            return
        self.error(exc.code, exc.detail)
        if exc.code is ErrorCode.UNAVAILABLE:
            self.drop(LeaveReason.SHUTDOWN)

    def _join_room(
        self, member: Member, room: str, resume_after: int | None, key: str | None
    ) -> None:
        authority = self._hub.authority
        if authority is None:
            self._hub.join_room(member, room, resume_after=resume_after)
            return
        created = authority.before_join(member, room, key)
        try:
            self._hub.join_room(member, room, resume_after=resume_after)
        except ProtocolError:
            if created:
                authority.undo_join(member, room)
            raise

    def _moderate(self, member: Member, frame: ModRequest, now: float) -> None:
        authority: Authority | None = self._hub.authority
        if authority is None:
            raise ProtocolError(ErrorCode.FORBIDDEN, "this server keeps no accounts")
        authority.request(member, frame, now, self._link)
