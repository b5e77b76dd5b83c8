"""The Textual app against a real server: other participants are real client connections."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import TIMEOUT_S, RunningServer, StartServer, expect
from textual import events
from textual._xterm_parser import XTermParser
from textual.command import CommandList, CommandPalette
from textual.message import Message as TextualMessage
from textual.pilot import Pilot
from textual.widgets import Input

from chatroom import protocol
from chatroom.client import ClientConnection
from chatroom.history import HistoryStore
from chatroom.server import ChatServer, ServerConfig
from chatroom.tui import ChatApp
from chatroom.tui.app import RECONNECT_MAX_S, backoff_delay
from chatroom.tui.conversation import Conversation, private_key, room_key
from chatroom.tui.messages import FrameReceived
from chatroom.tui.widgets import ChatInput, PendingView, PromptScreen, RoomTab

SIZE = (100, 30)


async def until(
    pilot: Pilot[Any], condition: Callable[[], object], what: str, timeout_s: float = TIMEOUT_S
) -> None:
    """Let the app run until ``condition()`` is true; fail after ``timeout_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause()


def entries(app: ChatApp) -> list[str]:
    """Every entry in the message pane as plain text."""
    return [entry.text.plain for entry in app.pane.entries]


def shown(app: ChatApp, text: str) -> bool:
    """Whether some pane entry contains ``text``."""
    return any(text in entry for entry in entries(app))


def connected(app: ChatApp) -> bool:
    return app.conn is not None and app.status.state == "connected"


async def type_line(pilot: Pilot[Any], line: str) -> None:
    """Type ``line`` into the focused input and press Enter."""
    field = pilot.app.query_one("#input", ChatInput)
    field.value = line
    field.cursor_position = len(line)
    await pilot.press("enter")


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_message_from_another_client_appears_without_input(
    chat_server: RunningServer,
) -> None:
    """A message said by someone else shows up in the pane by itself, no key pressed."""
    bob = await chat_server.client("bob")
    app = ChatApp(chat_server.host, chat_server.port, name="alice")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app), "joining")
        await bob.say("hello from bob")
        await until(pilot, lambda: shown(app, "bob: hello from bob"), "bob's message")
        assert any("bob: hello from bob" in line for line in app.pane.plain_lines())
    await bob.close()


async def test_typed_message_is_sent_and_shown_once_acknowledged(
    chat_server: RunningServer,
) -> None:
    """Enter sends the line; the pane shows it once, from the server's echo."""
    bob = await chat_server.client("bob")
    app = ChatApp(chat_server.host, chat_server.port, name="alice")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app), "joining")
        await type_line(pilot, "hi bob")
        said = await expect(bob, protocol.Message, where=lambda m: m.sender == "alice")
        assert said.text == "hi bob"
        await until(pilot, lambda: shown(app, "alice: hi bob"), "the echo")
        await until(pilot, lambda: not app.outbox, "the acknowledgement")
        assert sum("alice: hi bob" in entry for entry in entries(app)) == 1
        assert app.query_one("#input", ChatInput).value == ""
    await bob.close()


async def test_two_lines_typed_in_one_burst_go_out_as_two_messages(
    chat_server: RunningServer,
) -> None:
    """Keys arrive from the terminal faster than the app handles them (a fast typist,
    tmux send-keys): each Enter sends what was typed before it, once."""
    bob = await chat_server.client("bob")
    app = ChatApp(chat_server.host, chat_server.port, name="alice")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app), "joining")
        # The whole burst is queued before the app handles any of it, as a terminal
        # driver posts what it reads.
        for char in "quick one\rquick two\r":
            key = "enter" if char == "\r" else ("space" if char == " " else char)
            app.post_message(events.Key(key, char))
        first = await expect(bob, protocol.Message, where=lambda m: m.sender == "alice")
        second = await expect(bob, protocol.Message, where=lambda m: m.sender == "alice")
        assert (first.text, second.text) == ("quick one", "quick two")
        await until(pilot, lambda: not app.outbox, "the acknowledgements")
        assert app.query_one("#input", ChatInput).value == ""
    await bob.close()


async def test_markup_and_escape_sequences_stay_literal(chat_server: RunningServer) -> None:
    """Rich markup and an ANSI escape in a message are shown as the characters sent."""
    bob = await chat_server.client("bob")
    app = ChatApp(chat_server.host, chat_server.port, name="alice")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app), "joining")
        await bob.say("[bold red]x[/] \x1b[31mred")
        await until(pilot, lambda: shown(app, "[bold red]x[/]"), "bob's message")
        entry = next(e for e in app.pane.entries if "[bold red]x[/]" in e.text.plain)
        assert entry.body.plain == "[bold red]x[/] \\x1b[31mred"
        assert "\x1b" not in entry.text.plain
        # The body carries no style at all: nothing in it was read as markup.
        assert entry.body.spans == [] and not entry.body.style
        line = next(s for s in app.pane.lines if "[bold red]x[/]" in s.text)
        assert "\x1b" not in line.text
        for segment in line:
            if "x[/]" in segment.text:
                style = segment.style
                assert style is None or not (
                    style.bold or (style.color and style.color.name == "red")
                )
    await bob.close()


async def test_multiline_message_keeps_its_lines(chat_server: RunningServer) -> None:
    """A message with newlines is shown on several lines, under its body column."""
    bob = await chat_server.client("bob")
    app = ChatApp(chat_server.host, chat_server.port, name="alice")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app), "joining")
        await bob.say("first line\nsecond line")
        await until(
            pilot, lambda: any("second line" in ln for ln in app.pane.plain_lines()), "the message"
        )
        lines = app.pane.plain_lines()
        first = next(i for i, ln in enumerate(lines) if "first line" in ln)
        assert lines[first + 1].strip() == "second line"
        assert lines[first + 1].index("second") == lines[first].index("first")
    await bob.close()


async def test_taken_name_is_asked_again_then_joins(chat_server: RunningServer) -> None:
    """A taken --name opens the name prompt with the server's reason; a new name joins."""
    bob = await chat_server.client("bob")
    app = ChatApp(chat_server.host, chat_server.port, name="bob")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, PromptScreen), "the name prompt")
        reason = app.screen.query_one("#prompt-reason")
        assert "taken" in str(reason.render())
        field = app.screen.query_one("#prompt-input", Input)
        field.value = "carol"
        await pilot.press("enter")
        await until(pilot, lambda: connected(app), "joining as carol")
        assert app.joined_name == "carol"
        assert shown(app, "refused")
        joined = await expect(bob, protocol.Join, where=lambda j: j.name == "carol")
        assert joined.name == "carol"
    await bob.close()


async def test_without_a_name_the_app_asks_for_one(chat_server: RunningServer) -> None:
    """With no name given, a prompt asks for it before joining."""
    app = ChatApp(chat_server.host, chat_server.port)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, PromptScreen), "the name prompt")
        await pilot.press(*"dora", "enter")
        await until(pilot, lambda: connected(app), "joining")
        assert app.joined_name == "dora"
        assert "dora" in app.status.render().plain  # type: ignore[union-attr]


async def test_password_is_asked_for_and_the_app_reconnects(start_server: StartServer) -> None:
    """auth_failed closes the connection; the app asks for the password and joins with it."""
    running = await start_server(flood_rate=0, password="sesame", auth_failure_delay_s=0)
    app = ChatApp(running.host, running.port, name="alice")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, PromptScreen), "the password prompt")
        await pilot.press(*"sesame", "enter")
        await until(pilot, lambda: connected(app), "joining with the password")
        assert app.joined_name == "alice"


