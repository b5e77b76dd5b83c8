"""text.py: inert() makes untrusted text safe to show, and reversible in its one-line form."""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatroom.text import NAME_COLOURS, inert, name_colour, truncate

# What no output may ever carry raw: C0/DEL/C1 controls, format characters (bidi and
# zero-width among them), line/paragraph separators, surrogates, private use, unassigned.
_UNSAFE = {"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"}
_ALLOWED_FORMAT = set("\u00ad\u200c\u200d\u2060\ufe0f")


def _is_safe(shown: str, *, newlines_allowed: bool) -> bool:
    for char in shown:
        if char == "\n" and newlines_allowed:
            continue
        if unicodedata.category(char) in _UNSAFE and char not in _ALLOWED_FORMAT:
            return False
    return True


_ESCAPE = re.compile(r"\\(\\|n|t|x[0-9a-f]{2}|u[0-9a-f]{4}|U[0-9a-f]{8})")


def _read_back(shown: str) -> str:
    """The inverse of the one-line form, as someone reading a transcript would apply it."""

    def one(match: re.Match[str]) -> str:
        code = match.group(1)
        if code == "\\":
            return "\\"
        if code == "n":
            return "\n"
        if code == "t":
            return "\t"
        return chr(int(code[1:], 16))

    return _ESCAPE.sub(one, shown)


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("hello, room", "hello, room"),
        ("Zoë ☃ 李 🙂", "Zoë ☃ 李 🙂"),
        ("\x1b[2J\x1b[31mred", "\\x1b[2J\\x1b[31mred"),
        (
            "\x1b]8;;http://evil.example/\x07click\x1b]8;;\x07",
            ("\\x1b]8;;http://evil.example/\\x07click\\x1b]8;;\\x07"),
        ),
        ("\x1b]52;c;aGVsbG8=\x07", "\\x1b]52;c;aGVsbG8=\\x07"),
        ("\x1b]0;title\x1b\\", "\\x1b]0;title\\x1b\\\\"),
        ("\x9b31m", "\\x9b31m"),
        ("\x9d8;;x\x9c", "\\x9d8;;x\\x9c"),
        ("a\rb", "a\\x0db"),
        ("line1\nline2", "line1\\nline2"),
        ("a\tb", "a\\tb"),
        ("\x00\x07\x08\x7f", "\\x00\\x07\\x08\\x7f"),
        ("abc\u202edcba", "abc\\u202edcba"),
        (
            "\u2066\u2067\u2068\u2069\u200e\u200f\u061c",
            "\\u2066\\u2067\\u2068\\u2069\\u200e\\u200f\\u061c",
        ),
        ("a\u2028b\u2029c\u0085d", "a\\u2028b\\u2029c\\x85d"),
        ("zero\u200bwidth\ufeff", "zero\\u200bwidth\\ufeff"),
        ("\U000e0041tag", "\\U000e0041tag"),
        ("\ue000private", "\\ue000private"),
        ("typed \\x1b by hand", "typed \\\\x1b by hand"),
        # Emoji sequences and joining in real scripts stay as they are.
        ("👩\u200d💻 \u2764\ufe0f", "👩\u200d💻 \u2764\ufe0f"),
        ("[bold]not markup[/bold]", "[bold]not markup[/bold]"),
    ],
)
def test_inert_one_line(raw: str, shown: str) -> None:
    """Each control, format or reordering character becomes a visible escape."""
    assert inert(raw) == shown
    assert _read_back(shown) == raw


def test_keep_newlines_keeps_line_breaks_only() -> None:
    """The multi-line form keeps newlines and turns tabs into spaces; \\r is still escaped."""
    assert inert("a\nb\tc\r\x1b", keep_newlines=True) == "a\nb    c\\x0d\\x1b"
    assert inert("back\\slash", keep_newlines=True) == "back\\slash"


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(codec=None, exclude_categories=())))
def test_inert_output_is_always_safe_and_reads_back(raw: str) -> None:
    """For any text, the one-line form holds no unsafe character and no line break, and
    reading its escapes back gives the original exactly."""
    shown = inert(raw)
    assert _is_safe(shown, newlines_allowed=False)
    assert "\n" not in shown and "\r" not in shown
    assert _read_back(shown) == raw


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(codec=None, exclude_categories=())))
def test_inert_multiline_is_safe(raw: str) -> None:
    """The multi-line form holds no unsafe character other than the newline."""
    assert _is_safe(inert(raw, keep_newlines=True), newlines_allowed=True)


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [("hello", 10, "hello"), ("hello", 5, "hello"), ("hello world", 6, "hello…"), ("ab", 0, "…")],
)
def test_truncate(text: str, limit: int, expected: str) -> None:
    """Text over the limit is cut and marked with an ellipsis."""
    assert truncate(text, limit) == expected


def test_name_colour_is_stable_and_case_blind() -> None:
    """A name keeps its colour across runs and case; the choice is from the palette."""
    assert name_colour("alice") == name_colour("ALICE")
    assert name_colour("alice") in NAME_COLOURS
    assert name_colour("\ud800") in NAME_COLOURS
    assert len({name_colour(f"user{i}") for i in range(100)}) > 1
