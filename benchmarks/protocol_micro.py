"""CPU cost of the protocol's hot paths: a line in to a typed frame, an event out to bytes.

    python benchmarks/protocol_micro.py [--runs N] [--against OLD_PROTOCOL_PY] [CASE...]

Each case runs ``--runs`` times (default 21) for about 20 ms of CPU each; it prints the
median and the minimum nanoseconds per call. CPU time rather than wall time, so that
other processes on a shared machine add less noise.

``--against`` loads a second copy of the protocol module from a file (say
``git show HEAD~1:chatroom/protocol.py > /tmp/old.py``) and times both, run for run in
turn, in the same process: on a shared machine that drifts by tens of percent within
a minute, only measurements taken side by side compare.

The ``msgspec-*`` cases, there when msgspec is installed, do the same work with msgspec
Structs for comparison; they first check that msgspec writes the same bytes as
``encode()``, and say so when it does not.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import time
from collections.abc import Callable
from types import ModuleType
from typing import Annotated, Any

import chatroom.protocol
from chatroom.framing import FrameDecoder

TEXT = "1234567890123456789 0001 000000001 " + "x" * 45  # 80 characters, as the bench sends
NONCE = "6f1c1a3e-8a4b-4f0e-9d7c-2b5e4a1c9d30"
SAY = {"type": "say", "text": TEXT, "nonce": NONCE, "room": "dev"}
SAY_LINE = json.dumps(SAY, separators=(",", ":")).encode() + b"\n"
PING_LINE = b'{"type":"ping","token":"t-000123"}\n'
PONG_LINE = b'{"type":"pong","token":"t-000123"}\n'
TS = "2026-11-24T02:30:01.123Z"
EVENT: dict[str, Any] = {"id": 123456, "ts": TS, "room": "dev"}

Case = Callable[[int], None]


def _decode_and_parse(line: bytes) -> Callable[[ModuleType], Case]:
    """The server's path: one decoder per connection, then the frame table."""

    def make(protocol: ModuleType) -> Case:
        decoder = FrameDecoder()

        def run(loops: int) -> None:
            receive, next_frame = decoder.receive_data, decoder.next_frame
            parse = protocol.parse_client_frame
            for _ in range(loops):
                receive(line)
                parse(next_frame())

        return run

    return make


def _parse(line: bytes, side: str = "client") -> Callable[[ModuleType], Case]:
    """The frame table alone: a decoded object to a typed frame."""
    obj = json.loads(line)

    def make(protocol: ModuleType) -> Case:
        parse = getattr(protocol, f"parse_{side}_frame")

        def run(loops: int) -> None:
            for _ in range(loops):
                parse(obj)

        return run

    return make


def _encode(frame_class: str, **fields: Any) -> Callable[[ModuleType], Case]:
    def make(protocol: ModuleType) -> Case:
        frame = getattr(protocol, frame_class)(**fields)
        encode = protocol.encode

        def run(loops: int) -> None:
            for _ in range(loops):
                encode(frame)

        return run

    return make


MESSAGE: dict[str, Any] = {**EVENT, "sender": "alice", "text": TEXT, "nonce": NONCE}
MESSAGE_LINE = chatroom.protocol.encode(chatroom.protocol.Message(**MESSAGE))
CASES: dict[str, tuple[str, Callable[[ModuleType], Case]]] = {
    "say-line": ("say line -> Say (FrameDecoder + parse)", _decode_and_parse(SAY_LINE)),
    "ping-line": ("ping line -> Ping (FrameDecoder + parse)", _decode_and_parse(PING_LINE)),
    "say-parse": ("say object -> Say (parse_client_frame)", _parse(SAY_LINE)),
    "ping-parse": ("ping object -> Ping (parse_client_frame)", _parse(PING_LINE)),
    "pong-parse": ("pong object -> Pong (parse_client_frame)", _parse(PONG_LINE)),
    "message-parse": ("message object -> Message (server)", _parse(MESSAGE_LINE, "server")),
    "message-encode": ("Message -> bytes (encode)", _encode("Message", **MESSAGE)),
    "join-encode": ("Join -> bytes (encode)", _encode("Join", **EVENT, name="bob")),
    "leave-encode": (
        "Leave -> bytes (encode)",
        _encode("Leave", **EVENT, name="bob", reason="quit"),
    ),
    "ping-encode": ("Ping -> bytes (encode)", _encode("Ping", token="t-000123")),
}

try:
    import msgspec
except ImportError:  # the comparison is optional
    msgspec = None  # type: ignore[assignment]

if msgspec is not None:
    _OPTIONS: dict[str, Any] = {"tag_field": "type", "frozen": True, "omit_defaults": True}

    class MSay(msgspec.Struct, tag="say", **_OPTIONS):
        text: str
        nonce: Annotated[str, msgspec.Meta(max_length=64)] | None = None
        room: str = "lobby"
        action: bool = False

    class MPing(msgspec.Struct, tag="ping", **_OPTIONS):
        token: str = ""

    class MMessage(msgspec.Struct, tag="message", **_OPTIONS):
        id: int
        ts: str
        room: str
        sender: str = msgspec.field(name="from")
        text: str
        nonce: str | None = None
        action: bool = False

    class MJoin(msgspec.Struct, tag="join", **_OPTIONS):
        id: int
        ts: str
        room: str
        name: str

    class MLeave(msgspec.Struct, tag="leave", **_OPTIONS):
        id: int
        ts: str
        room: str
        name: str
        reason: str