async def test_member_list_follows_joins_and_leaves(chat_server: RunningServer) -> None:
    """The member list and count change when someone joins and leaves; leaves say why."""
    app = ChatApp(chat_server.host, chat_server.port, name="alice")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app), "joining")
        assert app.member_list.names == ("alice",)
        bob = await chat_server.client("bob")
        await until(pilot, lambda: app.member_list.names == ("alice", "bob"), "bob in the list")
        assert app.status.member_count == 2
        assert shown(app, "→ bob joined")
        await bob.close()
        await until(pilot, lambda: app.member_list.names == ("alice",), "bob gone")
        assert shown(app, "← bob left (quit)")
        assert app.status.member_count == 1


async def test_who_shows_the_members_in_the_pane(chat_server: RunningServer) -> None:
    """/who asks the server and shows its member list in the pane."""
    bob = await chat_server.client("bob")
    app = ChatApp(chat_server.host, chat_server.port, name="alice")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app), "joining")
        await type_line(pilot, "/who")
        await until(pilot, lambda: shown(app, "2 in #lobby: alice, bob"), "the member list")
    await bob.close()


async def test_unknown_command_is_not_sent(chat_server: RunningServer) -> None:
    """/frobnicate gets a hint and never reaches the room; //text sends "/text"."""
    bob = await chat_server.client("bob")
    app = ChatApp(chat_server.host, chat_server.port, name="alice")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app), "joining")
        await type_line(pilot, "/frobnicate now")
        await until(pilot, lambda: shown(app, "/frobnicate is not a command"), "the hint")
        await type_line(pilot, "//shrug")
        # Messages arrive in order, so the first one bob sees proves the command was not sent.
        said = await expect(bob, protocol.Message, where=lambda m: m.sender == "alice")
        assert said.text == "/shrug"
    await bob.close()


async def test_help_lists_commands(chat_server: RunningServer) -> None:
    """/help shows the commands and keys in the pane."""
    app = ChatApp(chat_server.host, chat_server.port, name="alice")
    async with app.run_test(size=SIZE) as pilot:
        await type_line(pilot, "/help")
        await until(pilot, lambda: shown(app, "/who"), "the help")
        assert shown(app, "/quit") and shown(app, "Ctrl+R")


async def test_unreachable_server_shows_a_message_and_keeps_running() -> None:
    """No server at the address: the pane and status line say so; the app stays up."""
    port = free_port()
    app = ChatApp("127.0.0.1", port, name="alice")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: shown(app, "cannot connect"), "the failure notice")
        assert shown(app, "nothing is listening")
        assert app.status.state == "disconnected"
        assert "retry in" in app.status.render().plain  # type: ignore[union-attr]
        assert app.is_running
    assert app.return_code in (None, 0)


async def test_server_going_away_then_back_reconnects(start_server: StartServer) -> None:
    """A lost server shows as disconnected; when one listens again the app rejoins by itself,
    under the same name, and sends what was typed meanwhile."""
    running = await start_server(flood_rate=0)
    app = ChatApp(running.host, running.port, name="alice")
    app.reconnect_initial_s = 0.05
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app), "joining")
        await running.server.close()
        await until(pilot, lambda: app.status.state == "disconnected", "the disconnect")
        assert shown(app, "disconnected")
        assert app.member_list.has_class("-offline")
        await type_line(pilot, "typed while away")
        pending = app.query_one("#pending", PendingView)
        assert pending.display and "typed while away" in str(pending.render())
        assert not shown(app, "alice: typed while away")

        again = ChatServer(
            ServerConfig(
                host="127.0.0.1", port=running.port, flood_rate=0, sinks=[running.transcript]
            )
        )
        await again.start()
        try:
            await until(pilot, lambda: connected(app), "the reconnect")
            assert app.joined_name == "alice"
            await until(pilot, lambda: shown(app, "alice: typed while away"), "the pending line")
            assert not app.outbox and not pending.display
        finally:
            await again.close()


async def test_ctrl_r_retries_at_once(start_server: StartServer) -> None:
    """Ctrl+R skips a long reconnect wait."""
    running = await start_server(flood_rate=0)
    app = ChatApp(running.host, running.port, name="alice")
    app.reconnect_initial_s = 60
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app), "joining")
        await running.server.close()
        await until(pilot, lambda: app.status.retry_at is not None, "the reconnect wait")
        again = ChatServer(
            ServerConfig(
                host="127.0.0.1", port=running.port, flood_rate=0, sinks=[running.transcript]
            )
        )
        await again.start()
        try:
            await pilot.press("ctrl+r")
            await until(pilot, lambda: connected(app), "the reconnect")
        finally:
            await again.close()


@pytest.mark.parametrize("key", ["ctrl+q", "ctrl+c"])
async def test_quit_keys_say_bye(chat_server: RunningServer, key: str) -> None:
    """Ctrl+Q and Ctrl+C leave with bye (others see reason quit) and exit with status 0."""
    bob = await chat_server.client("bob")
    app = ChatApp(chat_server.host, chat_server.port, name="alice")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app), "joining")
        await pilot.press(key)
        left = await expect(bob, protocol.Leave, where=lambda f: f.name == "alice")
        assert left.reason == "quit"
    assert app.return_code == 0
    await bob.close()


async def test_history_comes_first_and_set_apart(chat_server: RunningServer) -> None:
    """The welcome's history is shown dimmed under "earlier messages", then "you joined"."""
    bob = await chat_server.client("bob")
    await bob.say("said before alice came")
    await expect(bob, protocol.Message)
    app = ChatApp(chat_server.host, chat_server.port, name="alice")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: shown(app, "you joined"), "the join")
        texts = entries(app)
        earlier = texts.index("earlier messages")
        old = next(i for i, t in enumerate(texts) if "said before alice came" in t)
        joined = next(i for i, t in enumerate(texts) if "you joined" in t)
        assert earlier < old < joined
        old_entry = list(app.pane.entries)[old]
        assert any("dim" in str(span.style) for span in old_entry.body.spans)
    await bob.close()


async def test_mentions_are_highlighted(chat_server: RunningServer) -> None:
    """A message naming you is marked as a mention; others are not."""
    bob = await chat_server.client("bob")
    app = ChatApp(chat_server.host, chat_server.port, name="alice")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app), "joining")
        await bob.say("nothing to see")
        await bob.say("hey Alice, look")
        await until(pilot, lambda: shown(app, "hey Alice"), "the mention")
        by_text = {e.body.plain: e for e in app.pane.entries}
        assert by_text["hey Alice, look"].mention
        assert not by_text["nothing to see"].mention
    await bob.close()


async def test_scrolled_up_pane_stays_put(chat_server: RunningServer) -> None:
    """New messages keep the pane at the bottom, unless the reader scrolled up: then it
    stays, and a bar counts what arrived below."""
    bob = await chat_server.client("bob")
    app = ChatApp(chat_server.host, chat_server.port, name="alice")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app), "joining")
        for number in range(40):
            await bob.say(f"line {number}")
        await until(pilot, lambda: shown(app, "line 39"), "the lines")
        pane = app.pane
        await until(
            pilot,
            lambda: pane.max_scroll_y > 0 and pane.is_vertical_scroll_end,
            "following the bottom",
        )
        await pilot.press("pageup")
        await until(pilot, lambda: not pane.following, "scrolled up")
        where = pane.scroll_y
        await bob.say("while scrolled up")
        await until(pilot, lambda: shown(app, "while scrolled up"), "the new line")
        await pilot.pause()
        assert pane.scroll_y == where
        bar = app.query_one("#new-below")
        assert bar.display and "1 new message" in str(bar.render())
        await pilot.press("pagedown", "pagedown", "pagedown")
        await until(pilot, lambda: pane.following and not bar.display, "back at the bottom")
    await bob.close()


