"""parse_command: what each typed line means, without any UI."""

from __future__ import annotations

import pytest

from chatroom.tui.commands import (
    COMMAND_WORDS,
    COMMANDS,
    Action,
    Bell,
    Clear,
    Command,
    Empty,
    Help,
    Join,
    Nick,
    Part,
    PrivateMessage,
    Query,
    Quit,
    Rooms,
    SendText,
    SetTopic,
    ShowTopic,
    Unknown,
    Usage,
    Who,
    parse_command,
)

CASES: list[tuple[str, Command]] = [
    # Plain text goes out exactly as typed.
    ("hello", SendText("hello")),
    ("  indented  ", SendText("  indented  ")),
    ("[bold red]x[/]", SendText("[bold red]x[/]")),
    ("a / b", SendText("a / b")),
    (" /who", SendText(" /who")),
    ("multi\nline", SendText("multi\nline")),
    # Nothing worth sending.
    ("", Empty()),
    ("   ", Empty()),
    ("\t", Empty()),
    # A doubled slash escapes the command.
    ("//shrug", SendText("/shrug")),
    ("//", SendText("/")),
    ("// spaced", SendText("/ spaced")),
    ("///x", SendText("//x")),
    # Commands without arguments; case does not matter, extra words are ignored.
    ("/help", Help()),
    ("/HELP", Help()),
    ("/?", Help()),
    ("/who", Who()),
    ("/Who  everyone", Who()),
    ("/names", Who()),
    ("/quit", Quit()),
    ("/quit see you", Quit()),
    ("/exit", Quit()),
    ("/clear", Clear()),
    # Commands with arguments.
    ("/me waves", Action("waves")),
    ("/me  waves  slowly ", Action("waves  slowly ")),
    ("/ME\twaves", Action("waves")),
    ("/msg bob hi there", PrivateMessage("bob", "hi there")),
    ('/msg "Bob Smith" hi', PrivateMessage("Bob Smith", "hi")),
    ("/msg bob   spaced", PrivateMessage("bob", "spaced")),
    ("/nick robert", Nick("robert")),
    ("/nick  Bob Smith ", Nick("Bob Smith")),
    ("/topic release on Friday", SetTopic("release on Friday")),
    # Missing arguments get a usage hint, never a send.
    ("/me", Usage("/me TEXT")),
    ("/me   ", Usage("/me TEXT")),
    ("/msg", Usage("/msg NAME TEXT")),
    ("/msg bob", Usage("/msg NAME TEXT")),
    ("/msg bob   ", Usage("/msg NAME TEXT")),
    ("/nick", Usage("/nick NAME")),
    # Rooms: a leading # is how IRC users type a room, and is not part of its name.
    ("/join dev", Join("dev")),
    ("/join #dev", Join("dev")),
    ("/JOIN  #Dev ", Join("Dev")),
    ("/j dev", Join("dev")),
    ("/join release planning", Join("release planning")),
    ("/join", Usage("/join ROOM")),
    ("/join   ", Usage("/join ROOM")),
    ("/join #", Usage("/join ROOM")),
    ("/part", Part(None)),
    ("/part   ", Part(None)),
    ("/part dev", Part("dev")),
    ("/part #dev", Part("dev")),
    ("/leave #dev", Part("dev")),
    ("/close", Part(None)),
    ("/part #", Part(None)),
    ("/rooms", Rooms()),
    ("/list", Rooms()),
    ("/rooms everything", Rooms()),
    # /topic alone shows the topic; with text it sets it.
    ("/topic", ShowTopic()),
    ("/topic   ", ShowTopic()),
    # Private conversations: /query opens one, with or without a first message.
    ("/query bob", Query("bob")),
    ("/query bob   ", Query("bob")),
    ("/query bob hi there", Query("bob", "hi there")),
    ('/query "Bob Smith" hi', Query("Bob Smith", "hi")),
    ("/query", Usage("/query NAME [TEXT]")),
    # The bell: on, off, or asked about; anything else is a usage hint.
    ("/bell on", Bell(True)),
    ("/bell OFF", Bell(False)),
    ("/bell", Bell(None)),
    ("/bell loud", Usage("/bell on|off")),
    # Anything else that starts with one slash is an unknown command, never a message.
    ("/frobnicate", Unknown("frobnicate")),
    ("/frobnicate with words", Unknown("frobnicate")),
    ("/Shrug", Unknown("Shrug")),
    ("/", Unknown("")),
    ("/ who", Unknown("")),
    ("/joinme", Unknown("joinme")),
    ("//join dev", SendText("/join dev")),
]


@pytest.mark.parametrize(("line", "expected"), CASES, ids=[repr(line) for line, _ in CASES])
def test_parse_command(line: str, expected: Command) -> None:
    """Each line maps to the command, message or hint a chat user expects."""
    assert parse_command(line) == expected


def test_every_listed_command_parses_to_a_command() -> None:
    """What /help lists is what the parser knows (no listed command is "unknown")."""
    for usage in COMMANDS:
        word = usage.split()[0]
        sample = (
            usage.replace("[ROOM]", "dev")
            .replace("[TEXT]", "hello")
            .replace("ROOM", "dev")
            .replace("NAME", "bob")
            .replace("TEXT", "hello")
            .replace("on|off", "on")
        )
        result = parse_command(sample)
        assert not isinstance(result, Unknown | Usage), (word, result)


def test_tab_completes_to_the_commands_help_lists() -> None:
    """The words Tab completes are the listed commands, each one a command the parser knows."""
    assert "/join" in COMMAND_WORDS and "/part" in COMMAND_WORDS and "/rooms" in COMMAND_WORDS
    assert "//text" not in COMMAND_WORDS
    for word in COMMAND_WORDS:
        assert not isinstance(parse_command(word + " dev"), Unknown), word
