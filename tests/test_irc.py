"""The IRC gateway: its sans-I/O parts, then raw IRC over real sockets beside NDJSON
and browser members of the same rooms."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import shutil
import ssl
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import trustme
from conftest import TIMEOUT_S, RunningServer, StartServer, expect
from hypothesis import given
from hypothesis import strategies as st

from chatroom.accounts import AccountStore, Argon2Cost
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
    Error,
    Join,
    Joined,
    JoinRequest,
    Kick,
    Leave,
    Message,
    Mod,
    Nick,
    NickRequest,
    RoleRequest,
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


@pytest.mark.skipif(
    not shutil.which("chromium") and not os.environ.get("CI"),
    reason="Debian's chromium is not installed (CI installs it and runs this)",
)
async def test_an_irc_member_an_ndjson_member_and_a_browser_talk_in_dev(
    irc_server: RunningServer,
) -> None:
    """alice on IRC, bob over NDJSON and carol in Chromium join #dev and each sees the
    other two's messages, /me included."""
    import test_browser as browser_tests

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


# ------------------------------------------------------------------ accounts and ranks

# Tests hash with a cheap cost, as test_accounts_server does.
CHEAP = Argon2Cost(memory_kib=64, time_cost=1, parallelism=1)
DELAY_S = 0.2
PASSWORD = "correct horse"


@pytest.fixture
async def ranked_server(start_server: StartServer, tmp_path: Path) -> RunningServer:
    """A gateway on a server that keeps accounts; ``alice`` is registered."""
    store = AccountStore(tmp_path / "data" / "accounts.sqlite3", cost=CHEAP)
    store.remember(store.register("alice", PASSWORD))
    return await start_server(
        flood_rate=0,
        accounts=store,
        auth_failure_delay_s=DELAY_S,
        irc_host="127.0.0.1",
        irc_port=0,
        irc_server_name="irc.test",
    )


def plain(*parts: str) -> str:
    """A SASL PLAIN payload: the fields joined by NUL, base64."""
    return base64.b64encode("\0".join(parts).encode()).decode()


async def sasl_client(server: RunningServer, nick: str) -> tuple[Irc, list[IrcLine]]:
    """A connection that asked for sasl and started PLAIN; the lines seen so far."""
    client = await irc_connect(server)
    await client.send("CAP LS 302", f"NICK {nick}", "USER u 0 * :x", "CAP REQ :sasl")
    lines = await client.until("CAP", lambda line: line.params[1] == "ACK")
    await client.send("AUTHENTICATE PLAIN")
    lines += await client.until("AUTHENTICATE")
    assert lines[-1].params == ("+",)
    return client, lines


async def test_a_rooms_creator_is_its_op_and_role_changes_arrive_as_mode(
    ranked_server: RunningServer,
) -> None:
    """Whoever makes #dev is @ in its JOIN burst, NAMES, WHO and WHOIS (PREFIX=(ov)@+ in
    ISUPPORT); MODE +v gives voice, seen by IRC members as MODE and by NDJSON members
    as the role event; a member who is not an op gets 482."""
    client = await irc_connect(ranked_server)
    await client.send("NICK carol", "USER u 0 * :x")
    welcome = await client.until("366")
    isupport = " ".join(" ".join(p) for p in params(welcome, "005"))
    assert "PREFIX=(ov)@+" in isupport
    await client.send("JOIN #dev")
    burst = await client.until("366")
    assert params(burst, "353")[-1][-1] == "@carol"
    bob = await ranked_server.client("bob")
    await bob.send(JoinRequest(room="dev"))
    await expect(bob, Joined)
    dave = await irc_member(ranked_server, "dave", ["multi-prefix"])
    await dave.send("JOIN #dev")
    assert params(await dave.until("366"), "353")[-1][-1].split() == ["@carol", "bob", "dave"]

    await client.send("MODE #dev +v bob")
    change = await client.expect("MODE")
    assert change.params == ("#dev", "-o+v", "bob", "bob")
    assert change.source is not None and change.source.startswith("carol!")
    assert (await dave.expect("MODE")).params == ("#dev", "-o+v", "bob", "bob")
    role = await expect(bob, Mod)
    assert (role.action, role.target, role.role, role.by) == ("role", "bob", "voice", "carol")

    await client.send("NAMES #dev", "WHO #dev", "WHOIS carol")
    lines = await client.sync()
    assert params(lines, "353")[-1][-1].split() == ["@carol", "+bob", "dave"]
    assert [(p[5], p[6]) for p in params(lines, "352")] == [
        ("carol", "H@"),
        ("bob", "H+"),
        ("dave", "H"),
    ]
    assert params(lines, "319")[0][-1].split() == ["#lobby", "@#dev"]

    await dave.send("MODE #dev +o dave", "KICK #dev bob", "MODE #dev +i")
    refused = await dave.sync()
    assert [p[1] for p in params(refused, "482")] == ["#dev", "#dev", "#dev"]
    assert not params(refused, "MODE")
    client.close()
    dave.close()
    await bob.close()


