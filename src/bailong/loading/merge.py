"""A training run's adapter merged into a full-precision copy of its base, written as a plain HF checkpoint.

The merge never touches 4-bit weights: the base is loaded again unquantized (its saved dtype), the adapter loaded on
top, merged, and written with the run's tokenizer.

On a tied base (SmolLM2, Gemma) the input embedding and the LM head share one matrix, but the run may have trained
them apart (LoRA on both, or full copies of both): merged in place, both deltas would land in the one matrix and both
sides would get both. The head gets its own copy of the matrix before the merge, and the two are tied again only if
they come out equal.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from bailong.artifacts import ADAPTER_DIR, EXTENSION_FILE, atomic_output_dir, check_output_dir, read_run
from bailong.errors import BailongError
from bailong.loading.models import load_model
from bailong.loading.sources import resolve_source
from bailong.loading.tokenizers import load_tokenizer, sentencepiece_file


@dataclass
class MergedRun:
    model: object  # the merged transformers model, full precision
    tokenizer: object
    run: dict  # the run's bailong_run.json
    untied: bool  # a tied base whose embedding and head the run trained apart: written as two matrices


def read_finished_run(run_dir: Path) -> dict:
    run = read_run(run_dir)
    if run is None:
        raise BailongError(
            f"{run_dir}: not a finished bailong training run (no bailong_run.json); pass the output_dir of a pretrain "
            "or sft run that finished (rerun its config to finish it)"
        )
    return run


def merged_run(run_dir: Path) -> MergedRun:
    """The run's adapter merged into a full-precision copy of its base, its embedding and head untied if they differ."""
    from bailong.config import ModelConfig

    run = read_finished_run(run_dir)
    tokenizer = load_tokenizer(str(run_dir))
    model = load_model(
        ModelConfig(name_or_path=run["base_model"], adapter=str(Path(run_dir) / ADAPTER_DIR)),
        keep_checkpoint_dtype=True,
    )
    tied = _untie_head(model.get_base_model())
    merged = model.merge_and_unload()
    untied = tied and not _retie_if_equal(merged)
    return MergedRun(merged, tokenizer, run, untied)


def merge_run(run_dir: Path, target: Path, overwrite: bool = False) -> MergedRun:
    """Writes the merged checkpoint of the finished run `run_dir` into `target`."""
    read_finished_run(run_dir)
    check_output_dir(target, overwrite, "export folder")  # before the merge, which takes minutes on a big model
    result = merged_run(run_dir)
    with atomic_output_dir(target, overwrite) as out:
        result.model.save_pretrained(out)
        result.tokenizer.save_pretrained(out)
        for file in base_tokenizer_files(result.run):  # the SentencePiece model, how the vocabulary was extended
            shutil.copy(file, out / file.name)
    return result


def base_tokenizer_files(run: dict) -> list[Path]:
    """The base's SentencePiece model and extension record, which the run's saved tokenizer does not carry."""
    files = []
    sp_model = sentencepiece_file(run["base_model"])
    if sp_model is not None and sp_model.name == "tokenizer.model":
        files.append(sp_model)
    source = resolve_source(run["base_model"])
    if source.kind == "hf_dir" and (Path(source.path) / EXTENSION_FILE).is_file():
        files.append(Path(source.path) / EXTENSION_FILE)
    return files


def base_config(run: dict):
    """The transformers config of the run's base (no weights loaded)."""
    from transformers import AutoConfig

    source = resolve_source(run["base_model"])
    return AutoConfig.from_pretrained(source.path, **({"gguf_file": source.gguf_file} if source.gguf_file else {}))


def _innermost(module):
    """The plain layer under peft's wrappers (a LoRA layer's base_layer, a saved module's original)."""
    while True:
        inner = getattr(module, "base_layer", None) or getattr(module, "original_module", None)
        if inner is None:
            return module
        module = inner


def _untie_head(model) -> bool:
    """Gives the LM head its own copy of a matrix it shares with the input embedding; whether it shared one."""
    import torch

    embedding = _innermost(model.get_input_embeddings())
    head = model.get_output_embeddings()
    if head is None or _innermost(head).weight is not embedding.weight:
        return False
    _innermost(head).weight = torch.nn.Parameter(embedding.weight.detach().clone(), requires_grad=False)
    return True


def _retie_if_equal(model) -> bool:
    """Ties the head back to the input embedding if the merge left them equal; whether it did."""
    import torch

    embedding, head = model.get_input_embeddings(), model.get_output_embeddings()
    if not torch.equal(embedding.weight, head.weight):
        model.config.tie_word_embeddings = False
        return False
    head.weight = embedding.weight
    model.config.tie_word_embeddings = True
    return True
