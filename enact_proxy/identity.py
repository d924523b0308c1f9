"""Identity of the things policies compare: one function per kind, used by every policy.

An email is the same contact after trimming, NFKC, case folding, and removing default-ignorable
code points (SPEC §7). Agents write payloads: ``JANE@acme.com``, ``jane\\u200b@acme.com`` and
``\\uff4aane@acme.com`` are the same contact, or a duplicate slips past the check.
"""

from __future__ import annotations

import unicodedata

# Unicode's Default_Ignorable_Code_Point property (DerivedCoreProperties.txt): invisible characters a
# renderer skips — zero-width spaces and joiners, soft hyphen, BOM, bidi controls, variation selectors,
# Hangul fillers, tags. Python's unicodedata does not expose the property, so the ranges live here.
_DEFAULT_IGNORABLE: tuple[tuple[int, int], ...] = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160), (0x17B4, 0x17B5),
    (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0x3164, 0x3164),
    (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF),
)
_IGNORABLE_TABLE = {cp: None for lo, hi in _DEFAULT_IGNORABLE for cp in range(lo, hi + 1)}


def is_default_ignorable(char: str) -> bool:
    return ord(char) in _IGNORABLE_TABLE


def canonical_email(email: str) -> str:
    """The form two spellings of one address share: ``canonical_email(" JANE\\u200b@Acme.com") == "jane@acme.com"``.

    Ignorables are removed before and after normalising because NFKC maps some characters onto
    ignorable ones (U+FFA0 HALFWIDTH HANGUL FILLER becomes U+1160), and NFKC runs again after case
    folding, which can leave a string unnormalised (NFKC_Casefold in Unicode terms).
    """
    if email.isascii():  # no ignorables, NFKC is the identity and casefold is lower (most emails)
        return email.lower().strip()
    text = email.translate(_IGNORABLE_TABLE)
    text = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    return text.translate(_IGNORABLE_TABLE).strip()


__all__ = ["canonical_email", "is_default_ignorable"]
