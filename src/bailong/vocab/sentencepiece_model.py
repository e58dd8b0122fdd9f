"""SentencePiece BPE models with byte fallback given as a .model file (Llama 2, Mistral v1).

Pieces are appended to the .model with distinct, decreasing scores below every base piece (sentencepiece ranks merges
by score), and the HF tokenizer.json is written with merges ranked as sentencepiece ranks them: both encode alike.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from bailong.errors import BailongError
from bailong.loading import load_tokenizer, resolve_source, sentencepiece_file
from bailong.vocab.bpe import BpeVocabulary, ExtendedTokenizer, bpe_encode

FAMILY = "sentencepiece"
_HF_CONFIG_FILES = ("tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja", "chat_template.json")


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


def extend_sentencepiece(source: str, base_tok, candidates: list[str], budget: int, out: Path) -> ExtendedTokenizer:
    """Appends pieces to the base SentencePiece model and writes both the .model and the HF tokenizer.json."""
    from sentencepiece import sentencepiece_model_pb2 as pb

    sp_file = sentencepiece_file(source)
    proto = pb.ModelProto()
    proto.ParseFromString(sp_file.read_bytes())
    if proto.trainer_spec.model_type != pb.TrainerSpec.BPE:
        raise BailongError(
            f"{sp_file}: a SentencePiece {pb.TrainerSpec.ModelType.Name(proto.trainer_spec.model_type)} "
            "model; bailong extends SentencePiece BPE models (Llama 2, Mistral v1)"
        )
    if len(base_tok) != len(proto.pieces):
        raise BailongError(
            f"base tokenizer {source!r} has {len(base_tok)} tokens but its tokenizer.model has {len(proto.pieces)}: "
            "tokens added on top of the SentencePiece model are not supported; start from the original tokenizer"
        )
    vocabulary = SentencePieceVocabulary([(p.piece, p.score) for p in proto.pieces])
    extension = vocabulary.extend(candidates, budget)
    for token, score in zip(extension.tokens, vocabulary.scores):
        proto.pieces.add(piece=token, score=score, type=pb.ModelProto.SentencePiece.NORMAL)
    model_file = out / "tokenizer.model"
    model_file.write_bytes(proto.SerializeToString())
    base = resolve_source(source)
    if base.kind == "hf_dir":  # keep the base's settings: special tokens, BOS/EOS, chat template
        for name in _HF_CONFIG_FILES:
            if (Path(base.path) / name).is_file():
                shutil.copy(Path(base.path) / name, out / name)
        tokenizer = load_tokenizer(str(out))
    else:
        tokenizer = load_tokenizer(str(model_file))
    tokenizer.save_pretrained(out)
    scores = {p.piece: p.score for p in proto.pieces}
    tokenizer_json = json.loads((out / "tokenizer.json").read_text(encoding="utf-8"))
    tokenizer_json["model"]["merges"] = sentencepiece_merge_order(tokenizer_json["model"], scores)
    # the base's BOS/EOS around a text: transformers loads a folder with a tokenizer.model with add_bos_token off
    tokenizer_json["post_processor"] = json.loads(base_tok.backend_tokenizer.to_str()).get("post_processor")
    if proto.normalizer_spec.add_dummy_prefix:
        # sentencepiece prefixes "▁" to every text; HF's Metaspace skips texts that start with a space
        tokenizer_json["normalizer"] = {
            "type": "Sequence",
            "normalizers": [
                {"type": "Prepend", "prepend": "▁"},
                {"type": "Replace", "pattern": {"String": " "}, "content": "▁"},
            ],
        }
        tokenizer_json["pre_tokenizer"] = None
    (out / "tokenizer.json").write_text(json.dumps(tokenizer_json, ensure_ascii=False), encoding="utf-8")
    # LlamaTokenizer would rebuild the Metaspace pre-tokenizer; the generic class loads tokenizer.json as written
    tokenizer_config = json.loads((out / "tokenizer_config.json").read_text(encoding="utf-8"))
    tokenizer_config["tokenizer_class"] = "TokenizersBackend"
    (out / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, ensure_ascii=False, indent=2), "utf-8")
    tokenizer = load_tokenizer(str(out))
    return ExtendedTokenizer(tokenizer, extension, FAMILY, len(base_tok), model_file, sp_file)


def sentencepiece_merge_order(model: dict, scores: dict[str, float]) -> list:
    """The HF BPE merges ranked as sentencepiece applies them: the merged piece with the highest score first.

    sentencepiece breaks ties by position (leftmost pair first); the only tied pieces in Llama 2 / Mistral v1 are the
    runs of "▁" (all scored -1e9), where leftmost-first means a run grows from its left end. Ranking the pairs with
    the longer left part first does the same in HF, which transformers' converter (ranking by piece id, "▁▁" first)
    does not: it encoded four spaces before a word as "▁▁▁▁ m" where sentencepiece gives "▁▁▁ ▁m".
    """

    def key(merge) -> tuple:
        left, right = merge if isinstance(merge, list) else merge.split(" ", 1)
        return (-scores[left + right], -len(left), model["vocab"][left + right])

    return sorted(model["merges"], key=key)