async def test_input_history_and_name_completion(chat_server: RunningServer) -> None:
    """Up and Down recall earlier lines; Tab completes a member's name."""
    bob = await chat_server.client("bobby")
    app = ChatApp(chat_server.host, chat_server.port, name="alice")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app), "joining")
        field = app.query_one("#input", ChatInput)
        await type_line(pilot, "first")
        await type_line(pilot, "second")
        await pilot.press("up")
        assert field.value == "second"
        await pilot.press("up")
        assert field.value == "first"
        await pilot.press("down", "down")
        assert field.value == ""
        await pilot.press("b", "o", "tab")
        assert field.value == "bobby: "
        await pilot.press(*"hi a", "tab")
        assert field.value == "bobby: hi alice "
    await bob.close()


async def test_rate_limited_lines_are_resent(start_server: StartServer) -> None:
    """More lines than the server's burst allows all arrive, in order (default limits)."""
    running = await start_server()
    bob = await running.client("bob")
    app = ChatApp(running.host, running.port, name="alice")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app), "joining")
        for number in range(14):
            await type_line(pilot, f"burst {number}")
        got = []
        async with asyncio.timeout(TIMEOUT_S * 2):
            while len(got) < 14:
                frame = await expect(bob, protocol.Message, timeout_s=TIMEOUT_S * 2)
                got.append(frame.text)
        assert got == [f"burst {number}" for number in range(14)]
        await until(pilot, lambda: not app.outbox, "every acknowledgement")
    await bob.close()


async def test_too_long_message_is_given_back(start_server: StartServer) -> None:
    """A message the server refuses as too long is not lost: it returns to the input."""
    running = await start_server(flood_rate=0, max_text_chars=10)
    app = ChatApp(running.host, running.port, name="alice")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app), "joining")
        await type_line(pilot, "far too long for this server")
        await until(pilot, lambda: shown(app, "not sent"), "the refusal")
        assert app.query_one("#input", ChatInput).value == "far too long for this server"
        assert not app.outbox


async def test_a_failing_worker_does_not_end_the_app(
    chat_server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in the connection path shows as an error and a retry, never a crash."""
    calls = 0
    real_connect = ClientConnection.connect

    async def broken_connect(*args: Any, **kwargs: Any) -> ClientConnection:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("boom")
        return await real_connect(*args, **kwargs)

    monkeypatch.setattr(ClientConnection, "connect", broken_connect)
    app = ChatApp(chat_server.host, chat_server.port, name="alice")
    app.reconnect_initial_s = 0.05
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: shown(app, "internal error"), "the error notice")
        await until(pilot, lambda: connected(app), "the retry")
        assert app.is_running


@pytest.mark.parametrize(
    ("failures", "rand", "expected"),
    [
        (1, 0.5, 1.0),
        (2, 0.5, 2.0),
        (3, 0.5, 4.0),
        (5, 0.5, 16.0),
        (6, 0.5, 30.0),
        (20, 0.5, 30.0),
        (1, 0.0, 0.8),
        (1, 1.0, 1.2),
        (6, 1.0, RECONNECT_MAX_S),
    ],
)
def test_backoff_doubles_from_one_second_to_thirty_with_jitter(
    failures: int, rand: float, expected: float
) -> None:
    """Reconnect delays double from 1 s, stop at 30 s, and move by up to a fifth."""
    assert backoff_delay(failures, rand=lambda: rand) == pytest.approx(expected)


async def test_reconnect_resumes_without_gaps_or_repeats(chat_server: RunningServer) -> None:
    """After a lost connection the app asks the server to resume: what was said while it
    was away appears once, and nothing seen before is shown again."""
    bob = await chat_server.client("bob")
    await bob.say("before")
    app = ChatApp(chat_server.host, chat_server.port, name="alice")
    app.reconnect_initial_s = 60
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app), "joining")
        await until(pilot, lambda: shown(app, "bob: before"), "the history")
        assert app.conn is not None
        app.conn._writer.transport.abort()  # the network drops the connection
        await expect(bob, protocol.Leave, where=lambda f: f.name == "alice")
        await bob.say("while you were away")
        await until(pilot, lambda: app.status.retry_at is not None, "the reconnect wait")
        await pilot.press("ctrl+r")
        await until(pilot, lambda: connected(app) and shown(app, "are back in #lobby"), "rejoining")
        await until(pilot, lambda: shown(app, "bob: while you were away"), "the missed message")
        assert app.conn is not None and app.conn.welcome is not None
        assert app.conn.welcome.resumed
        texts = entries(app)
        assert sum("bob: before" in t for t in texts) == 1
        assert sum("bob: while you were away" in t for t in texts) == 1
        away = next(i for i, t in enumerate(texts) if "while you were away" in t)
        back = next(i for i, t in enumerate(texts) if "are back in #lobby" in t)
        assert away < back
    await bob.close()


async def test_me_msg_nick_and_topic(chat_server: RunningServer) -> None:
    """/me sends an action, /msg a private message, /nick renames, /topic sets the topic."""
    bob = await chat_server.client("bob")
    app = ChatApp(chat_server.host, chat_server.port, name="alice")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app), "joining")
        await type_line(pilot, "/me waves")
        said = await expect(bob, protocol.Message, where=lambda m: m.sender == "alice")
        assert said.action and said.text == "waves"
        await until(pilot, lambda: shown(app, "* alice waves"), "the action")

        await type_line(pilot, "/msg bob just between us")
        private = await expect(bob, protocol.Dm)
        assert (private.sender, private.to, private.text) == ("alice", "bob", "just between us")
        await until(pilot, lambda: shown(app, "private alice → bob: just between us"), "the dm")
        await until(pilot, lambda: not app.outbox, "the dm's acknowledgement")

        await type_line(pilot, "/topic release on Friday")
        await until(pilot, lambda: shown(app, "alice set the topic: release on Friday"), "topic")

        await type_line(pilot, "/nick alicia")
        await until(pilot, lambda: shown(app, "alice is now known as alicia"), "the rename")
        assert app.joined_name == "alicia"
        assert "alicia" in app.member_list.names and "alice" not in app.member_list.names
        await type_line(pilot, "renamed")
        said = await expect(bob, protocol.Message, where=lambda m: m.text == "renamed")
        assert said.sender == "alicia"
        await until(pilot, lambda: not app.outbox, "the acknowledgement")
    await bob.close()


async def test_private_message_to_nobody_is_refused_not_lost(chat_server: RunningServer) -> None:
    """A /msg to a name nobody has is reported and leaves the queue, so later lines go out."""
    bob = await chat_server.client("bob")
    app = ChatApp(chat_server.host, chat_server.port, name="alice")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app), "joining")
        await type_line(pilot, "/msg nobody hello?")
        await until(pilot, lambda: shown(app, "not sent"), "the refusal")
        await type_line(pilot, "still here")
        said = await expect(bob, protocol.Message, where=lambda m: m.sender == "alice")
        assert said.text == "still here"
    await bob.close()


async def test_quit_with_unsent_messages_asks_first() -> None:
    """Unsent messages are never dropped silently: the first Ctrl+Q warns, the second quits."""
    app = ChatApp("127.0.0.1", free_port(), name="alice")
    app.reconnect_initial_s = 60
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: shown(app, "cannot connect"), "the failure notice")
        await type_line(pilot, "nobody will hear this yet")
        await pilot.press("ctrl+q")
        await until(pilot, lambda: shown(app, "1 message is not sent yet"), "the warning")
        assert app.is_running
        await pilot.press("ctrl+q")
        await until(pilot, lambda: not app.is_running, "the exit")
    assert app.return_code == 0


async def test_cancelled_name_prompt_waits_for_ctrl_r(chat_server: RunningServer) -> None:
    """Esc on the name prompt leaves the app offline, saying how to go on; Ctrl+R asks again."""
    app = ChatApp(chat_server.host, chat_server.port)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, PromptScreen), "the name prompt")
        await pilot.press("escape")
        await until(pilot, lambda: shown(app, "Ctrl+R to choose one"), "the hint")
        assert app.status.state == "offline" and app.is_running
        await pilot.press("ctrl+r")
        await until(pilot, lambda: isinstance(app.screen, PromptScreen), "the prompt again")
        await pilot.press(*"erin", "enter")
        await until(pilot, lambda: connected(app), "joining")


async def test_ctrl_q_quits_from_the_name_prompt(chat_server: RunningServer) -> None:
    """Quitting works while the app waits for a name, with status 0."""
    app = ChatApp(chat_server.host, chat_server.port)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, PromptScreen), "the name prompt")
        await pilot.press("ctrl+q")
        await until(pilot, lambda: not app.is_running, "the exit")
    assert app.return_code == 0


async def test_long_runs_of_joins_and_leaves_in_history_fold(chat_server: RunningServer) -> None:
    """In the welcome's history a run of comings and goings is one line; messages stay."""
    for number in range(3):
        visitor = await chat_server.client(f"visitor{number}")
        await visitor.close()
    bob = await chat_server.client("bob")
    await bob.say("still here")
    await expect(bob, protocol.Message)
    app = ChatApp(chat_server.host, chat_server.port, name="alice")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: shown(app, "you joined"), "the join")
        assert shown(app, "4 joins and 3 leaves")
        assert not shown(app, "visitor0 joined")
        assert shown(app, "bob: still here")
    await bob.close()


