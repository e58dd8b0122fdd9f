"""Trains a SentencePiece model on the corpus and turns it into an ordered list of candidate pieces."""

from __future__ import annotations

import io
import os
import random
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import regex
from tqdm import tqdm

from bailong.config.vocab import VocabConfig
from bailong.data.scripts import UNSPACED, char_class, letter_counts
from bailong.errors import BailongError

# Han ideographs (incl. extensions and compatibility), CJK punctuation (minus the ideographic space), bopomofo,
# CJK compatibility forms and full-width forms.
CJK_CLASS = (
    "\u3001-\u303f\u3100-\u312f\u31a0-\u31bf\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef"
    "\U00020000-\U0003134f"
)
CJK_RUN = re.compile(f"[{CJK_CLASS}]+")
WORD_MARK = "\u2581"  # SentencePiece's word-boundary marker


def has_cjk(text: str) -> bool:
    return CJK_RUN.search(text) is not None


@dataclass
class Candidates:
    pieces: list[str]  # in the order they should be added
    counts: Counter  # piece -> occurrences in the trained model's segmentation of the corpus
    char_counts: Counter  # character -> occurrences in the training sentences
    sentences: int
    trained_vocab_size: int
    corpus_limited: bool  # the corpus could not support a bigger SentencePiece model


AUTO_SHARE = 0.1  # vocab.scripts: auto adds every non-Latin script with at least this share of the letters


@dataclass
class ScriptChoice:
    """The scripts whose pieces may be added (None: every piece), and why."""

    scripts: tuple[str, ...] | None
    reason: str
    letter_shares: dict[str, float]

    @property
    def word_marks(self) -> bool:
        """Pieces may start with a word-boundary marker (scripts written with spaces between words)."""
        return self.scripts is None or any(s not in UNSPACED for s in self.scripts)

    @property
    def latin(self) -> bool:
        return self.scripts is not None and "Latin" in self.scripts

    def run_pattern(self) -> re.Pattern | None:
        """Runs of text in the chosen scripts (with the spaces between words for spaced scripts)."""
        if self.scripts is None:
            return None
        c = char_class(self.scripts)
        return regex.compile(f"[{c}]+(?: +[{c}]+)*" if self.word_marks else f"[{c}]+")

    def allows(self, piece: str) -> bool:
        if self.scripts is None:
            return True
        body = piece[1:] if self.word_marks and piece.startswith(WORD_MARK) else piece
        return bool(body) and _only(self.scripts).fullmatch(body) is not None


def _only(scripts: tuple[str, ...]):
    return regex.compile(f"[{char_class(scripts)}]+")


def choose_scripts(setting, chars: Counter) -> ScriptChoice:
    """Resolves `vocab.scripts` on the corpus's characters: a list as given, `all`, or `auto` (see AUTO_SHARE)."""
    letters = letter_counts(chars)
    total = sum(letters.values())
    shares = {s: round(n / total, 4) for s, n in letters.most_common()} if total else {}
    if setting == "all":
        return ScriptChoice(None, "vocab.scripts: all (every piece, Latin ones included)", shares)
    if setting != "auto":
        return ScriptChoice(tuple(setting), "vocab.scripts: " + ", ".join(setting), shares)
    chosen = [s for s, share in shares.items() if s not in ("Latin", "other") and share >= AUTO_SHARE]
    if not chosen:
        found = ", ".join(f"{s} {v:.1%}" for s, v in shares.items()) or "no letters"
        raise BailongError(
            f"vocab.scripts: auto found no non-Latin script with at least {AUTO_SHARE:.0%} of the corpus's letters "
            f"({found}); name the scripts to add, e.g. vocab.scripts: [Hangul] (a Latin-script language needs "
            "vocab.scripts: [Latin])"
        )
    if "Han" in chosen and "Bopomofo" not in chosen:
        chosen.append("Bopomofo")  # goes along with Han, as bopomofo annotates Chinese
    kept = ", ".join(f"{s} {shares.get(s, 0):.1%}" for s in chosen)
    left = ", ".join(f"{s} {v:.1%}" for s, v in shares.items() if s not in chosen)
    reason = (
        f"vocab.scripts: auto chose {kept} of the letters (every non-Latin script with at least {AUTO_SHARE:.0%}"
        + ("; Bopomofo goes with Han)" if "Han" in chosen else ")")
        + (f"; left out {left}" if left else "")
    )
    return ScriptChoice(tuple(chosen), reason, shares)


def training_sentences(docs: Iterable[str], cfg: VocabConfig) -> tuple[list[str], ScriptChoice]:
    """The sentences the tokenizer trains on: the runs of the chosen scripts' text (whole documents with `all`),
    and the script choice. Keeps at most `cfg.max_sentences` (a uniform reservoir sample), as SentencePiece would.
    """
    rng = random.Random(cfg.seed)
    sample: list[str] = []
    chars: Counter = Counter()
    seen = 0
    for doc in tqdm(docs, desc="reading corpus", unit=" docs", mininterval=1.0):
        chars.update(doc)
        seen += 1
        if len(sample) < cfg.max_sentences:
            sample.append(doc)
        elif (j := rng.randrange(seen)) < cfg.max_sentences:
            sample[j] = doc
    choice = choose_scripts(cfg.scripts, chars) if seen else ScriptChoice(None, "", {})
    pattern = choice.run_pattern()
    sentences = [part for doc in sample for part in pattern.findall(doc)] if pattern else sample
    if len(sentences) > cfg.max_sentences:
        sentences = rng.sample(sentences, cfg.max_sentences)
    return sentences, choice


