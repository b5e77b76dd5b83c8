"""One node's link to the cluster's Redis: the lease, proposals, the stream, the reaper.

Four tasks share one ``redis.asyncio`` client (a pool, so the blocking read has a
connection of its own):

- proposals made during a loop iteration go to Redis as one script call, so a busy node
  pays one round trip per batch, not per message;
- the reader takes the stream in order and hands each entry to the hub;
- the lease keeper renews this node's lease, and when it cannot for most of the lease's
  life (Redis unreachable, or this process was frozen), cuts the node off: its members
  are closed so they move to a node that can serve them, and nothing it proposes with
  the old lease is taken again (the script checks the lease);
- the reaper ends the sessions of every node whose lease ran out.

This module imports ``redis``; nothing does unless ``--cluster`` is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from chatroom.cluster import ClusterUnavailable, scripts
from chatroom.cluster.hub import ClusterHub, Proposal
from chatroom.framing import ErrorCode
from chatroom.protocol import LeaveReason, format_ts

__all__ = ["DEFAULT_LEASE_S", "Engine"]

log = logging.getLogger("chatroom.cluster")

# A node's members wait this long at most for a dead node's leaves, and a cut-off node
# closes its members after 4/5 of it. Centrifugo's presence expires after 60 s, but it
# only shows who is online; here a name stays taken until the lease goes, so it is short.
DEFAULT_LEASE_S = 5.0
STREAM_KEY = "chatroom:events"
# The stream keeps about this many events; history beyond is in each node's SQLite.
STREAM_MAXLEN = 100_000
READ_BLOCK_MS = 1000
READ_COUNT = 1000
# Each step of stopping (the tasks, the lease, the connections) waits at most this.
STOP_WAIT_S = 1.0


@dataclass
class Counts:
    """Plain counters for /metrics, read at scrape time."""

    applied: int = 0
    calls: int = 0
    proposals: int = 0
    cut_offs: int = 0


class Engine:
    """The cluster side of one node.

    Args:
        url: ``redis://HOST:PORT/DB``.
        node_id: unique among running nodes; a restarted node may reuse its own.
        hub: the node's hub, which this engine feeds.
        lease_s: the lease's life (see DEFAULT_LEASE_S).
    """

    def __init__(
        self, url: str, node_id: str, hub: ClusterHub, *, lease_s: float = DEFAULT_LEASE_S
    ) -> None:
        self.url = url
        self.node_id = node_id
        self.hub = hub
        self.lease_s = lease_s
        self._redis = aioredis.Redis.from_url(
            url,
            socket_timeout=lease_s,
            socket_connect_timeout=min(2.0, lease_s / 2),
            # A failed call is reported at once; the lease keeper decides what it means.
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )
        self._apply_script = self._redis.register_script(scripts.APPLY)
        self._register_script = self._redis.register_script(scripts.REGISTER)
        self._refresh_script = self._redis.register_script(scripts.REFRESH)
        self._reap_script = self._redis.register_script(scripts.REAP)
        self._snapshot_script = self._redis.register_script(scripts.SNAPSHOT)
        self.token = ""
        self.epoch = ""
        self._last_entry = "0-0"
        self._queue: list[tuple[Proposal, Callable[[dict[str, Any]], None]]] = []
        self._send_scheduled = False
        self._in_flight: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._renewed_at = 0.0
        self._stopping = False
        self._applied = asyncio.Event()
        self._generation = 0
        self._joining = False
        self.counts = Counts()
        hub.engine = self

    # ------------------------------------------------------------------ life

    async def start(self) -> None:
        """Join the cluster: take the lease, load who is where, then follow the stream.

        Raises:
            ClusterUnavailable: Redis does not answer, or the node id stays taken.
        """
        try:
            await self._join_cluster(first=True)
        except RedisError as exc:
            raise ClusterUnavailable(f"cannot reach {self.safe_url()}: {exc}") from None
        self._tasks = [
            asyncio.create_task(self._send_loop_guard(), name="cluster-read"),
            asyncio.create_task(self._keep_lease(), name="cluster-lease"),
            asyncio.create_task(self._reap(), name="cluster-reap"),
        ]

    async def stop(self, wait_s: float = 2.0) -> None:
        """Leave the cluster: the members here leave (everyone is told), then the lease
        is given up so nobody waits for it to run out."""
        cids = self.hub.leave_all(LeaveReason.SHUTDOWN)
        self._send_now()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait_s):
                while any(self.hub.holds(cid) for cid in cids):
                    self._applied.clear()
                    await self._applied.wait()
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        # Bounded: a blocking XREAD cancelled inside redis-py can take its time to end
        # (redis/redis-py#2579), and a node must stop when told, connection or not.
        await asyncio.wait(self._tasks, timeout=STOP_WAIT_S)
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            async with asyncio.timeout(STOP_WAIT_S):
                # The lease goes now, so the reaper finds nothing of ours left behind.
                await self._redis.delete(f"chatroom:lease:{self.node_id}")
        with contextlib.suppress(Exception):
            async with asyncio.timeout(STOP_WAIT_S):
                await self._redis.aclose()

    async def _join_cluster(self, *, first: bool) -> None:
        """Register a new incarnation (waiting out a previous one's lease), then load the
        snapshot and the history the store lacks. Meanwhile the stream reader applies
        nothing, and whatever it read before is dropped: the snapshot holds it."""
        self._joining = True
        self._generation += 1
        try:
            await self._register_and_load(first)
        finally:
            self._joining = False
            self._generation += 1

    async def _register_and_load(self, first: bool) -> None:
        self.token = secrets.token_hex(8)
        previous_entry, previous_epoch = self._last_entry, self.epoch
        ttl_ms = int(self.lease_s * 1000)
        # A new data set starts above every id handed out before, whoever had them: the
        # microseconds since 1970 grow faster than any real chat's ids.
        applied = self.hub.applied_through
        floor = max(applied + 1, time.time_ns() // 1000 if applied else 1)
        deadline = time.monotonic() + self.lease_s * 3
        while True:
            epoch, state = await self._register_script(
                args=[self.node_id, self.token, ttl_ms, secrets.token_hex(8), floor]
            )
            if state == b"ok":
                break
            if time.monotonic() > deadline:
                raise ClusterUnavailable(f"node id {self.node_id!r} is in use by a running node")
            if first:
                log.warning("node id %s: waiting for its previous lease to run out", self.node_id)
                first = False
            await asyncio.sleep(self.lease_s / 5)  # polling Redis for a key to expire
        self._renewed_at = time.monotonic()
        epoch_text = epoch.decode()
        if self.epoch and epoch_text != self.epoch:
            log.warning("Redis has a new data set: starting over from its stream")
            self.hub.reset()
        self.epoch = epoch_text
        snapshot = json.loads(await self._snapshot_script())
        last = str(snapshot["last"])
        self.hub.epoch_floor = int(snapshot.get("floor") or 0)
        sessions = snapshot["sessions"] if isinstance(snapshot["sessions"], list) else []
        self.hub.reset()
        self.hub.load(sessions, snapshot["topics"] or {})
        # Back in the same data set, the history lacks only what came since this node
        # last read; a new node, or a new data set, looks through the whole stream.
        same = previous_epoch == self.epoch and previous_entry != "0-0"
        await self._backfill("(" + previous_entry if same else "-", last)
        self._last_entry = last
        self.hub.advance(int(snapshot["next_id"]))
        self.hub.available = True
        log.info(
            "node %s joined the cluster at %s (epoch %s, %d members elsewhere)",
            self.node_id,
            self.safe_url(),
            self.epoch,
            len(sessions),
        )

    async def _backfill(self, start: str, through: str) -> None:
        """Give the history store the stream's events it lacks, up to the snapshot: a
        node that was down, or is new, resumes its members without holes."""
        have = self.hub.stored_through()
        if have is None:
            return
        while True:
            entries = _entries(
                await self._redis.xrange(STREAM_KEY, start, through, count=READ_COUNT)
            )
            for _, fields in entries:
                event_id = int(fields[b"id"])
                if event_id > have and fields[b"event"]:
                    if event_id > have + 1 and have >= self.hub.epoch_floor:
                        # Ids within an epoch follow each other: the stream was trimmed
                        # past what this store holds, so resumes from before have a gap.
                        self.hub.epoch_floor = event_id
                    have = event_id
                    self.hub.apply(event_id, fields[b"event"], {"op": "history"})
            if len(entries) < READ_COUNT:
                break
            start = "(" + entries[-1][0]
        self.hub.flush()

    @property
    def serving(self) -> bool:
        """Whether this node holds its lease and takes sends."""
        return self.hub.available

    def safe_url(self) -> str:
        """The Redis address without a password, for the log."""
        head, _, tail = self.url.rpartition("@")
        return f"redis://…@{tail}" if head else self.url

    # ------------------------------------------------------------------ proposals

    def propose(self, proposal: Proposal, done: Callable[[dict[str, Any]], None]) -> None:
        """Queue ``proposal``; ``done`` gets its outcome. Everything proposed in one loop
        iteration, or while the previous call was on its way, goes in one script call."""
        self._queue.append((proposal, done))
        if not self._send_scheduled and self._in_flight is None:
            self._send_scheduled = True
            asyncio.get_running_loop().call_soon(self._send_now)

    def _send_now(self) -> None:
        self._send_scheduled = False
        if not self._queue or self._in_flight is not None:
            return
        batch, self._queue = self._queue, []
        # One call at a time: two on two connections could run in either order, and a
        # member's messages must keep the order it sent them in.
        self._in_flight = asyncio.get_running_loop().create_task(self._send(batch))
        self._in_flight.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._in_flight = None
        if self._queue:
            self._send_now()

    async def _send(self, batch: list[tuple[Proposal, Callable[[dict[str, Any]], None]]]) -> None:
        args: list[str | int] = [
            self.node_id,
            self.token,
            self.epoch,
            format_ts_now(),
            STREAM_MAXLEN,
            json.dumps([proposal for proposal, _ in batch]),
            self.hub.applied_through,
        ]
        self.counts.calls += 1
        self.counts.proposals += len(batch)
        try:
            results = json.loads(await self._apply_script(args=args))
        except (RedisError, OSError) as exc:
            # The script may or may not have run: a client's resend with the same nonce
            # is stored once either way.
            log.warning("cluster: %d proposals not confirmed: %s", len(batch), exc)
            results = [{"err": ErrorCode.UNAVAILABLE.value}] * len(batch)
        if isinstance(results, dict):
            log.warning("cluster: proposals refused (%s): this node is cut off", results)
            self._cut_off()
            results = [{"err": ErrorCode.UNAVAILABLE.value}] * len(batch)
        for (_, done), result in zip(batch, results, strict=False):
            try:
                done(result)
            except Exception:
                log.exception("cluster: handling a proposal's outcome failed")

    # ------------------------------------------------------------------ the stream

    async def _send_loop_guard(self) -> None:
        """Read the stream until stopped; a broken connection is retried, not fatal."""
        while not self._stopping:
            try:
                await self._read()
            except (RedisError, OSError) as exc:
                log.debug("cluster: stream read failed: %s", exc)
                await asyncio.sleep(0.2)  # Redis is away: a retry per 200 ms, not a spin

    async def _read(self) -> None:
        while True:
            generation = self._generation
            reply: Any = await self._redis.xread(
                {STREAM_KEY: self._last_entry}, block=READ_BLOCK_MS, count=READ_COUNT
            )
            if not reply or generation != self._generation or self._joining:
                continue
            for _, raw in reply:
                for entry_id, fields in _entries(raw):
                    self._last_entry = entry_id
                    self.counts.applied += 1
                    try:
                        self.hub.apply(
                            int(fields[b"id"]),
                            fields[b"event"],
                            json.loads(fields.get(b"meta") or b"{}"),
                        )
                    except Exception:
                        log.exception("cluster: could not apply entry %s", self._last_entry)
            self._applied.set()

    # ------------------------------------------------------------------ lease, reaper

    async def _keep_lease(self) -> None:
        every = self.lease_s / 5
        ttl_ms = int(self.lease_s * 1000)
        while True:
            await asyncio.sleep(every)  # the renewal's own period
            now = time.monotonic()
            if not self.hub.available:
                await self._rejoin()
                continue
            if now - self._renewed_at > self.lease_s * 0.8:
                silent = now - self._renewed_at
                log.warning("cluster: lease not renewed for %.1f s; cut off", silent)
                self._cut_off()
                continue
            try:
                async with asyncio.timeout(every):
                    kept = await self._refresh_script(
                        args=[self.node_id, self.token, ttl_ms, self.epoch]
                    )
            except (TimeoutError, RedisError, OSError) as exc:
                log.debug("cluster: lease renewal failed: %s", exc)
                continue
            if kept:
                self._renewed_at = now
            else:
                log.warning("cluster: this node's lease is gone; cut off")
                self._cut_off()

    def _cut_off(self) -> None:
        if self.hub.available:
            self.counts.cut_offs += 1
            self.hub.cut_off()

    async def _rejoin(self) -> None:
        try:
            async with asyncio.timeout(self.lease_s):
                await self._join_cluster(first=False)
        except (TimeoutError, RedisError, OSError, ClusterUnavailable) as exc:
            log.debug("cluster: rejoining failed: %s", exc)

    async def _reap(self) -> None:
        while True:
            await asyncio.sleep(self.lease_s / 2)  # a dead lease is found within this
            if not self.hub.available:
                continue
            try:
                async with asyncio.timeout(self.lease_s / 2):
                    reaped = await self._reap_script(
                        args=[self.node_id, self.token, self.epoch, format_ts_now(), STREAM_MAXLEN]
                    )
            except (TimeoutError, RedisError, OSError):
                continue
            if reaped:
                log.info("cluster: %d sessions of a lost node ended", reaped)


def format_ts_now() -> str:
    return format_ts(datetime.now(UTC))


def _entries(raw: Any) -> list[tuple[str, dict[bytes, bytes]]]:
    """Stream entries as redis-py returns them (bytes, no decoding), typed."""
    return [(entry_id.decode(), fields) for entry_id, fields in raw or ()]
