"""The run skeleton pretrain and sft share: the run folder, Trainer's arguments, training, and the finished run.

A run folder holds one run: the same config resumes in it, anything else is refused. A finished run holds its
adapter (written whole or not at all), the loss plot, and the metadata that lets later stages load it as a model.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from bailong.artifacts import (
    ADAPTER_DIR,
    CONFIG_FILE,
    METRICS_FILE,
    METRICS_PNG,
    atomic_output_dir,
    read_metrics,
    read_run,
    write_run,
)
from bailong.config import dump_config
from bailong.console import is_main_process, say
from bailong.data.training_set import TrainingData
from bailong.errors import BailongError
from bailong.loading import load_tokenizer, resolve_source
from bailong.training.arguments import training_arguments
from bailong.training.curves import plot_metrics
from bailong.training.kernels import apply_kernels, resolve_kernels
from bailong.training.trainer import ranks_in_sync, train_model

# Keys that may differ when a run is resumed: how long to train, how to resume, and where the folder now is.
_RESUMABLE_CHANGES = {
    ("train", "max_steps"),
    ("train", "epochs"),
    ("train", "resume"),
    ("train", "save_steps"),
    ("output_dir",),
}


def check_run_dir(run_dir: Path, cfg, overwrite: bool) -> None:
    """A run folder holds one run: the same config may resume in it; anything else is refused."""
    if run_dir.exists() and not run_dir.is_dir():
        raise BailongError(f"output_dir {run_dir} is a file; choose a folder")
    if not run_dir.exists() or not any(run_dir.iterdir()):
        return
    if overwrite:
        shutil.rmtree(run_dir)
        return
    saved = run_dir / CONFIG_FILE
    if not saved.is_file():
        raise BailongError(f"output_dir {run_dir} exists and is not a bailong run; pass --overwrite or choose another")
    old, new = yaml.safe_load(saved.read_text(encoding="utf-8")), cfg.model_dump(mode="json")
    changed = [k for k in _diff(old, new) if k not in _RESUMABLE_CHANGES]
    if changed:
        keys = ", ".join(".".join(k) for k in changed[:5])
        raise BailongError(
            f"output_dir {run_dir} holds another run's checkpoints with a different config ({keys}); "
            "choose another output_dir or pass --overwrite to start over"
        )


def finished_run(run_dir: Path, cfg) -> dict | None:
    """The metadata of the run in `run_dir` if it already trained as far as `cfg` asks (a rerun has nothing to do)."""
    run = read_run(run_dir)
    saved = run_dir / CONFIG_FILE
    if run is None or not saved.is_file():
        return None
    if cfg.train.max_steps > 0:
        return run if run["steps"] >= cfg.train.max_steps else None
    old = yaml.safe_load(saved.read_text(encoding="utf-8"))["train"]
    same_length = old.get("max_steps") == cfg.train.max_steps and old.get("epochs") == cfg.train.epochs
    return run if same_length else None


def _diff(old, new, prefix=()) -> list[tuple]:
    if isinstance(old, dict) and isinstance(new, dict):
        return [k for key in old.keys() | new.keys() for k in _diff(old.get(key), new.get(key), (*prefix, key))]
    return [] if old == new else [prefix]


class TrainingRun:
    """One training stage's run, step by step: `TrainingRun(cfg)` checks and creates the run folder and loads the
    base tokenizer; `arguments` makes Trainer's arguments once the data is known; `train` reports what trains, saves
    the config and tokenizer, trains (or resumes) and finishes the run."""

    def __init__(self, cfg, overwrite: bool):
        self.cfg = cfg
        self.dir = Path(cfg.output_dir)
        self.started = time.perf_counter()
        self.kernels, why = resolve_kernels(cfg.train.kernels)
        check_run_dir(self.dir, cfg, overwrite)
        self.finished = finished_run(self.dir, cfg)
        if self.finished is not None:
            say(
                f"{self.dir} is complete at step {self.finished['steps']}; nothing to do (raise train.max_steps to "
                "train on from its last checkpoint, or pass --overwrite to start over)"
            )
            return
        self._created = not self.dir.exists()
        self.tokenizer = load_tokenizer(
            cfg.model.tokenizer_source, revision=cfg.model.revision, trust_remote_code=cfg.model.trust_remote_code
        )
        self.dir.mkdir(parents=True, exist_ok=True)
        say(f"kernels: {self.kernels} ({why}); loss: {'chunked' if cfg.train.chunked_loss else 'full logits'}")

    @contextmanager
    def removed_if_it_fails_early(self) -> Iterator[None]:
        """A run that fails before training starts (bad data, a model that does not fit) leaves no folder behind."""
        try:
            yield
        except BaseException:
            if self._created and not (self.dir / CONFIG_FILE).exists():
                shutil.rmtree(self.dir, ignore_errors=True)
            raise

    def arguments(self, data: TrainingData, validation_wanted: bool, padded: bool = False):
        """Trainer's arguments (they set up the processes of a distributed run, so make them before the model)."""
        if validation_wanted and data.validation is None:
            say(
                "note: the held-out text is too short for one training sample, so this run has no held-out "
                "evaluation; raise data.validation or set data.validation_files"
            )
        return training_arguments(self.cfg.train, self.dir, data.validation is not None, padded)

    def train(self, model, data: TrainingData, args, *, base_model: str, metadata: dict, collator=None) -> dict:
        """Trains `model` and finishes the run; returns the run metadata ({} on processes other than the first)."""
        apply_kernels(model, self.kernels)
        trainable, total = model.get_nb_trainable_parameters()
        say(f"trainable parameters: {trainable:,} of {total:,} ({100 * trainable / total:.2f}%)")
        if is_main_process():
            (self.dir / CONFIG_FILE).write_text(dump_config(self.cfg), encoding="utf-8")
            self.tokenizer.save_pretrained(self.dir)
        trainer = train_model(
            model,
            self.tokenizer,
            data,
            self.cfg.train,
            args,
            self.dir,
            collator=collator,
            embedding_lr=self.cfg.embeddings.learning_rate,
        )
        return self._finish(
            trainer, base_model, {**metadata, "trainable_parameters": trainable, "total_parameters": total}
        )

    def _finish(self, trainer, base_model: str, metadata: dict) -> dict:
        # The adapter first: a failing check after the last step must not cost the trained weights.
        if trainer.args.process_index == 0:
            with atomic_output_dir(self.dir / ADAPTER_DIR, overwrite=True) as tmp:
                trainer.model.save_pretrained(tmp, save_embedding_layers=False)
        in_sync = ranks_in_sync(trainer.model)
        if not in_sync:
            raise RuntimeError("the processes ended with different weights: the distributed run is out of sync")
        if trainer.args.process_index != 0:
            return {}
        plot_metrics(self.dir, self.dir / METRICS_PNG)
        base = resolve_source(base_model)
        metadata = {
            **metadata,
            "base_model": base.path if base.is_local else base_model,
            "adapter": ADAPTER_DIR,
            "steps": trainer.state.global_step,
            "world_size": trainer.args.world_size,
            "ranks_in_sync": in_sync,
            "log": [r for r in trainer.state.log_history if "eval_loss" in r or "train_loss" in r],
        }
        write_run(self.dir, metadata)
        return metadata

    def summary(self, metadata: dict, metric: str, label: str, next_step: str = "") -> None:
        """The training loss and the held-out `metric` from first to last, the wall time, and where everything is."""
        rows = read_metrics(self.dir)
        minutes, seconds = divmod(round(time.perf_counter() - self.started), 60)
        say(f"done in {minutes}:{seconds:02d} (min:s), {metadata['steps']} steps")
        for name, key, values in (("training loss", "loss", rows), (label, metric, metadata["log"])):
            points = [r for r in values if key in r]
            if points:
                first, last = points[0], points[-1]
                say(f"{name}: {first[key]:.3f} at step {first['step']} -> {last[key]:.3f} at step {last['step']}")
        say(
            f"wrote {self.dir} (adapter in {self.dir / ADAPTER_DIR}, curves in {self.dir / METRICS_PNG}, every "
            f"logged step in {self.dir / METRICS_FILE}){next_step}"
        )
