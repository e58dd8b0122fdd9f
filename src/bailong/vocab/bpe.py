"""Grows a base BPE vocabulary by real vocabulary entries and merges, appended after everything the base has.

Appended merges have the lowest priority, so a word is first segmented exactly as the base would, and new merges only
join symbols afterwards; text without the new pieces' characters keeps its ids. Each candidate piece is made reachable
by merging the symbols its text currently encodes to, left to right, until one token remains; the pieces those steps
need are added first and counted against the budget.

Two families:
- SentencePiece BPE with byte fallback (Llama 2, Mistral v1): symbols are characters; a character the vocabulary lacks
  becomes byte tokens and merges nothing, so it is added as a piece of its own first.
- Byte-level BPE (GPT-2 style: Llama 3, Qwen, SmolLM2): symbols are bytes in the GPT-2 byte alphabet.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

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
    skipped_split: int = 0  # candidates the pre-tokenizer splits: they can never be one token
    skipped_budget: int = 0


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


class SentencePieceVocabulary(BpeVocabulary):
    """Pieces are strings of characters; merges are implied by the pieces and ranked by score (higher first)."""

    def __init__(self, pieces: list[tuple[str, float]]):
        super().__init__({piece: i for i, (piece, _) in enumerate(pieces)}, first_id=len(pieces))
        self.rank = {piece: (-score, i) for i, (piece, score) in enumerate(pieces)}
        regular = [score for _, score in pieces if -1e6 < score < 0]
        self.next_score = (min(regular) if regular else 0.0) - 1.0

    def _add(self, token: str, merge) -> None:
        super()._add(token, merge)
        self.rank[token] = (-self.next_score, self.vocab[token])
        self.next_score -= 1.0

    def token_of(self, text: str) -> str:
        return text

    def missing_symbols(self, text: str) -> list[str]:
        return list(dict.fromkeys(ch for ch in text if ch not in self.vocab))

    def encode_word(self, text: str, extra: set[str] = frozenset()) -> list[str]:
        vocab = self.vocab

        def rank(a: str, b: str):
            if (a not in vocab and a not in extra) or (b not in vocab and b not in extra):
                return None  # a byte-fallback character merges nothing
            return self.rank.get(a + b)

        return bpe_encode(list(text), rank)

    @property
    def scores(self) -> list[float]:
        return [-self.rank[token][0] for token in self.extension.tokens]


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


class ByteLevelVocabulary(BpeVocabulary):
    """Tokens are strings over the GPT-2 byte alphabet with explicit, ranked merges (tokenizer.json)."""

    def __init__(self, tokenizer_json: dict, pre_tokenizer):
        model = tokenizer_json["model"]
        added = tokenizer_json.get("added_tokens", [])
        super().__init__(model["vocab"], first_id=1 + max([*model["vocab"].values(), *(t["id"] for t in added)]))
        self.merge_rank = {}
        for i, merge in enumerate(model["merges"]):
            left, right = merge.split(" ", 1) if isinstance(merge, str) else merge
            self.merge_rank[(left, right)] = i
        self.ignore_merges = bool(model.get("ignore_merges"))
        self.pre_tokenizer = pre_tokenizer
        for token in added:
            self.vocab.setdefault(token["content"], token["id"])

    def _add(self, token: str, merge) -> None:
        super()._add(token, merge)
        if merge is not None:
            self.merge_rank[merge] = len(self.merge_rank)

    def token_of(self, text: str) -> str:
        return "".join(BYTE_TO_CHAR[b] for b in text.encode("utf-8"))

    def is_one_pre_token(self, text: str) -> bool:
        return self.pre_tokenizer is None or len(self.pre_tokenizer.pre_tokenize_str(text)) == 1

    def encode_word(self, text: str, extra: set[str] = frozenset()) -> list[str]:
        word = self.token_of(text)
        if self.ignore_merges and word in self.vocab:
            return [word]
        return bpe_encode(list(word), lambda a, b: self.merge_rank.get((a, b)))


def merges_like(existing: list, merges: list[tuple[str, str]]) -> list:
    """New merges in the format the tokenizer.json already uses ("a b" strings or [a, b] pairs)."""
    if existing and isinstance(existing[0], str):
        return [f"{a} {b}" for a, b in merges]
    return [[a, b] for a, b in merges]


def append_to_tokenizer_json(tokenizer_json: dict, vocabulary: ByteLevelVocabulary) -> dict:
    out = json.loads(json.dumps(tokenizer_json))
    model, ext = out["model"], vocabulary.extension
    for token in ext.tokens:
        model["vocab"][token] = vocabulary.vocab[token]
    model["merges"] = list(model["merges"]) + merges_like(model["merges"], ext.merges)
    return out