# ---------------------------------------------------------------------------- rooms


def conversation(app: ChatApp, label: str) -> Conversation:
    """The conversation the room list shows as ``label`` (``#dev``, ``@bob``)."""
    key = private_key(label[1:]) if label.startswith("@") else room_key(label[1:])
    return app.convs[key]


def tab(app: ChatApp, label: str) -> RoomTab | None:
    """The room list's line for ``label``, or None when the list has none."""
    return next((t for t in app.room_list.tabs if t.label == label), None)


def labels(app: ChatApp) -> list[str]:
    """The room list, in order."""
    return [t.label for t in app.room_list.tabs]


def shown_in(app: ChatApp, label: str, text: str) -> bool:
    """Whether the pane of ``label`` has an entry containing ``text``."""
    return any(text in entry.text.plain for entry in app.pane_of(conversation(app, label)).entries)


async def joined_room(pilot: Pilot[Any], room: str) -> None:
    """Type /join ROOM and wait until the room is the current, ready conversation."""
    app = pilot.app
    assert isinstance(app, ChatApp)
    await type_line(pilot, f"/join #{room}")
    await until(
        pilot,
        lambda: app.current.label == f"#{room}" and app.current.ready,
        f"joining #{room}",
    )


async def in_room(conn: ClientConnection, room: str) -> None:
    """Join ``room`` with a plain client connection and wait for its own join event."""
    await conn.send(protocol.JoinRequest(room=room))
    await expect(conn, protocol.Join, where=lambda j: j.room == room)


async def test_join_a_room_and_talk_there(chat_server: RunningServer) -> None:
    """/join #dev adds the room, shows it, and what is typed there reaches the room's
    members only: a member of the lobby alone never sees it."""
    bob = await chat_server.client("bob")
    await in_room(bob, "dev")
    carol = await chat_server.client("carol")
    app = ChatApp(chat_server.host, chat_server.port, name="alice")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app), "joining")
        await joined_room(pilot, "dev")
        assert labels(app) == ["#lobby", "#dev"]
        assert app.member_list.names == ("alice", "bob")
        assert "#dev" in app.status.render().plain  # type: ignore[union-attr]
        await type_line(pilot, "hello dev")
        said = await expect(bob, protocol.Message, where=lambda m: m.sender == "alice")
        assert (said.room, said.text) == ("dev", "hello dev")
        await until(pilot, lambda: shown_in(app, "#dev", "alice: hello dev"), "the echo")
        assert not shown_in(app, "#lobby", "hello dev")

        await pilot.press("alt+1")
        await type_line(pilot, "hello lobby")
        heard = await expect(carol, protocol.Message)
        # Events come in id order: the first message carol gets is the lobby's.
        assert (heard.room, heard.text) == ("lobby", "hello lobby")
    await bob.close()
    await carol.close()


async def test_joined_history_is_set_apart(chat_server: RunningServer) -> None:
    """Joining a room with a past shows that past dimmed, under "earlier messages", above
    your own join."""
    bob = await chat_server.client("bob")
    await in_room(bob, "dev")
    await bob.send(protocol.Say(text="said before you came", room="dev"))
    await expect(bob, protocol.Message)
    app = ChatApp(chat_server.host, chat_server.port, name="alice")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app), "joining")
        await joined_room(pilot, "dev")
        texts = [entry.text.plain for entry in app.pane.entries]
        earlier = next(i for i, t in enumerate(texts) if "earlier messages" in t)
        said = next(i for i, t in enumerate(texts) if "bob: said before you came" in t)
        joined = next(i for i, t in enumerate(texts) if "you joined #dev as alice" in t)
        assert earlier < said < joined
        entry = app.pane.entries[said]
        assert all("dim" in str(span.style) for span in entry.body.spans) or "dim" in str(
            entry.body.style
        )
    await bob.close()


async def test_unread_counts_for_a_room_not_shown(chat_server: RunningServer) -> None:
    """Messages in a room that is not shown count as unread in the room list, mentions
    get their own mark; showing the room clears both."""
    bob = await chat_server.client("bob")
    await in_room(bob, "dev")
    app = ChatApp(chat_server.host, chat_server.port, name="alice")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app), "joining")
        await joined_room(pilot, "dev")
        await pilot.press("alt+1")
        assert app.current.label == "#lobby"
        await bob.send(protocol.Say(text="one", room="dev"))
        await bob.send(protocol.Say(text="two", room="dev"))
        await until(pilot, lambda: (tab(app, "#dev") or RoomTab("", "")).unread == 2, "unread")
        dev = tab(app, "#dev")
        assert dev is not None and dev.mentions == 0
        assert tab(app, "#lobby") == RoomTab("#lobby", "#lobby", current=True)
        assert not shown(app, "bob: one")  # the lobby's pane shows the lobby only
        await bob.send(protocol.Say(text="alice, a question", room="dev"))
        await until(pilot, lambda: (tab(app, "#dev") or RoomTab("", "")).mentions == 1, "mark")
        entry = app.room_list.entry(room_key("dev"))
        assert entry.plain == "2 #dev !3"
        await pilot.press("alt+2")
        assert app.current.label == "#dev"
        assert tab(app, "#dev") == RoomTab(room_key("dev"), "#dev", current=True)
        assert shown(app, "bob: one") and shown(app, "bob: two")
    await bob.close()


