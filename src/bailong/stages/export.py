"""`bailong export`: a training run's adapter merged into a full-precision copy of its base, as a plain checkpoint."""

from pathlib import Path
from typing import Annotated

import typer


def run(
    run_dir: Annotated[
        Path, typer.Argument(help="the output_dir of a finished pretrain or sft run", show_default=False, metavar="RUN")
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", metavar="DIR", help="where to write; default RUN/NAME-merged, NAME being the run folder's name"
        ),
    ] = None,
    to: Annotated[Path | None, typer.Option("--to", metavar="DIR", help="deprecated: use --out", hidden=True)] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace a non-empty target folder")] = False,
) -> Path:
    """Merge a run's adapter into a full-precision copy of its base and write a plain HF checkpoint."""
    from bailong.artifacts import ADAPTER_DIR, merged_dir
    from bailong.console import say
    from bailong.loading.merge import merge_run

    if to is not None:
        say("note: --to is deprecated; use --out (the same flag as in bailong report)", err=True)
    target = Path(out or to or merged_dir(Path(run_dir)))
    run = merge_run(Path(run_dir), target, overwrite)
    say(
        f"read {run_dir}/{ADAPTER_DIR} ({run.get('stage', 'training')} run, {run.get('steps', '?')} steps) and its "
        f"base {run['base_model']}; wrote the merged checkpoint {target} (load it with transformers, bailong chat "
        f"or bailong serve)"
    )
    return target
