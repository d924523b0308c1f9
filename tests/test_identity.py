"""enact_proxy/identity.py: one email, however an agent spells it (SPEC §7)."""

from __future__ import annotations

import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from enact_proxy.identity import _IGNORABLE_TABLE, canonical_email, is_default_ignorable

IGNORABLES = ["\u200b", "\u200c", "\u200d", "\u2060", "\u00ad", "\ufeff", "\u180e", "\u202e", "\ufe0f",
              "\U000e0041"]
local = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x2FF, blacklist_characters="@"),
                min_size=1, max_size=12)
address = st.builds(lambda a, b: f"{a}@{b}.com", local, local)


def test_known_spellings_of_one_address_agree():
    same = ["jane@acme.com", " JANE@ACME.COM\t", "ja\u200bne@acme.com", "\ufeffjane@acme.com", "jan\u00ade@Acme.com",
            "\uff4a\uff41\uff4e\uff45@acme.com", "Jane@acme.com\u200d"]
    assert {canonical_email(s) for s in same} == {"jane@acme.com"}
    assert canonical_email("jane@acme.co") != canonical_email("jane@acme.com")


@given(address)
def test_canonical_form_is_a_fixed_point(email):
    once = canonical_email(email)
    assert canonical_email(once) == once
    assert once == unicodedata.normalize("NFKC", once)
    assert not any(is_default_ignorable(c) for c in once)


@given(address, st.lists(st.tuples(st.integers(min_value=0), st.sampled_from(IGNORABLES)), max_size=5))
def test_invisible_characters_anywhere_change_nothing(email, inserts):
    spelled = email
    for position, char in inserts:
        at = position % (len(spelled) + 1)
        spelled = spelled[:at] + char + spelled[at:]
    assert canonical_email(spelled) == canonical_email(email)


def _case_stable(char: str) -> bool:
    """Letters whose upper and lower case fold to the same thing. Not all do: the dotless ı upper-cases to
    I, which folds to i — a different letter by Unicode's rules, and rightly a different address."""
    return all(f(char).casefold() == char.casefold() for f in (str.upper, str.lower, str.title))


cased = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x2FF, blacklist_characters="@")
                .filter(_case_stable), min_size=1, max_size=12)


@given(st.builds(lambda a, b: f"{a}@{b}.com", cased, cased),
       st.sampled_from([str.upper, str.lower, str.title, str.swapcase]), st.sampled_from(["", " ", "\t", "\n "]))
def test_case_and_surrounding_whitespace_change_nothing(email, recase, pad):
    assert canonical_email(pad + recase(email) + pad) == canonical_email(email)


@given(address)
def test_compatibility_forms_change_nothing(email):
    # Full-width ASCII (U+FF01..U+FF5E) is the compatibility form of ASCII: NFKC folds it back.
    wide = "".join(chr(ord(c) + 0xFEE0) if 0x21 <= ord(c) <= 0x7E else c for c in email)
    assert canonical_email(wide) == canonical_email(email)


def _full_algorithm(email: str) -> str:
    """SPEC §7's steps, with no shortcut: what the ASCII fast path must equal."""
    table = _IGNORABLE_TABLE
    text = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", email.translate(table)).casefold())
    return text.translate(table).strip()


@given(st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=40))
def test_ascii_shortcut_equals_the_full_steps(email):
    assert email.isascii()
    assert canonical_email(email) == _full_algorithm(email)