async def test_keys_and_clicks_switch_rooms(chat_server: RunningServer) -> None:
    """Alt+Left/Right, Alt+Up/Down, Alt+number and a click on the room list switch
    conversations (wrapping around); each switch clears the unread count shown."""
    bob = await chat_server.client("bob")
    app = ChatApp(chat_server.host, chat_server.port, name="alice")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app), "joining")
        await joined_room(pilot, "dev")
        await joined_room(pilot, "ops")
        assert labels(app) == ["#lobby", "#dev", "#ops"]
        current = lambda: app.current.label  # noqa: E731
        await pilot.press("alt+left")
        assert current() == "#dev"
        await pilot.press("alt+up")
        assert current() == "#lobby"
        await pilot.press("alt+up")
        assert current() == "#ops"  # wraps around
        await pilot.press("alt+right")
        assert current() == "#lobby"
        await pilot.press("alt+down")
        assert current() == "#dev"
        await pilot.press("alt+3")
        assert current() == "#ops"
        await pilot.press("alt+9")  # no ninth room: nothing happens
        assert current() == "#ops"
        assert app.input_line.value == ""  # and no digit was typed

        await bob.say("while you look at #ops")
        await until(pilot, lambda: (tab(app, "#lobby") or RoomTab("", "")).unread == 1, "unread")
        await pilot.click(app.room_list.entry(room_key("lobby")))
        await until(pilot, lambda: current() == "#lobby", "the click")
        assert tab(app, "#lobby") == RoomTab(room_key("lobby"), "#lobby", current=True)
        assert app.focused is app.input_line
    await bob.close()


async def test_each_room_keeps_its_scroll_position(chat_server: RunningServer) -> None:
    """A room scrolled up stays where the reader left it, with its "new below" count,
    while another room is shown and after switching back."""
    bob = await chat_server.client("bob")
    app = ChatApp(chat_server.host, chat_server.port, name="alice")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app), "joining")
        for number in range(40):
            await bob.say(f"line {number}")
        await until(pilot, lambda: shown(app, "line 39"), "the lines")
        lobby = app.pane
        await until(pilot, lambda: lobby.max_scroll_y > 0 and lobby.is_vertical_scroll_end, "end")
        await pilot.press("pageup")
        await until(pilot, lambda: not lobby.following, "scrolled up")
        where = lobby.scroll_y
        await joined_room(pilot, "dev")
        await bob.say("said while you were in #dev")
        await until(pilot, lambda: shown_in(app, "#lobby", "said while"), "the new line")
        bar = app.query_one("#new-below")
        assert not bar.display  # #dev's pane has nothing unseen
        await pilot.press("alt+1")
        await pilot.pause()
        assert app.pane is lobby and lobby.scroll_y == where
        assert bar.display and "1 new message" in str(bar.render())
    await bob.close()


async def test_part_removes_the_room(chat_server: RunningServer) -> None:
    """/part leaves the current room: its entry goes, the room's members see the part,
    and the lobby is shown; the lobby itself cannot be left."""
    bob = await chat_server.client("bob")
    await in_room(bob, "dev")
    app = ChatApp(chat_server.host, chat_server.port, name="alice")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app), "joining")
        await joined_room(pilot, "dev")
        await type_line(pilot, "/part")
        left = await expect(bob, protocol.Leave, where=lambda f: f.name == "alice")
        assert (left.room, left.reason) == ("dev", "part")
        await until(pilot, lambda: labels(app) == ["#lobby"], "the entry to go")
        assert app.current.label == "#lobby"
        await until(pilot, lambda: shown(app, "you left #dev"), "the note")
        await type_line(pilot, "/part #lobby")
        await until(pilot, lambda: shown(app, "everyone stays in #lobby"), "the hint")
        assert labels(app) == ["#lobby"]
        await type_line(pilot, "/part #nowhere")
        await until(pilot, lambda: shown(app, "you are not in #nowhere"), "the hint")
    await bob.close()


async def test_rooms_lists_members_and_topics(chat_server: RunningServer) -> None:
    """/rooms shows every room with its member count and topic, and marks those you are
    in; the listing feeds /join's Tab completion."""
    bob = await chat_server.client("bob")
    await in_room(bob, "dev")
    await bob.send(protocol.TopicRequest(room="dev", text="release on Friday"))
    await expect(bob, protocol.Topic)
    app = ChatApp(chat_server.host, chat_server.port, name="alice")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app), "joining")
        await type_line(pilot, "/rooms")
        await until(pilot, lambda: shown(app, "2 rooms on this server"), "the listing")
        listing = next(e.body.plain for e in app.pane.entries if "2 rooms" in e.body.plain)
        lines = listing.splitlines()
        dev = next(line for line in lines if "#dev" in line)
        lobby = next(line for line in lines if "#lobby" in line)
        assert "1 member" in dev and "release on Friday" in dev and "✓" not in dev
        assert "2 members" in lobby and "✓" in lobby
        field = app.query_one("#input", ChatInput)
        field.value = "/join d"
        field.cursor_position = len(field.value)
        await pilot.press("tab")
        assert field.value == "/join #dev "
    await bob.close()


async def test_who_and_topic_act_on_the_current_room(chat_server: RunningServer) -> None:
    """/who lists the current room's members, /topic TEXT sets its topic (shown in the
    status line while the room is), and /topic alone shows it."""
    bob = await chat_server.client("bob")
    await in_room(bob, "dev")
    app = ChatApp(chat_server.host, chat_server.port, name="alice")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app), "joining")
        await joined_room(pilot, "dev")
        await type_line(pilot, "/who")
        await until(pilot, lambda: shown(app, "2 in #dev: alice, bob"), "the members")
        await type_line(pilot, "/topic ship it")
        topic = await expect(bob, protocol.Topic)
        assert (topic.room, topic.text, topic.sender) == ("dev", "ship it", "alice")
        await until(pilot, lambda: "ship it" in str(app.status.render()), "the status line")
        await type_line(pilot, "/topic")
        await until(pilot, lambda: shown(app, "topic of #dev: ship it"), "the topic")
        await pilot.press("alt+1")
        assert "ship it" not in str(app.status.render())
    await bob.close()