def _msgspec_cases() -> dict[str, tuple[str, Case]]:
    """The same work done by msgspec, where it can be made to give the same result."""
    if msgspec is None:
        return {}
    requests = MSay | MPing
    decoder = msgspec.json.Decoder(requests)
    encoder = msgspec.json.Encoder()

    def decode_bytes(line: bytes) -> Case:
        """msgspec at its best: bytes straight to a Struct, no dict in between (which
        means a decoder interface that hands out lines, not objects)."""
        body = line[:-1]

        def run(loops: int) -> None:
            decode = decoder.decode
            for _ in range(loops):
                decode(body)

        return run

    def convert_dict(line: bytes) -> Case:
        """msgspec behind today's interface: the decoded dict, then convert() to the
        Struct the type names (convert() to the union itself costs ten times more)."""
        obj = json.loads(line)
        struct = {"say": MSay, "ping": MPing}[obj["type"]]

        def run(loops: int) -> None:
            convert = msgspec.convert
            for _ in range(loops):
                convert(obj, struct)

        return run

    def decode_dict(line: bytes) -> Case:
        """msgspec's JSON parser in place of json.loads, still handing out a dict."""

        def run(loops: int) -> None:
            decode = msgspec.json.decode
            for _ in range(loops):
                decode(line)

        return run

    def encoded(struct: Any, frame: Any) -> Case:
        got = encoder.encode(struct) + b"\n"
        if got != chatroom.protocol.encode(frame):
            print(f"msgspec writes other bytes for {type(frame).__name__}: {got!r}")

        def run(loops: int) -> None:
            encode_struct = encoder.encode
            for _ in range(loops):
                encode_struct(struct) + b"\n"

        return run

    protocol = chatroom.protocol
    join: dict[str, Any] = {**EVENT, "name": "bob"}
    leave = {**join, "reason": "quit"}
    return {
        "msgspec-say-decode": ("say line -> MSay (Decoder.decode)", decode_bytes(SAY_LINE)),
        "msgspec-ping-decode": ("ping line -> MPing (Decoder.decode)", decode_bytes(PING_LINE)),
        "msgspec-say-convert": ("say object -> MSay (convert)", convert_dict(SAY_LINE)),
        "msgspec-json-decode": ("say line -> dict (msgspec.json.decode)", decode_dict(SAY_LINE)),
        "json-loads": ("say line -> dict (json.loads), for scale", _loads(SAY_LINE)),
        "msgspec-message-encode": (
            "MMessage -> bytes (Encoder.encode)",
            encoded(MMessage(**MESSAGE), protocol.Message(**MESSAGE)),
        ),
        "msgspec-join-encode": (
            "MJoin -> bytes (Encoder.encode)",
            encoded(MJoin(**join), protocol.Join(**join)),
        ),
        "msgspec-leave-encode": (
            "MLeave -> bytes (Encoder.encode)",
            encoded(MLeave(**leave), protocol.Leave(**leave)),
        ),
    }


def _loads(line: bytes) -> Case:
    def run(loops: int) -> None:
        loads = json.loads
        for _ in range(loops):
            loads(line)

    return run


def _loops(case: Case) -> int:
    """How many calls take about 20 ms of CPU."""
    loops = 1
    while True:
        started = time.process_time_ns()
        case(loops)
        spent = time.process_time_ns() - started
        if spent > 5_000_000:
            return max(1, int(loops * 20_000_000 / spent))
        loops *= 4


def _time(cases: list[Case], runs: int) -> list[list[float]]:
    """Nanoseconds per call, run by run, each run of every case in turn."""
    loops = [_loops(case) for case in cases]
    timings: list[list[float]] = [[] for _ in cases]
    for _ in range(runs):
        for case, count, times in zip(cases, loops, timings, strict=True):
            started = time.process_time_ns()
            case(count)
            times.append((time.process_time_ns() - started) / count)
    return timings


def _load(path: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location("protocol_against", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses looks its module up while it builds the classes.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def main() -> int:
    extra = _msgspec_cases()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--against", metavar="PROTOCOL_PY", help="a protocol.py to compare")
    parser.add_argument("cases", nargs="*", metavar="CASE", help=", ".join([*CASES, *extra]))
    args = parser.parse_args()
    unknown = set(args.cases) - set(CASES) - set(extra)
    if unknown:
        parser.error(f"no such case: {', '.join(sorted(unknown))}")
    modules = [chatroom.protocol] + ([_load(args.against)] if args.against else [])
    heading = "this tree" + ("  |  --against" if args.against else "")
    print(f"{'case':24} {'what':44} {heading}: median ns, min ns")
    for name in args.cases or [*CASES, *extra]:
        if name in CASES:
            title, make = CASES[name]
            timings = _time([make(module) for module in modules], args.runs)
        else:
            title, case = extra[name]
            timings = _time([case], args.runs)
        figures = "  |  ".join(
            f"{statistics.median(times):7.0f} {min(times):7.0f}" for times in timings
        )
        print(f"{name:24} {title:44} {figures}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