async def test_kicks_both_ways_between_irc_and_ndjson_members(
    ranked_server: RunningServer,
) -> None:
    """An IRC op's KICK puts an NDJSON member out (its leave says kicked, by whom and
    why); an NDJSON op's kick of an IRC member reaches it as KICK with the reason, and
    other IRC members see KICK (not PART or QUIT); the kicked one stays connected."""
    alice = await irc_member(ranked_server, "ann")
    carol = await irc_member(ranked_server, "carol")
    bob = await ranked_server.client("bob")
    await alice.send("JOIN #dev")
    await alice.until("366")
    await carol.send("JOIN #dev")
    await carol.until("366")
    await bob.send(JoinRequest(room="dev"))
    await expect(bob, Joined)

    await alice.send("KICK #dev bob :spam")
    left = await expect(bob, Leave, where=lambda leave: leave.room == "dev")
    assert (left.name, left.reason, left.by, left.text) == ("bob", "kicked", "ann", "spam")
    kick = await carol.expect("KICK")
    assert kick.params == ("#dev", "bob", "spam")
    assert kick.source is not None and kick.source.startswith("ann!")
    assert "bob" not in ranked_server.server.hub.members("dev")

    await bob.send(JoinRequest(room="ops"))
    await expect(bob, Joined)
    await alice.send("JOIN #ops")
    await alice.until("366")
    await carol.send("JOIN #ops")
    await carol.until("366")
    await alice.send("KICK #ops bob :no")
    assert ("ann", "#ops") in [p[:2] for p in params(await alice.sync(), "482")]
    await bob.send(Kick(room="ops", name="ann", reason="bye now"))
    mine = await alice.expect("KICK")
    assert mine.params == ("#ops", "ann", "bye now")
    assert mine.source is not None and mine.source.startswith("bob!")
    seen = await carol.until("KICK")
    assert seen[-1].params == ("#ops", "ann", "bye now")
    assert not params(seen, "PART") and not params(seen, "QUIT")
    assert not params(await alice.sync(), "ERROR")
    assert "ann" not in ranked_server.server.hub.members("ops")
    assert "ann" in ranked_server.server.hub.members("dev")
    alice.close()
    carol.close()
    await bob.close()


async def test_sasl_plain_logs_into_the_account_as_its_nick(ranked_server: RunningServer) -> None:
    """CAP LS 302 offers sasl=PLAIN; AUTHENTICATE PLAIN with the right password gives
    900 and 903 at once, and the member registers as the account (even under another
    NICK), which WHOIS shows (330) and NDJSON members see as a member with an account."""
    client = await irc_connect(ranked_server)
    await client.send("CAP LS 302")
    ls = await client.expect("CAP")
    assert "sasl=PLAIN" in ls.params[-1].split()
    await client.send("NICK ali", "USER u 0 * :x", "CAP REQ :sasl", "AUTHENTICATE PLAIN")
    assert (await client.expect("AUTHENTICATE")).params == ("+",)
    await client.send(f"AUTHENTICATE {plain('alice', 'alice', PASSWORD)}")
    lines = await client.until("903")
    logged_in = params(lines, "900")[0]
    assert logged_in[2:] == ("alice", "You are now logged in as alice")
    await client.send("AUTHENTICATE PLAIN", "CAP END")
    rest = await client.until("001")
    assert params(rest, "907")
    assert rest[-1].params[0] == "alice"
    await client.until("366")
    await client.send("WHOIS alice")
    assert (await client.expect("330")).params[1:3] == ("alice", "alice")
    assert "alice" in ranked_server.server.hub.members("lobby")
    client.close()


