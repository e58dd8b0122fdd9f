"""The GGUF tokenizer keys of an (extended) HF tokenizer, for both families bailong extends.

SentencePiece (Llama 2, Mistral v1): llama.cpp's "llama" tokenizer reads the pieces, their scores and types; they come
from the SentencePiece model the extension wrote (its new pieces appended with decreasing scores), so llama.cpp merges
as sentencepiece and the HF tokenizer do.

SentencePiece-style BPE given only as tokenizer.json (Gemma 3): the same "llama" tokenizer, whose scores are made
from the ranked merges. llama.cpp joins the adjacent pair whose concatenation is the highest-scored piece, HF the pair
with the lowest-ranked merge: a piece scored by the rank of the first merge that builds it is joined in the same order,
the new pieces (whose merges come after the base's) below every base piece.

Byte-level BPE (Llama 3, Qwen, SmolLM2): llama.cpp's "gpt2" tokenizer reads the tokens, the merges and the name of a
pre-tokenizer (the regex that splits text before the merges). llama.cpp's converter finds that name by hashing how the
tokenizer splits a check string that contains Han characters, so a vocabulary with new Han pieces hashes to an unknown
value; the extension never changes the pre-tokenizer, so the name is the base tokenizer's, found from the base.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path

from bailong.errors import BailongError

# llama.cpp's convert_hf_to_gguf.py (get_vocab_base_pre): the text it splits, and the hashes of the splits of the
# base tokenizers bailong supports, by the pre-tokenizer name llama.cpp implements for them.
CHECK_TEXT = (
    "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u200d🌫️ (multiple emojis concatenated) "
    "✅ 🦙🦙 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 "
    "កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ ------======= "
    "нещо на Български ''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, 'RE you sure? 'M not sure "
    "I'll make it, 'D you like some tea? We'Ve a'lL"
)
KNOWN_PRE_TOKENIZERS = {
    "855059429035d75a914d1eda9f10a876752e281a054a7a3d421ef0533e5b6249": "smollm",  # SmolLM, SmolLM2
    "0ef9807a4087ebef797fc749390439009c3b9eda9ad1a097abbe738f486c01e5": "llama-bpe",  # Llama 3
    "e636dc30a262dcc0d8c323492e32ae2b70728f4df7dfe9737d9f920a282b8aea": "qwen2",  # Qwen 1.5 / 2 / 2.5
    "d4540891389ea895b53b399da6ac824becc30f2fba0e9ddbb98f92e55ca0e97c": "qwen2",  # Qwen 3
    "3ce83efda5659b07b1ad37ca97ca5797ea4285d9b9ab0dc679e4a720c9da7454": "gpt-2",  # GPT-2
}


@dataclass
class GgufVocab:
    model: str  # tokenizer.ggml.model: "llama" (SentencePiece) or "gpt2" (byte-level BPE)
    tokens: list[bytes]
    types: list[int]
    pre: str = "default"
    scores: list[float] | None = None
    merges: list[str] = field(default_factory=list)
    add_space_prefix: bool | None = None  # written only when set (llama.cpp's default for "llama" is true)


def pre_tokenizer_name(base_tokenizer, base_name: str) -> str:
    """llama.cpp's name for the base tokenizer's pre-tokenizer, as its converter finds it (by the hash of a split)."""
    ids = base_tokenizer.encode(CHECK_TEXT)
    digest = sha256(str(ids).encode()).hexdigest()
    if digest not in KNOWN_PRE_TOKENIZERS:
        raise BailongError(
            f"{base_name}: llama.cpp's GGUF needs the name of its pre-tokenizer, and bailong knows the names of "
            f"{', '.join(sorted(set(KNOWN_PRE_TOKENIZERS.values())))} only (hash {digest[:12]}); export --format hf "
            "and convert with llama.cpp's convert_hf_to_gguf.py"
        )
    return KNOWN_PRE_TOKENIZERS[digest]


def padded(tokens: list[bytes], types: list[int], rows: int, scores: list[float] | None = None) -> None:
    """Embedding rows past the tokenizer (padded to a multiple) get unused placeholder tokens, as in llama.cpp."""
    import gguf

    for i in range(len(tokens), rows):
        tokens.append(f"[PAD{i}]".encode())
        types.append(gguf.TokenType.UNUSED)
        if scores is not None:
            scores.append(-1000.0)


def sentencepiece_vocab(sp_model: Path, tokenizer, rows: int) -> GgufVocab:
    """Pieces, scores and types from the SentencePiece model; tokens the HF tokenizer adds on top are control or
    user-defined tokens."""
    import gguf
    from sentencepiece import sentencepiece_model_pb2 as pb

    proto = pb.ModelProto()
    proto.ParseFromString(sp_model.read_bytes())
    kinds = pb.ModelProto.SentencePiece
    type_of = {
        kinds.NORMAL: gguf.TokenType.NORMAL,
        kinds.UNKNOWN: gguf.TokenType.UNKNOWN,
        kinds.CONTROL: gguf.TokenType.CONTROL,
        kinds.USER_DEFINED: gguf.TokenType.USER_DEFINED,
        kinds.UNUSED: gguf.TokenType.UNUSED,
        kinds.BYTE: gguf.TokenType.BYTE,
    }
    vocab = tokenizer.get_vocab()
    pieces = [p.piece for p in proto.pieces]
    if any(vocab.get(piece) != i for i, piece in enumerate(pieces) if i < len(tokenizer)):
        raise BailongError(
            f"{sp_model}: its pieces are not the tokenizer's tokens at the same ids; the tokenizer.model does not "
            "belong to this run"
        )
    tokens = [piece.encode("utf-8") for piece in pieces]
    scores = [p.score for p in proto.pieces]
    types = [type_of[p.type] for p in proto.pieces]
    for token in sorted(tokenizer.added_tokens_decoder.items()):
        tid, added = token
        if tid >= len(tokens):
            padded(tokens, types, tid, scores)
            tokens.append(added.content.encode("utf-8"))
            types.append(gguf.TokenType.CONTROL if added.special else gguf.TokenType.USER_DEFINED)
            scores.append(-1000.0)
    padded(tokens, types, rows, scores)
    space_prefix = proto.normalizer_spec.add_dummy_prefix  # false for Gemma's tokenizer.model
    return GgufVocab("llama", tokens, types, scores=scores, add_space_prefix=space_prefix)


def is_sentencepiece_json(tokenizer_json: dict) -> bool:
    model = tokenizer_json["model"]
    return model["type"] == "BPE" and bool(model.get("byte_fallback")) and "<0x00>" in model["vocab"]


def sentencepiece_json_vocab(tokenizer, rows: int) -> GgufVocab:
    """Pieces, types and merge-rank scores from a SentencePiece-style tokenizer.json (no tokenizer.model)."""
    import gguf

    data = json.loads(tokenizer.backend_tokenizer.to_str())
    model = data["model"]
    built_at: dict[str, int] = {}
    for rank, merge in enumerate(model["merges"]):
        left, right = merge.split(" ", 1) if isinstance(merge, str) else merge
        built_at.setdefault(left + right, rank)
    score_of = {piece: -float(i) for i, piece in enumerate(sorted(built_at, key=built_at.get))}
    by_id = {tid: text for text, tid in model["vocab"].items()}
    added = {t["id"]: t for t in data.get("added_tokens", [])}
    tokens, types, scores = [], [], []
    for tid in range(max([*by_id, *added]) + 1):
        if tid in added:
            token = added[tid]
            # llama.cpp matches added tokens in the raw text, HF a normalized one in the normalized text
            content = token["content"].replace("▁", " ") if token["normalized"] else token["content"]
            tokens.append(content.encode("utf-8"))
            types.append(gguf.TokenType.CONTROL if token["special"] else gguf.TokenType.USER_DEFINED)
            scores.append(-1000.0)
        elif tid in by_id:
            piece = by_id[tid]
            tokens.append(piece.encode("utf-8"))
            is_byte = len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">")
            types.append(gguf.TokenType.BYTE if is_byte else gguf.TokenType.NORMAL)
            scores.append(score_of.get(piece, 0.0))
        else:
            tokens.append(f"[PAD{tid}]".encode())
            types.append(gguf.TokenType.UNUSED)
            scores.append(-1000.0)
    padded(tokens, types, rows, scores)
    normalizing = json.dumps([data.get("normalizer"), data.get("pre_tokenizer")])
    space_prefix = '"Prepend"' in normalizing or '"prepend_scheme": "first"' in normalizing
    space_prefix = space_prefix or '"prepend_scheme": "always"' in normalizing
    return GgufVocab("llama", tokens, types, scores=scores, add_space_prefix=space_prefix)


def byte_level_vocab(tokenizer, pre: str, rows: int) -> GgufVocab:
    """Tokens (in their byte-level spelling), merges and the base's pre-tokenizer name from the HF tokenizer.json."""
    import gguf

    data = json.loads(tokenizer.backend_tokenizer.to_str())
    by_id = {tid: text for text, tid in data["model"]["vocab"].items()}
    added = {t["id"]: t for t in data.get("added_tokens", [])}
    tokens, types = [], []
    for tid in range(max([*by_id, *added]) + 1):
        if tid in added:
            tokens.append(added[tid]["content"].encode("utf-8"))
            types.append(gguf.TokenType.CONTROL if added[tid]["special"] else gguf.TokenType.USER_DEFINED)
        elif tid in by_id:
            tokens.append(by_id[tid].encode("utf-8"))
            types.append(gguf.TokenType.NORMAL)
        else:
            tokens.append(f"[PAD{tid}]".encode())
            types.append(gguf.TokenType.UNUSED)
    padded(tokens, types, rows)
    merges = [m if isinstance(m, str) else " ".join(m) for m in data["model"]["merges"]]
    return GgufVocab("gpt2", tokens, types, pre=pre, merges=merges)


