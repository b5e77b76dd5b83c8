"""chatroom-bench smoke tests: every workload at a tiny size, against real servers on loopback.

These check that the benchmark runs and reports what it promises (and that nothing is
lost), never how fast anything is: timings on a shared CI machine mean nothing.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

import chatroom.bench as bench_module
import chatroom.bench.cluster as cluster_module
import chatroom.bench.server_proc as server_proc_module
from chatroom.bench import BenchError, Options
from chatroom.bench.engine import _Client, _LoadSpec
from chatroom.bench.irc import _IrcLoad
from chatroom.bench.measure import _percentiles
from chatroom.bench.room import _spread
from chatroom.bench.server_proc import _benchmark_file
from chatroom.bench.websocket import (
    OP_CLOSE,
    OP_PING,
    FrameReader,
    WebSocketError,
    _WebSocketLoad,
    _WsState,
    accept_token,
    mask_payload,
)
from chatroom.transports.websocket import text_frame

# Small enough to finish in seconds, big enough that fan-out, batching and the
# sender window all take part.
TINY = [
    "--runs", "1",
    "--receivers", "3",
    "--latency-receivers", "3",
    "--senders", "2",
    "--window", "4",
    "--warmup", "0.1",
    "--duration", "0.3",
    "--rate", "200",
    "--clients", "20",
    "--storm-clients", "20",
    "--procs", "2",
]  # fmt: skip
BENCH_TIMEOUT_S = 90.0


def _bench(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "chatroom.bench", "--json", *TINY, *args],
        capture_output=True,
        text=True,
        timeout=BENCH_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def _medians(report: dict[str, Any], workload: str) -> dict[str, dict[str, Any]]:
    """{server: median} for one workload; each server has exactly one run."""
    found = {}
    for entry in report["results"]:
        if entry["workload"] == workload:
            assert len(entry["runs"]) == 1
            found[entry["server"]] = entry["median"]
    return found


@pytest.mark.timeout(BENCH_TIMEOUT_S + 30)
@pytest.mark.parametrize("workload", ["fanout", "latency"])
def test_room_workloads_deliver_every_message_to_everyone(workload: str) -> None:
    """fanout and latency, against chatroom and the naive baseline: messages flow, every
    member gets every one of them, and the report carries throughput, latency and CPU."""
    report = _bench(workload, "--baseline")
    medians = _medians(report, workload)
    assert set(medians) == {"chatroom", "naive"}
    for server, median in medians.items():
        assert median["sent"] > 0, server
        assert median["lost"] == 0, server
        assert median["extra"] == 0, server
        assert median["disconnects"] == 0, server
        assert median["errors"] == 0, server
        assert median["deliveries_per_s"] > 0, server
        assert median["p50_us"] is not None, server
        assert median["p50_us"] <= median["p99_us"] <= median["max_us"], server
        assert median["server_cpu_s"] is not None, server
        assert median["server_peak_rss_kib"] > 0, server
        assert median["server_exit"] in ("term", "exited"), server
    assert medians["chatroom"]["members"] == 3 + 2
    if workload == "latency":
        assert medians["chatroom"]["offered_messages_per_s"] == 200
    assert report["machine"]["nproc"] >= 1
    assert {target["target"] for target in report["targets"]}


@pytest.mark.timeout(BENCH_TIMEOUT_S + 30)
@pytest.mark.parametrize("joins", ["lazy", "every"])
def test_idle_and_join_storm_welcome_everyone(joins: str) -> None:
    """idle and join-storm: every client is welcomed, without errors or leaves, and the
    idle run measures memory per connection; with --every-join each client is also
    sent every later join (settled), as a protocol v1 client."""
    report = _bench("idle", "join-storm", *(["--every-join"] if joins == "every" else []))
    assert report["config"]["lazy_members"] is (joins == "lazy")
    idle = _medians(report, "idle")["chatroom"]
    assert idle["connected"] == idle["settled"] == 20
    assert idle["connect_s"] > 0
    assert idle["rss_per_conn_kib"] is not None
    assert idle["errors"] == idle["leaves"] == idle["disconnects"] == 0
    storm = _medians(report, "join-storm")["chatroom"]
    assert storm["welcomed"] == 20
    assert storm["welcome_s"] > 0
    assert storm["errors"] == storm["leaves"] == storm["connect_failures"] == 0


@pytest.mark.timeout(BENCH_TIMEOUT_S + 30)
@pytest.mark.skipif(
    not any(shutil.which(cc) for cc in ("cc", "gcc", "clang")) and not os.environ.get("CI"),
    reason="needs a C compiler (CI installs gcc and runs this)",
)
def test_floor_server_runs_side_by_side() -> None:
    """--floor compiles benchmarks/floor_server.c and measures it like the others: it
    delivers every message and welcomes every idle client."""
    report = _bench("fanout", "latency", "idle", "--floor")
    assert report["config"]["floor"] is True
    for workload in ("fanout", "latency"):
        medians = _medians(report, workload)
        assert set(medians) == {"chatroom", "floor"}
        floor = medians["floor"]
        assert floor["sent"] > 0
        assert floor["lost"] == floor["extra"] == floor["errors"] == 0
        assert floor["server_loop"] == "C, epoll"
        assert floor["server_cpu_s"] is not None
    idle = _medians(report, "idle")["floor"]
    assert idle["connected"] == idle["settled"] == 20
    assert idle["errors"] == idle["leaves"] == 0


def test_companion_servers_are_found_from_a_checkout_or_named_up_front(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plain `pip install .` carries no benchmarks/: the bench then finds them under
    the current directory (a checkout), and otherwise says so before running anything."""
    checkout = Path(__file__).resolve().parent.parent
    installed = tmp_path / "site-packages" / "chatroom" / "bench" / "server_proc.py"
    monkeypatch.setattr(server_proc_module, "__file__", str(installed))
    monkeypatch.chdir(checkout)
    assert _benchmark_file("naive_server.py") == checkout / "benchmarks" / "naive_server.py"
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BenchError, match="checkout"):
        _benchmark_file("floor_server.c")
    with pytest.raises(BenchError, match=r"naive_server\.py"):
        bench_module.run(Options(workloads=("join-storm",), baseline=True, storm_clients=1))


