"""What a load client says and reads on the wire: chatroom's protocol, JSON lines over TCP."""

from __future__ import annotations

import contextlib
import json
import re
from typing import Any

from chatroom.bench.engine import _Client, _Load

__all__ = ["_JsonLinesLoad"]

_MESSAGE = b'"type":"message"'
# One per frame: a quote inside a string value is escaped, so this cannot occur in one,
# and only welcome and joined nest events (their history), which are read apart. A
# multi-byte search skips ahead; counting b"\n" looks at every byte.
_FRAME = b'"type":"'
_JOIN = b'"type":"join"'
_LEAVE = b'"type":"leave"'
_ERROR = b'"type":"error"'
_WELCOME = b'{"type":"welcome"'
_LAZY_ABOVE = b'"lazy_members_above":'
_MEMBERS = b'"members":['
_STAMP = re.compile(rb'"text":"(\d{19}) ')
# The same and the sender's number, when latency is split by the sender's node.
_STAMP_FROM = re.compile(rb'"text":"(\d{19}) (\d{4}) ')
_SAY_PREFIX = b'{"type":"say","text":"'
_SAY_SUFFIX = b'"}\n'


def _hello_frame(name: str, lazy_members: bool = False) -> bytes:
    hello: dict[str, Any] = {"type": "hello", "protocol": 1, "name": name}
    if lazy_members:
        hello["lazy_members"] = True
    return (json.dumps(hello, separators=(",", ":")) + "\n").encode()


class _JsonLinesLoad(_Load):
    """A load process whose clients speak chatroom's own protocol, as chatroom-tui does."""

    # What a delivered message and its latency stamp look like on this wire.
    _message_marker = _MESSAGE
    _stamp = _STAMP
    _stamp_from = _STAMP_FROM

    # ---------------------------------------------------------------- connect

    def _ack_marker(self, name: str) -> bytes:
        return b'"from":"' + name.encode() + b'",'

    def _greet(self, client: _Client) -> None:
        self._write(client, _hello_frame(client.name, self.spec.lazy_members))

    # ---------------------------------------------------------------- input

    def _feed(self, client: _Client, data: bytes, now: int) -> None:
        self._lines(client, data, 0, len(data), now)

    def _lines(self, client: _Client, data: bytes, start: int, end: int, now: int) -> None:
        """Account for the lines in ``data[start:end]``: only whole lines, counted with
        byte searches; a partial last line waits in ``client.tail`` for the rest.

        Searches take bounds instead of slices: a chunk is up to 256 KiB, and copying it
        to drop a partial last line (or to prepend the previous one) costs as much as
        counting it.
        """
        if client.tail:
            first_end = data.find(b"\n", start, end) + 1
            if not first_end:
                client.tail += data[start:end]
                return
            head, client.tail = client.tail + data[start:first_end], b""
            self._count(client, head, 0, len(head), now)
            start = first_end
        last = data.rfind(b"\n", start, end) + 1
        if last < end:
            client.tail = data[max(start, last) : end]
        if last > start:
            self._count(client, data, start, last, now)

    def _messages(self, client: _Client, data: bytes, start: int, end: int, now: int) -> int:
        """Count the messages among the whole lines in ``data[start:end]``: deliveries,
        latency stamps of the probe, a sender's acknowledgements. Returns how many."""
        count = data.count(self._message_marker, start, end)
        if count:
            client.messages += count
            if self.t0 <= now < self.t1:
                self.window_deliveries += count
                if client.probe:
                    if self.sender_nodes:
                        found = self._stamp_from.findall(data, start, end)
                        self.sends.extend([int(stamp) for stamp, _ in found])
                        nodes, node = self.sender_nodes, client.node
                        self.crossed.extend([nodes[int(sender)] != node for _, sender in found])
                        stamped = len(found)
                    else:
                        stamps = self._stamp.findall(data, start, end)
                        self.sends.extend(map(int, stamps))
                        stamped = len(stamps)
                    self.marks.append(now)
                    self.mark_counts.append(stamped)
            if client.sender_id >= 0:
                acks = data.count(client.marker, start, end)
                if acks:
                    client.unacked -= acks
                    if self.sending and self.spec.mode == "fanout":
                        self._top_up(client, now)
        return count

    def _count(self, client: _Client, data: bytes, start: int, end: int, now: int) -> None:
        """Account for the whole lines in ``data[start:end]``."""
        if not client.welcomed:
            data = self._welcome(client, data[start:end], now)
            start, end = 0, len(data)
            if not data:
                return
        frames = data.count(_FRAME, start, end)
        count = self._messages(client, data, start, end, now)
        other = frames - count
        if other:
            joins = data.count(_JOIN, start, end)
            if joins:
                client.joins += joins
                if not client.settled and client.joins >= client.expected_joins:
                    client.settled = True
                    self.settled += 1
                    self.last_settle = now
                other -= joins
            if other:
                leaves = data.count(_LEAVE, start, end)
                self.leaves += leaves
                if other - leaves:
                    self._odd_lines(client, data[start:end])

    def _welcome(self, client: _Client, data: bytes, now: int) -> bytes:
        """Find the welcome; return what follows it (join events of this member on)."""
        start = data.find(_WELCOME)
        if start < 0:
            if self._odd_lines(client, data) and not client.closed:
                # A refused hello (name taken, server full...): this client is done.
                self._refused(client)
            return b""
        if start:
            self._odd_lines(client, data[:start])
        end = data.index(b"\n", start)
        members_at = data.find(_MEMBERS, start, end)
        members = 0
        if members_at >= 0:
            members_at += len(_MEMBERS)
            members_end = data.index(b"]", members_at)
            if members_end > members_at:
                members = data.count(b'","', members_at, members_end) + 1
        client.welcomed = True
        client.welcomed_at = now
        # It is sent its own join and every later one: a settled room has sent them all.
        # A lazy member of a big room is owed its own join only (the server says it
        # took the request by telling the threshold).
        if data.find(_LAZY_ABOVE, start, end) >= 0:
            client.expected_joins = 1
        else:
            client.expected_joins = self.spec.total_members - members + 1
        self.welcomed += 1
        self._resolve(client)
        self.last_welcome = max(self.last_welcome, now)
        return data[end + 1 :]

    def _odd_lines(self, client: _Client, data: bytes) -> int:
        """The rare frames: errors are counted (and returned), pings answered."""
        errors = 0
        for line in data.split(b"\n"):
            if _ERROR in line:
                errors += 1
                self._note_error(f"{client.name}: {line[:160].decode(errors='replace')}")
            elif line.startswith(b'{"type":"ping"'):
                with contextlib.suppress(ValueError):
                    token = json.loads(line).get("token", "")
                    pong = {"type": "pong", "token": token}
                    self._write(client, (json.dumps(pong, separators=(",", ":")) + "\n").encode())
        return errors

    # ---------------------------------------------------------------- output

    def _frames(self, client: _Client, count: int, now: int) -> bytes:
        head = _SAY_PREFIX + b"%019d %04d " % (now, client.sender_id)
        tail = b" " + client.pad + _SAY_SUFFIX
        first = client.seq
        client.seq += count
        return b"".join([head + b"%09d" % seq + tail for seq in range(first, first + count)])
