"""The history store: every event in SQLite, so history survives restarts and clients resume.

SQLite in WAL mode with ``synchronous=NORMAL``: a committed transaction survives a
SIGKILL of the server (the WAL is written before ``commit`` returns; only a power cut
can lose the last transactions). The hub commits each loop iteration's events in one
transaction before any client is sent them, so a client never holds an event the store
lacks, and one commit is shared by every event of the iteration.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from chatroom.framing import ProtocolError
from chatroom.protocol import Dm, Event, format_ts, parse_server_frame

__all__ = [
    "DEFAULT_HISTORY_PAGE",
    "MAX_HISTORY_PAGE",
    "HistoryStore",
    "Retention",
    "parse_retention",
]

log = logging.getLogger(__name__)

DEFAULT_HISTORY_PAGE = 100
# A page of 500 events of up to 4,000 characters stays within a few MiB on the wire.
MAX_HISTORY_PAGE = 500
# Rows deleted per retention step: small enough that one step costs a few milliseconds,
# so retention never stalls the hub even when a lowered limit leaves millions to drop.
PRUNE_BATCH_ROWS = 1000
PRUNE_EVERY_EVENTS = 256
PRUNE_EVERY_S = 60.0
# A checkpoint copies the WAL back into the database and syncs it: milliseconds. SQLite
# would run one inside whichever commit crosses 1,000 pages, stalling the hub's flush
# (a 6 ms stall every few hundred commits was most of the server's p99 latency). So
# checkpoints run on a thread with its own connection: the sqlite3 module lets go of
# the GIL while SQLite works, and a PASSIVE checkpoint never blocks the writer.
CHECKPOINT_EVERY_EVENTS = 2000
CHECKPOINT_EVERY_S = 5.0
CHECKPOINT_CLOSE_S = 10.0
# The thread runs at idle priority (Linux SCHED_IDLE): a checkpoint copies pages the WAL
# has already made durable, so it can wait for a moment the loop leaves the core free.
# At normal priority each one took the loop's core for 4-7 ms, and the flushes it
# overlapped ran long (flush p99 at 10,587 msg/s: 1.17-1.66 ms, at idle priority
# 0.97-1.33 ms).
# The WAL is reused from its start only once a checkpoint has copied all of it, and a
# checkpoint on another connection never does while commits keep coming: at 8,000
# messages/s the WAL grew by 15 MB/s for as long as the load lasted (40 MB/s at 40,000).
# So past this many pages (32 MiB) SQLite's own checkpoint runs inside the writer's
# commit, where nothing else writes and it always reaches the end. What the thread has
# copied by then is not copied again, so the stall is the rest and an fsync: at
# 8,237 messages/s the latency maximum was 8-14 ms, once every few seconds (72 ms with
# the thread starved by a saturated core). A bounded WAL is worth it.
WAL_AUTOCHECKPOINT_PAGES = 8192
DB_NAME = "history.sqlite3"
# Rows per INSERT statement: 7 values each, far below SQLite's 32,766 variables, and
# few enough distinct statements (one per count) for the connection's statement cache.
INSERT_ROWS_MAX = 64
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    room TEXT NOT NULL,              -- '' for a private message
    kind TEXT NOT NULL,              -- the event's wire type
    ts TEXT NOT NULL,
    frame TEXT NOT NULL,             -- the event as sent on the wire
    dm_a TEXT,                       -- a private message's two parties, case-folded
    dm_b TEXT
);
CREATE INDEX IF NOT EXISTS events_by_room ON events (room, id);
CREATE INDEX IF NOT EXISTS events_by_dm_a ON events (dm_a, id) WHERE dm_a IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_by_dm_b ON events (dm_b, id) WHERE dm_b IS NOT NULL;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True)
class Retention:
    """How much history to keep: at most ``max_events``, none older than ``max_age``."""

    max_events: int | None = None
    max_age: timedelta | None = None

    @property
    def unlimited(self) -> bool:
        return self.max_events is None and self.max_age is None


_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_retention(text: str) -> Retention:
    """Parse ``100000``, ``30d``, ``12h`` or both (``30d,100000``); ``0``/``forever``: keep all.

    Raises:
        ValueError: with a message naming the part that is wrong.
    """
    max_events: int | None = None
    max_age: timedelta | None = None
    for part in (p.strip().lower() for p in text.split(",") if p.strip()):
        if part in ("0", "forever", "all"):
            continue
        if part.isdigit():
            max_events = int(part)
            continue
        match = re.fullmatch(r"(\d+)([smhdw])", part)
        if match is None:
            raise ValueError(f"{part!r}: expected an event count like 100000 or an age like 30d")
        max_age = timedelta(seconds=int(match[1]) * _AGE_UNITS[match[2]])
    return Retention(max_events=max_events, max_age=max_age)


@functools.cache
def _insert_sql(rows: int) -> str:
    """The INSERT for ``rows`` events; each count is prepared once and then cached."""
    values = ", ".join(["(?, ?, ?, ?, ?, ?, ?)"] * rows)
    return f"INSERT OR REPLACE INTO events (id, room, kind, ts, frame, dm_a, dm_b) VALUES {values}"


def _row(
    event: Event, wire: bytes | None = None
) -> tuple[int, str, str, str, str, str | None, str | None]:
    # The hub has already encoded the event for the wire; storing those bytes saves a
    # second encoding of every event (the newline is the framing's, not the frame's).
    frame = (
        wire[:-1].decode("utf-8")
        if wire is not None
        else json.dumps(event.to_wire(), ensure_ascii=False)
    )
    dm_a = dm_b = None
    if isinstance(event, Dm):
        dm_a, dm_b = sorted((event.sender.casefold(), event.to.casefold()))
    return (event.id, event.room, event.TYPE, event.ts, frame, dm_a, dm_b)


class HistoryStore:
    """Events by id in one SQLite file; an :class:`~chatroom.hub.EventSink`.

    Args:
        path: the database file (its directory is created).
        retention: what to keep; pruned a batch at a time as events arrive.
    """

    def __init__(self, path: Path, *, retention: Retention | None = None) -> None:
        self.path = path
        self.retention = retention or Retention()
        path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: transactions are explicit, one per batch.
        self._db = sqlite3.connect(
            path,
            isolation_level=None,
            check_same_thread=False,
            # Room for an INSERT per batch size (up to INSERT_ROWS_MAX) and the queries.
            cached_statements=INSERT_ROWS_MAX + 64,
        )
        mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        self._db.execute("PRAGMA synchronous=NORMAL")
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        has_events = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events'"
        ).fetchone()
        if has_events and version != SCHEMA_VERSION:
            self._db.close()
            raise sqlite3.DatabaseError(
                f"{path} was written by another version of chatroom (schema {version}, "
                f"this one reads {SCHEMA_VERSION}); move it aside or use another --data-dir"
            )
        self._db.executescript(_SCHEMA)
        self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        self._since_prune = 0
        self._pruned_at = time.monotonic()
        self._failing = False
        self._since_checkpoint = 0
        self._checkpointer: _Checkpointer | None = None
        if mode == "wal":  # not for ":memory:", which has no WAL
            self._db.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
            self._checkpointer = _Checkpointer(path)

    @classmethod
    def in_dir(cls, data_dir: Path, *, retention: Retention | None = None) -> HistoryStore:
        """The store kept in ``data_dir``."""
        return cls(data_dir / DB_NAME, retention=retention)

    def close(self) -> None:
        """Close the database (a WAL checkpoint happens here)."""
        if self._checkpointer is not None:
            self._checkpointer.close()
        self._db.close()

    # ------------------------------------------------------------------ writing

    def append(self, events: Sequence[Event], wire: Sequence[bytes] | None = None) -> None:
        """Commit ``events`` in one transaction. Failures are logged, never raised.

        ``wire``, when given, holds each event as encoded for the wire (newline included),
        stored as is instead of being encoded again.
        """
        if wire is None:
            rows = [_row(event) for event in events]
        else:
            rows = [_row(event, frame) for event, frame in zip(events, wire, strict=True)]
        try:
            self._db.execute("BEGIN")
            # One statement per INSERT_ROWS_MAX rows, not one per row: executemany steps
            # the statement (and lets go of the GIL) once per row. A batch of 11, the two
            # alternated on one database: p10 53 us that way, 37.5 us in one statement.
            for start in range(0, len(rows), INSERT_ROWS_MAX):
                chunk = rows[start : start + INSERT_ROWS_MAX]
                self._db.execute(_insert_sql(len(chunk)), [v for row in chunk for v in row])
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            if not self._failing:
                self._failing = True
                log.error(
                    "cannot write history to %s: %s; events are NOT being stored", self.path, exc
                )
            return
        if self._failing:
            self._failing = False
            log.warning("history is being stored in %s again", self.path)
        self._since_prune += len(rows)
        self._since_checkpoint += len(rows)
        if self._checkpointer is not None and self._since_checkpoint >= CHECKPOINT_EVERY_EVENTS:
            self._since_checkpoint = 0
            self._checkpointer.request()
        if not self.retention.unlimited and (
            self._since_prune >= PRUNE_EVERY_EVENTS
            or time.monotonic() - self._pruned_at >= PRUNE_EVERY_S
        ):
            self.prune_step()

    def prune_step(self, now: datetime | None = None) -> int:
        """Delete at most :data:`PRUNE_BATCH_ROWS` events past the retention; return how many."""
        self._since_prune = 0
        self._pruned_at = time.monotonic()
        cutoff_id = 0
        if self.retention.max_events is not None:
            row = self._db.execute(
                "SELECT id FROM events ORDER BY id DESC LIMIT 1 OFFSET ?",
                (self.retention.max_events,),
            ).fetchone()
            if row is not None:
                cutoff_id = row[0]
        if self.retention.max_age is not None:
            oldest_kept = format_ts((now or datetime.now(UTC)) - self.retention.max_age)
            row = self._db.execute(
                "SELECT max(id) FROM events WHERE ts < ?", (oldest_kept,)
            ).fetchone()
            if row is not None and row[0] is not None:
                cutoff_id = max(cutoff_id, row[0])
        if not cutoff_id:
            return 0
        self._db.execute("BEGIN")
        deleted = self._db.execute(
            "DELETE FROM events WHERE id IN "
            "(SELECT id FROM events WHERE id <= ? ORDER BY id LIMIT ?)",
            (cutoff_id, PRUNE_BATCH_ROWS),
        ).rowcount
        pruned_through = self._db.execute("SELECT min(id) FROM events").fetchone()[0]
        high_water = (pruned_through - 1) if pruned_through is not None else cutoff_id
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES ('pruned_through', ?) "
            "ON CONFLICT(key) DO UPDATE SET value = max(value, excluded.value)",
            (high_water,),
        )
        self._db.execute("COMMIT")
        return deleted

    # ------------------------------------------------------------------ reading

    def last_id(self) -> int:
        """The highest id ever stored, pruned or not (0 for a new store)."""
        newest = self._db.execute("SELECT max(id) FROM events").fetchone()[0] or 0
        return max(newest, self.pruned_through())

    def pruned_through(self) -> int:
        """Every event with an id up to this one may have been deleted by retention."""
        row = self._db.execute("SELECT value FROM meta WHERE key = 'pruned_through'").fetchone()
        return int(row[0]) if row else 0

    def recent(self, room: str, limit: int) -> list[Event]:
        """The room's last ``limit`` events, oldest first."""
        rows = self._db.execute(
            "SELECT frame FROM events WHERE room = ? ORDER BY id DESC LIMIT ?", (room, limit)
        ).fetchall()
        return self._events(reversed(rows))

    def before(self, room: str, before_id: int, limit: int) -> tuple[list[Event], bool]:
        """Up to ``limit`` events of ``room`` older than ``before_id``, oldest first, and
        whether older ones remain."""
        rows = self._db.execute(
            "SELECT frame FROM events WHERE room = ? AND id < ? ORDER BY id DESC LIMIT ?",
            (room, before_id, limit + 1),
        ).fetchall()
        more = len(rows) > limit
        return self._events(reversed(rows[:limit])), more

    def after(
        self, room: str, after_id: int, below_id: int, *, private_for: str | None = None
    ) -> tuple[list[Event], bool]:
        """The events of ``room`` with ``after_id < id < below_id``, oldest first, and
        whether some in that range are gone (pruned by retention). With ``private_for``
        (a name), that member's private messages in the range are merged in by id."""
        if private_for is None:
            rows = self._db.execute(
                "SELECT frame FROM events WHERE room = ? AND id > ? AND id < ? ORDER BY id",
                (room, after_id, below_id),
            ).fetchall()
        else:
            party = private_for.casefold()
            rows = self._db.execute(
                "SELECT frame FROM events WHERE id > ? AND id < ? "
                "AND (room = ? OR dm_a = ? OR dm_b = ?) ORDER BY id",
                (after_id, below_id, room, party, party),
            ).fetchall()
        return self._events(rows), after_id < self.pruned_through()

    def private_before(
        self, one: str, other: str, before_id: int, limit: int
    ) -> tuple[list[Event], bool]:
        """Like :meth:`before`, for the private messages between two names."""
        a, b = sorted((one.casefold(), other.casefold()))
        rows = self._db.execute(
            "SELECT frame FROM events WHERE dm_a = ? AND dm_b = ? AND id < ? "
            "ORDER BY id DESC LIMIT ?",
            (a, b, before_id, limit + 1),
        ).fetchall()
        more = len(rows) > limit
        return self._events(reversed(rows[:limit])), more

    def topics(self) -> dict[str, str]:
        """Each room's latest topic, as the stored topic events say."""
        rows = self._db.execute(
            "SELECT room, frame FROM events WHERE id IN "
            "(SELECT max(id) FROM events WHERE kind = 'topic' GROUP BY room)"
        ).fetchall()
        topics: dict[str, str] = {}
        for room, frame in rows:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                topics[room] = str(json.loads(frame)["text"])
        return topics

    def export(self, since: str | None = None) -> Iterator[Event]:
        """Every stored event (of every room) with ``ts >= since``, in id order."""
        cursor = self._db.execute(
            "SELECT frame FROM events WHERE ts >= ? ORDER BY id", (since or "",)
        )
        for (frame,) in cursor:
            yield from self._events([(frame,)])

    @staticmethod
    def _events(rows: Iterator[tuple[str]] | Sequence[tuple[str]]) -> list[Event]:
        events: list[Event] = []
        for (frame,) in rows:
            try:
                parsed = parse_server_frame(json.loads(frame))
            except (ValueError, ProtocolError):
                continue  # a row this version cannot read: skip rather than fail the page
            events.append(parsed)  # type: ignore[arg-type]
        return events