async def test_private_message_from_someone_new_opens_an_entry(
    chat_server: RunningServer,
) -> None:
    """A private message from someone without an entry adds "@name" with an unread
    mention; there, what is typed goes back to that person alone."""
    bob = await chat_server.client("bob")
    carol = await chat_server.client("carol")
    app = ChatApp(chat_server.host, chat_server.port, name="alice")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app), "joining")
        await bob.send(protocol.DmRequest(to="alice", text="psst"))
        await until(pilot, lambda: tab(app, "@bob") is not None, "the entry")
        await until(pilot, lambda: shown_in(app, "@bob", "private bob → alice: psst"), "message")
        bob_tab = tab(app, "@bob")
        assert bob_tab is not None and (bob_tab.unread, bob_tab.mentions) == (1, 1)
        assert app.current.label == "#lobby" and not shown(app, "psst")
        await pilot.press("alt+2")
        assert app.current.label == "@bob"
        assert app.member_list.names == ("alice", "bob")
        await type_line(pilot, "hi back")
        private = await expect(bob, protocol.Dm, where=lambda d: d.sender == "alice")
        assert (private.to, private.text) == ("bob", "hi back")
        await until(pilot, lambda: not app.outbox, "the acknowledgement")
        await type_line(pilot, "/msg carol a /msg elsewhere")
        await expect(carol, protocol.Dm)
        # A /msg typed here opens carol's entry without leaving bob's conversation.
        await until(pilot, lambda: tab(app, "@carol") is not None, "carol's entry")
        assert app.current.label == "@bob"
        assert shown(app, "alice → carol: a /msg elsewhere")
        await type_line(pilot, "/query dora")
        assert app.current.label == "@dora"
        await type_line(pilot, "/part")
        await until(pilot, lambda: tab(app, "@dora") is None, "closing the conversation")
    await bob.close()
    await carol.close()


async def test_mentions_ring_the_bell_until_turned_off(
    chat_server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A mention rings the terminal bell; /bell off stops it; a message naming nobody
    never rings."""
    bob = await chat_server.client("bob")
    app = ChatApp(chat_server.host, chat_server.port, name="alice")
    rings: list[float] = []
    monkeypatch.setattr(app, "bell", lambda: rings.append(time.monotonic()))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app), "joining")
        await bob.say("nothing for anyone")
        await bob.say("alice: are you there?")
        await until(pilot, lambda: shown(app, "are you there"), "the mention")
        assert len(rings) == 1
        await type_line(pilot, "/bell off")
        await until(pilot, lambda: shown(app, "the bell is off"), "the answer")
        assert not app.bell_on
        await bob.say("alice!!")
        await until(pilot, lambda: shown(app, "bob: alice!!"), "another mention")
        assert len(rings) == 1
    await bob.close()


async def test_no_bell_option_keeps_the_bell_quiet(
    chat_server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Started with the bell off (--no-bell), a mention and a private message ring nothing."""
    bob = await chat_server.client("bob")
    app = ChatApp(chat_server.host, chat_server.port, name="alice", bell=False)
    rings: list[None] = []
    monkeypatch.setattr(app, "bell", lambda: rings.append(None))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app), "joining")
        await bob.say("alice: ping")
        await bob.send(protocol.DmRequest(to="alice", text="private ping"))
        await until(pilot, lambda: tab(app, "@bob") is not None, "the private message")
        assert shown(app, "alice: ping") and rings == []
    await bob.close()


async def test_reconnect_rejoins_rooms_and_resumes_each(chat_server: RunningServer) -> None:
    """After the connection drops, the app joins its rooms again, each with resume_after
    set to the last event it saw there: what was said meanwhile appears once, nothing
    seen before appears again."""
    bob = await chat_server.client("bob")
    await in_room(bob, "dev")
    joined: list[protocol.Joined] = []

    def record(message: TextualMessage) -> None:
        if isinstance(message, FrameReceived) and isinstance(message.frame, protocol.Joined):
            joined.append(message.frame)

    app = ChatApp(chat_server.host, chat_server.port, name="alice")
    app.reconnect_initial_s = 60
    async with app.run_test(size=SIZE, message_hook=record) as pilot:
        await until(pilot, lambda: connected(app), "joining")
        await joined_room(pilot, "dev")
        await bob.send(protocol.Say(text="before", room="dev"))
        await until(pilot, lambda: shown_in(app, "#dev", "bob: before"), "the first message")
        assert app.conn is not None
        app.conn._writer.transport.abort()  # the network drops the connection
        await expect(bob, protocol.Leave, where=lambda f: f.name == "alice" and f.room == "dev")
        await bob.send(protocol.Say(text="while you were away", room="dev"))
        await expect(bob, protocol.Message, where=lambda m: m.text == "while you were away")
        await until(pilot, lambda: app.status.retry_at is not None, "the reconnect wait")
        await pilot.press("ctrl+r")
        await until(pilot, lambda: shown_in(app, "#dev", "are back in #dev"), "rejoining")
        assert joined[-1].resumed and joined[-1].room == "dev"
        texts = [entry.text.plain for entry in app.pane_of(conversation(app, "#dev")).entries]
        assert sum("bob: before" in t for t in texts) == 1
        assert sum("bob: while you were away" in t for t in texts) == 1
        away = next(i for i, t in enumerate(texts) if "while you were away" in t)
        back = next(i for i, t in enumerate(texts) if "are back in #dev" in t)
        assert away < back
        assert conversation(app, "#dev").members == ["bob", "alice"]
        await type_line(pilot, "still here")
        said = await expect(bob, protocol.Message, where=lambda m: m.sender == "alice")
        assert (said.room, said.text) == ("dev", "still here")
    await bob.close()


async def test_server_restart_resumes_rooms_from_the_store(
    start_server: StartServer, tmp_path: Path
) -> None:
    """A server restarted on the same port with the same history: the app comes back to
    the lobby and its rooms, and sees what was said in a room while it was away, once."""
    first_store = HistoryStore.in_dir(tmp_path)
    first = await start_server(flood_rate=0, history_store=first_store)
    bob = await first.client("bob")
    await in_room(bob, "dev")
    app = ChatApp(first.host, first.port, name="alice")
    app.reconnect_initial_s = 60
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app), "joining")
        await joined_room(pilot, "dev")
        await bob.send(protocol.Say(text="before the restart", room="dev"))
        await until(pilot, lambda: shown_in(app, "#dev", "before the restart"), "the message")
        await first.server.close()
        first_store.close()
        await until(pilot, lambda: app.conn is None, "the disconnect")

        second_store = HistoryStore.in_dir(tmp_path)
        second = ChatServer(
            ServerConfig(host=first.host, port=first.port, flood_rate=0, history_store=second_store)
        )
        await second.start()
        bob2 = await ClientConnection.connect(first.host, first.port)
        await bob2.hello("bob")
        await in_room(bob2, "dev")
        await bob2.send(protocol.Say(text="after the restart", room="dev"))
        await expect(bob2, protocol.Message)
        await pilot.press("ctrl+r")
        await until(pilot, lambda: shown_in(app, "#dev", "are back in #dev"), "rejoining")
        await until(pilot, lambda: shown_in(app, "#lobby", "are back in #lobby"), "the lobby")
        texts = [entry.text.plain for entry in app.pane_of(conversation(app, "#dev")).entries]
        assert sum("bob: before the restart" in t for t in texts) == 1
        assert sum("bob: after the restart" in t for t in texts) == 1
        await bob2.close()
    await second.close()
    second_store.close()
    await bob.close()


