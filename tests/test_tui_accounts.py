"""The Textual app with accounts and moderation, against a real server."""

from __future__ import annotations

from pathlib import Path

from conftest import StartServer, expect
from test_tui import SIZE, connected, shown, type_line, until
from textual.widgets import Input

from chatroom import protocol
from chatroom.accounts import AccountStore, Argon2Cost
from chatroom.tui import ChatApp
from chatroom.tui.conversation import room_key
from chatroom.tui.widgets import PromptScreen

CHEAP = Argon2Cost(memory_kib=64, time_cost=1, parallelism=1)


async def test_register_then_log_in_and_moderate(start_server: StartServer, tmp_path: Path) -> None:
    """/register registers the name and is kept out of the input history; the next app
    with that name is asked for the account's password and logs in; the creator of a
    room shows as @, a kick shows the kicked member's reason to them."""
    running = await start_server(
        flood_rate=0,
        accounts=AccountStore(tmp_path / "accounts.sqlite3", cost=CHEAP),
        auth_failure_delay_s=0,
    )
    first = ChatApp(running.host, running.port, name="alice")
    async with first.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(first), "joining")
        await type_line(pilot, "/register correct horse")
        await until(pilot, lambda: shown(first, "its password is set"), "registered")
        assert first.model.account == "alice"
        assert "correct horse" not in " ".join(first.input_line.history)
    app = ChatApp(running.host, running.port, name="alice")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, PromptScreen), "the password prompt")
        assert "registered" in str(app.screen.query_one("#prompt-reason").render())
        app.screen.query_one("#prompt-input", Input).value = "correct horse"
        await pilot.press("enter")
        await until(pilot, lambda: connected(app), "logging in")
        assert app.model.account == "alice"
        await type_line(pilot, "/join dev")
        await until(pilot, lambda: app.current.name == "dev", "in #dev")
        await until(pilot, lambda: "@alice" in str(app.member_list._names.render()), "@alice")
        bob = await running.client()
        await bob.hello("bob")
        await bob.send(protocol.JoinRequest(room="dev"))
        await until(pilot, lambda: "bob" in app.current.members, "bob in #dev")
        await type_line(pilot, "/kick bob [b]enough[/b]")
        kicked = await expect(bob, protocol.Leave, where=lambda leave: leave.name == "bob")
        assert (kicked.reason, kicked.by, kicked.text) == ("kicked", "alice", "[b]enough[/b]")
        await until(pilot, lambda: shown(app, "bob was kicked by alice: [b]enough[/b]"), "kick")
        await until(pilot, lambda: shown(app, "alice kick bob"), "the mod event")
        assert app.model.convs[room_key("dev")].ops == {"alice"}
        await bob.close()
