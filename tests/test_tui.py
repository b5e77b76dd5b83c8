"""The Textual app against a real server: other participants are real client connections."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

import pytest
from conftest import TIMEOUT_S, RunningServer, StartServer, expect
from textual.pilot import Pilot
from textual.widgets import Input

from chatroom import protocol
from chatroom.client import ClientConnection
from chatroom.server import ChatServer, ServerConfig
from chatroom.tui import ChatApp
from chatroom.tui.app import RECONNECT_MAX_S, backoff_delay
from chatroom.tui.widgets import ChatInput, PendingView, PromptScreen

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


async def test_ctrl_q_says_bye(chat_server: RunningServer) -> None:
    """Ctrl+Q leaves with bye (others see reason quit) and exits with status 0."""
    bob = await chat_server.client("bob")
    app = ChatApp(chat_server.host, chat_server.port, name="alice")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app), "joining")
        await pilot.press("ctrl+q")
        left = await expect(bob, protocol.Leave, where=lambda f: f.name == "alice")
        assert left.reason == "quit"
    assert app.return_code == 0
    await bob.close()


async def test_ctrl_c_quits_cleanly(chat_server: RunningServer) -> None:
    """Ctrl+C quits as Ctrl+Q does, with status 0."""
    bob = await chat_server.client("bob")
    app = ChatApp(chat_server.host, chat_server.port, name="alice")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app), "joining")
        await pilot.press("ctrl+c")
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
