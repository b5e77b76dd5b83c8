"""The client's side of accounts and moderation without a UI: the commands, their
requests, and what the model makes of roles, kicks and mod events."""

from __future__ import annotations

import pytest

from chatroom import protocol
from chatroom.tui.changes import AccountRegistered, BansListed, MembersChanged, Shown
from chatroom.tui.commands import COMMANDS, Usage, is_secret, parse_command
from chatroom.tui.conversation import Request, answers, room_key
from chatroom.tui.entries import event_entry
from chatroom.tui.model import ChatModel
from chatroom.tui.moderating import Account, Modes, Sanction, request_for, role_prefix

TS = "2025-01-02T10:00:00Z"


@pytest.mark.parametrize(
    ("line", "frame"),
    [
        ("/register correct horse", protocol.Register(password="correct horse")),
        ("/password old1old1 new2new2", protocol.PasswordChange("old1old1", "new2new2")),
        (
            "/kick bob spamming links",
            protocol.Kick(room="dev", name="bob", reason="spamming links"),
        ),
        ('/kick "Bob Smith"', protocol.Kick(room="dev", name="Bob Smith")),
        (
            "/ban bob 10m flood",
            protocol.Ban(name="bob", room="dev", duration_s=600, reason="flood"),
        ),
        ("/ban bob", protocol.Ban(name="bob", room="dev")),
        ("/ban -s bob 2h troll", protocol.Ban(name="bob", duration_s=7200, reason="troll")),
        ("/unban -s bob", protocol.Unban(name="bob")),
        ("/unban bob", protocol.Unban(name="bob", room="dev")),
        ("/bans", protocol.BansRequest(room="dev")),
        ("/bans -s", protocol.BansRequest()),
        ("/mute bob 300", protocol.Mute(room="dev", name="bob", duration_s=300)),
        ("/unmute bob", protocol.Unmute(room="dev", name="bob")),
        ("/op bob", protocol.RoleRequest(room="dev", name="bob", role="op")),
        ("/voice bob", protocol.RoleRequest(room="dev", name="bob", role="voice")),
        ("/deop bob", protocol.RoleRequest(room="dev", name="bob", role="none")),
        ("/invite bob", protocol.Invite(room="dev", name="bob")),
        (
            "/mode invite on key sesame moderated off slow 30",
            protocol.Mode(room="dev", invite_only=True, key="sesame", moderated=False, slow_s=30),
        ),
        ("/mode key off registered on", protocol.Mode(room="dev", key="", registered_only=True)),
    ],
)
def test_commands_become_the_wire_requests(line: str, frame: protocol.ClientFrame) -> None:
    """Each moderation command typed in #dev makes the request the protocol spells out."""
    command = parse_command(line)
    assert isinstance(command, Account | Sanction | Modes)
    assert request_for(command, "dev") == frame


@pytest.mark.parametrize(
    "line", ["/register", "/kick", "/ban", "/mode slow", "/mode colour red", "/password one"]
)
def test_incomplete_commands_show_their_usage(line: str) -> None:
    """A command missing what it needs shows how it is used."""
    assert isinstance(parse_command(line), Usage)


def test_passwords_stay_out_of_history_and_repr() -> None:
    """Lines with passwords are secret (kept out of input history); the command's repr
    never shows the password; /login asks for no request (it joins again); help lists
    every command with a hint."""
    for line in ("/register hunter22", "/LOGIN hunter22", "/password a b"):
        assert is_secret(line)
    assert not is_secret("/kick bob") and not is_secret("register hunter22")
    command = parse_command("/login hunter22")
    assert command == Account("login", "hunter22") and "hunter22" not in repr(command)
    assert request_for(command, "dev") is None  # type: ignore[arg-type]
    for usage in ("/register PASSWORD", "/login PASSWORD", "/kick NAME [REASON]", "/invite NAME"):
        assert usage in COMMANDS


def test_mod_answers_the_request_that_asked_for_it() -> None:
    """A request is settled by its mod event (by me, same action), by registered or
    bans; not by someone else's action."""
    mod = protocol.Mod(id=1, ts=TS, room="dev", by="alice", action="kick", target="bob")
    assert answers(mod, protocol.Kick(room="dev", name="bob"), "alice")
    assert not answers(mod, protocol.Kick(room="dev", name="bob"), "carol")
    assert not answers(mod, protocol.Ban(name="bob"), "alice")
    assert answers(protocol.Registered(account="a"), protocol.Register(password="x"), "a")
    assert answers(protocol.Bans(bans=()), protocol.BansRequest(), "a")


def _model() -> ChatModel:
    model = ChatModel(clock=lambda: "10:00")
    model.welcomed(
        protocol.Welcome(
            name="alice",
            server="s",
            room="lobby",
            members=("alice", "bob"),
            account="alice",
            roles=("moderator",),
            ops=("alice",),
        )
    )
    model.receive(protocol.Join(id=1, ts=TS, room="lobby", name="alice"))
    model.receive(protocol.Joined(room="dev", members=("alice", "bob"), ops=("alice",)))
    model.receive(protocol.Join(id=2, ts=TS, room="dev", name="alice"))
    model.take_changes()
    return model


def test_model_follows_account_and_roles() -> None:
    """welcome's account and roles are kept; ops and voices follow welcome, joined and
    role events, and renames; the member list shows @ and +."""
    model = _model()
    assert model.account == "alice" and model.roles == ("moderator",)
    dev = model.convs[room_key("dev")]
    assert dev.ops == {"alice"}
    model.receive(
        protocol.Mod(id=3, ts=TS, room="dev", by="alice", action="role", target="bob", role="voice")
    )
    assert dev.voices == {"bob"} and MembersChanged(dev) in model.take_changes()
    model.receive(protocol.Nick(id=4, ts=TS, room="dev", old="bob", new="rob"))
    assert dev.voices == {"rob"}
    assert [role_prefix(n, dev.ops, dev.voices) for n in ("alice", "rob", "x")] == ["@", "+", ""]
    model.receive(protocol.Registered(account="alice"))
    model.receive(protocol.Bans(bans=(), room="dev"))
    kinds = [type(change) for change in model.take_changes()]
    assert AccountRegistered in kinds and BansListed in kinds


def test_being_kicked_leaves_the_room_with_the_reason() -> None:
    """Our own leave with reason kicked: the room is no longer joined (no rejoin after a
    reconnect), and the entry says who and why, inertly."""
    model = _model()
    dev = model.convs[room_key("dev")]
    kicked = protocol.Leave(
        id=5, ts=TS, room="dev", name="alice", reason="kicked", by="bob", text="[red]bye\x1b"
    )
    model.receive(kicked)
    assert not dev.joined and Shown(dev, kicked) in model.take_changes()
    shown = event_entry(kicked, "alice").body.plain
    assert "alice was kicked by bob: [red]bye" in shown and "\x1b" not in shown
    mod = protocol.Mod(
        id=6,
        ts=TS,
        room="dev",
        by="bob",
        action="ban",
        target="alice",
        reason="r",
        until="2025-01-02T11:00:00Z",
    )
    assert "bob ban alice until 2025-01-02T11:00:00Z: r" in event_entry(mod, "alice").body.plain
    assert [r.frame for r in model.requests] == []
    model.welcomed(protocol.Welcome(name="alice", server="s", room="lobby", members=("alice",)))
    assert not any(
        isinstance(r, Request) and isinstance(r.frame, protocol.JoinRequest) for r in model.requests
    )
