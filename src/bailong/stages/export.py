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
    run_dir: Annotated[Path, typer.Argument(help="the output_dir of a pretrain or sft run", show_default=False)],
    to: Annotated[
        Path | None,
        typer.Option("--to", help="the folder to write into; default RUN_DIR/merged (hf), RUN_DIR/gguf (gguf)"),
    ] = None,
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
    from bailong.artifacts import ADAPTER_DIR, GGUF_DIR, MERGED_DIR
    from bailong.console import say

    if format == Format.gguf:
        target = Path(to) if to else Path(run_dir) / GGUF_DIR
        from bailong.gguf.export import export_gguf

        written = export_gguf(Path(run_dir), target, outtype.value, overwrite)
        merged, where = written.merged, written.path
    else:
        from bailong.loading.merge import merge_run

        target = Path(to) if to else Path(run_dir) / MERGED_DIR
        merged, where = merge_run(Path(run_dir), target, overwrite), target
    say(f"merged {run_dir}/{ADAPTER_DIR} into {merged.run['base_model']}; wrote {where}")
    if merged.untied:
        say(
            "the base ties its embedding and LM head, but the run trained them apart: the export has both matrices "
            "(untied, tie_word_embeddings: false), as the run computes"
        )
    return where
