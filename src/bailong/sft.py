"""`bailong sft`: (Q)LoRA supervised fine-tuning on multi-turn chat data, loss on assistant turns only.

Same loading core, trainer, checkpoints and logs as `pretrain`. The starting point is any model; a pretrain run
folder either keeps training its adapter (`pretrain_adapter: continue`) or is merged into a full-precision copy of its
base, saved in `output_dir/base`, that a fresh adapter trains on (`merge`).
"""

from __future__ import annotations

from pathlib import Path

from transformers import set_seed

from bailong.chat_template import set_template
from bailong.config import SftConfig
from bailong.config_file import CONFIG_FILE, dump_config
from bailong.data.sft import build_sft_data
from bailong.errors import BailongError
from bailong.loading import load_model, resolve_source
from bailong.pretrain import check_model_fits, extension_metadata, prepare_model, start_run
from bailong.runs import ADAPTER_DIR, METRICS_PNG, finish_run, read_run
from bailong.trainer import train_model, training_arguments

MERGED_BASE_DIR = "base"


def starting_point(cfg: SftConfig, run_dir: Path, is_main: bool) -> tuple[str, bool]:
    """(the base to load, whether the pretrain adapter trains on). With `merge`, writes the merged base first."""
    source = resolve_source(cfg.model.name_or_path)
    run = read_run(source.path) if source.kind == "run" else None
    if run is None:
        return cfg.model.name_or_path, False
    if cfg.pretrain_adapter == "continue":
        return run["base_model"], True
    merged = run_dir / MERGED_BASE_DIR
    if is_main and not (merged / "config.json").is_file():
        from bailong.export import export

        export(Path(source.path), merged, overwrite=True)
    return str(merged), False


def collator(cfg: SftConfig, tokenizer):
    from transformers import DataCollatorForSeq2Seq, DataCollatorWithFlattening

    if cfg.data.packing:  # one row per batch; position ids restart per sample so attention stays within it
        return DataCollatorWithFlattening(return_position_ids=True, separator_id=-100)
    return DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100)


def sft(cfg: SftConfig, overwrite: bool = False) -> dict:
    run_dir, tokenizer = start_run(cfg, overwrite)
    set_template(tokenizer, cfg.chat.template)
    has_validation = bool(cfg.data.validation_files) or cfg.data.validation > 0
    args = training_arguments(cfg.train, run_dir, has_validation, padded=not cfg.data.packing)
    base, continue_adapter = starting_point(cfg, run_dir, args.process_index == 0)
    if args.world_size > 1:
        import torch.distributed as dist

        dist.barrier()  # the merged base is written by the first process
    check_model_fits(cfg.model, base, tokenizer, ("data.max_length", cfg.data.max_length))
    extension = extension_metadata(base)
    if cfg.embeddings.train == "new-rows" and not continue_adapter and not (extension or {}).get("new_token_ids"):
        raise BailongError(f"embeddings.train: new-rows needs an extend-vocab output as the base ({base!r} has none)")
    data, counts = build_sft_data(cfg.data, tokenizer, cfg.chat.train_on, cfg.chat.system_prompt, cfg.train.seed)
    print(f"chat data: {counts.summary()}")

    set_seed(cfg.train.seed)
    if continue_adapter:
        print(f"continuing the adapter of {cfg.model.name_or_path} (the lora and embeddings sections do not apply)")
        model = load_model(cfg.model, cfg.quantization, trainable=True,
                           gradient_checkpointing=cfg.train.gradient_checkpointing)
    else:
        model = prepare_model(cfg.model_copy(update={"model": cfg.model.model_copy(update={"name_or_path": base})}),
                              extension)
    trainable, total = model.get_nb_trainable_parameters()
    print(f"trainable parameters: {trainable:,} of {total:,} ({100 * trainable / total:.2f}%)")
    (run_dir / CONFIG_FILE).write_text(dump_config(cfg), encoding="utf-8")
    tokenizer.save_pretrained(run_dir)

    trainer = train_model(model, tokenizer, data, cfg.train, args, run_dir, collator=collator(cfg, tokenizer),
                          embedding_lr=cfg.embeddings.learning_rate)
    metadata = finish_run(trainer, run_dir, base, {
        "stage": "sft",
        "started_from": cfg.model.name_or_path,
        "pretrain_adapter": cfg.pretrain_adapter if base != cfg.model.name_or_path else None,
        "chat_template": cfg.chat.template,
        "train_on": cfg.chat.train_on,
        "trainable_parameters": trainable,
        "total_parameters": total,
        "samples": counts.samples,
        "data": counts.summary(),
    })
    if metadata:
        evals = [r for r in metadata["log"] if "eval_loss" in r]
        if len(evals) >= 2:
            print(f"held-out loss on assistant tokens: {evals[0]['eval_loss']:.3f} at step {evals[0]['step']} -> "
                  f"{evals[-1]['eval_loss']:.3f} at step {evals[-1]['step']}")
        print(f"wrote {run_dir} ({metadata['steps']} steps; adapter in {run_dir / ADAPTER_DIR}, curves in "
              f"{run_dir / METRICS_PNG}); chat with it: bailong chat {run_dir}")
    return metadata

