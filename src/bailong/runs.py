"""Run folders of training stages: metadata that lets later stages load a run as a model, and the loss plot."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

from bailong.config_file import CONFIG_FILE
from bailong.errors import BailongError
from bailong.outputs import atomic_output_dir

RUN_FILE = "bailong_run.json"
ADAPTER_DIR = "adapter"
METRICS_PNG = "loss.png"


def read_run(path: str | Path) -> dict | None:
    """The metadata of a finished training run folder, or None if `path` is not one."""
    file = Path(path) / RUN_FILE
    return json.loads(file.read_text(encoding="utf-8")) if file.is_file() else None


def write_run(run_dir: Path, metadata: dict) -> None:
    tmp = run_dir / f".{RUN_FILE}.tmp"
    tmp.write_text(json.dumps(metadata, ensure_ascii=False, indent=2), encoding="utf-8")
    tmp.replace(run_dir / RUN_FILE)


def plot_metrics(metrics_file: Path, png: Path) -> bool:
    """Training loss, and held-out loss and bits per character where present, against the step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in metrics_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    train = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    held = [(r["step"], r["eval_loss"]) for r in rows if "eval_loss" in r]
    bpc = [(r["step"], r["eval_bits_per_char"]) for r in rows if "eval_bits_per_char" in r]
    if not train and not held:
        return False
    fig, axes = plt.subplots(1, 2 if bpc else 1, figsize=(11 if bpc else 6, 4), squeeze=False)
    ax = axes[0][0]
    if train:
        ax.plot(*zip(*train), label="training loss")
    if held:
        ax.plot(*zip(*held), marker="o", label="held-out loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
    ax.legend()
    if bpc:
        axes[0][1].plot(*zip(*bpc), marker="o", color="tab:green")
        axes[0][1].set_xlabel("step")
        axes[0][1].set_ylabel("held-out bits per character")
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return True


# Keys that may differ when a run is resumed: how long to train and how to resume.
_RESUMABLE_CHANGES = {("train", "max_steps"), ("train", "epochs"), ("train", "resume"), ("train", "save_steps")}


def check_run_dir(run_dir: Path, cfg, overwrite: bool) -> None:
    """A run folder holds one run: the same config may resume in it; anything else is refused."""
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


def _diff(old, new, prefix=()) -> list[tuple]:
    if isinstance(old, dict) and isinstance(new, dict):
        return [k for key in old.keys() | new.keys() for k in _diff(old.get(key), new.get(key), (*prefix, key))]
    return [] if old == new else [prefix]


def finish_run(trainer, run_dir: Path, base_name: str, metadata: dict) -> dict:
    """After training: the adapter (written whole or not at all), the loss plot, and the run metadata that lets later
    stages load `run_dir` as a model. Returns the metadata ({} on processes other than the first)."""
    from bailong.loading import resolve_source
    from bailong.trainer import METRICS_FILE, ranks_in_sync

    in_sync = ranks_in_sync(trainer.model)
    if not in_sync:
        raise RuntimeError("the processes ended with different weights: the distributed run is out of sync")
    if trainer.args.process_index != 0:
        return {}
    with atomic_output_dir(run_dir / ADAPTER_DIR, overwrite=True) as tmp:
        trainer.model.save_pretrained(tmp, save_embedding_layers=False)
    plot_metrics(run_dir / METRICS_FILE, run_dir / METRICS_PNG)
    base = resolve_source(base_name)
    metadata = {
        **metadata,
        "base_model": base.path if base.is_local else base_name,
        "adapter": ADAPTER_DIR,
        "steps": trainer.state.global_step,
        "world_size": trainer.args.world_size,
        "ranks_in_sync": in_sync,
        "log": [r for r in trainer.state.log_history if "eval_loss" in r or "train_loss" in r],
    }
    write_run(run_dir, metadata)
    return metadata
