"""The history store: every event in SQLite, so history survives restarts and clients resume.

Each batch of events is appended to a journal file before anyone is sent them (one
write, safe from a SIGKILL of the server once it returns) and committed to SQLite by a
thread behind the loop; a journal left by a server that died is replayed at the next
start. So a client never holds an event the store can lose to a crash of the server,
and the loop never waits for SQLite. SQLite runs in WAL mode with
``synchronous=NORMAL``: like the journal, it can lose the last moments only to a power
cut, and stays consistent through one.

A little over the usual size (about 730 lines): the journal, the writer thread and the
queries share one connection discipline and one set of locks, which splitting them
would spread over two modules that each need the other's internals.
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
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from chatroom.framing import ProtocolError
from chatroom.protocol import Dm, Event, encode, format_ts, parse_server_frame
from chatroom.stats import DurationHistogram

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
# Committing to SQLite is the dearest step of a flush: 160-230 us for a batch of 15
# events on a busy server, and a checkpoint (copying the WAL back and an fsync of 6-9 ms)
# every few megabytes of WAL. The hub's contract is that a client never holds an event
# that a crash of the server can lose. So each batch is first appended to a journal file
# (one write of the frames the hub encoded for the wire: 10-20 us, and, like a WAL
# commit, safe from a SIGKILL once it returns); a thread commits the journal's rows to
# SQLite behind the loop, in bigger transactions, checkpointing as SQLite likes. A
# server that dies before the thread catches up has its journal replayed at the next
# start. Queries wait for the thread to catch up first (one commit's time), so they see
# every event appended before them.
#
# The thread runs at idle priority (Linux SCHED_IDLE): it takes the core only when the
# loop leaves it free, so it never lengthens a flush. Under a load that leaves no free
# moment, the journal's backlog would grow for as long as the load lasts, so past
# PENDING_ROWS_MAX rows the loop waits for the thread (and the core goes to it).
PENDING_ROWS_MAX = 4096
# The hub stretches its pacing wait while the writer is behind (FLUSH_STRETCH_ROWS), which
# is enough when the loop waits between flushes. A loop that never waits (a room flooded
# faster than it can be written to) gives it nothing, so from CATCH_UP_ROWS behind the hub
# lends it the core after each flush, for as long as the wait, by waiting for its commit.
# From 64 rows (as before the stretch) that cost latency p99 0.3-0.6 ms at 9,000 msg/s;
# without it, fanout at R=100 stopped the loop for PENDING_ROWS_MAX 3-5 times a run.
CATCH_UP_ROWS = 2048
# How long a query or close() waits for the thread before going on without it.
WRITER_WAIT_S = 10.0
# A journal's rows are all in SQLite soon after it is written; two files take turns so
# that one can be emptied while the other is appended to.
JOURNAL_SWITCH_BYTES = 4 * 1024 * 1024
JOURNAL_NAMES = ("history-journal-0.jsonl", "history-journal-1.jsonl")
# SQLite's default: the writer thread checkpoints inside its own commit past 1,000
# pages (4 MiB), where nothing else writes and the checkpoint always reaches the end,
# so the WAL is reused from its start instead of growing with the load.
WAL_AUTOCHECKPOINT_PAGES = 1000
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


Row = tuple[int, str, str, str, str, str | None, str | None]


def _row(event: Event, wire: bytes | None = None) -> Row:
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
        writer: append to this store (a journal and a writer thread, see
            PENDING_ROWS_MAX). ``False`` opens it to read beside a running server: the
            journal is read, never replayed or emptied.
    """

    def __init__(
        self, path: Path, *, retention: Retention | None = None, writer: bool = True
    ) -> None:
        self.path = path
        self.retention = retention or Retention()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = _connect(path)
        mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
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
        self._appended_through = 0
        self._journal: _Journal | None = None
        self._writer: _Writer | None = None
        # How long each commit to SQLite took, on whichever thread committed it.
        self.commit_seconds = DurationHistogram()
        # Where the journal lives; ":memory:" (which has no WAL) keeps none.
        self._journal_paths = (
            tuple(path.parent / name for name in JOURNAL_NAMES) if mode == "wal" else ()
        )
        if writer and mode == "wal":
            recovered = _journal_rows(self._journal_paths, after_id=self.last_id())
            if recovered:
                failure = _commit(self._db, _chunks(recovered))
                if failure is not None:
                    # Emptying the journal now would lose them: refuse to start instead.
                    self._db.close()
                    raise failure
                log.warning("history: %d events recovered from the journal", len(recovered))
            self._journal = _Journal(self._journal_paths)
            self._writer = _Writer(path, self.retention, self.commit_seconds)
        # Without a thread (":memory:") each batch is committed in append, as it comes.
        self._pruning = _Pruning(self.retention)
        self._outage = _Outage(path)
        self._closed = False

    @classmethod
    def in_dir(
        cls, data_dir: Path, *, retention: Retention | None = None, writer: bool = True
    ) -> HistoryStore:
        """The store kept in ``data_dir``."""
        return cls(data_dir / DB_NAME, retention=retention, writer=writer)

    def close(self) -> None:
        """Commit what is pending, stop the writer and close the database (once)."""
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            caught_up = self._writer.close(self._appended_through)
            if self._journal is not None:
                # Everything in it is in SQLite now; a journal left behind would only be
                # read again (and skipped) at the next start.
                self._journal.close(empty=caught_up)
        self._db.close()

    # ------------------------------------------------------------------ writing

    def append(self, events: Sequence[Event], wire: Sequence[bytes] | None = None) -> None:
        """Make ``events`` durable (a journal write) and queue them for SQLite.

        Failures are logged, never raised. ``wire``, when given, holds each event as
        encoded for the wire (newline included), stored as is instead of encoded again.
        """
        if not events:
            return
        frames = wire if wire is not None else [encode(event) for event in events]
        self._appended_through = events[-1].id
        if self._writer is None or self._journal is None:
            self._commit_here([_row(e, f) for e, f in zip(events, frames, strict=True)])
            return
        # The loop only writes the frames it already has; the thread builds the rows.
        self._journal.append(b"".join(frames), events[-1].id, self._writer.committed_through)
        self._writer.put(list(zip(events, frames, strict=True)))

    @property
    def healthy(self) -> bool:
        """Whether the last journal write and the last commit worked, and the writer
        thread is alive: what ``/healthz`` reports for the history."""
        if self._closed or self._outage.failing:
            return False
        if self._journal is not None and self._journal.failing:
            return False
        return self._writer is None or self._writer.healthy

    def _commit_here(self, rows: list[Row]) -> None:
        started = time.perf_counter()
        failure = _commit(self._db, _chunks(rows))
        self.commit_seconds.observe(time.perf_counter() - started)
        if not self._outage.stored(failure):
            return
        if self._pruning.due(len(rows)):
            self.prune_step()

    def prune_step(self, now: datetime | None = None) -> int:
        """Delete at most :data:`PRUNE_BATCH_ROWS` events past the retention; return how many."""
        if self._writer is not None:
            self.settle()
            return self._writer.prune_step(now)
        self._pruning.reset()
        return _prune(self._db, self.retention, now)

    @property
    def backlog(self) -> int:
        """Events appended that the writer has not committed yet."""
        return self._writer.backlog if self._writer is not None else 0

    def catch_up(self, timeout: float) -> None:
        """Let the writer commit what is pending, for at most ``timeout`` seconds, once it
        is CATCH_UP_ROWS behind."""
        writer = self._writer
        if writer is not None and writer.backlog >= CATCH_UP_ROWS:
            writer.wait_committed(self._appended_through, timeout)

    def settle(self) -> None:
        """Wait until every appended event is in SQLite (queries do this themselves)."""
        if self._writer is not None and not self._writer.wait_committed(
            self._appended_through, WRITER_WAIT_S
        ):
            log.warning("history: the writer is behind; a query may miss the newest events")

    # ------------------------------------------------------------------ reading

    def last_id(self) -> int:
        """The highest id ever stored, pruned or not (0 for a new store)."""
        self.settle()
        newest = self._db.execute("SELECT max(id) FROM events").fetchone()[0] or 0
        return max(newest, self.pruned_through(), self._appended_through)

    def pruned_through(self) -> int:
        """Every event with an id up to this one may have been deleted by retention."""
        row = self._db.execute("SELECT value FROM meta WHERE key = 'pruned_through'").fetchone()
        return int(row[0]) if row else 0

    def recent(self, room: str, limit: int) -> list[Event]:
        """The room's last ``limit`` events, oldest first."""
        self.settle()
        rows = self._db.execute(
            "SELECT frame FROM events WHERE room = ? ORDER BY id DESC LIMIT ?", (room, limit)
        ).fetchall()
        return self._events(reversed(rows))

    def before(self, room: str, before_id: int, limit: int) -> tuple[list[Event], bool]:
        """Up to ``limit`` events of ``room`` older than ``before_id``, oldest first, and
        whether older ones remain."""
        self.settle()
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
        self.settle()
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
        self.settle()
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
        self.settle()
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
        """Every stored event (of every room) with ``ts >= since``, in id order.

        Opened with ``writer=False`` beside a server (or after one was killed), this
        includes the events its journal holds and SQLite does not yet."""
        self.settle()
        newest = 0
        cursor = self._db.execute(
            "SELECT id, frame FROM events WHERE ts >= ? ORDER BY id", (since or "",)
        )
        for event_id, frame in cursor:
            newest = event_id
            yield from self._events([(frame,)])
        if self._writer is None:
            stored = max(newest, self._db.execute("SELECT max(id) FROM events").fetchone()[0] or 0)
            for row in _journal_rows(self._journal_paths, after_id=stored):
                if row[3] >= (since or ""):
                    yield from self._events([(row[4],)])

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


