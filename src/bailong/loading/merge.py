"""A training run's adapter merged into a full-precision copy of its base, written as a plain HF checkpoint.

The merge never touches 4-bit weights: the base is loaded again unquantized (its saved dtype), the adapter loaded on
top, merged, and written with the run's tokenizer.
"""

from __future__ import annotations

from pathlib import Path

from bailong.artifacts import ADAPTER_DIR, atomic_output_dir, check_output_dir, read_run
from bailong.errors import BailongError
from bailong.loading.models import load_model
from bailong.loading.tokenizers import load_tokenizer


def merge_run(run_dir: Path, target: Path, overwrite: bool = False) -> dict:
    """Writes the merged checkpoint of the finished run `run_dir` into `target`; returns the run's metadata."""
    from bailong.config import ModelConfig

    run = read_run(run_dir)
    if run is None:
        raise BailongError(
            f"{run_dir}: not a finished bailong training run (no bailong_run.json); pass the output_dir of a pretrain "
            "or sft run that finished (rerun its config to finish it)"
        )
    check_output_dir(target, overwrite, "export folder")  # before the merge, which takes minutes on a big model
    tokenizer = load_tokenizer(str(run_dir))
    model = load_model(
        ModelConfig(name_or_path=run["base_model"], adapter=str(Path(run_dir) / ADAPTER_DIR)),
        keep_checkpoint_dtype=True,
    )
    merged = model.merge_and_unload()
    with atomic_output_dir(target, overwrite) as out:
        merged.save_pretrained(out)
        tokenizer.save_pretrained(out)
    return run
