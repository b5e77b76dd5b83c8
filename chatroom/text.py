"""inert(): the one place untrusted text is made safe to display.

Names and messages come from strangers. Rich and Textual pass raw escape sequences
through to the terminal, and a terminal obeys them: CSI colours and cursor moves, OSC 8
hyperlinks, OSC 52 clipboard writes, window-title changes, C1 controls. Bidi overrides
reorder what a reader sees. So every output (TUI, plain client, server console,
transcript) shows untrusted text only after it went through :func:`inert`, which turns
each such character into a visible escape like ``\\x1b`` or ``\\u202e``. The result
contains printable text only, and is still never used as markup: callers put it into a
``rich.text.Text`` or Textual ``Content``.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

__all__ = ["NAME_COLOURS", "inert", "name_colour", "truncate"]

# Characters that change how the text around them is ordered or shown: bidi embeddings,
# overrides and isolates, and the invisible marks around them.
_BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
# Categories that never reach a terminal raw: controls (C0, DEL, C1), format characters,
# line/paragraph separators, surrogates, private use and unassigned code points.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})
# Format characters that shape ordinary writing (emoji sequences, Indic and Arabic
# joining, soft hyphen) and never move the cursor; escaping them would garble real text.
_HARMLESS_FORMAT = frozenset("\u00ad\u200c\u200d\u2060\ufe0f")


@lru_cache(maxsize=8192)
def _escape_char(char: str, keep_newlines: bool) -> str:
    if char == "\n":
        return "\n" if keep_newlines else "\\n"
    if char == "\t":
        return "    " if keep_newlines else "\\t"
    if char == "\\":
        # Escaping the escape character keeps the transcript unambiguous: "\x1b" typed
        # by a user shows as "\\x1b", an ESC byte as "\x1b".
        return "\\\\" if not keep_newlines else "\\"
    if char in _BIDI_CONTROLS or (
        unicodedata.category(char) in _UNSAFE_CATEGORIES and char not in _HARMLESS_FORMAT
    ):
        code = ord(char)
        if code <= 0xFF:
            return f"\\x{code:02x}"
        if code <= 0xFFFF:
            return f"\\u{code:04x}"
        return f"\\U{code:08x}"
    return char


def _needs_work(text: str) -> bool:
    # Fast path: printable ASCII, which is most chat text, needs no per-character work.
    return not (text.isascii() and text.isprintable() and "\\" not in text)


def inert(text: str, *, keep_newlines: bool = False) -> str:
    """Return ``text`` with every control, format or reordering character made visible.

    Args:
        text: untrusted text (a name, a message, a server string).
        keep_newlines: keep ``\\n`` as a line break and tabs as spaces (for a message
            pane that shows multi-line messages); otherwise they become ``\\n``/``\\t``
            so one event stays on one line (transcript, console, plain client). Only the
            one-line form also doubles backslashes, so escapes in it read back exactly.
    """
    if not _needs_work(text):
        return text
    return "".join([_escape_char(char, keep_newlines) for char in text])


def truncate(text: str, max_chars: int) -> str:
    """Cut ``text`` to at most ``max_chars`` characters, marking the cut with an ellipsis."""
    if len(text) <= max_chars:
        return text
    return text[: max(max_chars - 1, 0)] + "…"


# Colours that read well on both dark and light terminals; a name keeps its colour across
# sessions and machines because the choice hashes the name, not the process's hash seed.
NAME_COLOURS = (
    "#e06c75",
    "#98c379",
    "#e5c07b",
    "#61afef",
    "#c678dd",
    "#56b6c2",
    "#d19a66",
    "#ff79c6",
    "#8be9fd",
    "#50fa7b",
    "#f1fa8c",
    "#bd93f9",
)


def name_colour(name: str) -> str:
    """A stable colour for ``name`` (FNV-1a of its case-folded UTF-8)."""
    digest = 0x811C9DC5
    for byte in name.casefold().encode("utf-8", "surrogatepass"):
        digest = ((digest ^ byte) * 0x01000193) & 0xFFFFFFFF
    return NAME_COLOURS[digest % len(NAME_COLOURS)]