async def test_scrolling_to_the_top_pages_back_to_the_beginning(
    start_server: StartServer, tmp_path: Path
) -> None:
    """Reaching the top of a room's pane loads the page before the oldest event shown,
    above it, without moving what the reader sees; the last page ends with the
    beginning-of-history marker."""
    store = HistoryStore.in_dir(tmp_path)
    running = await start_server(flood_rate=0, history_store=store, history_events=40)
    bob = await running.client("bob")
    await in_room(bob, "dev")
    for number in range(150):
        await bob.send(protocol.Say(text=f"line {number}", room="dev"))
    await expect(bob, protocol.Message, where=lambda m: m.text == "line 149")
    app = ChatApp(running.host, running.port, name="alice")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app), "joining")
        await joined_room(pilot, "dev")
        pane = app.pane
        assert shown(app, "line 149") and shown(app, "line 110") and not shown(app, "line 109")
        await until(pilot, lambda: pane.max_scroll_y > 0, "a full pane")
        top_line = pane.lines[0].text
        for _ in range(10):
            if shown(app, "line 109"):
                break
            await pilot.press("pageup")
            await pilot.pause()
        await until(pilot, lambda: shown(app, "line 109"), "the older page")
        await until(pilot, lambda: not app.current.paging, "the page")
        # One page of a hundred: lines 10 to 109.
        bodies = [entry.body.plain for entry in pane.entries]
        assert "line 10" in bodies and "line 9" not in bodies
        # The line that was at the top is still where the reader is looking.
        assert pane.lines[round(pane.scroll_y)].text == top_line
        assert not shown(app, "beginning of history")
        texts = [entry.text.plain for entry in pane.entries]
        assert texts.index(next(t for t in texts if "line 109" in t)) < texts.index(
            next(t for t in texts if "line 110" in t)
        )
        for _ in range(20):
            if shown(app, "beginning of history"):
                break
            await pilot.press("pageup")
            await pilot.pause()
        await until(pilot, lambda: shown(app, "beginning of history"), "the first page")
        numbers = [
            int(t.rsplit(" ", 1)[1]) for t in (e.text.plain for e in pane.entries) if ": line " in t
        ]
        assert numbers == list(range(150))
        assert "beginning of history" in pane.entries[0].text.plain
    await bob.close()
    store.close()


async def test_private_conversation_pages_its_own_history(
    start_server: StartServer, tmp_path: Path
) -> None:
    """Ctrl+Home in "@bob" pages back through room "@bob": earlier private messages."""
    store = HistoryStore.in_dir(tmp_path)
    running = await start_server(flood_rate=0, history_store=store)
    bob = await running.client("bob")
    alice_before = await running.client("alice")
    await bob.send(protocol.DmRequest(to="alice", text="an old secret"))
    await expect(alice_before, protocol.Dm)
    await alice_before.close()
    app = ChatApp(running.host, running.port, name="alice")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app), "joining")
        await bob.send(protocol.DmRequest(to="alice", text="a new one"))
        await until(pilot, lambda: tab(app, "@bob") is not None, "the entry")
        await pilot.press("alt+2")
        await pilot.press("ctrl+home")
        await until(pilot, lambda: shown(app, "beginning of history"), "the page")
        texts = [entry.text.plain for entry in app.pane.entries]
        old = next(i for i, t in enumerate(texts) if "an old secret" in t)
        new = next(i for i, t in enumerate(texts) if "a new one" in t)
        assert old < new
    await bob.close()
    store.close()


async def test_tab_completes_commands(chat_server: RunningServer) -> None:
    """Tab after a leading /word completes the command; Tab again cycles the matches."""
    app = ChatApp(chat_server.host, chat_server.port, name="alice")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app), "joining")
        field = app.query_one("#input", ChatInput)
        await pilot.press(*"/jo", "tab")
        assert field.value == "/join "
        field.value = ""
        await pilot.press(*"/q", "tab")
        assert field.value == "/query "
        await pilot.press("tab")
        assert field.value == "/quit "
        field.value = ""
        await pilot.press(*"/zz", "tab")
        assert field.value == "/zz"


async def test_multiline_paste_is_sent_as_one_message(chat_server: RunningServer) -> None:
    """A pasted block of lines goes out as one message with its newlines (Input alone
    would keep the first line); a pasted single line only lands in the input."""
    bob = await chat_server.client("bob")
    app = ChatApp(chat_server.host, chat_server.port, name="alice")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app), "joining")
        field = app.query_one("#input", ChatInput)
        await pilot.press(*"look: ")
        app.post_message(events.Paste("def f():\r\n    return 1\n"))
        said = await expect(bob, protocol.Message, where=lambda m: m.sender == "alice")
        assert said.text == "look: def f():\n    return 1"
        await until(pilot, lambda: not app.outbox and field.value == "", "the acknowledgement")
        assert any("    return 1" in line for line in app.pane.plain_lines())
        app.post_message(events.Paste("just one line\n"))
        await until(pilot, lambda: field.value == "just one line", "the pasted line")
        assert not app.outbox
    await bob.close()


async def test_command_palette_offers_the_chat_actions(chat_server: RunningServer) -> None:
    """Ctrl+P lists joining, leaving, switching, listing rooms, who, help, the bell,
    reconnecting and quitting; choosing one does it."""
    app = ChatApp(chat_server.host, chat_server.port, name="alice")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app), "joining")
        await joined_room(pilot, "dev")
        await pilot.press("ctrl+p")
        await until(pilot, lambda: isinstance(app.screen, CommandPalette), "the palette")
        commands = app.screen.query_one(CommandList)
        await until(pilot, lambda: commands.option_count >= 9, "the commands")
        prompts = [
            str(commands.get_option_at_index(i).prompt) for i in range(commands.option_count)
        ]
        for expected in (
            "Join a room…",
            "Switch to #lobby",
            "Leave #dev",
            "List rooms",
            "Who is in #dev",
            "Help",
            "Turn the bell off",
            "Reconnect now",
            "Quit",
        ):
            assert any(prompt.startswith(expected) for prompt in prompts), expected
        await pilot.press(*"list rooms")
        await until(
            pilot,
            lambda: (
                commands.option_count > 0
                and str(commands.get_option_at_index(0).prompt).startswith("List rooms")
            ),
            "the match",
        )
        await pilot.press("down", "enter")
        await until(pilot, lambda: shown(app, "rooms on this server"), "the listing")
        await pilot.press("ctrl+p")
        await until(pilot, lambda: isinstance(app.screen, CommandPalette), "the palette")
        await pilot.press(*"switch to lobby")
        commands = app.screen.query_one(CommandList)
        await until(pilot, lambda: commands.option_count > 0, "the match")
        await pilot.press("down", "enter")
        await until(pilot, lambda: app.current.label == "#lobby", "the switch")


async def test_room_names_and_topics_stay_literal(chat_server: RunningServer) -> None:
    """Markup and escape sequences in a room's name and topic are shown as the
    characters they are, in the room list and the status line."""
    bob = await chat_server.client("bob")
    await in_room(bob, "[b]x[/b]")
    await bob.send(protocol.TopicRequest(room="[b]x[/b]", text="[red]hi[/] \x1b[31mred"))
    await expect(bob, protocol.Topic)
    app = ChatApp(chat_server.host, chat_server.port, name="alice")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app), "joining")
        await joined_room(pilot, "[b]x[/b]")
        status = app.status.render().plain  # type: ignore[union-attr]
        assert "#[b]x[/b]" in status and "[red]hi[/] \\x1b[31mred" in status
        assert "\x1b" not in status
        entry = app.room_list.entry(room_key("[b]x[/b]"))
        assert entry.plain == "2 #[b]x[/b]"
    await bob.close()


def test_alt_digits_reach_the_app_as_alt_keys() -> None:
    """The escape sequence terminals send for Alt+1 is read as alt+1 once the app exists
    (Textual alone reads it as the character macOS types for Option+1)."""
    ChatApp("127.0.0.1", 1, name="alice")
    parser = XTermParser()
    keys = [token for token in parser.feed("\x1b1") if isinstance(token, events.Key)]
    deadline = time.monotonic() + TIMEOUT_S
    while not keys and time.monotonic() < deadline:
        # The parser tells a lone ESC from a sequence by a short timeout.
        keys = [token for token in parser.tick() if isinstance(token, events.Key)]
    assert [key.key for key in keys] == ["alt+1"]


