"""SentencePiece-style BPE with byte fallback given only as tokenizer.json (tested on Gemma 3's; Gemma 2 and a Llama 2
tokenizer without its tokenizer.model are of the same kind).

Symbols are characters ("▁" marks a space); a character the vocabulary lacks becomes `<0xNN>` byte tokens and merges
nothing, so it is added as a piece of its own first. Merges are explicit and ranked in tokenizer.json; new ones are
appended after the base's.
"""

from __future__ import annotations

import json
from pathlib import Path

from bailong.loading import load_tokenizer
from bailong.vocab.bpe import ExtendedTokenizer, TokenizerJsonVocabulary, bpe_encode, write_tokenizer_json

FAMILY = "sentencepiece-json"
SPACE = "▁"


def is_sentencepiece_json(tokenizer_json: dict) -> bool:
    model = tokenizer_json["model"]
    return model["type"] == "BPE" and bool(model.get("byte_fallback")) and "<0x00>" in model["vocab"]


class CharBpeVocabulary(TokenizerJsonVocabulary):
    def token_of(self, text: str) -> str:
        return text.replace(" ", SPACE)

    def missing_symbols(self, text: str) -> list[str]:
        return list(dict.fromkeys(ch for ch in self.token_of(text) if ch not in self.vocab))

    def encode_word(self, text: str, extra: set[str] = frozenset()) -> list[str]:
        vocab, word = self.vocab, self.token_of(text)
        if self.ignore_merges and word in vocab:
            return [word]

        def rank(a: str, b: str):
            if (a not in vocab and a not in extra) or (b not in vocab and b not in extra):
                return None  # a byte-fallback character merges nothing
            return self.merge_rank.get((a, b))

        return bpe_encode(list(word), rank)


def extend_sentencepiece_json(base_tok, candidates: list[str], budget: int, out: Path) -> ExtendedTokenizer:
    """Appends vocabulary entries and merges to the base's tokenizer.json. The written tokenizer is loaded by the
    generic class: Gemma's and Llama's classes would rebuild their normalizer and pre-tokenizer over it."""
    backend = base_tok.backend_tokenizer
    tokenizer_json = json.loads(backend.to_str())
    vocabulary = CharBpeVocabulary(tokenizer_json, backend.normalizer, backend.pre_tokenizer)
    extension = vocabulary.extend(candidates, budget)
    write_tokenizer_json(base_tok, vocabulary, tokenizer_json, out)
    config_file = out / "tokenizer_config.json"
    config = json.loads(config_file.read_text(encoding="utf-8"))
    config["tokenizer_class"] = "TokenizersBackend"
    config_file.write_text(json.dumps(config, ensure_ascii=False, indent=2), encoding="utf-8")
    return ExtendedTokenizer(load_tokenizer(str(out)), extension, FAMILY, len(base_tok))


def token_text(token: str) -> str:
    return token.replace(SPACE, " ")