def _connect(path: Path) -> sqlite3.Connection:
    # isolation_level=None: transactions are explicit, one per batch.
    db = sqlite3.connect(
        path,
        isolation_level=None,
        check_same_thread=False,
        # Room for an INSERT per batch size (up to INSERT_ROWS_MAX) and the queries.
        cached_statements=INSERT_ROWS_MAX + 64,
    )
    # Per connection: in WAL mode a commit writes the WAL without an fsync, so it
    # survives the server's death but not a power cut (which keeps the file consistent).
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
    return db


def _chunks(rows: Sequence[Row]) -> Iterator[Sequence[Row]]:
    for start in range(0, len(rows), INSERT_ROWS_MAX):
        yield rows[start : start + INSERT_ROWS_MAX]


def _commit(db: sqlite3.Connection, chunks: Iterable[Sequence[Row]]) -> sqlite3.Error | None:
    """Insert the rows, at most INSERT_ROWS_MAX a chunk, in one transaction; the error
    instead of raising it."""
    try:
        db.execute("BEGIN")
        # One statement per INSERT_ROWS_MAX rows, not one per row: executemany steps the
        # statement (and lets go of the GIL) once per row. A batch of 11, the two
        # alternated on one database: p10 53 us that way, 37.5 us in one statement.
        for chunk in chunks:
            db.execute(_insert_sql(len(chunk)), [v for row in chunk for v in row])
        db.execute("COMMIT")
    except sqlite3.Error as exc:
        if db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
        return exc
    return None


