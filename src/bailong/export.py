"""`bailong export`: a training run's adapter merged into a full-precision copy of its base, as a plain checkpoint.

The merge never touches 4-bit weights: the base is loaded again unquantized (its saved dtype, float32 when that is
a half dtype on a CPU), the adapter loaded on top, merged, and written with the run's tokenizer.
"""

from __future__ import annotations

from pathlib import Path

from bailong.config import ModelConfig
from bailong.errors import BailongError
from bailong.loading import load_model, load_tokenizer
from bailong.outputs import atomic_output_dir
from bailong.runs import ADAPTER_DIR, read_run


def export(run_dir: Path, to: Path | None = None, overwrite: bool = False) -> Path:
    run = read_run(run_dir)
    if run is None:
        raise BailongError(f"{run_dir}: not a finished bailong training run (no bailong_run.json)")
    target = Path(to) if to else Path(run_dir) / "merged"
    tokenizer = load_tokenizer(str(run_dir))
    model = load_model(ModelConfig(name_or_path=run["base_model"], adapter=str(Path(run_dir) / ADAPTER_DIR)),
                       keep_checkpoint_dtype=True)
    merged = model.merge_and_unload()
    with atomic_output_dir(target, overwrite) as out:
        merged.save_pretrained(out)
        tokenizer.save_pretrained(out)
    print(f"merged {run_dir}/{ADAPTER_DIR} into {run['base_model']}; wrote {target}")
    return target
