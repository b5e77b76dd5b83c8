"""A seeded fuzz of the running server with frames from the whole request grammar."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from typing import Any

import pytest
from conftest import TIMEOUT_S, RawClient, StartServer

# Values of every JSON type, with the edges a handler might trip on: huge and negative
# numbers, empty and long strings, names of rooms and members that exist or look alike.
_STRINGS = [
    "",
    " ",
    "lobby",
    "#lobby",
    "LOBBY",
    "l\u043ebby",
    "other",
    "x" * 40,
    "x" * 5000,
    "fuzz0",
    "FUZZ1",
    "fuzz2",
    "nobody",
    "\u202e",
    "a\nb",
    "[b]",
    "😀" * 3,
    "\x00",
]
_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    1,
    -1,
    2**31,
    2**63,
    -(2**63),
    1.5,
    [],
    {},
    ["lobby"],
    {"a": 1},
    *_STRINGS,
]
_FIELDS = [
    "text",
    "room",
    "name",
    "to",
    "token",
    "nonce",
    "action",
    "before",
    "limit",
    "resume_after",
    "protocol",
    "password",
]
_TYPES = [
    "hello",
    "say",
    "who",
    "bye",
    "ping",
    "pong",
    "history",
    "join",
    "part",
    "rooms",
    "topic",
    "dm",
    "nick",
]


def _random_frame(rng: random.Random, me: int) -> dict[str, Any]:
    kind = rng.choice(_TYPES)
    if kind == "bye" and rng.random() < 0.9:
        kind = "ping"  # a rare bye, so connections live long enough to be interesting
    frame: dict[str, Any] = {"type": kind if rng.random() < 0.95 else rng.choice(_VALUES)}
    # Mostly well-typed fields, so handlers are reached, with some wrong ones mixed in.
    plausible: dict[str, Any] = {
        "text": rng.choice(["hi", "", "x" * 4001, "\x1b[31m", "multi\nline"]),
        "room": rng.choice(["lobby", "other", "#x", "", "x" * 100, "l\u043ebby"]),
        "name": rng.choice([f"fuzz{me}", f"fuzz{rng.randrange(4)}", "", "x" * 40, "FUZZ1"]),
        "to": rng.choice([f"fuzz{rng.randrange(4)}", "nobody", "", "FUZZ0"]),
        "token": rng.choice(["t", "", "x" * 100]),
        "nonce": rng.choice(["n1", "", "n" * 65]),
        "action": rng.choice([True, False]),
        "before": rng.choice([None, 0, 1, -5, 2**62, 10]),
        "limit": rng.choice([1, 0, -1, 10**9, 500, 501]),
        "resume_after": rng.choice([0, -1, 2**62, 3]),
        "protocol": rng.choice([1, 1, 1, 2, 0]),
        "password": rng.choice(["", "pw"]),
    }
    for name in rng.sample(_FIELDS, rng.randint(0, 5)):
        frame[name] = plausible[name] if rng.random() < 0.8 else rng.choice(_VALUES)
    if frame["type"] == "hello" and rng.random() < 0.7:
        frame.update(protocol=1, name=f"fuzz{me}")
    return frame


async def _drain(raw: RawClient, seen: list[dict[str, Any]]) -> None:
    with contextlib.suppress(ConnectionError, TimeoutError):
        while (obj := await raw.recv(timeout_s=TIMEOUT_S * 4)) is not None:
            seen.append(obj)


@pytest.mark.parametrize("seed", range(4))
async def test_random_requests_never_break_the_server(
    start_server: StartServer, caplog: pytest.LogCaptureFixture, seed: int
) -> None:
    """Thousands of random requests from four connections: the server answers or closes,
    never logs a failed connection, and afterwards serves a fresh client normally."""
    running = await start_server(flood_rate=0)
    rng = random.Random(seed)
    seen: list[dict[str, Any]] = []
    raws: list[RawClient] = []
    readers: list[asyncio.Task[None]] = []

    async def connect(index: int) -> None:
        raw = await running.raw()
        # Joined first, mostly, so that the handlers behind the handshake are reached.
        if rng.random() < 0.8:
            await raw.send(_line({"type": "hello", "protocol": 1, "name": f"fuzz{index}"}))
        reader = asyncio.create_task(_drain(raw, seen))
        if index < len(raws):
            raws[index].close()
            raws[index], readers[index] = raw, reader
        else:
            raws.append(raw)
            readers.append(reader)

    with caplog.at_level(logging.WARNING):
        for index in range(4):
            await connect(index)
        for _ in range(600):
            index = rng.randrange(len(raws))
            if readers[index].done():  # closed by bye, a fatal error or auth: reconnect
                await connect(index)
            frame = _random_frame(rng, index)
            with contextlib.suppress(ConnectionError):
                await raws[index].send(_line(frame))
        for raw in raws:
            with contextlib.suppress(ConnectionError, RuntimeError):
                raw.writer.write_eof()
        async with asyncio.timeout(TIMEOUT_S * 4):
            await asyncio.gather(*readers)
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert failures == [], [r.getMessage() for r in failures]
    answers = [obj.get("type") for obj in seen]
    assert "error" in answers and "welcome" in answers
    # Whatever happened, the server still works for someone new.
    fresh = await running.client("fresh-client")
    await fresh.say("still fine")
    async with asyncio.timeout(TIMEOUT_S):
        while getattr(await fresh.recv(), "text", None) != "still fine":
            pass
    await fresh.close()
    for raw in raws:
        raw.close()


def _line(frame: dict[str, Any]) -> bytes:
    return json.dumps(frame).encode() + b"\n"
