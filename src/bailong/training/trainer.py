"""The one training loop every training stage uses: transformers' Trainer with bailong's checkpoints and logs."""

from __future__ import annotations

import errno
import functools
import json
import shutil
import time
from pathlib import Path

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments, default_data_collator
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from bailong.artifacts import METRICS_FILE, keep_metrics_until
from bailong.config.training import TrainConfig
from bailong.console import say
from bailong.data.training_set import TrainingData
from bailong.errors import BailongError
from bailong.inference.head_outputs import supports_chunked_head
from bailong.training.checkpoints import checkpoints, mark_complete, resume_from
from bailong.training.chunked_loss import causal_lm_loss

EMBEDDING_NAMES = ("embed_tokens", "lm_head")


def optimizer_groups(model, weight_decay: float, decay_names: set[str], embedding_lr: float | None) -> list[dict]:
    """Parameter groups: weight decay except on norms and biases (Trainer's split, `decay_names`), and with
    `embedding_lr`, the embedding and LM head parameters at their own learning rate."""
    groups: dict[tuple[bool, bool], list] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            is_embedding = embedding_lr is not None and any(n in name for n in EMBEDDING_NAMES)
            groups.setdefault((is_embedding, name in decay_names), []).append(param)
    out = []
    for (is_embedding, decays), params in sorted(groups.items()):
        group = {"params": params, "weight_decay": weight_decay if decays else 0.0}
        if is_embedding:
            group["lr"] = embedding_lr
        out.append(group)
    return out


class BailongTrainer(Trainer):
    """Trainer with a separate learning rate for embedding parameters and token throughput in every log."""

    def __init__(
        self, *args, embedding_lr: float | None = None, data: TrainingData, chunked_loss: bool = False, **kwargs
    ):
        super().__init__(*args, **kwargs)
        self.chunked_loss = chunked_loss and supports_chunked_head(self.accelerator.unwrap_model(self.model))
        self.embedding_lr = embedding_lr
        self.data = data
        self._clock: tuple[float, int] | None = None

    def create_optimizer(self, model=None):
        if self.optimizer is None and self.embedding_lr is not None:
            opt_model = self.model if model is None else model
            decay_names = set(self.get_decay_parameter_names(opt_model))
            groups = optimizer_groups(opt_model, self.args.weight_decay, decay_names, self.embedding_lr)
            cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(self.args, opt_model)
            self.optimizer = cls(groups, **kwargs)
        return super().create_optimizer(model)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if not self.chunked_loss or "labels" not in inputs:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        # Trainer treats a loss divided by num_items_in_batch as already scaled for gradient accumulation exactly
        # when the model accepts loss kwargs, so the same condition decides the division here.
        loss = causal_lm_loss(model, inputs, num_items_in_batch if self.model_accepts_loss_kwargs else None)
        return (loss, {"loss": loss}) if return_outputs else loss

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
            bpc = self.data.packed_bits_per_char(logs["eval_loss"])
            if bpc is not None:
                logs["eval_packed_bits_per_char"] = round(bpc, 4)
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
            mark_complete(Path(args.output_dir) / f"checkpoint-{state.global_step}", state.global_step)


class ConsoleLog(TrainerCallback):
    """One readable line per logging step instead of Trainer's dicts and bar: the step, the loss, the learning rate,
    tokens per second, and held-out loss and bits per character when measured."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        step = f"step {state.global_step}/{state.max_steps}"
        if "loss" in logs:
            line = f"{step}  loss {logs['loss']:.4f}  lr {logs.get('learning_rate', 0):.2e}"
            if "tokens_per_s" in logs:
                line += f"  {logs['tokens_per_s']:,.0f} tokens/s"
            say(line)
        if "eval_loss" in logs:
            line = f"{step}  held-out loss {logs['eval_loss']:.4f}"
            if "eval_packed_bits_per_char" in logs:
                line += f"  bits/char {logs['eval_packed_bits_per_char']:.3f}"
            say(line)


class StepZeroEvaluation(TrainerCallback):
    """The held-out baseline the curve starts from, measured once training has set up (evaluating before
    `train()` would keep the model from being wrapped for distributed training)."""

    def __init__(self, trainer: Trainer):
        self.trainer = trainer

    def on_train_begin(self, args, state, control, **kwargs):
        if state.global_step == 0:
            self.trainer.evaluate()


def train_model(
    model,
    tokenizer,
    data: TrainingData,
    train: TrainConfig,
    args: TrainingArguments,
    run_dir: Path,
    *,
    collator=None,
    embedding_lr: float | None = None,
    callbacks: list | None = None,
) -> Trainer:
    """Runs (or resumes) training with `args`; returns the Trainer after the last step. The default collator stacks
    equal-length blocks."""
    folder = Path(args.output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    trainer = BailongTrainer(
        model=model,
        args=args,
        train_dataset=data.train,
        eval_dataset=data.validation,
        data_collator=collator or default_data_collator,
        processing_class=tokenizer,
        callbacks=[RunFiles(run_dir), ConsoleLog(), *(callbacks or [])],
        embedding_lr=embedding_lr,
        data=data,
        chunked_loss=train.chunked_loss,
    )
    trainer.remove_callback(PrinterCallback)  # ConsoleLog prints the logs
    trainer.remove_callback(ProgressCallback)
    checkpoint = resume_from(folder, train.resume, args.process_index == 0)
    if checkpoint:
        say(f"resuming from {checkpoint}")
        if args.process_index == 0:
            state = json.loads((Path(checkpoint) / "trainer_state.json").read_text(encoding="utf-8"))
            keep_metrics_until(run_dir, state["global_step"])
    else:
        if args.process_index == 0:
            (run_dir / METRICS_FILE).unlink(missing_ok=True)  # a fresh run; a resumed one appends
        if data.validation is not None:
            trainer.add_callback(StepZeroEvaluation(trainer))
    try:
        trainer.train(resume_from_checkpoint=checkpoint)
    except Exception as exc:
        if not disk_full(exc, folder):
            raise
        complete, _ = checkpoints(folder)
        resumes = f"its last complete checkpoint ({complete[-1]})" if complete else "the start (no complete checkpoint)"
        raise BailongError(
            f"no space left on the device while writing into {folder}; free some space (or lower "
            f"train.save_total_limit) and rerun the same command: the run resumes from {resumes}"
        ) from exc
    return trainer


def disk_full(exc: BaseException, folder: Path) -> bool:
    """Whether `exc` (or what caused it) is a full disk: an ENOSPC, or a failed write (torch's and safetensors' own
    errors name no errno) with nearly no space left under `folder`."""
    while exc is not None:
        text = str(exc)
        if getattr(exc, "errno", None) == errno.ENOSPC or "No space left on device" in text:
            return True
        if "write" in text.lower() and shutil.disk_usage(folder).free < 1 << 20:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def weights_fingerprint(model) -> torch.Tensor:
    """Sum and absolute sum of the trainable weights, in fp64, on the parameters' device (NCCL refuses CPU tensors)."""
    params = [p for p in model.parameters() if p.requires_grad]
    device = params[0].device if params else torch.device("cpu")
    total = torch.zeros(2, dtype=torch.float64, device=device)
    for param in params:
        weights = param.detach().to(device=device, dtype=torch.float64)
        total += torch.stack([weights.sum(), weights.abs().sum()])
    return total


def ranks_in_sync(model) -> bool:
    """In a distributed run, whether every rank ended with the same trainable weights (True when not distributed)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return True
    total = weights_fingerprint(model)
    gathered = [torch.zeros_like(total) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, total)
    return all(torch.equal(g, gathered[0]) for g in gathered)
