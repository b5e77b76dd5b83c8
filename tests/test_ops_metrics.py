"""/metrics and /healthz on the chat port, and the operations log lines."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path

import pytest
from conftest import TIMEOUT_S, RunningServer, StartServer, expect, wait_for
from prometheus_client.parser import text_string_to_metric_families
from websockets.datastructures import Headers
from websockets.http11 import Request

from chatroom.history import HistoryStore
from chatroom.logs import JsonFormatter
from chatroom.protocol import Dm, DmRequest, Error, Leave, Message


async def _get(running: RunningServer, path: str, *headers: str) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection(running.host, running.port)
    try:
        extra = "".join(f"{header}\r\n" for header in headers)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode())
        async with asyncio.timeout(TIMEOUT_S):
            data = await reader.read()
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


async def _metrics(running: RunningServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, body = await _get(running, "/metrics")
    assert status == 200
    samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return samples


async def test_metrics_match_a_scripted_conversation(start_server: StartServer) -> None:
    """Two members join, say four messages and one private one, and one quits: the
    counters, parsed by prometheus-client's own parser, say exactly that."""
    running = await start_server(flood_rate=0)
    alice = await running.client("alice")
    bob = await running.client("bob")
    for n in range(3):
        await alice.say(f"a{n}")
    await bob.say("b0")
    await alice.send(DmRequest(to="bob", text="psst"))
    await expect(bob, Dm)
    await bob.close()
    await expect(alice, Leave)
    m = await _metrics(running)

    def events(kind: str) -> float:
        return m["chatroom_events_total", (("type", kind),)]

    def deliveries(kind: str) -> float:
        return m["chatroom_deliveries_total", (("type", kind),)]

    assert (events("join"), events("message"), events("dm"), events("leave")) == (2, 4, 1, 1)
    # Alice's join reached alice, bob's both; each message both; the DM its two
    # parties; bob's leave alice alone.
    assert (deliveries("join"), deliveries("message"), deliveries("dm")) == (3, 8, 2)
    assert deliveries("leave") == 1
    assert m["chatroom_members", ()] == 1
    assert m["chatroom_rooms", ()] == 1
    assert m["chatroom_connections", (("transport", "ndjson"),)] == 1
    assert m["chatroom_connections", (("transport", "http"),)] == 1
    assert m["chatroom_sessions_ended_total", (("reason", "quit"),)] == 1
    assert m["chatroom_received_bytes_total", ()] > 0
    assert m["chatroom_sent_bytes_total", ()] > m["chatroom_received_bytes_total", ()]
    assert m["chatroom_flush_duration_seconds_count", ()] >= 4
    assert (
        m["chatroom_flush_duration_seconds_bucket", (("le", "+Inf"),)]
        == m["chatroom_flush_duration_seconds_count", ()]
    )
    assert m["chatroom_rate_limited_frames_total", ()] == 0
    assert ("chatroom_event_loop_lag_seconds", ()) in m
    assert ("process_cpu_seconds_total", ()) in m
    await alice.close()


async def test_refusals_and_rate_limits_are_counted(start_server: StartServer) -> None:
    """A connection over the cap and a frame over the flood limit show up by reason.
    (A scrape is a connection like any other: it needs a place under the cap.)"""
    running = await start_server(max_connections=2, flood_rate=0.1, flood_burst=1)
    alice = await running.client("alice")
    bob = await running.client("bob")
    await alice.say("one")
    await expect(alice, Error)
    extra = await running.raw()
    assert (await extra.expect("error"))["code"] == "server_full"
    extra.close()
    await bob.close(send_bye=False)  # a place for the scrape (a bye would be limited too)
    await wait_for(lambda: running.server.connection_count == 1)
    m = await _metrics(running)
    assert m["chatroom_rate_limited_frames_total", ()] == 1
    assert m["chatroom_connections_refused_total", (("reason", "server_full"),)] == 1
    await alice.close()


