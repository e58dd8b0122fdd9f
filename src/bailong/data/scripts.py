"""Unicode scripts of text: which script a letter belongs to, letter counts per script, and character classes.

"Han" also takes CJK punctuation, CJK compatibility forms and full-width forms (what a Chinese tokenizer piece may
contain besides ideographs); every other script is its Unicode Script property (`regex`'s `\\p{Script=...}`).
"""

from __future__ import annotations

from collections import Counter
from functools import cache, lru_cache

import regex

# CJK punctuation (minus the ideographic space), CJK compatibility forms and full-width forms: they go with Han.
_HAN_EXTRA = "\u3001-\u303f\ufe30-\ufe4f\uff00-\uffef"
# Scripts `letter_counts` tells apart (a letter of any other script counts as "other"); Latin first: most letters.
KNOWN_SCRIPTS = (
    "Latin", "Han", "Bopomofo", "Hiragana", "Katakana", "Hangul", "Thai", "Lao", "Khmer", "Myanmar", "Tibetan",
    "Devanagari", "Bengali", "Gurmukhi", "Gujarati", "Oriya", "Tamil", "Telugu", "Kannada", "Malayalam", "Sinhala",
    "Arabic", "Hebrew", "Syriac", "Thaana", "Cyrillic", "Greek", "Armenian", "Georgian", "Ethiopic", "Mongolian",
)  # fmt: skip
# Scripts written without spaces between words: their pieces carry no word-boundary marker.
UNSPACED = frozenset({"Han", "Bopomofo", "Hiragana", "Katakana"})
_LETTER = regex.compile(r"[\p{L}\p{M}]")


def char_class(scripts: tuple[str, ...]) -> str:
    """A regex character class body (without brackets) matching the characters of `scripts`."""
    parts = [rf"\p{{Script={s}}}" for s in scripts]
    if "Han" in scripts:
        parts.append(_HAN_EXTRA)
    return "".join(parts)


@cache
def _script_pattern(scripts: tuple[str, ...]) -> regex.Pattern:
    return regex.compile(f"[{char_class(scripts)}]")


@lru_cache(maxsize=1 << 16)
def script_of(ch: str) -> str | None:
    """The script of a letter (or combining mark) among KNOWN_SCRIPTS, "other" for another script's letter, None for
    a character that is not a letter (digits, punctuation, spaces, symbols)."""
    if not _LETTER.match(ch):
        return None
    for script in KNOWN_SCRIPTS:
        if _script_pattern((script,)).match(ch):
            return script
    return "other"


def letter_counts(chars: Counter) -> Counter:
    """Letters per script, from a character -> count Counter."""
    out: Counter = Counter()
    for ch, n in chars.items():
        script = script_of(ch)
        if script is not None:
            out[script] += n
    return out
