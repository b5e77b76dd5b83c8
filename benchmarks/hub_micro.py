"""In-process CPU cost of the hub's hot paths, without sockets or an event loop.

The outboxes only count, so the kernel's share of each send is left out. What remains
is the hub's own Python work plus its sinks: the real SQLite history store (in memory,
so the file system adds no noise) and the real transcript (to /dev/null, never
rotated). That is encoding, timestamps, the store and the fan-out loop.

    python benchmarks/hub_micro.py [CASE...]

prints, per case, the minimum of 7 runs: the code is deterministic, and the minimum is
the run other processes disturbed least. To compare two trees on a shared machine,
alternate them run by run (``PYTHONPATH=<tree>``, one case per process) rather than
measuring one tree after the other: the machine drifts between them.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from chatroom.history import HistoryStore
from chatroom.hub import Hub
from chatroom.protocol import LeaveReason
from chatroom.transcript import Transcript

REPEATS = 7
TEXT = "1234567890123456789 0001 000000001 " + "x" * 45  # 80 characters, as the bench sends


class CountingOutbox:
    """An outbox that only counts what it is given."""

    __slots__ = ("sends",)

    def __init__(self) -> None:
        self.sends = 0

    def send(self, payload: bytes) -> None:
        self.sends += 1

    def close(self, reason: LeaveReason) -> None:
        pass


def _hub(directory: Path) -> Hub:
    return Hub(
        server_name="chatroom/bench",
        sinks=[Transcript(Path(os.devnull), max_bytes=0)],
        store=HistoryStore(Path(":memory:")),
    )


def say_cost(members: int, batch: int, rounds: int) -> tuple[float, float]:
    """(µs per message, µs per delivery) for ``batch`` messages per flush."""
    with tempfile.TemporaryDirectory() as temp:
        hub = _hub(Path(temp))
        joined = [hub.join(f"m{index:05d}", CountingOutbox()) for index in range(members)]
        hub.flush()
        senders = joined[:4]
        started = time.process_time()
        for _ in range(rounds):
            for number in range(batch):
                hub.say(senders[number % len(senders)], TEXT)
            hub.flush()
        spent = time.process_time() - started
    messages = rounds * batch
    return 1e6 * spent / messages, 1e6 * spent / (messages * members)


def join_cost(members: int, joins: int) -> float:
    """µs per join (welcome, join event, fan-out) into a room of ``members``, one per flush."""
    with tempfile.TemporaryDirectory() as temp:
        hub = _hub(Path(temp))
        for index in range(members):
            hub.join(f"m{index:05d}", CountingOutbox())
            if index % 100 == 99:
                hub.flush()
        hub.flush()
        started = time.process_time()
        for index in range(joins):
            hub.join(f"n{index:05d}", CountingOutbox())
            hub.flush()
        spent = time.process_time() - started
    return 1e6 * spent / joins


CASES: dict[str, tuple[str, Callable[[], float]]] = {
    "say-r10-1": ("say R=10, 1 msg/flush, µs/message", lambda: say_cost(14, 1, 2000)[0]),
    "say-r10-16": ("say R=10, 16 msg/flush, µs/message", lambda: say_cost(14, 16, 200)[0]),
    "say-r500-16": ("say R=500, 16 msg/flush, µs/delivery", lambda: say_cost(504, 16, 40)[1]),
    "join-2000": ("join into 2,000 members, µs/join", lambda: join_cost(2000, 50)),
}


def main() -> int:
    names = sys.argv[1:] or list(CASES)
    for name in names:
        title, case = CASES[name]
        print(f"{title:40} {min(case() for _ in range(REPEATS)):10.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
