"""The limits every connection obeys, whatever its transport. No I/O, no clock of its own.

Each transport feeds these the times and sizes it sees; the same numbers then mean the
same thing for an NDJSON socket, a WebSocket and an IRC connection.
"""

from __future__ import annotations

import ipaddress

__all__ = [
    "FLOOD_BURST",
    "FLOOD_RATE_PER_S",
    "FLOOD_STRIKES",
    "MAX_CONNECTIONS",
    "MAX_CONNECTIONS_PER_IP",
    "MAX_SENDQ_BYTES",
    "SOFT_SENDQ_BYTES",
    "SOFT_SENDQ_GRACE_S",
    "ConnectionCounter",
    "SendQBound",
    "TokenBucket",
    "is_loopback",
]

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
MAX_CONNECTIONS = 10_000
MAX_CONNECTIONS_PER_IP = 16


class TokenBucket:
    """Flood control: a burst of ``burst`` requests, then ``rate`` a second.

    ``rate`` 0 turns it off. After :data:`FLOOD_STRIKES` refusals in a row the peer is a
    flooder (:attr:`flooding`), which the session answers by dropping it.
    """

    __slots__ = ("burst", "rate", "strikes", "tokens", "tokens_at")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.tokens_at = now
        self.strikes = 0

    def take(self, now: float) -> bool:
        """True when a request may go on (and it is counted), False when over the rate."""
        if self.rate <= 0:
            return True
        self.tokens = min(float(self.burst), self.tokens + (now - self.tokens_at) * self.rate)
        self.tokens_at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            self.strikes = 0
            return True
        self.strikes += 1
        return False

    @property
    def flooding(self) -> bool:
        return self.strikes > FLOOD_STRIKES


class SendQBound:
    """The SendQ rule: how much unread output a peer may leave before it is dropped.

    A base class rather than a member, so that an outbox's fast path (nothing queued)
    resets ``_burst`` and ``_over_soft_since`` on itself, with no attribute hop on the
    fan-out's hottest line.
    """

    __slots__ = ("_burst", "_grace_s", "_hard_bytes", "_over_soft_since", "_soft_bytes")

    def __init__(self, hard_bytes: int, soft_bytes: int, grace_s: float) -> None:
        self._hard_bytes = hard_bytes
        self._soft_bytes = soft_bytes
        self._grace_s = grace_s
        self._over_soft_since: float | None = None
        # What is still queued of one big payload sent while the peer had caught up.
        self._burst = 0

    def set_bounds(self, hard_bytes: int, soft_bytes: int) -> None:
        """New bounds (a reload); what is queued is judged by them from the next send."""
        self._hard_bytes = hard_bytes
        self._soft_bytes = soft_bytes

    def over_bound(self, backlog: int, size: int, now: float) -> bool:
        """Whether a peer with ``backlog`` bytes unread must be dropped rather than be
        sent ``size`` more; when not, the bytes are counted as sent.

        The bounds judge what the peer has left unread, not the size of what we are
        about to send: a welcome with a long history, a resume replay or a busy
        iteration's batch can alone pass either bound. Sent to a peer that had caught
        up, such a payload is a burst, and the hard bound counts only what piles up on
        top of what is left of it. (Judged with the payload, 100 long messages made the
        room unjoinable, and one busy iteration dropped every member at once.)
        """
        self._burst = min(self._burst, backlog)
        if backlog + size - self._burst > self._hard_bytes:
            if backlog > self._soft_bytes:
                return True
            self._burst = backlog + size
        if backlog > self._soft_bytes:
            if self._over_soft_since is None:
                self._over_soft_since = now
            elif now - self._over_soft_since > self._grace_s:
                return True
        elif self._over_soft_since is not None:
            self._over_soft_since = None
        return False


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


class ConnectionCounter:
    """Connections in total and per address, against the server's caps.

    Loopback peers (local bots, an SSH tunnel's end) share one address by nature, so
    the per-address cap skips them when ``exempt_loopback`` says so.
    """

    __slots__ = ("_per_ip", "exempt_loopback", "max_per_ip", "max_total", "total")

    def __init__(self, max_total: int, max_per_ip: int, *, exempt_loopback: bool) -> None:
        self.max_total = max_total
        self.max_per_ip = max_per_ip
        self.exempt_loopback = exempt_loopback
        self.total = 0
        self._per_ip: dict[str, int] = {}

    def refusal(self, host: str) -> str | None:
        """None when one more connection from ``host`` fits (it is then counted), else
        ``"total"`` or ``"per_ip"``: which cap it would pass."""
        if self.total >= self.max_total:
            return "total"
        exempt = self.exempt_loopback and is_loopback(host)
        if not exempt and self._per_ip.get(host, 0) >= self.max_per_ip:
            return "per_ip"
        self.total += 1
        if not exempt:
            self._per_ip[host] = self._per_ip.get(host, 0) + 1
        return None

    def release(self, host: str) -> None:
        """One connection from ``host``, counted by :meth:`refusal`, has closed."""
        self.total -= 1
        left = self._per_ip.get(host)
        if left is None:
            return
        if left > 1:
            self._per_ip[host] = left - 1
        else:
            del self._per_ip[host]
