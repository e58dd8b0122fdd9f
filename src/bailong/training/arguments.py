"""transformers' TrainingArguments from the `train` section."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from transformers import TrainingArguments

from bailong.artifacts import CHECKPOINTS_DIR
from bailong.config.training import TrainConfig


def mixed_precision(train: TrainConfig) -> dict:
    wanted = train.precision
    if wanted == "auto":
        wanted = "bfloat16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "float32"
    return {"bf16": wanted == "bfloat16", "fp16": wanted == "float16"}


def training_arguments(
    train: TrainConfig, run_dir: Path, has_validation: bool, padded: bool = False
) -> TrainingArguments:
    """Trainer's arguments for a run; `padded` batches count only their real tokens as tokens seen."""
    eval_steps = train.eval_steps or train.save_steps
    return TrainingArguments(
        output_dir=str(run_dir / CHECKPOINTS_DIR),
        per_device_train_batch_size=train.batch_size,
        per_device_eval_batch_size=train.batch_size,
        gradient_accumulation_steps=train.grad_accum,
        learning_rate=train.learning_rate,
        lr_scheduler_type=train.lr_scheduler,
        warmup_steps=train.warmup_ratio,  # a float below 1 is a share of the steps
        weight_decay=train.weight_decay,
        max_grad_norm=train.max_grad_norm,
        max_steps=train.max_steps,
        num_train_epochs=train.epochs,
        optim=train.optimizer,
        gradient_checkpointing=train.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False} if train.gradient_checkpointing else None,
        logging_steps=train.logging_steps,
        logging_first_step=True,
        eval_strategy="steps" if has_validation else "no",
        eval_steps=eval_steps if has_validation else None,
        save_strategy="steps",
        save_steps=train.save_steps,
        save_total_limit=train.save_total_limit,
        seed=train.seed,
        data_seed=train.seed,
        report_to=train.report_to or "none",
        remove_unused_columns=False,
        use_cpu=not torch.cuda.is_available(),
        ddp_backend="gloo" if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available() else None,
        ddp_find_unused_parameters=False,
        # Blocks are full-length, so every rank sees the same token count: a plain mean per rank is exact, and the
        # logged loss stays per token instead of scaled by the number of processes.
        average_tokens_across_devices=False,
        dataloader_num_workers=0,
        use_cache=False,  # with a KV cache the masks ignore position ids, and packed samples would attend across
        include_num_input_tokens_seen="non_padding" if padded else "all",
        **mixed_precision(train),
    )
