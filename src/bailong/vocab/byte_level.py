"""Byte-level BPE (GPT-2 style): Llama 3.x, Qwen2.5/3, Mistral Nemo's tekken, SmolLM2.

Symbols are bytes written in the GPT-2 byte alphabet; merges are explicit and ranked in tokenizer.json. A TC
character of three UTF-8 bytes takes a partial-character merge step before it becomes one token. Special tokens may
live only in `added_tokens` (Llama 3, Qwen): new ids come after them (see `bpe.append_to_tokenizer_json`).
"""

from __future__ import annotations

import json
from pathlib import Path

from bailong.loading import load_tokenizer
from bailong.vocab.bpe import ExtendedTokenizer, TokenizerJsonVocabulary, write_tokenizer_json

FAMILY = "byte-level"


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map, as byte-level BPE vocabularies store tokens."""
    printable = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = printable[:]
    n = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    return dict(zip(printable, map(chr, chars)))


BYTE_TO_CHAR = bytes_to_unicode()
CHAR_TO_BYTE = {c: b for b, c in BYTE_TO_CHAR.items()}


def byte_level_text(token: str) -> bytes:
    return bytes(CHAR_TO_BYTE[c] for c in token)


def is_byte_level(tokenizer_json: dict) -> bool:
    return tokenizer_json["model"]["type"] == "BPE" and "ByteLevel" in json.dumps(tokenizer_json.get("pre_tokenizer"))


class ByteLevelVocabulary(TokenizerJsonVocabulary):
    """Tokens are strings over the GPT-2 byte alphabet with explicit, ranked merges (tokenizer.json)."""

    def __init__(self, tokenizer_json: dict, pre_tokenizer=None, normalizer=None):
        super().__init__(tokenizer_json, normalizer, pre_tokenizer)

    def token_of(self, text: str) -> str:
        return "".join(BYTE_TO_CHAR[b] for b in text.encode("utf-8"))

    def is_one_pre_token(self, text: str) -> bool:
        if self.normalizer is not None and self.normalizer.normalize_str(text) != text:
            return False
        return self.pre_tokenizer is None or len(self.pre_tokenizer.pre_tokenize_str(text)) == 1


def extend_byte_level(base_tok, candidates: list[str], budget: int, out: Path) -> ExtendedTokenizer:
    """Appends vocabulary entries and merges to the base's tokenizer.json; everything else is the base's."""
    backend = base_tok.backend_tokenizer
    tokenizer_json = json.loads(backend.to_str())
    vocabulary = ByteLevelVocabulary(tokenizer_json, backend.pre_tokenizer, backend.normalizer)
    extension = vocabulary.extend(candidates, budget)
    write_tokenizer_json(base_tok, vocabulary, tokenizer_json, out)
    return ExtendedTokenizer(load_tokenizer(str(out)), extension, FAMILY, len(base_tok))


def known_texts(base_tok) -> set[str]:
    """Texts that are already one token of the base (so never candidates)."""
    known = set()
    for token in base_tok.get_vocab():
        try:
            known.add(byte_level_text(token).decode("utf-8"))
        except (KeyError, UnicodeDecodeError):
            continue
    return known


def token_text(token: str) -> str | None:
    """The text of a vocabulary entry; None for a partial character (a merge step)."""
    try:
        return byte_level_text(token).decode("utf-8")
    except (KeyError, UnicodeDecodeError):
        return None
