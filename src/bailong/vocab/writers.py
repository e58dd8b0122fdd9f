"""Writes the extended tokenizer for each family, through the loading core."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bailong.errors import BailongError
from bailong.loading import load_tokenizer, resolve_source, sentencepiece_file
from bailong.vocab.bpe import (
    ByteLevelVocabulary,
    Extension,
    SentencePieceVocabulary,
    append_to_tokenizer_json,
    byte_level_text,
)

Family = Literal["sentencepiece", "byte-level"]

_HF_CONFIG_FILES = ("tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja", "chat_template.json")


@dataclass
class ExtendedTokenizer:
    tokenizer: object  # the HF fast tokenizer, already loaded from the written files
    extension: Extension
    family: Family
    base_size: int  # len(base tokenizer)
    sp_model: Path | None = None  # the merged SentencePiece model, for the SentencePiece family
    base_sp_model: Path | None = None


def detect_family(source: str, base_tok) -> Family:
    if sentencepiece_file(source) is not None:
        return "sentencepiece"
    tj = json.loads(base_tok.backend_tokenizer.to_str())
    if tj["model"]["type"] == "BPE" and "ByteLevel" in json.dumps(tj.get("pre_tokenizer")):
        return "byte-level"
    raise BailongError(
        f"base tokenizer {source!r}: unsupported family (model {tj['model']['type']}); bailong extends SentencePiece "
        "BPE tokenizers with byte fallback (Llama 2, Mistral v1) and byte-level BPE tokenizers (Llama 3, Qwen, SmolLM2)"
    )


def extend_sentencepiece(source: str, base_tok, candidates: list[str], budget: int, out: Path) -> ExtendedTokenizer:
    """Appends pieces to the base SentencePiece model with distinct, decreasing scores below every base piece, and
    writes the HF tokenizer.json with merges ranked as sentencepiece ranks them (by score): both encode alike."""
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
    return ExtendedTokenizer(tokenizer, extension, "sentencepiece", len(base_tok), model_file, sp_file)


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


def extend_byte_level(base_tok, candidates: list[str], budget: int, out: Path) -> ExtendedTokenizer:
    """Appends vocabulary entries and merges to the base's tokenizer.json; everything else is the base's."""
    backend = base_tok.backend_tokenizer
    tokenizer_json = json.loads(backend.to_str())
    vocabulary = ByteLevelVocabulary(tokenizer_json, backend.pre_tokenizer)
    extension = vocabulary.extend(candidates, budget)
    base_tok.save_pretrained(out)
    extended = append_to_tokenizer_json(tokenizer_json, vocabulary)
    (out / "tokenizer.json").write_text(json.dumps(extended, ensure_ascii=False), encoding="utf-8")
    tokenizer = load_tokenizer(str(out))
    return ExtendedTokenizer(tokenizer, extension, "byte-level", len(base_tok))


def known_texts(family: Family, base_tok) -> set[str]:
    """Texts that are already one token of the base (so never candidates)."""
    if family == "sentencepiece":
        return set(base_tok.get_vocab())
    known = set()
    for token in base_tok.get_vocab():
        try:
            known.add(byte_level_text(token).decode("utf-8"))
        except (KeyError, UnicodeDecodeError):
            continue
    return known


def char_cost(family: Family, base_tok):
    """A function telling how many base tokens one character takes."""
    if family == "sentencepiece":
        vocab = base_tok.get_vocab()
        return lambda ch: 1 if ch in vocab else len(ch.encode("utf-8"))
    return lambda ch: len(base_tok(ch, add_special_tokens=False)["input_ids"])