def add_vocab(writer, vocab: GgufVocab, tokenizer, tokenizer_dir: Path) -> None:
    """Writes the tokenizer keys: the vocabulary, the special token ids (gguf's SpecialVocab reads them from the saved
    HF tokenizer), whether a BOS is added (as the HF tokenizer does) and the chat template."""
    import gguf

    writer.add_tokenizer_model(vocab.model)
    writer.add_tokenizer_pre(vocab.pre)
    writer.add_token_list(vocab.tokens)
    writer.add_token_types(vocab.types)
    if vocab.scores is not None:
        writer.add_token_scores(vocab.scores)
    if vocab.add_space_prefix is not None:
        writer.add_add_space_prefix(vocab.add_space_prefix)
    special = gguf.SpecialVocab(tokenizer_dir, load_merges=False, n_vocab=len(vocab.tokens))
    special.merges = vocab.merges
    probe = tokenizer("a")["input_ids"]
    special.add_special_token = {
        "bos": tokenizer.bos_token_id is not None and probe[:1] == [tokenizer.bos_token_id],
        "eos": tokenizer.eos_token_id is not None and probe[-1:] == [tokenizer.eos_token_id],
    }
    special.chat_template = tokenizer.chat_template if isinstance(tokenizer.chat_template, str) else None
    special.add_to_gguf(writer, quiet=True)
