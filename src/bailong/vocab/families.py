"""The tokenizer families extend-vocab grows, one module each, and which one a base tokenizer belongs to.

- `sentencepiece`: a SentencePiece BPE .model with byte fallback (Llama 2, Mistral v1);
- `sentencepiece-json`: the same BPE given only as tokenizer.json (tested on Gemma 3);
- `byte-level`: byte-level BPE (Llama 3.x, Qwen2.5/3, Mistral Nemo's tekken, SmolLM2).
"""

from __future__ import annotations

import json
from pathlib import Path

from bailong.errors import BailongError
from bailong.loading import sentencepiece_file
from bailong.vocab import byte_level, sentencepiece_json, sentencepiece_model
from bailong.vocab.bpe import ExtendedTokenizer
from bailong.vocab.train import WORD_MARK

FAMILIES = (sentencepiece_model.FAMILY, sentencepiece_json.FAMILY, byte_level.FAMILY)
SUPPORTED = (
    "SentencePiece BPE with byte fallback, as a .model (Llama 2, Mistral v1) or as tokenizer.json only (Gemma 3), "
    "and byte-level BPE (Llama 3.x, Qwen2.5, Mistral Nemo's tekken, SmolLM2)"
)


def describe(tokenizer_json: dict) -> str:
    """The tokenizer's type in a few words: its model, byte fallback, pre-tokenizer."""
    model = tokenizer_json["model"]
    text = f"a {model['type']} tokenizer"
    if model["type"] == "BPE":
        text += " with byte fallback" if model.get("byte_fallback") else " without byte fallback"
    if pre := tokenizer_json.get("pre_tokenizer"):
        text += f" (pre-tokenizer {pre.get('type')})"
    return text


def detect_family(source: str, base_tok) -> str:
    if sentencepiece_file(source) is not None:
        return sentencepiece_model.FAMILY
    tokenizer_json = json.loads(base_tok.backend_tokenizer.to_str())
    if byte_level.is_byte_level(tokenizer_json):
        return byte_level.FAMILY
    if sentencepiece_json.is_sentencepiece_json(tokenizer_json):
        return sentencepiece_json.FAMILY
    raise BailongError(f"base tokenizer {source!r} is {describe(tokenizer_json)}; bailong extends {SUPPORTED}")


def extend(family: str, source: str, base_tok, candidates: list[str], budget: int, out: Path) -> ExtendedTokenizer:
    """Grows the base tokenizer by up to `budget` tokens from `candidates` (texts, "▁" for a space) into `out`."""
    if family == sentencepiece_model.FAMILY:
        return sentencepiece_model.extend_sentencepiece(source, base_tok, candidates, budget, out)
    if family == sentencepiece_json.FAMILY:
        return sentencepiece_json.extend_sentencepiece_json(base_tok, candidates, budget, out)
    candidates = [text.replace(WORD_MARK, " ") for text in candidates]  # a byte-level word starts with the space
    return byte_level.extend_byte_level(base_tok, candidates, budget, out)


def known_texts(family: str, base_tok) -> set[str]:
    """Texts that are already one token of the base (so never candidates)."""
    if family == byte_level.FAMILY:
        return byte_level.known_texts(base_tok)
    return set(base_tok.get_vocab())


def char_cost(family: str, base_tok):
    """A function telling how many base tokens one character takes."""
    if family == sentencepiece_model.FAMILY:
        vocab = base_tok.get_vocab()
        return lambda ch: 1 if ch in vocab else len(ch.encode("utf-8"))
    return lambda ch: len(base_tok(ch, add_special_tokens=False)["input_ids"])


def token_text(family: str, token: str) -> str | None:
    """The text of an appended vocabulary entry (None for a partial character); a SentencePiece .model's leading word
    marker is left out, as its dummy prefix puts it back."""
    if family == byte_level.FAMILY:
        return byte_level.token_text(token)
    if family == sentencepiece_json.FAMILY:
        return sentencepiece_json.token_text(token)
    return token[1:] if token.startswith(WORD_MARK) and len(token) > 1 else token
