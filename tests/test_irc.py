"""The IRC gateway: its sans-I/O parts, then raw IRC over real sockets beside NDJSON
and browser members of the same rooms."""

from __future__ import annotations

import asyncio
import re
import shutil
import ssl
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import pytest
import trustme
from conftest import TIMEOUT_S, RunningServer, StartServer, expect
from hypothesis import given
from hypothesis import strategies as st

from chatroom.client import ClientConnection
from chatroom.irc.lines import IrcLine, LineDecoder, LineTooLong, format_line
from chatroom.irc.names import (
    NameNotMapped,
    from_channel,
    from_nick,
    split_text,
    to_channel,
    to_nick,
)
from chatroom.irc.render import IrcWire
from chatroom.names import check_name
from chatroom.protocol import (
    Dm,
    DmRequest,
    Join,
    Joined,
    JoinRequest,
    Message,
    Nick,
    NickRequest,
    Say,
)

# ------------------------------------------------------------------ sans-I/O


def test_a_line_with_tags_source_and_trailing_param_is_parsed_from_split_input() -> None:
    """Bytes arriving a few at a time, with \\r\\n or a bare \\n, make the same lines."""
    decoder = LineDecoder()
    data = b"@time=x;a=b\\sc :nick!u@h PRIVMSG #dev :hello there\r\nPING tok\n"
    lines: list[IrcLine] = []
    for index in range(0, len(data), 3):
        decoder.receive_data(data[index : index + 3])
        while (line := decoder.next_line()) is not None:
            lines.append(line)
    assert lines[0] == IrcLine(
        command="PRIVMSG",
        params=("#dev", "hello there"),
        source="nick!u@h",
        tags={"time": "x", "a": "b c"},
    )
    assert lines[1].command == "PING" and lines[1].params == ("tok",)


def test_an_overlong_line_is_skipped_with_an_error_and_the_next_one_is_read() -> None:
    """A body past 512 bytes raises LineTooLong once; the following line comes through."""
    decoder = LineDecoder()
    decoder.receive_data(b"PRIVMSG #a :" + b"x" * 600 + b"\r\nPING ok\r\n")
    with pytest.raises(LineTooLong):
        decoder.next_line()
    line = decoder.next_line()
    assert line is not None and line.params == ("ok",)
    # A line that never ends is dropped as it comes, and the buffer stays bounded.
    decoder.receive_data(b"y" * 10_000)
    with pytest.raises(LineTooLong):
        decoder.next_line()
    decoder.receive_data(b"z" * 10_000 + b"\r\nPING again\r\n")
    line = decoder.next_line()
    assert line is not None and line.params == ("again",)
    assert decoder.buffered_bytes == 0


@given(st.text(max_size=60), st.text(max_size=60))
def test_formatted_lines_are_one_line_whatever_the_text(source: str, text: str) -> None:
    """CR, LF and NUL in any part never start a second line: one \\r\\n, at the end."""
    data = format_line("PRIVMSG", "#dev", text, source=source or None, tags=[("k", text)])
    assert data.endswith(b"\r\n")
    assert data.count(b"\n") == 1 and data.count(b"\r") == 1 and b"\0" not in data


@given(st.text(min_size=1, max_size=32))
def test_every_valid_name_has_one_irc_form_that_reads_back(raw: str) -> None:
    """Names with spaces, dots or any script: their IRC form has no space and decodes
    to the exact name; channels likewise."""
    try:
        name = check_name(raw)
    except Exception:
        return
    nick = to_nick(name)
    assert " " not in nick and "," not in nick and not nick[0].isdigit()
    assert from_nick(nick) == name
    assert from_channel(to_channel(name)) == name


def test_names_irc_can_carry_are_their_own_form_and_the_rest_is_escaped() -> None:
    """Plain nicks stay as they are; escapes are readable; stray escapes are refused."""
    assert to_nick("alice") == "alice" and to_nick("bob_smith") == "bob_smith"
    assert to_nick("Ann Lee") == "Ann\\_Lee" and to_nick("j.doe") == "j\\{2e}doe"
    assert to_nick("José") == "José" and to_channel("c++") == "#c++"
    for bad in ("a b", "\\", "\\{zz}", "Ann\\_\\", "\\{41}", "a,b", ""):
        with pytest.raises(NameNotMapped):
            from_nick(bad)