def _prune(db: sqlite3.Connection, retention: Retention, now: datetime | None) -> int:
    cutoff_id = 0
    if retention.max_events is not None:
        row = db.execute(
            "SELECT id FROM events ORDER BY id DESC LIMIT 1 OFFSET ?", (retention.max_events,)
        ).fetchone()
        if row is not None:
            cutoff_id = row[0]
    if retention.max_age is not None:
        oldest_kept = format_ts((now or datetime.now(UTC)) - retention.max_age)
        row = db.execute("SELECT max(id) FROM events WHERE ts < ?", (oldest_kept,)).fetchone()
        if row is not None and row[0] is not None:
            cutoff_id = max(cutoff_id, row[0])
    if not cutoff_id:
        return 0
    try:
        db.execute("BEGIN")
        deleted: int = db.execute(
            "DELETE FROM events WHERE id IN "
            "(SELECT id FROM events WHERE id <= ? ORDER BY id LIMIT ?)",
            (cutoff_id, PRUNE_BATCH_ROWS),
        ).rowcount
        pruned_through = db.execute("SELECT min(id) FROM events").fetchone()[0]
        high_water = (pruned_through - 1) if pruned_through is not None else cutoff_id
        db.execute(
            "INSERT INTO meta (key, value) VALUES ('pruned_through', ?) "
            "ON CONFLICT(key) DO UPDATE SET value = max(value, excluded.value)",
            (high_water,),
        )
        db.execute("COMMIT")
    except sqlite3.Error:
        if db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
        raise
    return deleted


