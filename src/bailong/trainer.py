"""The one training loop every training stage uses: transformers' Trainer with bailong's checkpoints and logs.

Checkpoints are Trainer's (adapter, optimizer, scheduler, RNG, trainer state incl. the data position) in
`output_dir/checkpoints/checkpoint-N`; a checkpoint counts as complete only once a marker file is written after
Trainer has saved everything, so `train.resume: auto` never picks one that a kill left half-written.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import time
from pathlib import Path

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments, default_data_collator

from bailong.config import TrainConfig
from bailong.data.packing import TrainingData
from bailong.errors import BailongError

COMPLETE_MARKER = "bailong_complete"
METRICS_FILE = "metrics.jsonl"
_STEP = re.compile(r"^checkpoint-(\d+)$")


def checkpoints(folder: Path) -> tuple[list[Path], list[Path]]:
    """(complete, incomplete) checkpoint folders, oldest first."""
    found = sorted((p for p in folder.glob("checkpoint-*") if _STEP.match(p.name)), key=lambda p: int(p.name[11:]))
    complete = [p for p in found if (p / COMPLETE_MARKER).exists()]
    return complete, [p for p in found if p not in complete]


def resume_from(folder: Path, resume: str, is_main: bool) -> str | None:
    """The checkpoint to resume from: `auto` picks the newest complete one (and removes half-written ones)."""
    if resume == "never":
        return None
    if resume != "auto":
        if not (Path(resume) / COMPLETE_MARKER).exists():
            raise BailongError(f"train.resume: {resume} is not a complete bailong checkpoint")
        return resume
    complete, incomplete = checkpoints(folder)
    if is_main:
        for path in incomplete:
            shutil.rmtree(path, ignore_errors=True)
    return str(complete[-1]) if complete else None


def precision(train: TrainConfig) -> dict:
    wanted = train.precision
    if wanted == "auto":
        wanted = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"
    return {"bf16": wanted == "bf16", "fp16": wanted == "fp16"}


def training_arguments(train: TrainConfig, run_dir: Path, has_validation: bool, padded: bool = False
                       ) -> TrainingArguments:
    """Trainer's arguments for a run; `padded` batches count only their real tokens as tokens seen."""
    eval_steps = train.eval_steps or train.save_steps
    return TrainingArguments(
        output_dir=str(run_dir / "checkpoints"),
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
        **precision(train),
    )


class BailongTrainer(Trainer):
    """Trainer with a separate learning rate for embedding parameters and token throughput in every log."""

    def __init__(self, *args, embedding_lr: float | None = None, data: TrainingData, **kwargs):
        super().__init__(*args, **kwargs)
        self.embedding_lr = embedding_lr
        self.data = data
        self._clock: tuple[float, int] | None = None

    def create_optimizer(self, model=None):
        if self.optimizer is None and self.embedding_lr is not None:
            opt_model = self.model if model is None else model
            embedding, other = [], []
            for name, param in opt_model.named_parameters():
                if param.requires_grad:
                    (embedding if ("embed_tokens" in name or "lm_head" in name) else other).append(param)
            cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(self.args, opt_model)
            groups = [{"params": other}, {"params": embedding, "lr": self.embedding_lr}]
            self.optimizer = cls([g for g in groups if g["params"]], **kwargs)
        return super().create_optimizer(model)

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        # peft stores whole embedding matrices whenever LoRA targets embed_tokens/lm_head ("auto"); the base already
        # has them (the extended checkpoint), so checkpoints keep only the adapter.
        save = self.model.save_pretrained
        self.model.save_pretrained = functools.partial(save, save_embedding_layers=False)
        try:
            super()._save(output_dir, state_dict)
        finally:
            del self.model.save_pretrained

    def log(self, logs: dict, start_time: float | None = None) -> None:
        seen = self.state.num_input_tokens_seen
        logs["tokens_seen"] = seen
        now = time.perf_counter()
        if self._clock is not None and seen > self._clock[1] and "loss" in logs:
            logs["tokens_per_s"] = round((seen - self._clock[1]) / (now - self._clock[0]), 1)
        if "loss" in logs:
            self._clock = (now, seen)
        if "eval_loss" in logs:
            bpc = self.data.bits_per_char(logs["eval_loss"])
            if bpc is not None:
                logs["eval_bits_per_char"] = round(bpc, 4)
        super().log(logs, start_time)


class RunFiles(TrainerCallback):
    """Writes metrics.jsonl as logs arrive and marks each checkpoint complete once Trainer has saved it."""

    def __init__(self, run_dir: Path):
        self.metrics = run_dir / METRICS_FILE

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            row = {"step": state.global_step, **{k: v for k, v in logs.items() if isinstance(v, (int, float))}}
            with self.metrics.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(row) + "\n")

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            (folder / COMPLETE_MARKER).write_text(str(state.global_step))


class StepZeroEvaluation(TrainerCallback):
    """The held-out baseline the curve starts from, measured once training has set up (evaluating before
    `train()` would keep the model from being wrapped for distributed training)."""

    def __init__(self, trainer: Trainer):
        self.trainer = trainer

    def on_train_begin(self, args, state, control, **kwargs):
        if state.global_step == 0:
            self.trainer.evaluate()


def train_model(model, tokenizer, data: TrainingData, train: TrainConfig, args: TrainingArguments, run_dir: Path, *,
                collator=None, embedding_lr: float | None = None, callbacks: list | None = None) -> Trainer:
    """Runs (or resumes) training with `args` (made before the model is loaded, so that they set up the processes);
    returns the Trainer after the last step. The default collator stacks equal-length blocks."""
    folder = Path(args.output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    trainer = BailongTrainer(
        model=model,
        args=args,
        train_dataset=data.train,
        eval_dataset=data.validation,
        data_collator=collator or default_data_collator,
        processing_class=tokenizer,
        callbacks=[RunFiles(run_dir), *(callbacks or [])],
        embedding_lr=embedding_lr,
        data=data,
    )
    checkpoint = resume_from(folder, train.resume, args.process_index == 0)
    if checkpoint:
        print(f"resuming from {checkpoint}")
    else:
        if args.process_index == 0:
            (run_dir / METRICS_FILE).unlink(missing_ok=True)  # a fresh run; a resumed one appends
        if data.validation is not None:
            trainer.add_callback(StepZeroEvaluation(trainer))
    trainer.train(resume_from_checkpoint=checkpoint)
    return trainer


def ranks_in_sync(model) -> bool:
    """In a distributed run, whether every rank ended with the same trainable weights (True when not distributed)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return True
    total = torch.zeros(1, dtype=torch.float64)
    for param in model.parameters():
        if param.requires_grad:
            total += param.detach().double().sum().cpu() + param.detach().double().abs().sum().cpu()
    gathered = [torch.zeros_like(total) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, total)
    return all(torch.equal(g, gathered[0]) for g in gathered)
