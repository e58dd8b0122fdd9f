"""Run folders of training stages: metadata that lets later stages load a run as a model, and the loss plot."""

from __future__ import annotations

import json
from pathlib import Path

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
