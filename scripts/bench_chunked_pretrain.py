"""`bailong pretrain` end to end with `train.chunked_loss: true` and `false`: peak resident memory and tokens/s.

A small random Llama (2 layers, hidden 256) with the paper's 59,241-row vocabulary, the Mistral v1 tokenizer, the
demo corpus packed into `data.block_size: 2048` blocks, LoRA r=16 on the projections, `embed_tokens` and `lm_head`
(the paper's setting), gradient checkpointing, unquantized fp32 (the CPU's dtype). Each run is its own process, so
each peak is its own; tokens/s is the median of the logged steps after the first.

    python scripts/bench_chunked_pretrain.py            # 6 steps each
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
from importlib.util import find_spec
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def one(folder: Path, chunked: bool, steps: int) -> dict:
    import yaml

    from bailong.cli import app

    cfg = {
        "model": {"name_or_path": str(folder / "base")},
        "quantization": {"mode": "none"},
        "lora": {"r": 16, "alpha": 32, "dropout": 0.0},
        "embeddings": {"train": "lora"},
        "data": {"files": [str(ROOT / "src/bailong/demo_data/tc_corpus.txt")], "block_size": 2048, "validation": 0.0},
        "train": {
            "max_steps": steps,
            "batch_size": 1,
            "save_steps": 10**6,
            "logging_steps": 1,
            "gradient_checkpointing": True,
            "chunked_loss": chunked,
        },
        "output_dir": str(folder / f"run-{chunked}"),
    }
    path = folder / f"{chunked}.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    try:
        app(["pretrain", str(path), "--overwrite"])
    except SystemExit as exit_:
        if exit_.code:
            raise
    rows = [json.loads(line) for line in (folder / f"run-{chunked}" / "metrics.jsonl").read_text().splitlines()]
    speeds = [r["tokens_per_s"] for r in rows if "tokens_per_s" in r]
    return {
        "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "tokens_per_s": statistics.median(speeds[1:] or speeds),
        "last_loss": [r["loss"] for r in rows if "loss" in r][-1],
    }


def make_base(folder: Path) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from bailong.loading import load_tokenizer

    tokenizer_model = Path(find_spec("mistral_common").submodule_search_locations[0]) / "data" / "tokenizer.model.v1"
    tokenizer = load_tokenizer(str(tokenizer_model))
    config = LlamaConfig(
        vocab_size=59241,
        hidden_size=256,
        intermediate_size=704,
        num_hidden_layers=2,
        num_attention_heads=8,
        num_key_value_heads=8,
        max_position_embeddings=2048,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder / "base")
    tokenizer.save_pretrained(folder / "base")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--one", choices=["true", "false"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(Path(args.folder), args.one == "true", args.steps)))
        return
    from bailong.console import format_table

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        make_base(Path(tmp))
        for chunked in ("true", "false"):
            command = [sys.executable, __file__, "--one", chunked, "--folder", tmp, "--steps", str(args.steps)]
            proc = subprocess.run(command, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                sys.exit(f"chunked_loss={chunked} failed:\n{proc.stderr[-3000:]}")
            result = json.loads(proc.stdout.strip().splitlines()[-1])
            rows.append([chunked, f"{result['peak_mib']:.0f}", f"{result['tokens_per_s']:.1f}", result["last_loss"]])
    print(
        f"bailong pretrain, vocab 59,241, block 2,048, batch 1, LoRA r=16 with embed_tokens + lm_head, "
        f"{args.steps} steps"
    )
    print(format_table(["train.chunked_loss", "peak RSS MiB", "tokens/s", "last loss"], rows))


if __name__ == "__main__":
    main()
