"""`bailong sft`: (Q)LoRA supervised fine-tuning on multi-turn chat data, loss on assistant turns only.

Same loading core, trainer, checkpoints and logs as `pretrain`. The starting point is any model; a pretrain run
folder either keeps training its adapter (`pretrain_adapter: continue`) or is merged into a full-precision copy of its
base, saved in `output_dir/base`, that a fresh adapter trains on (`merge`).
"""

from __future__ import annotations

from pathlib import Path

from bailong.artifacts import MERGED_BASE_DIR, read_run
from bailong.config import SftConfig
from bailong.console import is_main_process, say
from bailong.errors import BailongError
from bailong.loading import check_model_fits, extension_of, resolve_source


def starting_point(cfg: SftConfig, run_dir: Path) -> tuple[str, bool]:
    """(the base to load, whether the pretrain adapter trains on). With `merge`, writes the merged base first."""
    source = resolve_source(cfg.model.name_or_path)
    run = read_run(source.path) if source.kind == "run" else None
    if run is None:
        return cfg.model.name_or_path, False
    if cfg.pretrain_adapter == "continue":
        return run["base_model"], True
    merged = run_dir / MERGED_BASE_DIR
    if is_main_process() and not (merged / "config.json").is_file():
        from bailong.loading.merge import merge_run

        merge_run(Path(source.path), merged, overwrite=True)
    return str(merged), False


def collator(cfg: SftConfig, tokenizer):
    from transformers import DataCollatorForSeq2Seq, DataCollatorWithFlattening

    if cfg.data.packing:  # one row per batch; position ids restart per sample so attention stays within it
        return DataCollatorWithFlattening(return_position_ids=True, separator_id=-100)
    return DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100)


def run(cfg: SftConfig, overwrite: bool = False) -> dict:
    from transformers import set_seed

    from bailong.data.chat_template import set_template
    from bailong.data.sft_data import build_sft_data
    from bailong.loading import load_model
    from bailong.loading.adapters import model_with_fresh_adapter
    from bailong.training.run import TrainingRun

    run = TrainingRun(cfg, overwrite)
    if run.finished is not None:
        return run.finished
    with run.removed_if_it_fails_early():
        set_template(run.tokenizer, cfg.chat.template)
        data, counts = build_sft_data(
            cfg.data, run.tokenizer, cfg.chat.train_on, cfg.chat.system_prompt, cfg.train.seed
        )
        say(f"chat data: {counts.summary()}")
        args = run.arguments(
            data, bool(cfg.data.validation_files) or cfg.data.validation > 0, padded=not cfg.data.packing
        )
        base, continue_adapter = starting_point(cfg, run.dir)
        if args.world_size > 1:
            import torch.distributed as dist

            dist.barrier()  # the merged base is written by the first process
        check_model_fits(cfg.model, base, run.tokenizer, ("data.max_length", cfg.data.max_length))
        extension = extension_of(base)
        if cfg.embeddings.train == "new-rows" and not continue_adapter and not (extension or {}).get("new_token_ids"):
            raise BailongError(
                f"embeddings.train: new-rows needs an extend-vocab output as the base ({base!r} has none)"
            )

        set_seed(cfg.train.seed)
        if continue_adapter:
            say(f"continuing the adapter of {cfg.model.name_or_path} (the lora and embeddings sections do not apply)")
            model = load_model(
                cfg.model, cfg.quantization, trainable=True, gradient_checkpointing=cfg.train.gradient_checkpointing
            )
        else:
            model = model_with_fresh_adapter(
                cfg.model.model_copy(update={"name_or_path": base}),
                cfg.quantization,
                cfg.lora,
                cfg.embeddings,
                (extension or {}).get("new_token_ids"),
                cfg.train.gradient_checkpointing,
            )
        metadata = run.train(
            model,
            data,
            args,
            base_model=base,
            collator=collator(cfg, run.tokenizer),
            metadata={
                "stage": "sft",
                "started_from": cfg.model.name_or_path,
                "pretrain_adapter": cfg.pretrain_adapter if base != cfg.model.name_or_path else None,
                "chat_template": cfg.chat.template,
                "train_on": cfg.chat.train_on,
                "samples": counts.samples,
                "data": counts.summary(),
            },
        )
        if metadata:
            run.summary(
                metadata, "eval_loss", "held-out loss on assistant tokens", f"; chat with it: bailong chat {run.dir}"
            )
    return metadata
