"""`bailong export`: a training run's adapter merged into a full-precision copy of its base, as a plain HF checkpoint
(what vLLM and transformers load) or as one GGUF file (what llama.cpp, Ollama and LM Studio load)."""

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer


class Format(str, Enum):
    hf = "hf"
    gguf = "gguf"


class OutType(str, Enum):
    f32 = "f32"
    f16 = "f16"
    bf16 = "bf16"
    q8_0 = "q8_0"


def run(
    run_dir: Annotated[
        Path, typer.Argument(help="the output_dir of a finished pretrain or sft run", show_default=False, metavar="RUN")
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            metavar="DIR",
            help="where to write; default RUN/NAME-merged (hf) or RUN/gguf (gguf), NAME being the run folder's name",
        ),
    ] = None,
    to: Annotated[Path | None, typer.Option("--to", metavar="DIR", help="deprecated: use --out", hidden=True)] = None,
    format: Annotated[  # noqa: A002 - the option is --format
        Format, typer.Option("--format", help="hf: a merged HF checkpoint (vLLM, transformers); gguf: one .gguf file")
    ] = Format.hf,
    outtype: Annotated[
        OutType, typer.Option("--outtype", help="the GGUF's weight type (--format gguf); norms stay f32")
    ] = OutType.f16,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="replace an earlier export (folder or .gguf file)")
    ] = False,
) -> Path:
    """Merge a run's adapter into a full-precision copy of its base; write a plain HF checkpoint or a GGUF file."""
    from bailong.artifacts import ADAPTER_DIR, GGUF_DIR, merged_dir
    from bailong.console import say

    if to is not None:
        say("note: --to is deprecated; use --out (the same flag as in bailong report)", err=True)
    chosen = out or to
    if format == Format.gguf:
        from bailong.gguf.export import export_gguf

        written = export_gguf(Path(run_dir), Path(chosen or Path(run_dir) / GGUF_DIR), outtype.value, overwrite)
        merged, where, what = written.merged, written.path, f"the {outtype.value} GGUF"
        use = "load it with llama.cpp, Ollama or LM Studio"
    else:
        from bailong.loading.merge import merge_run

        where = Path(chosen or merged_dir(Path(run_dir)))
        merged, what = merge_run(Path(run_dir), where, overwrite), "the merged checkpoint"
        use = "load it with transformers, vLLM, bailong chat or bailong serve"
    run = merged.run
    say(
        f"read {run_dir}/{ADAPTER_DIR} ({run.get('stage', 'training')} run, {run.get('steps', '?')} steps) and its "
        f"base {run['base_model']}; wrote {what} {where} ({use})"
    )
    if merged.untied:
        say(
            "the base ties its embedding and LM head, but the run trained them apart: the export has both matrices "
            "(untied, tie_word_embeddings: false), as the run computes"
        )
    return where