async def test_a_wrong_sasl_password_gets_904_after_the_delay_and_a_retry_works(
    ranked_server: RunningServer,
) -> None:
    """A wrong password (or an account that does not exist) is 904, no sooner than the
    session's delay for a wrong hello; the connection stays, AUTHENTICATE * is 906, and
    the right password then logs in."""
    client, _ = await sasl_client(ranked_server, "alice")
    loop = asyncio.get_running_loop()
    started = loop.time()
    await client.send(f"AUTHENTICATE {plain('', 'alice', 'wrong password')}")
    failed = await client.until("904")
    assert loop.time() - started >= DELAY_S
    assert not params(failed, "900") and not params(failed, "903")
    await client.send("AUTHENTICATE PLAIN", f"AUTHENTICATE {plain('', 'nobody', PASSWORD)}")
    await client.expect("904")
    await client.send("AUTHENTICATE PLAIN", "AUTHENTICATE *")
    await client.expect("906")
    await client.send("AUTHENTICATE PLAIN", f"AUTHENTICATE {plain('mallory', 'alice', PASSWORD)}")
    await client.expect("904")  # acting for someone else is refused at once
    await client.send("AUTHENTICATE PLAIN", f"AUTHENTICATE {plain('', 'alice', PASSWORD)}")
    await client.expect("903")
    await client.send("CAP END")
    assert (await client.expect("001")).params[0] == "alice"
    client.close()


async def test_a_registered_nick_without_sasl_is_433_and_another_nick_registers(
    ranked_server: RunningServer,
) -> None:
    """Registering as an account's name (or a look-alike) without SASL is 433, like a
    nick in use; the next NICK registers, and NICK to the account's name is 433 too."""
    client = await irc_connect(ranked_server)
    await client.send("NICK Alice", "USER u 0 * :x")
    refused = await client.expect("433")
    assert refused.params[1] == "Alice" and "SASL" in refused.params[-1]
    await client.send("NICK guest")
    assert (await client.expect("001")).params[0] == "guest"
    await client.until("366")
    await client.send("NICK alice")
    assert (await client.expect("433")).params[1] == "alice"
    assert "guest" in ranked_server.server.hub.members("lobby")
    client.close()


async def test_join_keys_invites_and_modes_map_to_the_rooms_modes(
    ranked_server: RunningServer,
) -> None:
    """MODE +ik sets the room's invite-only mode and key (members see MODE, the key
    hidden); a JOIN without an invite is 473, INVITE lets one in; with -i a wrong key is
    475 and the key (the second of JOIN's keys) lets one in; a role given by an NDJSON
    op shows as MODE +o."""
    op = await irc_member(ranked_server, "op")
    await op.send("JOIN #club", "MODE #club +ik sesame")
    assert (await op.expect("MODE")).params == ("#club", "+ik-mR", "*")
    await op.send("MODE #club")
    assert (await op.expect("324")).params[1:] == ("#club", "+nik", "sesame")
    guest = await irc_member(ranked_server, "guest")
    await guest.send("JOIN #club sesame")
    assert (await guest.expect("473")).params[1] == "#club"
    await op.send("INVITE guest #club")
    invite = await guest.expect("INVITE")
    assert invite.params == ("guest", "#club")
    await guest.send("JOIN #club")
    assert params(await guest.until("366"), "353")[-1][-1].split() == ["@op", "guest"]
    await op.send("MODE #club -i")
    assert (await op.expect("MODE")).params == ("#club", "+k-imR", "*")
    third = await irc_member(ranked_server, "third")
    await third.send("JOIN #club wrong")
    assert (await third.expect("475")).params[1] == "#club"
    await third.send("JOIN #dev,#club x,sesame")
    assert params(await third.until("366", lambda line: line.params[1] == "#club"), "JOIN")
    third.close()
    bob = await ranked_server.client("bob")
    await bob.send(JoinRequest(room="lab"))
    await expect(bob, Joined)
    await guest.send("JOIN #lab")
    await guest.until("366")
    await bob.send(RoleRequest(room="lab", name="guest", role="op"))
    assert (await guest.expect("MODE")).params == ("#lab", "+o-v", "guest", "guest")
    await bob.send(RoleRequest(room="lab", name="nobody", role="admin"))
    assert (await expect(bob, Error)).code == "forbidden"
    op.close()
    guest.close()
    await bob.close()