def test_percentiles_use_the_nearest_rank() -> None:
    """p50/p99/max of a latency histogram are nearest-rank values, never interpolated."""
    histogram = {value: 1 for value in range(1, 101)}
    assert _percentiles(histogram) == {"p50_us": 50.0, "p99_us": 99.0, "max_us": 100.0}
    assert _percentiles({7: 3}) == {"p50_us": 7.0, "p99_us": 7.0, "max_us": 7.0}
    assert _percentiles({}) == {"p50_us": None, "p99_us": None, "max_us": None}


def test_probes_are_spread_from_the_first_member_to_the_last() -> None:
    assert _spread(100, 10) == frozenset({0, 11, 22, 33, 44, 55, 66, 77, 88, 99})
    assert _spread(3, 10) == frozenset({0, 1, 2})
    assert _spread(5, 1) == frozenset({0})
    assert _spread(5, 0) == frozenset()


# ---------------------------------------------------------------------------- WebSocket


def _ping(payload: bytes) -> bytes:
    return bytes((0x80 | OP_PING, len(payload))) + payload


def _close() -> bytes:
    return bytes((0x80 | OP_CLOSE, 2)) + (1001).to_bytes(2, "big")


def _lines(kind: str, count: int, pad: int = 0) -> bytes:
    """``count`` server frames of ``kind``, as JSON lines (``pad`` letters of text each)."""
    line = f'{{"type":"{kind}","room":"lobby","from":"s1","text":"{"x" * pad}"}}\n'
    return (line * count).encode()


def _payloads(reader: FrameReader, chunks: Iterator[bytes]) -> tuple[bytes, list[Any]]:
    """Every byte the reader's spans cover, joined, and the control frames it returned."""
    text: list[bytes] = []
    controls: list[Any] = []
    for chunk in chunks:
        data, spans, found = reader.feed(chunk)
        text += [data[spans[i] : spans[i + 1]] for i in range(0, len(spans), 2)]
        controls += found
    return b"".join(text), controls