class _Outage:
    """Says once that commits fail, and once that they work again."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._failing = False

    @property
    def failing(self) -> bool:
        return self._failing

    def stored(self, failure: sqlite3.Error | None) -> bool:
        """Whether a commit that ended with ``failure`` stored its rows; logged on change."""
        if failure is not None:
            if not self._failing:
                self._failing = True
                log.error(
                    "cannot write history to %s: %s; events are NOT being stored",
                    self._path,
                    failure,
                )
            return False
        if self._failing:
            self._failing = False
            log.warning("history is being stored in %s again", self._path)
        return True


class _Pruning:
    """When the next retention step is due: every so many events, or every so often."""

    def __init__(self, retention: Retention) -> None:
        self._retention = retention
        self.reset()

    def reset(self) -> None:
        self._since = 0
        self._at = time.monotonic()

    def due(self, added: int) -> bool:
        self._since += added
        return not self._retention.unlimited and (
            self._since >= PRUNE_EVERY_EVENTS or time.monotonic() - self._at >= PRUNE_EVERY_S
        )


def _journal_rows(paths: Sequence[Path], *, after_id: int) -> list[Row]:
    """The rows the journal files hold past ``after_id``, in id order.

    A line cut short by a crash (or a power cut) is skipped: it was never fully written,
    so no client was sent its event."""
    rows: dict[int, Row] = {}
    for path in paths:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            continue
        for line in data.splitlines(keepends=True):
            if not line.endswith(b"\n"):
                continue
            try:
                event = parse_server_frame(json.loads(line))
            except (ValueError, ProtocolError):
                continue
            if isinstance(event, Event) and event.id > after_id:
                rows[event.id] = _row(event, line)
    return [rows[event_id] for event_id in sorted(rows)]


class _Journal:
    """Each batch's frames, appended to a file before anyone is sent them.

    Two files take turns: once the current one passes JOURNAL_SWITCH_BYTES and every
    row of the other is in SQLite, the other is emptied and becomes the current one.
    """

    def __init__(self, paths: Sequence[Path]) -> None:
        self._paths = tuple(paths)
        self._fds = [
            os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
            for path in self._paths
        ]
        self._current = 0
        self._bytes = 0
        self._last_id = [0] * len(self._fds)
        self._failing = False

    @property
    def failing(self) -> bool:
        return self._failing

    def append(self, data: bytes, last_id: int, committed_through: int) -> None:
        other = 1 - self._current
        if self._bytes >= JOURNAL_SWITCH_BYTES and self._last_id[other] <= committed_through:
            try:
                os.ftruncate(self._fds[other], 0)
            except OSError as exc:
                log.error("cannot empty the history journal %s: %s", self._paths[other], exc)
            else:
                self._current, self._bytes, self._last_id[other] = other, 0, 0
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fds[self._current], view) :]
        except OSError as exc:
            if not self._failing:
                self._failing = True
                log.error(
                    "cannot write the history journal %s: %s; events reach SQLite only "
                    "if the server lives until they are committed",
                    self._paths[self._current],
                    exc,
                )
            return
        if self._failing:
            self._failing = False
            log.warning("the history journal %s is written again", self._paths[self._current])
        self._bytes += len(data)
        self._last_id[self._current] = last_id

    def close(self, *, empty: bool) -> None:
        for fd, path in zip(self._fds, self._paths, strict=True):
            os.close(fd)
            if empty:
                with contextlib.suppress(OSError):
                    path.unlink()


class _Writer:
    """Commits the journal's rows to SQLite on a thread of its own, at idle priority."""

    def __init__(self, path: Path, retention: Retention, durations: DurationHistogram) -> None:
        # Opened here, before the server says it is ready, so every file it holds (the
        # database, its WAL and shared memory) is open by then, not later.
        self._db: sqlite3.Connection | None = _connect(path)
        self.path = path
        self._retention = retention
        self._durations = durations
        self._pruning = _Pruning(retention)
        # The connection is the thread's, except for prune_step called from outside.
        self._db_lock = threading.Lock()
        self._changed = threading.Condition()
        self._queue: list[tuple[Event, bytes]] = []
        self.backlog = 0  # rows queued or being committed
        self._stopping = False
        self._outage = _Outage(path)
        # The highest id committed (or given up on); read by the loop without a lock.
        self.committed_through = 0
        self._thread = threading.Thread(target=self._run, name="history-writer", daemon=True)
        self._thread.start()

    def put(self, events: list[tuple[Event, bytes]]) -> None:
        with self._changed:
            self._queue.extend(events)
            self.backlog += len(events)
            self._changed.notify_all()
            if self.backlog > PENDING_ROWS_MAX:
                # The thread has had no free moment for a while: give it the core.
                self._changed.wait_for(
                    lambda: self.backlog <= PENDING_ROWS_MAX // 2 or not self._thread.is_alive(),
                    WRITER_WAIT_S,
                )

    @property
    def healthy(self) -> bool:
        return self._thread.is_alive() and not self._outage.failing

    def wait_committed(self, through_id: int, timeout: float) -> bool:
        with self._changed:
            return (
                self._changed.wait_for(
                    lambda: self.committed_through >= through_id or not self._thread.is_alive(),
                    timeout,
                )
                and self.committed_through >= through_id
            )

    def prune_step(self, now: datetime | None) -> int:
        with self._db_lock:
            assert self._db is not None
            self._pruning.reset()
            return _prune(self._db, self._retention, now)

    def close(self, through_id: int) -> bool:
        """Stop once everything up to ``through_id`` is committed; whether it was."""
        caught_up = self.wait_committed(through_id, WRITER_WAIT_S)
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        self._thread.join(WRITER_WAIT_S)
        return caught_up

    def _run(self) -> None:
        with contextlib.suppress(AttributeError, OSError):  # not Linux: normal priority
            os.sched_setscheduler(threading.get_native_id(), os.SCHED_IDLE, os.sched_param(0))
        try:
            while True:
                with self._changed:
                    self._changed.wait_for(lambda: self._queue or self._stopping)
                    if not self._queue:
                        return
                    events, self._queue = self._queue, []
                with self._db_lock:
                    self._store(events)
                with self._changed:
                    self.committed_through = events[-1][0].id
                    self.backlog -= len(events)
                    self._changed.notify_all()
        finally:
            with self._db_lock:
                if self._db is not None:
                    self._db.close()
                    self._db = None

    def _store(self, events: list[tuple[Event, bytes]]) -> None:
        assert self._db is not None
        # Each chunk's rows are built just before it is inserted, and the insert lets go
        # of the GIL: the loop never waits for this thread to build a whole backlog.
        chunks = (
            [_row(event, frame) for event, frame in events[start : start + INSERT_ROWS_MAX]]
            for start in range(0, len(events), INSERT_ROWS_MAX)
        )
        started = time.perf_counter()
        failure = _commit(self._db, chunks)
        self._durations.observe(time.perf_counter() - started)
        if not self._outage.stored(failure):
            return
        if self._pruning.due(len(events)):
            self._pruning.reset()
            try:
                _prune(self._db, self._retention, None)
            except sqlite3.Error as exc:
                log.warning("history retention step failed: %s", exc)
