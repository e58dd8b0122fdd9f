"""The extended base checkpoint that `pretrain` starts from: the base model with embedding rows for the new tokens."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path

from bailong.artifacts import EXTENSION_FILE, write_json
from bailong.config import ExtendVocabConfig
from bailong.console import say
from bailong.errors import BailongError
from bailong.loading import load_model, load_tokenizer
from bailong.vocab.align import align_new_rows
from bailong.vocab.init import initialize_new_rows


def check_is_extension(base_tok, extended_tok, base_name: str) -> None:
    """Every id of the base model's tokenizer must mean the same token in the extended one."""
    base_tokens = base_tok.convert_ids_to_tokens(list(range(len(base_tok))))
    new_tokens = extended_tok.convert_ids_to_tokens(list(range(min(len(base_tok), len(extended_tok)))))
    if len(extended_tok) < len(base_tok):
        raise BailongError(
            f"the tokenizer has {len(extended_tok)} tokens, fewer than the {len(base_tok)} of "
            f"{base_name!r}: it is not an extension of that model's tokenizer"
        )
    for token_id, (a, b) in enumerate(zip(base_tokens, new_tokens)):
        if a != b:
            raise BailongError(
                f"the tokenizer is not an extension of {base_name!r}'s: id {token_id} is {b!r} in it but {a!r} in the "
                "base; set model.tokenizer to the base model's own tokenizer (or leave it unset)"
            )


def base_pieces(base_tok, tokens: list[str]) -> list[list[int]]:
    """The base ids each new token's text encoded to before the extension (its model-level string, no prefix space)."""
    model = base_tok.backend_tokenizer.model
    return [[t.id for t in model.tokenize(token)] for token in tokens]


def token_texts(base_tok, extended_tok, new_ids: list[int]) -> tuple[list[str], list[str]]:
    """The decoded text of every base token and of every new token (what `new_rows.norm: script` reads)."""
    return [base_tok.decode([i]) for i in range(len(base_tok))], [extended_tok.decode([i]) for i in new_ids]


def write_extended_checkpoint(
    cfg: ExtendVocabConfig,
    extended_tok,
    tokenizer_report: dict,
    out: Path,
    base_tok=None,
    documents: Callable[[], Iterable[str]] | None = None,
) -> dict:
    """Resizes the base model to the extended tokenizer, initializes the new rows (and aligns them, with
    `align.steps`), saves model and metadata in `out`.

    `base_tok` is the model's own tokenizer when the caller has it loaded already; `documents` streams the training
    documents (align reads them).
    """
    start = time.perf_counter()
    name = cfg.model.name_or_path
    if base_tok is None:
        base_tok = load_tokenizer(name, revision=cfg.model.revision, trust_remote_code=cfg.model.trust_remote_code)
    check_is_extension(base_tok, extended_tok, name)
    model = load_model(cfg.model, keep_checkpoint_dtype=True)
    embed = model.get_input_embeddings()
    rows_before = embed.weight.shape[0]
    if rows_before < len(base_tok):
        raise BailongError(
            f"{name!r}: the model has {rows_before} embedding rows but its tokenizer has {len(base_tok)} tokens; "
            "the tokenizer does not belong to this model"
        )
    new_ids = list(range(len(base_tok), len(extended_tok)))
    pieces = base_pieces(base_tok, extended_tok.convert_ids_to_tokens(new_ids))
    # rows past the base tokenizer (Qwen2.5: 151,936 rows for 151,665 tokens) are spare: new tokens fill them first
    spare_filled = min(rows_before - len(base_tok), len(new_ids))
    rows = max(rows_before, len(extended_tok))
    model.resize_token_embeddings(rows, pad_to_multiple_of=cfg.new_rows.pad_to_multiple_of, mean_resizing=False)
    tied = model.get_output_embeddings().weight is model.get_input_embeddings().weight
    head = None if tied else model.get_output_embeddings().weight
    init_start = time.perf_counter()
    initialize_new_rows(
        model.get_input_embeddings().weight.data,
        None if head is None else head.data,
        new_ids,
        pieces,
        cfg.new_rows,
        init_std=getattr(model.config, "initializer_range", 0.02),
        texts=token_texts(base_tok, extended_tok, new_ids) if cfg.new_rows.norm == "script" else None,
    )
    init_seconds = time.perf_counter() - init_start
    aligned = None
    if cfg.align.steps and new_ids:
        if documents is None:
            raise ValueError("align needs the training documents")
        say(f"align: {cfg.align.steps} steps on the new rows ({'tied' if tied else 'untied'} base)")
        aligned = align_new_rows(model, base_tok, extended_tok, new_ids, documents, cfg.align)
    model.save_pretrained(out)
    metadata = {
        "base_model": name,
        "base_vocab_size": len(base_tok),
        "embedding_rows_before": rows_before,
        "embedding_rows": model.get_input_embeddings().weight.shape[0],
        "spare_rows_filled": spare_filled,
        "rows_appended": model.get_input_embeddings().weight.shape[0] - rows_before,
        "vocab_size": len(extended_tok),
        "new_token_ids": new_ids,
        "tied_embeddings": tied,
        "dtype": str(model.dtype).removeprefix("torch."),
        "init": cfg.new_rows.model_dump(),
        "init_seconds": round(init_seconds, 3),
        "align": aligned,
        "checkpoint_seconds": round(time.perf_counter() - start, 2),
        "tokenizer_report": tokenizer_report,
    }
    write_json(out / EXTENSION_FILE, metadata)
    return metadata
