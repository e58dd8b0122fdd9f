"""`bailong export`: a training run's adapter merged into a full-precision copy of its base, as a plain checkpoint."""

from pathlib import Path
from typing import Annotated

import typer


def run(
    run_dir: Annotated[Path, typer.Argument(help="the output_dir of a pretrain or sft run", show_default=False)],
    to: Annotated[Path | None, typer.Option("--to", help="where to write; default RUN_DIR/merged")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace a non-empty target folder")] = False,
) -> Path:
    """Merge a run's adapter into a full-precision copy of its base and write a plain HF checkpoint."""
    from bailong.artifacts import ADAPTER_DIR, MERGED_DIR
    from bailong.console import say
    from bailong.loading.merge import merge_run

    target = Path(to) if to else Path(run_dir) / MERGED_DIR
    run = merge_run(Path(run_dir), target, overwrite)
    say(f"merged {run_dir}/{ADAPTER_DIR} into {run['base_model']}; wrote {target}")
    return target