async def test_healthz_turns_503_when_history_cannot_be_written(
    start_server: StartServer, tmp_path: Path
) -> None:
    """With a history store: 200 while it is written; once its files refuse writes (as
    on a disk gone read-only) 503 saying so; 200 again when writes work again."""
    store = HistoryStore.in_dir(tmp_path / "data")
    try:
        running = await start_server(flood_rate=0, history_store=store)
        alice = await running.client("alice")
        assert await _get(running, "/healthz") == (200, b"ok\n")
        journal = store._journal
        assert journal is not None
        saved = [os.dup(fd) for fd in journal._fds]
        read_only = os.open(os.devnull, os.O_RDONLY)
        for fd in journal._fds:
            os.dup2(read_only, fd)
        await alice.say("into the void")
        await expect(alice, Message)
        status, body = await _get(running, "/healthz")
        assert status == 503 and b"history" in body
        for fd, original in zip(journal._fds, saved, strict=True):
            os.dup2(original, fd)
            os.close(original)
        os.close(read_only)
        await alice.say("back")
        await expect(alice, Message)
        assert await _get(running, "/healthz") == (200, b"ok\n")
        await alice.close()
    finally:
        await running.server.close()
        store.close()


async def test_healthz_is_503_once_the_listener_stops(start_server: StartServer) -> None:
    """Health answers what the listener does: a closing server is not healthy."""
    running = await start_server()
    ops = running.server.ops
    assert ops is not None and ops.healthy() == (True, "ok")
    await running.server.close()
    assert ops.healthy()[0] is False


async def test_metrics_are_for_loopback_and_allowed_networks_only(
    start_server: StartServer,
) -> None:
    """Loopback may read them; other addresses only when --metrics-allow names their
    network; a request through a proxy never (it would look local). The rest: 404."""
    running = await start_server()
    ops = running.server.ops
    assert ops is not None

    def request(*headers: tuple[str, str]) -> Request:
        return Request("/metrics", Headers([("Host", "x"), *headers]))

    assert ops.allowed("127.0.0.1", request())
    assert ops.allowed("::1", request())
    assert ops.allowed("::ffff:127.0.0.1", request())
    assert not ops.allowed("10.1.2.3", request())
    assert not ops.allowed("127.0.0.1", request(("X-Forwarded-For", "203.0.113.9")))
    ops.set_allow(["10.0.0.0/8"])
    assert ops.allowed("10.1.2.3", request())
    assert not ops.allowed("192.0.2.1", request())
    status, _ = await _get(running, "/metrics", "Forwarded: for=203.0.113.9")
    assert status == 404


async def test_no_metrics_and_no_web(start_server: StartServer) -> None:
    """metrics off: /metrics is a 404 and the app still serves; web off: the metrics
    still answer and the app's files do not."""
    without = await start_server(metrics=False)
    assert (await _get(without, "/metrics"))[0] == 404
    assert without.server.ops is None
    web_off = await start_server(web=False)
    assert (await _get(web_off, "/healthz"))[0] == 200
    assert (await _get(web_off, "/"))[0] == 404
    conn = await web_off.client("alice")  # NDJSON is unchanged
    await conn.close()


async def test_log_lines_for_refusals_and_drops_carry_no_message_text(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A refused connection and a member dropped for flooding each get one line with
    the reason; the JSON format writes the fields as keys; no message text appears."""
    running = await start_server(max_connections=1, flood_rate=0.1, flood_burst=1)
    with caplog.at_level(logging.INFO, logger="chatroom"):
        flooder = await running.client("flooder")
        extra = await running.raw()
        assert (await extra.expect("error"))["code"] == "server_full"
        extra.close()
        for _ in range(60):
            await flooder.say("secret words")
        await wait_for(lambda: running.server.hub.members() == [])
        await flooder.close()
    lines = [json.loads(JsonFormatter().format(record)) for record in caplog.records]
    refused = [line for line in lines if line.get("event") == "refused"]
    dropped = [line for line in lines if line.get("event") == "dropped"]
    assert len(refused) == 1 and refused[0]["reason"] == "server_full"
    assert len(dropped) == 1 and dropped[0]["reason"] == "kicked"
    assert dropped[0]["member"] == "flooder"
    assert all("secret" not in json.dumps(line) for line in lines)
