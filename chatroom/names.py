"""Member names: the rules of protocol-v1 "Names", and the keys that make two names the same.

Two names collide when they are equal after case folding (the contract) or when they look
alike: a Cyrillic ``\u0430`` for a Latin ``a``, fullwidth forms, ``I`` for ``l``. Look-alikes
are compared by a skeleton in the spirit of Unicode TR39, built from the confusables table
that the ``confusable-homoglyphs`` package maintains.
"""

from __future__ import annotations

import json
import re
import unicodedata
from functools import cache
from importlib import resources

from chatroom.framing import ErrorCode, ProtocolError

__all__ = ["MAX_NAME_CHARS", "check_name", "load_look_alikes", "name_keys"]

# protocol-v1 "Names".
MAX_NAME_CHARS = 32

# Look-alike blanks that are letters or symbols to Unicode, so category checks miss them:
# Hangul fillers, the Braille blank and the Mongolian vowel separator are the classic
# invisible-nickname tricks.
_INVISIBLE_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800\u180e")
# Categories never allowed in a name: controls, format characters (bidi controls,
# zero-width joiners), line and paragraph separators, surrogates, private use, unassigned.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})
_BIDI_MARKS = "\u200e\u200f"


def check_name(raw: str, *, max_chars: int = MAX_NAME_CHARS) -> str:
    """Return the name as stored (NFC), or raise ``invalid_name`` saying why.

    Rules: 1 to ``max_chars`` characters after NFC; no control, format or separator
    characters other than the plain space, nor invisible look-alike letters; no leading
    or trailing space (spaces inside are allowed, as protocol-v1 says).
    """
    name = unicodedata.normalize("NFC", raw)
    if not name:
        raise ProtocolError(ErrorCode.INVALID_NAME, "a name cannot be empty")
    if len(name) > max_chars:
        raise ProtocolError(ErrorCode.INVALID_NAME, f"a name has at most {max_chars} characters")
    if name != name.strip():
        raise ProtocolError(ErrorCode.INVALID_NAME, "a name cannot start or end with a space")
    for char in name:
        category = unicodedata.category(char)
        if (
            category in _FORBIDDEN_CATEGORIES
            or (category == "Zs" and char != " ")
            or char in _INVISIBLE_LETTERS
        ):
            raise ProtocolError(ErrorCode.INVALID_NAME, f"a name cannot contain U+{ord(char):04X}")
    return name


def load_look_alikes() -> None:
    """Load the look-alike table now (about 0.8 MB, tens of milliseconds) rather than in
    the first ``hello``: a server calls this at start."""
    _confusable_table()


@cache
def _confusable_table() -> dict[str, str]:
    """Each character with look-alikes -> one representative of its look-alike group."""
    raw = resources.files("confusable_homoglyphs").joinpath("confusables.json").read_text("utf-8")
    groups: dict[str, list[dict[str, str]]] = json.loads(raw)
    table: dict[str, str] = {}
    for char, glyphs in groups.items():
        members = {char}
        for glyph in glyphs:
            look_alike = glyph["c"].strip(_BIDI_MARKS)
            if len(look_alike) == 1:
                members.add(look_alike)
        # The lowest code point is ASCII whenever the group has an ASCII member, so
        # skeletons of Latin names stay readable in debugging.
        representative = min(members)
        for member in members:
            current = table.get(member)
            if current is None or representative < current:
                table[member] = representative
    return table


# Default-ignorable marks that the category rules let through (they are Mn, not Cf): the
# combining grapheme joiner, Khmer inherent vowels, Mongolian and Unicode variation
# selectors. They draw nothing, so "alice" followed by one is "alice" to a reader; TR39
# skeletons drop them for that reason.
# A run of spaces reads as one space, so "a  b" is a look-alike of "a b".
_SPACE_RUN = re.compile(" {2,}")
_IGNORABLE_MARKS = re.compile("[\u034f\u17b4\u17b5\u180b-\u180f\ufe00-\ufe0f\U000e0100-\U000e01ef]")


def _skeleton(text: str) -> str:
    table = _confusable_table()
    text = _IGNORABLE_MARKS.sub("", unicodedata.normalize("NFKC", text))
    text = _SPACE_RUN.sub(" ", text)
    return "".join(table.get(char, char) for char in text)


def name_keys(name: str) -> frozenset[str]:
    """The keys under which a stored name is taken: any shared key means a collision.

    The case-folded form is the contract's rule; the two skeletons catch look-alikes
    whether or not case differs (``ALICE``, ``aIice``, ``\u0430lice``).
    """
    folded = unicodedata.normalize("NFC", name).casefold()
    return frozenset({"=" + folded, "~" + _skeleton(name), "~" + _skeleton(folded)})
