"""The loss plot of a training run (loss.png): training and held-out loss, and held-out bits per character."""

from __future__ import annotations

from pathlib import Path

from bailong.artifacts import read_metrics

PACKED_BPC_KEYS = ("eval_packed_bits_per_char", "eval_bits_per_char")  # the second: metrics written by bailong 0.1


def plot_metrics(run_dir: Path, png: Path) -> bool:
    """Training loss, and held-out loss and bits per character where present, against the step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(run_dir)
    train = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    held = [(r["step"], r["eval_loss"]) for r in rows if "eval_loss" in r]
    bpc = [
        (r["step"], next(r[k] for k in PACKED_BPC_KEYS if k in r)) for r in rows if any(k in r for k in PACKED_BPC_KEYS)
    ]
    if not train and not held:
        return False
    fig, axes = plt.subplots(1, 2 if bpc else 1, figsize=(11 if bpc else 6, 4), squeeze=False)
    ax = axes[0][0]
    if train:  # a marker where there is one point only: a line through one point draws nothing
        ax.plot(*zip(*train), marker="o" if len(train) == 1 else None, label="training loss")
    if held:
        ax.plot(*zip(*held), marker="o", label="held-out loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
    ax.legend()
    if bpc:
        axes[0][1].plot(*zip(*bpc), marker="o", color="tab:green")
        axes[0][1].set_xlabel("step")
        axes[0][1].set_ylabel("held-out bits per character (packed blocks)")
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return True
