"""A deliberately naive chat server, the baseline that ``chatroom-bench --baseline`` runs.

It speaks the protocol-v1 subset the benchmark uses (hello/welcome, say -> message to
everyone, join/leave, who, ping/pong, bye) the way a first version usually does: one
thread per client, one lock around the member table, and a ``sendall`` to each member
for each event, in the sender's thread, while holding the lock. It keeps no history
(``welcome.history`` is empty) and has no limits, timeouts or rate control.

It is not part of the ``chatroom`` package and nothing should depend on it.

    python benchmarks/naive_server.py --bind 127.0.0.1:5001 [--transcript PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import sys
import threading
from datetime import UTC, datetime
from typing import Any

__all__ = ["NaiveServer", "main"]

SERVER_NAME = "naive/0.1.0"
ROOM = "lobby"
MAX_NAME_CHARS = 32


def _now() -> str:
    moment = datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _encode(obj: dict[str, Any]) -> bytes:
    return (json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


class NaiveServer:
    """Members and fan-out behind one lock; every send happens with the lock held."""

    def __init__(self, transcript_path: str | None = None) -> None:
        self.lock = threading.Lock()
        self.members: dict[socket.socket, str] = {}
        self.keys: set[str] = set()
        self.next_id = 1
        # Appended once per event, unbuffered, as the real server's transcript is, so the
        # comparison does not flatter the baseline by skipping the durable write.
        self.transcript_fd = (
            os.open(transcript_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            if transcript_path
            else None
        )

    def _event(self, obj: dict[str, Any], line: str) -> None:
        """Number, record and broadcast one event. The caller holds the lock."""
        obj["id"] = self.next_id
        self.next_id += 1
        if self.transcript_fd is not None:
            os.write(self.transcript_fd, f"{obj['ts']} #{ROOM} {line}\n".encode())
        data = _encode(obj)
        for member in list(self.members):
            # A broken socket is its own thread's to notice and remove.
            with contextlib.suppress(OSError):
                member.sendall(data)

    def _reply(self, sock: socket.socket, obj: dict[str, Any]) -> None:
        # Under the lock too: a broadcast from another thread must not interleave with it.
        with self.lock, contextlib.suppress(OSError):
            sock.sendall(_encode(obj))

    def _error(self, sock: socket.socket, code: str, message: str) -> None:
        self._reply(sock, {"type": "error", "code": code, "message": message})

    def handle(self, sock: socket.socket) -> None:
        """One client's whole life, in its own thread."""
        name: str | None = None
        reason = "disconnected"
        try:
            with sock.makefile("rb") as lines:
                for line in lines:
                    if not line.strip():
                        continue
                    try:
                        obj = json.loads(line)
                    except ValueError:
                        self._error(sock, "bad_frame", "not JSON")
                        continue
                    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
                        self._error(sock, "bad_request", "a frame needs a string 'type'")
                        continue
                    kind = obj["type"]
                    if kind == "ping":
                        self._reply(sock, {"type": "pong", "token": obj.get("token", "")})
                    elif kind == "pong":
                        pass
                    elif kind == "bye":
                        reason = "quit"
                        break
                    elif kind == "hello":
                        if name is not None:
                            self._error(sock, "bad_request", "already joined")
                        else:
                            name = self._hello(sock, obj.get("name"))
                    elif name is None:
                        self._error(sock, "not_joined", f"send hello before {kind}")
                    elif kind == "say":
                        self._say(sock, name, obj.get("text"))
                    elif kind == "who":
                        with self.lock:
                            members = list(self.members.values())
                        self._reply(sock, {"type": "members", "room": ROOM, "members": members})
                    else:
                        self._error(sock, "unknown_type", f"unknown frame type {kind[:40]!r}")
        except OSError:
            pass
        finally:
            if name is not None:
                with self.lock:
                    del self.members[sock]
                    self.keys.discard(name.casefold())
                    self._event(
                        {
                            "type": "leave",
                            "ts": _now(),
                            "room": ROOM,
                            "name": name,
                            "reason": reason,
                        },
                        f"<-- {name} left ({reason})",
                    )
            sock.close()

    def _hello(self, sock: socket.socket, name: object) -> str | None:
        if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME_CHARS:
            self._error(sock, "invalid_name", "a name has 1 to 32 characters")
            return None
        with self.lock:
            if name.casefold() in self.keys:
                sock.sendall(
                    _encode(
                        {"type": "error", "code": "name_taken", "message": "that name is taken"}
                    )
                )
                return None
            self.keys.add(name.casefold())
            self.members[sock] = name
            sock.sendall(
                _encode(
                    {
                        "type": "welcome",
                        "protocol": 1,
                        "name": name,
                        "server": SERVER_NAME,
                        "room": ROOM,
                        "members": list(self.members.values()),
                        "history": [],
                    }
                )
            )
            self._event(
                {"type": "join", "ts": _now(), "room": ROOM, "name": name}, f"--> {name} joined"
            )
        return name

    def _say(self, sock: socket.socket, name: str, text: object) -> None:
        if not isinstance(text, str):
            self._error(sock, "bad_request", "field 'text' must be a string")
            return
        with self.lock:
            self._event(
                {"type": "message", "ts": _now(), "room": ROOM, "from": name, "text": text},
                f"<{name}> {text}",
            )

    def serve(self, host: str, port: int) -> None:
        """Accept forever, one thread per connection."""
        with socket.create_server((host, port), reuse_port=False) as listener:
            while True:
                sock, _ = listener.accept()
                # asyncio (hence chatroom) sets TCP_NODELAY on every connection; without
                # it here the baseline would lose to Nagle's algorithm, not to its design.
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                threading.Thread(target=self.handle, args=(sock,), daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A deliberately naive chat server.")
    parser.add_argument("--bind", default="127.0.0.1:5001", metavar="HOST:PORT")
    parser.add_argument("--transcript", default=None, metavar="PATH")
    args = parser.parse_args(argv)
    host, _, port = args.bind.rpartition(":")
    # SIGTERM ends the process at once: daemon threads need no cleanup.
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    try:
        NaiveServer(args.transcript).serve(host or "127.0.0.1", int(port))
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