def test_no_bell_flag_reaches_the_app(monkeypatch: pytest.MonkeyPatch) -> None:
    """chatroom-tui --no-bell starts the app with the bell off; without it the bell is on."""
    from chatroom.tui_client import main

    started: list[bool] = []
    monkeypatch.setattr(ChatApp, "run", lambda self, *a, **k: started.append(self.bell_on))
    assert main(["127.0.0.1:5000", "--name", "alice", "--no-bell"]) == 0
    assert main(["127.0.0.1:5000", "--name", "alice"]) == 0
    assert started == [False, True]


async def test_rate_limited_joins_are_retried(start_server: StartServer) -> None:
    """More /join lines than the server's burst allows all get joined: a request refused
    as rate_limited goes again, and nothing is reported as failed."""
    # A burst of 2 makes the second join come back rate_limited however slow the machine
    # (its answer takes far less than the 0.25 s a token takes to refill); at 4 tokens a
    # second each retry, 0.3 s later, finds one.
    running = await start_server(flood_rate=4, flood_burst=2)
    app = ChatApp(running.host, running.port, name="alice")
    rooms = [f"room{number}" for number in range(12)]
    refused: list[str] = []

    def record(message: TextualMessage) -> None:
        if isinstance(message, FrameReceived) and isinstance(message.frame, protocol.Error):
            refused.append(message.frame.code)

    async with app.run_test(size=SIZE, message_hook=record) as pilot:
        await until(pilot, lambda: connected(app), "joining")
        for room in rooms:
            await app.run_line(f"/join {room}")  # queued at once: faster than typing
        await until(
            pilot,
            lambda: labels(app) == ["#lobby", *(f"#{room}" for room in rooms)],
            "every room",
            timeout_s=TIMEOUT_S * 3,
        )
        assert refused and set(refused) == {"rate_limited"}
        assert not any(
            "cannot join" in entry.text.plain
            for c in app.convs.values()
            for entry in app.pane_of(c).entries
        )


async def test_a_big_room_shows_no_joins_and_says_the_list_is_a_snapshot(
    start_server: StartServer,
) -> None:
    """chatroom-tui asks for lazy members: over the server's threshold nobody's joins or
    leaves are shown, the member list says when it was taken, and /who refreshes it."""
    running = await start_server(lazy_members_above=2)
    bob = await running.client("bob")
    carol = await running.client("carol")
    app = ChatApp(running.host, running.port, name="alice")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app), "joining")
        await until(pilot, lambda: shown(app, "joins and leaves are not shown"), "the notice")
        assert str(app.member_list.border_title) == "Members · 3"
        assert "as of " in str(app.member_list.query_one("#member-names").render())
        dave = await running.client("dave")
        await dave.say("dave is here")
        await until(pilot, lambda: shown(app, "dave: dave is here"), "dave's message")
        assert not shown(app, "dave joined")
        assert "dave" not in app.member_list.names
        await type_line(pilot, "/who")
        await until(pilot, lambda: "dave" in app.member_list.names, "the refreshed list")
        assert str(app.member_list.border_title).endswith(" · 4")
        for conn in (bob, carol, dave):
            await conn.close()
        # Small again: the server sends the list unasked, and it is shown as it is.
        await until(pilot, lambda: app.member_list.names == ("alice",), "the list, unasked")
        assert str(app.member_list.border_title) == "Members · 1"
        assert "as of " not in str(app.member_list.query_one("#member-names").render())
        assert not shown(app, "1 in #lobby")


async def test_first_server_unreachable_the_next_is_tried_at_once(
    chat_server: RunningServer,
) -> None:
    """chatroom-tui DEAD,LIVE: the dead server is said once, the live one is tried
    without a backoff wait, the status line names it, and a message gets through."""
    dead = free_port()
    bob = await chat_server.client("bob")
    app = ChatApp("127.0.0.1", dead, name="alice", more_addresses=[("127.0.0.1", chat_server.port)])
    app.reconnect_initial_s = 60  # a backoff wait would outlast the test
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app), "joining the second server")
        live = f"127.0.0.1:{chat_server.port}"
        assert shown(app, f"nothing is listening at 127.0.0.1:{dead}")
        assert shown(app, f"trying {live}…")
        assert app.where == live and live in app.status.render().plain  # type: ignore[union-attr]
        await type_line(pilot, "via the second")
        said = await expect(bob, protocol.Message, where=lambda m: m.sender == "alice")
        assert said.text == "via the second"
        await until(pilot, lambda: not app.outbox, "the acknowledgement")
    await bob.close()


async def test_a_lost_server_moves_the_app_to_the_next_at_once(
    start_server: StartServer,
) -> None:
    """With two servers up the first is used; when it goes away the app says where it
    goes, joins the second at once (no backoff), and what is typed gets through there."""
    first = await start_server(flood_rate=0)
    second = await start_server(flood_rate=0)
    bob = await second.client("bob")
    app = ChatApp(first.host, first.port, name="alice", more_addresses=[(second.host, second.port)])
    app.reconnect_initial_s = 60
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app), "joining")
        assert app.where == f"127.0.0.1:{first.port}"
        await first.server.close()
        await until(pilot, lambda: connected(app) and app.port == second.port, "the move")
        assert shown(app, "disconnected: ")
        assert shown(app, f"trying 127.0.0.1:{second.port}…")
        assert app.status.retry_at is None
        await expect(bob, protocol.Join, where=lambda j: j.name == "alice")
        await type_line(pilot, "on the second server")
        said = await expect(bob, protocol.Message, where=lambda m: m.sender == "alice")
        assert said.text == "on the second server"
    await bob.close()


async def test_after_a_failed_round_the_app_backs_off_and_starts_over(
    start_server: StartServer,
) -> None:
    """Nothing answers at either address: each is tried once, then the backoff wait,
    and the next round starts with the first (preferred) server again."""
    first_port, second_port = free_port(), free_port()
    app = ChatApp(
        "127.0.0.1", first_port, name="alice", more_addresses=[("127.0.0.1", second_port)]
    )
    app.reconnect_initial_s = 60
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.status.retry_at is not None, "the backoff wait")
        assert shown(app, f"nothing is listening at 127.0.0.1:{first_port}")
        assert shown(app, f"nothing is listening at 127.0.0.1:{second_port}")
        assert app.connector.index == 0
        again = ChatServer(ServerConfig(host="127.0.0.1", port=first_port, flood_rate=0))
        await again.start()
        try:
            await pilot.press("ctrl+r")
            await until(pilot, lambda: connected(app), "the next round")
            assert app.port == first_port
        finally:
            await again.close()


def test_an_address_list_reaches_the_app_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """chatroom-tui A,B,C starts the app with A first, then B and C, in that order."""
    from chatroom.tui_client import main

    started: list[list[tuple[str, int]]] = []
    monkeypatch.setattr(ChatApp, "run", lambda self, *a, **k: started.append(self.addresses))
    assert main(["host2:6000,[::1]:5001,:5002", "--name", "alice"]) == 0
    assert started == [[("host2", 6000), ("::1", 5001), ("localhost", 5002)]]