def test_frame_reader_fed_byte_by_byte_finds_every_payload() -> None:
    """Frames with 7-, 16- and 64-bit lengths, a ping among them and a close at the end,
    fed one byte per read: the spans cover exactly the text payloads, and the ping and
    the close come back whole, in order."""
    small, medium, large = _lines("message", 1), _lines("message", 40), _lines("join", 1500)
    assert len(small) < 126 <= len(medium) < 1 << 16 <= len(large)
    stream = (
        text_frame(small)
        + text_frame(medium)
        + _ping(b"token-1")
        + text_frame(large)
        + text_frame(small)
        + _close()
    )
    text, controls = _payloads(FrameReader(), (stream[i : i + 1] for i in range(len(stream))))
    assert text == small + medium + large + small
    assert controls == [(OP_PING, b"token-1"), (OP_CLOSE, (1001).to_bytes(2, "big"))]


def test_frame_reader_returns_consecutive_text_frames_as_one_span() -> None:
    """Several frames in one read: consecutive whole text messages make one span (the
    headers between them included, which the counting code never matches); a control
    frame ends the span; a frame cut by the end of the read goes on in the next one."""
    first, second, third = _lines("message", 1), _lines("message", 3), _lines("message", 500)
    frames = [text_frame(first), text_frame(second), text_frame(third)]
    reader = FrameReader()
    joined = frames[0] + frames[1] + _ping(b"p") + frames[2]
    cut = len(joined) - 1000
    data, spans, controls = reader.feed(joined[:cut])
    assert data[spans[0] : spans[1]] == first + frames[1]
    assert data[spans[2] : spans[3]] == third[: cut - (len(joined) - len(third))]
    assert len(spans) == 4
    assert controls == [(OP_PING, b"p")]
    data, spans, controls = reader.feed(joined[cut:])
    assert (spans, controls) == ([0, 1000], [])
    assert data[-1:] == b"\n"


def test_frame_reader_refuses_what_a_server_must_not_send() -> None:
    """A masked server frame, or one with reserved bits set (no extension was agreed),
    is a protocol error, not something to count."""
    with pytest.raises(WebSocketError, match="masked"):
        FrameReader().feed(bytes((0x81, 0x80 | 1)) + b"\0\0\0\0x")
    with pytest.raises(WebSocketError, match="reserved"):
        FrameReader().feed(bytes((0xC1, 1)) + b"x")


def test_masking_and_the_accept_token_match_rfc_6455() -> None:
    """The RFC's own examples: "Hello" masked with 37 fa 21 3d (section 5.7), and the
    accept token for its sample key (section 1.3)."""
    masked = mask_payload(b"Hello", bytes.fromhex("37fa213d"))
    assert masked == bytes.fromhex("7f9f4d5158")
    assert mask_payload(masked, bytes.fromhex("37fa213d")) == b"Hello"
    assert accept_token(b"dGhlIHNhbXBsZSBub25jZQ==") == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def _client_frames(data: bytes) -> list[Frame]:
    """Frames a client wrote, parsed by the websockets library, which insists on masks."""
    reader = StreamReader()
    reader.feed_data(data)
    frames = []
    while reader.buffer:
        parser = Frame.parse(reader.read_exact, mask=True)
        try:
            next(parser)
        except StopIteration as done:
            frames.append(done.value)
        else:
            raise AssertionError("a client frame was cut short")
    return frames


def _one_sender_spec(transport: str, *, total_members: int) -> _LoadSpec:
    """A load spec for one sending, probing client, driven by the test itself."""
    return _LoadSpec(
        mode="fanout",
        host="127.0.0.1",
        port=1,
        names=("s0",),
        sender_ids=(0,),
        probes=(True,),
        total_members=total_members,
        window=4,
        rate_per_sender=0.0,
        message_bytes=80,
        seed=1,
        connect_window=1,
        core=None,
        phase_timeout_s=1.0,
        transport=transport,
    )


@pytest.fixture
def ws_load() -> Iterator[tuple[_WebSocketLoad, _Client, socket.socket]]:
    """A WebSocket load process's client, in this process, whose socket's other end is
    the test's: what it writes can be read back."""
    spec = _one_sender_spec("websocket", total_members=1)
    ours, theirs = multiprocessing.Pipe()
    load = _WebSocketLoad(spec, theirs)
    client = load.clients[0]
    near, far = socket.socketpair()
    client.sock, client.fd = near, near.fileno()
    load.by_fd[client.fd] = client
    client.wire = _WsState()
    client.wire.open = True
    yield load, client, far
    load.close()
    far.close()
    ours.close()


