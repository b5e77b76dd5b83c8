"""The server's running counts: plain integers the hot paths bump once per batch.

Nothing here knows Prometheus. :mod:`chatroom.metrics` reads these at scrape time, so
a flush pays for a few integer additions and never for a client library's locks and
label look-ups (docs/performance.md has the measured cost).
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Mapping, Sequence, Sized
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chatroom.delivery import Batch

__all__ = ["DURATION_BUCKETS_S", "DurationHistogram", "Stats"]

# From 50 us (a small room's flush) to 1 s (a stalled disk): Prometheus' default buckets
# start at 5 ms, which would put nearly every flush in the first one.
DURATION_BUCKETS_S = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    1.0,
)


class DurationHistogram:
    """Counts of durations per bucket (``le`` bounds in seconds) and their sum.

    One writer at a time: the loop for flushes, the history thread for commits. A
    reader may see a count one observation ahead of the sum, which a scrape tolerates.
    """

    __slots__ = ("bounds", "counts", "total_s")

    def __init__(self, bounds: Sequence[float] = DURATION_BUCKETS_S) -> None:
        self.bounds = tuple(bounds)
        # One more than the bounds: the last counts what passed every bound (+Inf).
        self.counts = [0] * (len(self.bounds) + 1)
        self.total_s = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.total_s += seconds

    def cumulative(self) -> list[tuple[str, int]]:
        """``(le, count)`` pairs as Prometheus exposes them, ``+Inf`` last."""
        running = 0
        buckets: list[tuple[str, int]] = []
        for bound, count in zip((*map(repr, self.bounds), "+Inf"), self.counts, strict=True):
            running += count
            buckets.append((bound, running))
        return buckets


class Stats:
    """What happened since the server started, counted where it happens."""

    __slots__ = (
        "bytes_in",
        "bytes_out",
        "deliveries",
        "events",
        "flush_seconds",
        "rate_limited",
        "refused",
        "sendq_high_water",
        "sessions_ended",
    )

    def __init__(self) -> None:
        # Counters by the event's wire type ("message", "join", ...).
        self.events: dict[str, int] = {}
        self.deliveries: dict[str, int] = {}
        self.bytes_in = 0
        self.bytes_out = 0
        # Frames refused by the token bucket (a flooder's last one included).
        self.rate_limited = 0
        # Connections refused at the door, by error code (or "shutting_down").
        self.refused: Counter[str] = Counter()
        # Sessions that ended, by leave reason ("quit", "timeout", "slow_consumer"...).
        self.sessions_ended: Counter[str] = Counter()
        # The most unsent bytes one connection has held (only judged once a peer has
        # fallen behind: the fan-out's fast path never looks).
        self.sendq_high_water = 0
        self.flush_seconds = DurationHistogram()

    def record_batch(self, batch: Batch, rooms: Mapping[str, Sized]) -> None:
        """Count a flush's events, their deliveries and bytes: per event, never per member.

        A delivery is an event times the members of its room at the flush, plus its
        private recipients. Lazy members of big rooms, who are not sent others' joins and
        leaves, are counted as if they were; so are members who joined within the batch.
        """
        # Plain dicts and the room's size looked up once per run of one room's events:
        # half the time of Counter's += and a look-up per event (3.3 against 6.6-7.9 us
        # for a batch of 16 messages, measured with timeit).
        events = self.events
        deliveries = self.deliveries
        out = 0
        last_room: str | None = None
        size = 0
        for event, payload, also in batch:
            room = event.room
            if room != last_room:
                last_room = room
                size = len(rooms.get(room, ())) if room else 0
            recipients = size + len(also) if also else size
            kind = event.TYPE
            events[kind] = events.get(kind, 0) + 1
            deliveries[kind] = deliveries.get(kind, 0) + recipients
            out += len(payload) * recipients
        self.bytes_out += out