class _Checkpointer:
    """Runs WAL checkpoints on a thread of its own: when asked, and every few seconds."""

    def __init__(self, path: Path) -> None:
        self._wanted = threading.Event()
        self._stopping = False
        # Set after each checkpoint (for tests, and anyone who must know the WAL is small).
        self.done = threading.Event()
        # Opened here, and used once, so that every file it holds (the database, its WAL
        # and shared memory) is open before the server says it is ready, not later.
        self._db: sqlite3.Connection | None = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False
        )
        self._checkpoint()
        self._thread = threading.Thread(target=self._run, name="history-checkpoint", daemon=True)
        self._thread.start()

    def request(self) -> None:
        self._wanted.set()

    def close(self) -> None:
        self._stopping = True
        self._wanted.set()
        self._thread.join(CHECKPOINT_CLOSE_S)

    def _checkpoint(self) -> None:
        assert self._db is not None
        try:
            self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error as exc:
            log.warning("history checkpoint failed: %s", exc)
        else:
            self.done.set()

    def _run(self) -> None:
        assert self._db is not None
        with contextlib.suppress(AttributeError, OSError):  # not Linux: normal priority
            os.sched_setscheduler(threading.get_native_id(), os.SCHED_IDLE, os.sched_param(0))
        try:
            while not self._stopping:
                self._wanted.wait(CHECKPOINT_EVERY_S)
                self._wanted.clear()
                if self._stopping:
                    break
                self._checkpoint()
        finally:
            self._db.close()
            self._db = None