def _train(sentences: list[str], cfg: VocabConfig, vocab_size: int, word_marks: bool) -> bytes:
    import sentencepiece as spm

    writer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_writer=writer,
        model_type=cfg.model_type,
        vocab_size=vocab_size,
        character_coverage=cfg.character_coverage,
        byte_fallback=True,
        split_digits=True,
        add_dummy_prefix=word_marks,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        max_sentence_length=1 << 16,
        num_threads=os.cpu_count() or 1,
        seed_sentencepiece_size=max(1_000_000, vocab_size * 20),
        minloglevel=2,
    )
    return writer.getvalue()


_TOO_HIGH = re.compile(r"value <= (\d+)")


def train_candidates(
    sentences: list[str], choice: ScriptChoice, cfg: VocabConfig, wanted: int, known: set[str], char_cost
) -> Candidates:
    """Trains SentencePiece on `sentences` with room for `wanted` usable new pieces (not in `known`).

    `char_cost(c)` is how many base tokens the character `c` takes.
    """
    import sentencepiece as spm

    if not sentences:
        raise BailongError(
            "the corpus has no text to train on"
            + (f" in the scripts of vocab.scripts ({', '.join(choice.scripts)})" if choice.scripts else "")
        )
    char_counts: Counter = Counter()
    for s in sentences:
        char_counts.update(s)
    # Room for the bytes, every character SentencePiece must keep, and the pieces wanted on top.
    vocab_size = wanted + 259 + 64 + len(char_counts)
    corpus_limited = False
    for _attempt in range(4):
        try:
            proto = _train(sentences, cfg, vocab_size, choice.word_marks)
        except RuntimeError as exc:
            limit = _TOO_HIGH.search(str(exc))
            if not limit:
                raise BailongError(f"SentencePiece training failed: {exc}") from None
            vocab_size, corpus_limited = int(limit.group(1)), True
            if vocab_size <= 259 + 3:
                raise BailongError("the corpus is too small to train a tokenizer on; add more text") from None
            proto = _train(sentences, cfg, vocab_size, choice.word_marks)
        sp = spm.SentencePieceProcessor(model_proto=proto)
        ordered = _ordered_pieces(sp, choice)
        usable = [p for p in ordered if p not in known]
        if corpus_limited or len(usable) >= wanted:
            break
        vocab_size = int(vocab_size * min(3.0, 1.1 * wanted / max(1, len(usable))))
    counts: Counter = Counter()
    for ids in sp.encode(sentences, out_type=str):
        counts.update(ids)
    pieces = _prioritize(ordered, counts, char_counts, cfg, char_cost)
    return Candidates(pieces, counts, char_counts, len(sentences), sp.get_piece_size(), corpus_limited)


def _ordered_pieces(sp, choice: ScriptChoice) -> list[str]:
    """The model's normal pieces by score (for BPE: merge order), those the script choice allows."""
    pieces = []
    for i in range(sp.get_piece_size()):
        if sp.is_control(i) or sp.is_unknown(i) or sp.is_byte(i) or sp.is_unused(i):
            continue
        piece = sp.id_to_piece(i)
        if not choice.allows(piece):
            continue
        pieces.append((-sp.get_score(i), i, piece))
    return [p for _, _, p in sorted(pieces)]


def _prioritize(ordered: list[str], counts: Counter, char_counts: Counter, cfg: VocabConfig, char_cost) -> list[str]:
    """Orders candidates by the tokens they save on the corpus, counting a piece's use inside longer pieces too.

    A piece's uses are its own occurrences in the trained model's segmentation plus the uses of every piece built
    from it (BPE builds each piece from two earlier ones). A character saves `char_cost(c) - 1` tokens per use (the
    byte tokens it replaces), a longer piece one token per use. A piece is always worth at least as much as any piece
    built from it, so the order keeps every piece after its parts. Pieces used fewer than `min_frequency` times go.
    """
    position = {p: i for i, p in enumerate(ordered)}
    uses = {p: float(counts[p]) for p in ordered}
    for piece in reversed(ordered):  # children come after their parents in BPE order
        if len(piece) == 1:
            continue
        split = _parent_split(piece, position)
        if split:
            for parent in split:
                uses[parent] += uses[piece]
    value = {}
    for piece in ordered:
        if len(piece) == 1:
            uses[piece] = float(char_counts[piece])
            value[piece] = uses[piece] * max(1, char_cost(piece) - 1)
        else:
            value[piece] = uses[piece]
    kept = [p for p in ordered if uses[p] >= cfg.min_frequency]
    return sorted(kept, key=lambda p: (-value[p], position[p]))


def _parent_split(piece: str, position: dict[str, int]) -> tuple[str, str] | None:
    """The two earlier pieces that `piece` is made of (the split whose later part is earliest), if any."""
    best = None
    for i in range(1, len(piece)):
        left, right = piece[:i], piece[i:]
        if left in position and right in position:
            key = max(position[left], position[right])
            if best is None or key < best[0]:
                best = (key, (left, right))
    return best[1] if best else None