@given(st.text(max_size=600), st.integers(min_value=4, max_value=400))
def test_split_text_keeps_every_character_and_fits_the_budget(text: str, budget: int) -> None:
    """Pieces fit the byte budget; joined back (spaces cut at are the only loss) they
    hold every non-space character of every line."""
    pieces = split_text(text, budget)
    assert all(len(piece.encode()) <= budget for piece in pieces)
    kept = "".join(pieces).replace(" ", "")
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    assert kept == "".join(lines).replace(" ", "").replace("\0", "")


# ------------------------------------------------------------------ over sockets


class Irc:
    """A raw IRC client: lines out, parsed lines in, every wait bounded."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.decoder = LineDecoder()
        self.raw: list[bytes] = []

    async def send(self, *lines: str) -> None:
        self.writer.write("".join(line + "\r\n" for line in lines).encode())
        await self.writer.drain()

    async def line(self) -> IrcLine | None:
        """The next line, None at EOF."""
        async with asyncio.timeout(TIMEOUT_S):
            while True:
                line = self.decoder.next_line()
                if line is not None:
                    return line
                data = await self.reader.read(65536)
                if not data:
                    return None
                self.raw.append(data)
                self.decoder.receive_data(data)

    async def until(
        self, command: str, where: Callable[[IrcLine], bool] = lambda line: True
    ) -> list[IrcLine]:
        """Every line up to and including the first ``command`` matching ``where``."""
        seen: list[IrcLine] = []
        while True:
            line = await self.line()
            assert line is not None, f"closed before {command}; saw {seen}"
            seen.append(line)
            if line.command == command and where(line):
                return seen

    async def expect(
        self, command: str, where: Callable[[IrcLine], bool] = lambda line: True
    ) -> IrcLine:
        return (await self.until(command, where))[-1]

    async def sync(self, token: str = "sync") -> list[IrcLine]:
        """Everything before the answer to a PING: what earlier commands caused."""
        await self.send(f"PING {token}")
        return (await self.until("PONG", lambda line: line.params[-1] == token))[:-1]

    async def closed(self) -> bool:
        while await self.line() is not None:
            pass
        return True

    def close(self) -> None:
        self.writer.close()


@pytest.fixture
async def irc_server(start_server: StartServer) -> RunningServer:
    """A server with the gateway on a port of its own and no flood control."""
    return await start_server(
        flood_rate=0, irc_host="127.0.0.1", irc_port=0, irc_server_name="irc.test"
    )


async def irc_connect(server: RunningServer) -> Irc:
    host, port = server.server.irc_addresses[0]
    reader, writer = await asyncio.open_connection(host, port)
    return Irc(reader, writer)


async def irc_member(
    server: RunningServer, nick: str, caps: Sequence[str] = (), password: str | None = None
) -> Irc:
    """A registered IRC client (its welcome burst read up to the end of #lobby's names)."""
    client = await irc_connect(server)
    lines = ["CAP LS 302"]
    if password is not None:
        lines.append(f"PASS {password}")
    lines += [f"NICK {nick}", "USER u 0 * :Real Name"]
    if caps:
        lines.append("CAP REQ :" + " ".join(caps))
    lines.append("CAP END")
    await client.send(*lines)
    await client.expect("366")
    return client


def params(lines: list[IrcLine], command: str) -> list[tuple[str, ...]]:
    return [line.params for line in lines if line.command == command]


async def test_registration_negotiates_caps_and_sends_an_honest_welcome(
    irc_server: RunningServer,
) -> None:
    """CAP LS 302, REQ and END, then 001-005 (ISUPPORT saying what holds), 422, and the
    member's JOIN of #lobby with its names, all sent byte by byte to split the lines."""
    client = await irc_connect(irc_server)
    data = b"CAP LS 302\r\nNICK alice\r\nUSER a 0 * :Alice\r\nCAP REQ :server-time\r\nCAP END\r\n"
    for index in range(len(data)):
        client.writer.write(data[index : index + 1])
        await client.writer.drain()
    lines = await client.until("366")
    ls = next(line for line in lines if line.command == "CAP" and line.params[1] == "LS")
    assert "server-time" in ls.params[-1] and "echo-message" in ls.params[-1]
    assert ("*", "ACK", "server-time") in params(lines, "CAP")
    numerics = [line.command for line in lines if line.command.isdigit()]
    assert numerics[:4] == ["001", "002", "003", "004"] and "005" in numerics and "422" in numerics
    assert all(line.source == "irc.test" for line in lines if line.command.isdigit())
    isupport = " ".join(" ".join(p) for p in params(lines, "005"))
    assert "CHANTYPES=#" in isupport and "NICKLEN=32" in isupport and "PREFIX=" in isupport
    join = next(line for line in lines if line.command == "JOIN")
    assert join.params == ("#lobby",) and join.source is not None
    assert join.source.startswith("alice!") and "time" not in join.tags
    assert params(lines, "353")[-1][-1] == "alice"
    client.close()


async def test_a_wrong_password_gets_464_and_quit_before_registering_gets_error(
    start_server: StartServer,
) -> None:
    """PASS is the server password: a wrong one is refused (464, then ERROR and the
    close); QUIT before registering ends the connection with ERROR too."""
    server = await start_server(
        irc_host="127.0.0.1", irc_port=0, password="sesame", auth_failure_delay_s=0.01
    )
    client = await irc_connect(server)
    await client.send("PASS wrong", "NICK alice", "USER a 0 * :A")
    lines = await client.until("ERROR")
    assert "464" in [line.command for line in lines]
    assert await client.closed()
    good = await irc_member(server, "bob", password="sesame")
    assert "bob" in server.server.hub.members("lobby")
    good.close()
    quitter = await irc_connect(server)
    await quitter.send("QUIT :bye")
    assert (await quitter.expect("ERROR")).params
    assert await quitter.closed()


async def test_nick_errors_431_432_433_and_a_retry_registers(irc_server: RunningServer) -> None:
    """A taken nick (by an NDJSON member, look-alikes included) is 433 and the next NICK
    registers; an erroneous one is 432, a missing one 431."""
    bob = await irc_server.client("bob")
    client = await irc_connect(irc_server)
    await client.send("NICK BOB", "USER u 0 * :x")
    assert (await client.expect("433")).params[1] == "BOB"
    await client.send("NICK a,b")
    assert (await client.expect("432")).params[1] == "a,b"
    await client.send("NICK")
    await client.expect("431")
    await client.send("NICK carol")
    assert (await client.expect("001")).params[0] == "carol"
    await client.send("NICK bob")
    assert (await client.expect("433")).params[1] == "bob"
    await client.send("USER again 0 * :x")
    await client.expect("462")
    client.close()
    await bob.close()


async def test_irc_and_ndjson_members_talk_in_rooms_and_in_private(
    irc_server: RunningServer,
) -> None:
    """PRIVMSG, NOTICE and /me to a channel and to a nick reach the NDJSON member as
    messages, actions and DMs; theirs reach the IRC member as PRIVMSG and ACTION."""
    bob = await irc_server.client("bob")
    alice = await irc_member(irc_server, "alice")
    await alice.send(
        "JOIN #dev",
        "PRIVMSG #lobby :hello bob",
        "NOTICE #lobby :a notice",
        "PRIVMSG #lobby :\x01ACTION waves\x01",
        "PRIVMSG bob :psst",
    )
    said = await expect(bob, Message, where=lambda m: m.text == "hello bob")
    assert said.sender == "alice" and said.room == "lobby"
    assert (await expect(bob, Message)).text == "a notice"
    action = await expect(bob, Message)
    assert action.text == "waves" and action.action
    dm = await expect(bob, Dm)
    assert (dm.sender, dm.to, dm.text) == ("alice", "bob", "psst")
    await bob.say("hi alice")
    await bob.send(Say(text="nods", action=True))
    await bob.send(DmRequest(to="alice", text="secret"))
    line = await alice.expect("PRIVMSG", lambda line: line.params == ("#lobby", "hi alice"))
    assert line.source is not None and line.source.startswith("bob!")
    nods = await alice.expect("PRIVMSG")
    assert nods.params == ("#lobby", "\x01ACTION nods\x01")
    private = await alice.expect("PRIVMSG", lambda line: line.params[0] == "alice")
    assert private.params[1] == "secret"
    alice.close()
    await bob.close()


async def test_without_echo_message_own_messages_are_not_sent_back_and_with_it_they_are(
    irc_server: RunningServer,
) -> None:
    """echo-message decides whether the sender sees its own PRIVMSG; the order promise
    holds either way: the echo comes before the PONG of a later PING."""
    plain = await irc_member(irc_server, "plain")
    echoed = await irc_member(irc_server, "echoed", ["echo-message", "server-time"])
    await plain.send("PRIVMSG #lobby :one")
    before = await plain.sync()
    assert not [line for line in before if line.command == "PRIVMSG"]
    await echoed.send("PRIVMSG #lobby :two", "PING now")
    lines = await echoed.until("PONG")
    mine = [line for line in lines if line.command == "PRIVMSG" and line.params[1] == "two"]
    assert mine and mine[0].source is not None and mine[0].source.startswith("echoed!")
    assert "time" in mine[0].tags
    seen = await plain.expect("PRIVMSG", lambda line: line.params[1] == "two")
    assert "time" not in seen.tags
    plain.close()
    echoed.close()


async def test_each_event_is_encoded_once_per_capability_set(
    irc_server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three IRC members with the same capabilities and one with others: a message is
    encoded once for the three and once for the fourth, and all four get it."""
    calls: Counter[tuple[int, int]] = Counter()
    original = IrcWire.encode_event

    def counting(self: IrcWire, event: Any, ndjson: bytes) -> bytes:
        calls[id(self), event.id] += 1
        return original(self, event, ndjson)

    monkeypatch.setattr(IrcWire, "encode_event", counting)
    same = [await irc_member(irc_server, f"same{index}", ["server-time"]) for index in range(3)]
    other = await irc_member(irc_server, "other")
    bob = await irc_server.client("bob")
    await bob.say("once")
    said = await expect(bob, Message)
    for client in [*same, other]:
        await client.expect("PRIVMSG", lambda line: line.params[1] == "once")
    assert sorted(count for (_, event_id), count in calls.items() if event_id == said.id) == [1, 1]
    for client in [*same, other]:
        client.close()
    await bob.close()


async def test_what_a_command_causes_arrives_before_the_answer_to_a_later_ping(
    irc_server: RunningServer,
) -> None:
    """JOIN, TOPIC, PRIVMSG (echoed) and PING in one packet: the JOIN burst, the topic
    and the echo all come before the PONG, in the order the commands were sent."""
    alice = await irc_member(irc_server, "alice", ["echo-message"])
    await alice.send("JOIN #dev", "TOPIC #dev :plans", "PRIVMSG #dev :first", "PING order")
    lines = await alice.until("PONG")
    kinds = [line.command for line in lines]
    assert kinds.index("JOIN") < kinds.index("366") < kinds.index("TOPIC")
    assert kinds.index("TOPIC") < kinds.index("PRIVMSG") < kinds.index("PONG")
    alice.close()


async def test_channels_commands_answer_as_irc_clients_expect(irc_server: RunningServer) -> None:
    """PART, TOPIC (query and set), NAMES, LIST, WHO, WHOIS, MODE and KICK on rooms."""
    bob = await irc_server.client("bob smith")
    await bob.send(JoinRequest(room="dev"))
    await expect(bob, Joined)
    alice = await irc_member(irc_server, "alice")
    await alice.send("JOIN #dev", "TOPIC #dev :the plan")
    lines = await alice.sync()
    assert ("#dev", "the plan") in params(lines, "TOPIC")
    await alice.send("TOPIC #dev", "NAMES #lobby", "LIST", "WHO #lobby", "WHOIS bob\\_smith")
    await alice.send("MODE #dev", "MODE #dev b", "MODE #dev +o bob\\_smith", "KICK #dev x")
    lines = await alice.sync()
    assert ("alice", "#dev", "the plan") in params(lines, "332")
    assert params(lines, "353")[0][-1].split() == ["bob\\_smith", "alice"]
    await alice.send("CAP REQ userhost-in-names", "NAMES #lobby")
    names = await alice.expect("353")
    assert names.params[-1].split() == ["bob\\_smith!chat@chatroom", "alice!chat@chatroom"]
    assert ("alice", "#dev", "2", "the plan") in params(lines, "322")
    assert ("alice", "#lobby", "2", "") in params(lines, "322")
    who = params(lines, "352")
    assert [p[5] for p in who] == ["bob\\_smith", "alice"] and who[0][-1] == "0 bob smith"
    assert params(lines, "311")[0][1:3] == ("bob\\_smith", "chat")
    assert params(lines, "319")[0][-1] == "#lobby #dev"
    assert ("alice", "#dev", "+n") in params(lines, "324")
    assert params(lines, "368") and len(params(lines, "482")) == 2
    await alice.send("PART #dev")
    part = await alice.expect("PART")
    assert part.params == ("#dev",)
    await alice.send("PART #dev", "TOPIC #nowhere", "PART #nowhere")
    lines = await alice.sync()
    assert params(lines, "442")[0][1] == "#dev"
    assert [p[1] for p in params(lines, "403")] == ["#nowhere", "#nowhere"]
    alice.close()
    await bob.close()


async def test_errors_get_their_numerics_and_disturb_nobody(irc_server: RunningServer) -> None:
    """401, 403, 404, 411, 412, 421, 451, 461, 417: each answered, the connection and the
    other members carry on."""
    early = await irc_connect(irc_server)
    await early.send("JOIN #dev", "PRIVMSG #lobby :hi")
    assert (await early.expect("451")).command == "451"
    early.close()
    bob = await irc_server.client("bob")
    alice = await irc_member(irc_server, "alice")
    await alice.send(
        "PRIVMSG nobody :hi",
        "PRIVMSG #nowhere :hi",
        "PRIVMSG #a,b\\ :hi",
        "PRIVMSG",
        "PRIVMSG #lobby",
        "FROBNICATE",
        "JOIN",
        "PRIVMSG #lobby :" + "x" * 600,
        "JOIN nochannel",
    )
    lines = await alice.sync()
    codes = [line.command for line in lines]
    for code in ("401", "404", "403", "411", "412", "421", "461", "417"):
        assert code in codes, (code, codes)
    await alice.send("PRIVMSG #lobby :still here")
    assert (await expect(bob, Message)).text == "still here"
    alice.close()
    await bob.close()


async def test_nick_changes_and_names_irc_cannot_carry_round_trip(
    irc_server: RunningServer,
) -> None:
    """An NDJSON member called "Ann Lee" is Ann\\_Lee on IRC: addressable by that form,
    and an IRC member can take a name with a space the same way; NICK is seen by all."""
    ann = await irc_server.client("Ann Lee")
    alice = await irc_member(irc_server, "alice")
    await alice.send("PRIVMSG Ann\\_Lee :hello Ann")
    assert (await expect(ann, Dm)).to == "Ann Lee"
    await alice.send("NICK Alice\\_Smith")
    nick = await alice.expect("NICK")
    assert nick.params == ("Alice\\_Smith",) and nick.source is not None
    assert nick.source.startswith("alice!")
    renamed = await expect(ann, Nick)
    assert (renamed.old, renamed.new) == ("alice", "Alice Smith")
    await ann.send(NickRequest(name="Ann.Lee"))
    moved = await alice.expect("NICK")
    assert moved.params == ("Ann\\{2e}Lee",)
    await alice.send("WHOIS Ann\\{2e}Lee")
    assert (await alice.expect("311")).params[-1] == "Ann.Lee"
    alice.close()
    await ann.close()


async def test_long_and_multi_line_messages_arrive_split_never_cut(
    irc_server: RunningServer,
) -> None:
    """A 3,000-character message becomes several PRIVMSG lines within 512 bytes that
    together hold all of it; a message with newlines (and a CR LF trying to inject a
    command) becomes one PRIVMSG per line."""
    alice = await irc_member(irc_server, "alice")
    bob = await irc_server.client("bob")
    words = " ".join(f"w{index}" for index in range(600))
    await bob.say(words)
    await bob.say("line one\r\nQUIT :owned\nline three")
    await bob.say("end")
    lines = await alice.until("PRIVMSG", lambda line: line.params[1] == "end")
    texts = [line.params[1] for line in lines if line.command == "PRIVMSG"]
    assert " ".join(texts[:-4]) == words
    assert texts[-4:] == ["line one", "QUIT :owned", "line three", "end"]
    raw = b"".join(alice.raw)
    assert all(len(line) + 2 <= 512 for line in raw.split(b"\r\n"))
    assert b"\r\nQUIT" not in raw
    alice.close()
    await bob.close()


async def test_joining_plays_recent_history_back_in_a_batch_with_times(
    irc_server: RunningServer,
) -> None:
    """With batch and server-time the room's recent messages come in a chathistory
    batch with their times; without, their times are written before the text."""
    bob = await irc_server.client("bob")
    await bob.say("earlier words")
    await expect(bob, Message)
    rich = await irc_connect(irc_server)
    await rich.send(
        "CAP LS 302", "NICK rich", "USER u 0 * :x", "CAP REQ :batch server-time", "CAP END"
    )
    lines = await rich.until("BATCH", lambda line: line.params[0].startswith("-"))
    start = next(line for line in lines if line.command == "BATCH")
    assert start.params[1:] == ("chathistory", "#lobby")
    old = next(line for line in lines if line.command == "PRIVMSG")
    assert old.params == ("#lobby", "earlier words") and old.source is not None
    assert old.tags["batch"] == start.params[0][1:] and old.tags["time"].endswith("Z")
    plain = await irc_member(irc_server, "plain")
    old = await plain.expect("PRIVMSG")
    assert re.fullmatch(r"\[\d{4}-\d\d-\d\d \d\d:\d\d\] earlier words", old.params[1])
    rich.close()
    plain.close()
    await bob.close()


async def test_bad_bytes_never_stop_the_server(irc_server: RunningServer) -> None:
    """Invalid UTF-8, NUL bytes, lone CRs and an endless line: the client gets errors or
    nothing, and the next client registers as usual."""
    client = await irc_connect(irc_server)
    client.writer.write(b"\xff\xfe\r\n\0\0\r\n\r\r\nNICK \xc3\r\n" + b"A" * 20_000 + b"\r\n")
    await client.writer.drain()
    await client.sync("alive")
    client.close()
    other = await irc_member(irc_server, "other")
    other.close()


async def test_quits_are_seen_once_and_the_transcript_records_irc_members(
    irc_server: RunningServer,
) -> None:
    """A member in two shared rooms quits: one QUIT line. The transcript records an IRC
    member's message as it does any other."""
    watcher = await irc_member(irc_server, "watcher")
    leaver = await irc_member(irc_server, "leaver")
    await watcher.send("JOIN #dev")
    await leaver.send("JOIN #dev", "PRIVMSG #dev :bye all")
    await watcher.expect("PRIVMSG")
    await leaver.send("QUIT :done")
    await leaver.closed()
    lines = await watcher.sync()
    assert [line.command for line in lines].count("QUIT") == 1
    watcher.close()
    transcript = await asyncio.to_thread(irc_server.transcript_path.read_text, "utf-8")
    assert "bye all" in transcript


async def test_with_a_certificate_the_gateway_speaks_tls(start_server: StartServer) -> None:
    """The server's certificate serves the IRC port too: a TLS client registers and
    talks."""
    ca = trustme.CA()
    server_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ssl)
    client_ssl = ssl.create_default_context()
    ca.configure_trust(client_ssl)
    server = await start_server(ssl_context=server_ssl, irc_host="127.0.0.1", irc_port=0)
    host, port = server.server.irc_addresses[0]
    reader, writer = await asyncio.open_connection(host, port, ssl=client_ssl)
    client = Irc(reader, writer)
    await client.send("NICK secure", "USER u 0 * :x")
    assert (await client.expect("001")).params[0] == "secure"
    await client.send("PRIVMSG #lobby :over tls")
    await client.sync()
    client.close()


# ------------------------------------------------------------------ with a browser


@pytest.mark.skipif(not shutil.which("chromium"), reason="Debian's chromium is not installed")
async def test_an_irc_member_an_ndjson_member_and_a_browser_talk_in_dev(
    irc_server: RunningServer,
) -> None:
    """alice on IRC, bob over NDJSON and carol in Chromium join #dev and each sees the
    other two's messages, /me included."""
    browser_tests: Any = pytest.importorskip("test_browser")
    playwright_api = browser_tests.playwright_api
    async with playwright_api.async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=browser_tests.CHROMIUM, args=browser_tests.CHROMIUM_ARGS
        )
        try:
            carol = await browser_tests.open_chat(
                browser, irc_server.host, irc_server.port, "carol"
            )
            alice = await irc_member(irc_server, "alice", ["echo-message"])
            bob: ClientConnection = await irc_server.client("bob")
            await bob.send(JoinRequest(room="dev"))
            await alice.send("JOIN #dev")
            await browser_tests.say(carol, "/join dev")
            await expect(bob, Join, where=lambda j: j.name == "carol")
            await alice.send("PRIVMSG #dev :from irc", "PRIVMSG #dev :\x01ACTION waves\x01")
            await bob.send(Say(text="from ndjson", room="dev"))
            await browser_tests.say(carol, "from the browser")
            for text in ("from irc", "waves", "from ndjson"):
                await browser_tests.shows(carol, text)
            texts = set()
            while not {"from ndjson", "from the browser"} <= texts:
                line = await alice.expect("PRIVMSG")
                texts.add(line.params[1])
            said = await expect(bob, Message, where=lambda m: m.text == "waves")
            assert said.action and said.sender == "alice"
            alice.close()
            await bob.close()
        finally:
            await browser.close()
