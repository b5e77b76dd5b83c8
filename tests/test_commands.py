"""parse_command: what each typed line means, without any UI."""

from __future__ import annotations

import pytest

from chatroom.tui.commands import (
    COMMANDS,
    Action,
    Clear,
    Command,
    Empty,
    Help,
    Nick,
    PrivateMessage,
    Quit,
    SendText,
    SetTopic,
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
    ("/topic", Usage("/topic TEXT")),
    # Anything else that starts with one slash is an unknown command, never a message.
    ("/frobnicate", Unknown("frobnicate")),
    ("/frobnicate with words", Unknown("frobnicate")),
    ("/Shrug", Unknown("Shrug")),
    ("/", Unknown("")),
    ("/ who", Unknown("")),
    ("/join #rust", Unknown("join")),
]


@pytest.mark.parametrize(("line", "expected"), CASES, ids=[repr(line) for line, _ in CASES])
def test_parse_command(line: str, expected: Command) -> None:
    """Each line maps to the command, message or hint a chat user expects."""
    assert parse_command(line) == expected


def test_every_listed_command_parses_to_a_command() -> None:
    """What /help lists is what the parser knows (no listed command is "unknown")."""
    for usage in COMMANDS:
        word = usage.split()[0]
        sample = usage.replace("NAME", "bob").replace("TEXT", "hello")
        result = parse_command(sample)
        assert not isinstance(result, Unknown | Usage), (word, result)
