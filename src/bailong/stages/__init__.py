"""The stages: one module per CLI command, orchestration only (the import contract keeps stages from importing
each other and components from importing stages).

`STAGES` is the one map from command to stage that the CLI is generated from. A config-driven stage is
`bailong NAME CONFIG.yaml [--set k=v] [--print-config] [--overwrite]`, validated by
`bailong.config.STAGE_CONFIGS[NAME]`, and runs `run(cfg, overwrite)`; any other stage's command line is its `run`
function's typed signature.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    module: str  # under bailong.stages; a config-driven stage's module is imported only when its command runs
    summary: str  # the command's line in `bailong --help`
    config: bool = True  # driven by a YAML config


STAGES: dict[str, Stage] = {
    "extend-vocab": Stage(
        "extend_vocab",
        "Train a TC tokenizer on a corpus, merge it into the base tokenizer and "
        "write the extended checkpoint (zip-tie rows).",
    ),
    "pretrain": Stage("pretrain", "QLoRA continual pre-training on a TC-heavy corpus."),
    "sft": Stage("sft", "Supervised fine-tuning on multi-turn chat data, loss on assistant turns."),
    "eval": Stage(
        "evaluate", "Bits per character, multiple choice and an LLM-as-judge bench over several models; one report."
    ),
    "export": Stage(
        "export",
        "Merge a run's adapter into a full-precision copy of its base; write an HF checkpoint or one GGUF file.",
        config=False,
    ),
    "chat": Stage(
        "chat",
        "Chat with a model in the terminal (one user turn per line; also reads a pipe); /reset, /exit.",
        config=False,
    ),
    "serve": Stage(
        "serve",
        "Serve a model through an OpenAI-compatible API (GET /v1/models[/ID], POST /v1/chat/completions); "
        "--api-key-env NAME requires a key.",
        config=False,
    ),
    "report": Stage(
        "report",
        "Write one self-contained report.html from eval outputs, training runs and extend-vocab outputs.",
        config=False,
    ),
}