WELCOME = b'{"type":"welcome","protocol":1,"name":"s0","members":["s0"]}\n'


@pytest.mark.parametrize("read_size", [1, 7, 100, 1 << 20])
def test_websocket_client_counts_every_frame_however_reads_split(
    ws_load: tuple[_WebSocketLoad, _Client, socket.socket], read_size: int
) -> None:
    """The welcome, a join and messages in 7-, 16- and 64-bit messages and a fragmented
    one, read in pieces of one byte up to all at once: every message is counted, the
    member is welcomed and settled, its own messages acknowledge its sends, and a ping
    gets its pong."""
    load, client, far = ws_load
    own = b'{"type":"message","room":"lobby","from":"s0","text":"1 0000 000000000 x"}\n'
    stream = (
        text_frame(WELCOME + _lines("join", 1))
        + text_frame(_lines("message", 1))
        + text_frame(_lines("message", 30) + own)
        + _ping(b"are you there")
        + text_frame(_lines("message", 1000, pad=40) + own * 2)
        + text_frame(_lines("message", 5))
    )
    # A message in two fragments, a line cut between them (the server does not fragment,
    # but a WebSocket peer may).
    fragmented = _lines("message", 2)
    stream += bytes((0x01, 30)) + fragmented[:30] + bytes((0x80, len(fragmented) - 30))
    stream += fragmented[30:]
    client.unacked = 3
    for at in range(0, len(stream), read_size):
        load._feed(client, stream[at : at + read_size], 0)
    assert client.welcomed and client.settled
    assert client.messages == 1 + 31 + 1002 + 5 + 2
    assert client.unacked == 0
    assert load.errors == 0
    far.setblocking(False)
    (pong,) = _client_frames(far.recv(1 << 16))
    assert pong.opcode is Opcode.PONG
    assert pong.data == b"are you there"


def test_websocket_client_sends_masked_text_messages(
    ws_load: tuple[_WebSocketLoad, _Client, socket.socket],
) -> None:
    """A sender's batch is one masked text message per say, each one JSON frame that
    carries the send stamp, its sender's number and its sequence number."""
    load, client, far = ws_load
    load._write(client, load._frames(client, 3, 1234))
    far.setblocking(False)
    frames = _client_frames(far.recv(1 << 16))
    assert [frame.opcode for frame in frames] == [Opcode.TEXT] * 3
    says = [json.loads(frame.data) for frame in frames]
    assert [say["type"] for say in says] == ["say"] * 3
    assert [say["text"].split()[:3] for say in says] == [
        [f"{1234:019d}", "0000", f"{seq:09d}"] for seq in range(3)
    ]
    assert len(says[0]["text"]) == 80


@pytest.mark.timeout(BENCH_TIMEOUT_S + 30)
def test_fanout_over_both_transports_delivers_everything() -> None:
    """fanout with --transport both: a run over each transport, side by side, each
    delivering every message to every member, and the JSON says which is which."""
    report = _bench(
        "fanout",
        *("--transport", "both", "--receivers", "5", "--runs", "1"),
        *("--duration", "0.3", "--warmup", "0.1"),
    )
    assert report["config"]["transports"] == ["ndjson", "websocket"]
    entries = {entry["transport"]: entry for entry in report["results"]}
    assert set(entries) == {"ndjson", "websocket"}
    for transport, entry in entries.items():
        median = entry["median"]
        assert entry["server"] == "chatroom"
        assert [run["transport"] for run in entry["runs"]] == [transport]
        assert median["members"] == 5 + 2
        assert median["sent"] > 0, transport
        assert median["deliveries_per_s"] > 0, transport
        assert median["lost"] == median["extra"] == 0, transport
        assert median["errors"] == median["disconnects"] == 0, transport
        assert median["p50_us"] is not None, transport


