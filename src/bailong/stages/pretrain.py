"""`bailong pretrain`: (Q)LoRA continual pre-training of the extended checkpoint on packed TC-heavy text."""

from __future__ import annotations

from bailong.config import PretrainConfig
from bailong.errors import BailongError
from bailong.loading import check_model_fits, extension_of, resolve_source


def preflight(cfg: PretrainConfig, tokenizer) -> dict | None:
    """Checks model, tokenizer and data settings against each other before any data is read; the extension metadata."""
    extension = extension_of(cfg.model.name_or_path)
    if cfg.embeddings.train == "new-rows" and not (extension and extension.get("new_token_ids")):
        raise BailongError(
            f"embeddings.train: new-rows needs the output of bailong extend-vocab as model.name_or_path "
            f"({cfg.model.name_or_path!r} has no extension metadata with new token ids)"
        )
    if resolve_source(cfg.model.name_or_path).kind != "run":
        check_model_fits(cfg.model, cfg.model.name_or_path, tokenizer, ("data.block_size", cfg.data.block_size))
    return extension


def run(cfg: PretrainConfig, overwrite: bool = False) -> dict:
    from transformers import set_seed

    from bailong.data.pretrain_data import build_training_data
    from bailong.loading.adapters import model_with_fresh_adapter
    from bailong.training.run import TrainingRun

    run = TrainingRun(cfg, overwrite)
    if run.finished is not None:
        return run.finished
    with run.removed_if_it_fails_early():
        extension = preflight(cfg, run.tokenizer)
        data = build_training_data(cfg.data, run.tokenizer, cfg.train.seed)
        wanted = bool(cfg.data.validation_files) or (cfg.data.validation > 0 and not cfg.data.streaming)
        args = run.arguments(data, validation_wanted=wanted)
        set_seed(cfg.train.seed)  # the same fresh adapter on every process
        model = model_with_fresh_adapter(
            cfg.model,
            cfg.quantization,
            cfg.lora,
            cfg.embeddings,
            extension["new_token_ids"] if extension else None,
            cfg.train.gradient_checkpointing,
        )
        metadata = run.train(
            model,
            data,
            args,
            base_model=cfg.model.name_or_path,
            metadata={
                "stage": "pretrain",
                "embeddings_train": cfg.embeddings.train,
                "train_blocks": data.train_blocks,
            },
        )
        if metadata:
            run.summary(metadata, "eval_packed_bits_per_char", "held-out bits per character (packed blocks)")
    return metadata
