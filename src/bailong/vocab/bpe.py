"""Grows a base BPE vocabulary by real vocabulary entries and merges, appended after everything the base has.

Appended merges have the lowest priority, so a word is first segmented exactly as the base would, and new merges only
join symbols afterwards; text without the new pieces' characters keeps its ids. Each candidate piece is made reachable
by merging the symbols its text currently encodes to, left to right, until one token remains; the pieces those steps
need are added first and counted against the budget.

One module per family says what a symbol is: `sentencepiece_model` (a .model file), `sentencepiece_json` (the same
BPE with byte fallback given as tokenizer.json) and `byte_level` (GPT-2 style byte-level BPE).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm


def bpe_encode(symbols: list[str], rank) -> list[str]:
    """Applies merges to `symbols`, best (lowest) rank first, leftmost first on ties. `rank(a, b)` -> int | None."""
    symbols = list(symbols)
    while len(symbols) > 1:
        best, best_at = None, -1
        for i in range(len(symbols) - 1):
            r = rank(symbols[i], symbols[i + 1])
            if r is not None and (best is None or r < best):
                best, best_at = r, i
        if best is None:
            break
        symbols[best_at : best_at + 2] = [symbols[best_at] + symbols[best_at + 1]]
    return symbols


@dataclass
class Extension:
    """The tokens to append, as the model's vocabulary strings, in id order, and the merges that build them."""

    tokens: list[str] = field(default_factory=list)
    merges: list[tuple[str, str]] = field(default_factory=list)
    pieces: list[str] = field(default_factory=list)  # candidate texts that became single tokens
    skipped_split: int = 0  # candidates the normalizer changes or the pre-tokenizer splits: never one token
    skipped_budget: int = 0


@dataclass
class ExtendedTokenizer:
    tokenizer: object  # the HF fast tokenizer, already loaded from the written files
    extension: Extension
    family: str
    base_size: int  # len(base tokenizer)
    sp_model: Path | None = None  # the merged SentencePiece model, for the SentencePiece .model family
    base_sp_model: Path | None = None


class BpeVocabulary:
    """A base BPE vocabulary that can grow. Subclasses say what a symbol is and how the base ranks merges."""

    def __init__(self, vocab: dict[str, int], first_id: int):
        self.vocab = dict(vocab)
        self.first_id = first_id  # the id of the first appended token
        self.extension = Extension()

    def _add(self, token: str, merge: tuple[str, str] | None) -> None:
        self.vocab[token] = self.first_id + len(self.extension.tokens)
        self.extension.tokens.append(token)
        if merge is not None:
            self.extension.merges.append(merge)

    def token_of(self, text: str) -> str:
        raise NotImplementedError

    def encode_word(self, text: str, extra: set[str] = frozenset()) -> list[str]:
        """The symbols `text` encodes to as one word; `extra` symbols count as known."""
        raise NotImplementedError

    def is_one_pre_token(self, text: str) -> bool:
        return True

    def missing_symbols(self, text: str) -> list[str]:
        return []

    def extend(self, candidates: list[str], budget: int) -> Extension:
        """Adds candidates in order until `budget` tokens have been added."""
        ext = self.extension
        for text in tqdm(candidates, desc="merging", unit=" pieces", mininterval=1.0):
            remaining = budget - len(ext.tokens)
            if remaining <= 0:
                break
            if self.token_of(text) in self.vocab:
                continue
            if not self.is_one_pre_token(text):
                ext.skipped_split += 1
                continue
            missing = self.missing_symbols(text)
            cost = len(missing) + len(self.encode_word(text, extra=set(missing))) - 1
            if cost > remaining:
                ext.skipped_budget += 1
                continue
            for symbol in missing:
                self._add(symbol, None)
            symbols = self.encode_word(text)
            while len(symbols) > 1:
                left, right = symbols[0], symbols[1]
                if left + right not in self.vocab:
                    self._add(left + right, (left, right))
                symbols = self.encode_word(text)
            ext.pieces.append(text)
        return ext


class TokenizerJsonVocabulary(BpeVocabulary):
    """A tokenizer.json BPE with explicit, ranked merges. New ids start after every id the base uses: its vocabulary
    and its added tokens (Llama 3's and Qwen's special tokens live only in `added_tokens`)."""

    def __init__(self, tokenizer_json: dict, normalizer=None, pre_tokenizer=None):
        model = tokenizer_json["model"]
        added = tokenizer_json.get("added_tokens", [])
        super().__init__(model["vocab"], first_id=1 + max([*model["vocab"].values(), *(t["id"] for t in added)]))
        self.merge_rank = {}
        for i, merge in enumerate(model["merges"]):
            left, right = merge.split(" ", 1) if isinstance(merge, str) else merge
            self.merge_rank[(left, right)] = i
        self.ignore_merges = bool(model.get("ignore_merges"))
        self.normalizer, self.pre_tokenizer = normalizer, pre_tokenizer
        for token in added:
            self.vocab.setdefault(token["content"], token["id"])

    def _add(self, token: str, merge) -> None:
        super()._add(token, merge)
        if merge is not None:
            self.merge_rank[merge] = len(self.merge_rank)

    def symbols(self, word: str) -> list[str]:
        return list(word)

    def is_one_pre_token(self, text: str) -> bool:
        """The normalizer leaves the text as it is (Qwen's NFC changes CJK compatibility ideographs) and the
        pre-tokenizer keeps it whole."""
        if self.normalizer is not None and self.normalizer.normalize_str(text) != text:
            return False
        return self.pre_tokenizer is None or len(self.pre_tokenizer.pre_tokenize_str(self.token_of(text))) == 1

    def encode_word(self, text: str, extra: set[str] = frozenset()) -> list[str]:
        word = self.token_of(text)
        if self.ignore_merges and word in self.vocab:
            return [word]
        return bpe_encode(self.symbols(word), lambda a, b: self.merge_rank.get((a, b)))


def merges_like(existing: list, merges: list[tuple[str, str]]) -> list:
    """New merges in the format the tokenizer.json already uses ("a b" strings or [a, b] pairs)."""
    if existing and isinstance(existing[0], str):
        return [f"{a} {b}" for a, b in merges]
    return [[a, b] for a, b in merges]


def append_to_tokenizer_json(tokenizer_json: dict, vocabulary: TokenizerJsonVocabulary) -> dict:
    """The base's tokenizer.json with the new vocabulary entries and merges appended.

    Added tokens that are missing from `model.vocab` are written into it at their own ids. `tokenizers` gives an added
    token that the model does not know the id after the model's *count* of entries: with new entries beyond a gap of
    added-token ids (Llama 3's 128000-128255), `<|begin_of_text|>` would move onto a new piece's id.
    """
    out = json.loads(json.dumps(tokenizer_json))
    model, ext = out["model"], vocabulary.extension
    if ext.tokens:
        for token in out.get("added_tokens", []):
            model["vocab"].setdefault(token["content"], token["id"])
    for token in ext.tokens:
        model["vocab"][token] = vocabulary.vocab[token]
    model["merges"] = list(model["merges"]) + merges_like(model["merges"], ext.merges)
    return out


def write_tokenizer_json(base_tok, vocabulary: TokenizerJsonVocabulary, tokenizer_json: dict, out: Path) -> None:
    """Saves the base tokenizer (its config, special tokens and chat template) with the extended tokenizer.json."""
    base_tok.save_pretrained(out)
    extended = append_to_tokenizer_json(tokenizer_json, vocabulary)
    (out / "tokenizer.json").write_text(json.dumps(extended, ensure_ascii=False), encoding="utf-8")