@pytest.mark.timeout(BENCH_TIMEOUT_S + 30)
def test_mixed_room_and_idle_websocket_members() -> None:
    """A mixed room (half its members on each transport) delivers to both halves, and
    idle and join-storm clients over WebSocket are all welcomed, measured per
    connection, with no errors."""
    report = _bench("fanout", "idle", "join-storm", "--transport", "mixed,websocket")
    fanout = {
        entry["transport"]: entry["median"]
        for entry in report["results"]
        if entry["workload"] == "fanout"
    }
    assert set(fanout) == {"mixed", "websocket"}
    mixed = fanout["mixed"]
    assert mixed["lost"] == mixed["errors"] == mixed["disconnects"] == 0
    assert mixed["ndjson_deliveries_per_s"] > 0
    assert mixed["websocket_deliveries_per_s"] > 0
    idle = _medians(report, "idle")["chatroom"]
    assert idle["transport"] == "websocket"
    assert idle["connected"] == idle["settled"] == 20
    assert idle["rss_per_conn_kib"] is not None
    assert idle["errors"] == idle["leaves"] == idle["disconnects"] == 0
    storm = _medians(report, "join-storm")["chatroom"]
    assert storm["transport"] == "websocket"
    assert storm["welcomed"] == 20
    assert storm["errors"] == storm["leaves"] == storm["connect_failures"] == 0


@pytest.mark.timeout(BENCH_TIMEOUT_S + 30)
def test_fanout_over_ndjson_and_irc_delivers_everything() -> None:
    """fanout with --transport ndjson,irc: the bench starts the IRC gateway, and IRC
    members in #lobby get every message, with their own copies as acknowledgements."""
    report = _bench(
        "fanout",
        *("--transport", "ndjson,irc", "--receivers", "5", "--runs", "1"),
        *("--duration", "0.3", "--warmup", "0.1"),
    )
    assert report["config"]["transports"] == ["ndjson", "irc"]
    entries = {entry["transport"]: entry for entry in report["results"]}
    assert set(entries) == {"ndjson", "irc"}
    for transport, entry in entries.items():
        median = entry["median"]
        assert median["members"] == 5 + 2
        assert median["sent"] > 0, transport
        assert median["deliveries_per_s"] > 0, transport
        assert median["lost"] == median["extra"] == 0, transport
        assert median["errors"] == median["disconnects"] == 0, transport
        assert median["p50_us"] is not None, transport


@pytest.mark.timeout(BENCH_TIMEOUT_S + 30)
def test_idle_and_join_storm_irc_members() -> None:
    """Idle and join-storm IRC members are all welcomed, settle and see no errors."""
    report = _bench("idle", "join-storm", "--transport", "irc")
    medians = {entry["workload"]: entry["median"] for entry in report["results"]}
    assert medians["idle"]["connected"] == 20
    assert medians["join-storm"]["welcomed"] == 20
    for median in medians.values():
        assert median["errors"] == median["leaves"] == 0


IRC_WELCOME = (
    b":vm CAP * LS :echo-message server-time\r\n"
    b":vm CAP * ACK :echo-message\r\n"
    b":vm 001 s0 :Welcome\r\n"
    b":vm 422 s0 :MOTD File is missing\r\n"
    b":s0!chat@chatroom JOIN #lobby\r\n"
    b":vm 353 s0 = #lobby :r1 s0\r\n"
    b":vm 366 s0 #lobby :End of /NAMES list\r\n"
)


def _privmsgs(sender: str, count: int, stamp: int = 5) -> bytes:
    return b"".join(
        b":%s!chat@chatroom PRIVMSG #lobby :%019d 0000 %09d abcdef\r\n"
        % (sender.encode(), stamp, n)
        for n in range(count)
    )


