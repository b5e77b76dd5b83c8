"""names.py: the rules of protocol-v1 "Names" and the keys that make two names the same."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatroom.framing import ErrorCode, ProtocolError
from chatroom.names import MAX_NAME_CHARS, check_name, name_keys

CYRILLIC_A = "\u0430"


@pytest.mark.parametrize(
    "name",
    [
        "alice",
        "a",
        "a" * MAX_NAME_CHARS,
        "Mary Ann",
        "Mary  Ann",
        "Zoë",
        "李小龍",
        "محمد",
        "🙂",
        "❤\ufe0f",
        "o'brien-2",
        "Ω",
    ],
)
def test_valid_names_are_kept(name: str) -> None:
    """A name within the rules comes back as stored: itself, NFC."""
    assert check_name(name) == unicodedata.normalize("NFC", name)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("", id="empty"),
        pytest.param("a" * (MAX_NAME_CHARS + 1), id="33-chars"),
        pytest.param(" alice", id="leading-space"),
        pytest.param("alice ", id="trailing-space"),
        pytest.param(" ", id="only-space"),
        pytest.param("al\tice", id="tab"),
        pytest.param("alice\n", id="newline"),
        pytest.param("al\x00ice", id="nul"),
        pytest.param("\x1b[31malice", id="esc"),
        pytest.param("al\x7fice", id="del"),
        pytest.param("al\x9bice", id="c1-csi"),
        pytest.param("al\u202eice", id="bidi-override"),
        pytest.param("al\u2066ice", id="bidi-isolate"),
        pytest.param("al\u200fice", id="rtl-mark"),
        pytest.param("al\u200bice", id="zero-width-space"),
        pytest.param("al\u200dice", id="zero-width-joiner"),
        pytest.param("al\ufeffice", id="bom"),
        pytest.param("al\u00adice", id="soft-hyphen"),
        pytest.param("\u3164", id="hangul-filler"),
        pytest.param("al\u3164ice", id="hangul-filler-inside"),
        pytest.param("\u115f", id="hangul-choseong-filler"),
        pytest.param("\uffa0", id="halfwidth-hangul-filler"),
        pytest.param("\u2800", id="braille-blank"),
        pytest.param("al\u180eice", id="mongolian-vowel-separator"),
        pytest.param("al\u00a0ice", id="nbsp"),
        pytest.param("al\u2003ice", id="em-space"),
        pytest.param("al\u3000ice", id="ideographic-space"),
        pytest.param("al\u2028ice", id="line-separator"),
        pytest.param("al\u2029ice", id="paragraph-separator"),
        pytest.param("al\ue000ice", id="private-use"),
        pytest.param("al\U000e0041ice", id="tag-character"),
        pytest.param("al\ud800ice", id="lone-surrogate"),
    ],
)
def test_invalid_names_are_refused(name: str) -> None:
    """Each broken rule gives invalid_name with a reason."""
    with pytest.raises(ProtocolError) as caught:
        check_name(name)
    assert caught.value.code is ErrorCode.INVALID_NAME
    assert caught.value.detail


def test_length_counts_characters_after_nfc() -> None:
    """32 decomposed 'é' (64 code points) are 32 characters after NFC, so they fit."""
    decomposed = "e\u0301" * MAX_NAME_CHARS
    assert len(decomposed) == 2 * MAX_NAME_CHARS
    assert check_name(decomposed) == "\u00e9" * MAX_NAME_CHARS


def _collide(a: str, b: str) -> bool:
    return bool(name_keys(check_name(a)) & name_keys(check_name(b)))


@pytest.mark.parametrize(
    ("taken", "asked"),
    [
        pytest.param("alice", "alice", id="same"),
        pytest.param("alice", "ALICE", id="case"),
        pytest.param("alice", "Alice", id="title-case"),
        pytest.param("Straße", "STRASSE", id="casefold-sharp-s"),
        pytest.param("Jos\u00e9", "Jose\u0301", id="nfc"),
        pytest.param("alice", CYRILLIC_A + "lice", id="cyrillic-a"),
        pytest.param("nadia", "n" + CYRILLIC_A + "dia", id="cyrillic-a-inside"),
        pytest.param("alice", "\uff41\uff4c\uff49\uff43\uff45", id="fullwidth"),
        pytest.param("alice", "aIice", id="capital-i-for-l"),
        pytest.param("ALICE", "aIice", id="case-and-look-alike"),
        pytest.param("paypal", "p" + CYRILLIC_A + "yp" + CYRILLIC_A + "l", id="two-cyrillic"),
        pytest.param("alice", "ali\u034fce", id="combining-grapheme-joiner"),
        pytest.param("alice", "alice\ufe0f", id="variation-selector"),
        pytest.param("alice", "al\u17b4ice", id="khmer-inherent-vowel"),
        pytest.param("mary ann", "Mary  Ann", id="two-spaces-for-one"),
        pytest.param("a b c", "a   b  c", id="runs-of-spaces"),
    ],
)
def test_look_alikes_and_case_variants_collide(taken: str, asked: str) -> None:
    """Case variants, NFC variants and confusable look-alikes share a key."""
    assert _collide(taken, asked)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("alice", "alicia"),
        ("bob", "b\u00f3b"),
        ("a b", "ab"),
        ("anna", "hanna"),
        ("x", "y"),
    ],
)
def test_different_names_do_not_collide(a: str, b: str) -> None:
    """Names a reader can tell apart are both available."""
    assert not _collide(a, b)


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=MAX_NAME_CHARS))
def test_check_name_returns_nfc_or_raises_invalid_name(raw: str) -> None:
    """For any text, check_name returns a valid NFC name or raises invalid_name only, and
    a stored name is taken under its case-folded form, the contract's key."""
    try:
        name = check_name(raw)
    except ProtocolError as exc:
        assert exc.code is ErrorCode.INVALID_NAME
        return
    assert name == unicodedata.normalize("NFC", name) == name.strip()
    assert 1 <= len(name) <= MAX_NAME_CHARS
    assert "=" + name.casefold() in name_keys(name)