@pytest.mark.parametrize("read_size", [1, 7, 100, 1 << 20])
def test_irc_client_counts_every_line_however_reads_split(read_size: int) -> None:
    """The registration and JOIN burst, later joins, messages from others and its own
    echoes, a PING, read in pieces of one byte up to all at once: every message is
    counted and timed, the member is welcomed and settled, its echoes acknowledge its
    sends, and the PING gets its PONG."""
    spec = _one_sender_spec("irc", total_members=3)
    ours, theirs = multiprocessing.Pipe()
    load = _IrcLoad(spec, theirs)
    client = load.clients[0]
    near, far = socket.socketpair()
    client.sock, client.fd = near, near.fileno()
    load.by_fd[client.fd] = client
    load.t0, load.t1 = 0, 1 << 62
    try:
        stream = (
            IRC_WELCOME
            + b":r2!chat@chatroom JOIN #lobby\r\n"
            + _privmsgs("r1", 30)
            + b":vm PING :are you there\r\n"
            + _privmsgs("s0", 3)
            + _privmsgs("r2", 1000)
        )
        client.unacked = 3
        for at in range(0, len(stream), read_size):
            load._feed(client, stream[at : at + read_size], 1000)
        assert client.welcomed and client.settled
        assert client.messages == 30 + 3 + 1000
        assert load.window_deliveries == 1033
        assert list(load.sends) == [5] * 1033
        assert client.unacked == 0
        assert load.errors == 0, load.error_samples
        far.setblocking(False)
        assert far.recv(1 << 16) == b"PONG :are you there\r\n"
        # What it sends: the bench's text as a PRIVMSG to the lobby.
        load._write(client, load._frames(client, 2, 1234))
        sent = far.recv(1 << 16).split(b"\r\n")
        assert sent[2:] == [b""]
        for seq, line in enumerate(sent[:2]):
            command, _, text = line.partition(b" :")
            assert command == b"PRIVMSG #lobby"
            assert text.split()[:3] == [b"%019d" % 1234, b"0000", b"%09d" % seq]
            assert len(text) == 80
    finally:
        load.close()
        far.close()
        ours.close()


# ---------------------------------------------------------------------------- cluster


def _cluster_ready() -> bool:
    """Whether --cluster can run here: redis-server and the server's Redis client."""
    import importlib.util

    return (
        shutil.which("redis-server") is not None and importlib.util.find_spec("redis") is not None
    )


@pytest.mark.timeout(BENCH_TIMEOUT_S + 30)
def test_cluster_fanout_spreads_members_over_two_nodes() -> None:
    """--cluster 2 --observer-node: a redis-server and two nodes (and an idle third)
    per run, members on both, every message delivered to everyone; the report has each
    node's CPU, CPU per delivery, per appended event (Redis) and per applied event (the
    idle node), and latency both between members of one node and across nodes."""
    if not _cluster_ready():
        message = "--cluster needs redis-server and the redis client (chatroom[cluster])"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    # A whole second measured: CPU figures come in 10 ms ticks from /proc.
    report = _bench(
        "fanout",
        *("--cluster", "2", "--observer-node", "--duration", "1", "--warmup", "0.2"),
    )
    assert report["config"]["cluster"] == [2]
    median = _medians(report, "fanout")["cluster-2"]
    assert median["cluster_nodes"] == 2
    assert median["members"] == 3 + 2
    assert median["sent"] > 0
    assert median["lost"] == median["extra"] == 0
    assert median["errors"] == median["disconnects"] == 0
    assert median["deliveries_per_s"] > 0
    assert median["events_appended"] > 0
    assert len(median["node_cpu_s"]) == 2
    assert all(cpu is not None and cpu >= 0 for cpu in median["node_cpu_s"])
    for key in (
        "node_cpu_s_total",
        "node_us_per_delivery",
        "redis_us_per_event",
        "node_us_per_applied_event",
        "server_us_per_delivery",
    ):
        assert median[key] is not None and median[key] > 0, key
    for path in ("same", "cross"):
        assert median[f"{path}_samples"] > 0, path
        assert 0 <= median[f"p50_{path}_us"] <= median[f"p99_{path}_us"], path


def test_cluster_options_are_checked_up_front(monkeypatch: pytest.MonkeyPatch) -> None:
    """--cluster runs the room workloads only and needs redis-server, which the bench
    says before starting anything; --observer-node is a cluster's."""
    with pytest.raises(SystemExit):
        bench_module.main(["idle", "--cluster", "2"])
    with pytest.raises(SystemExit):
        bench_module.main(["fanout", "--observer-node"])
    monkeypatch.setattr(cluster_module.shutil, "which", lambda name: None)
    with pytest.raises(BenchError, match="redis-server"):
        bench_module.run(Options(workloads=("fanout",), cluster=(2,)))
