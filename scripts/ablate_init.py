"""Ablation of the new-row initializations: bits per character on held-out TC text, at step 0 and after training.

Step 0: extends the tokenizer once (bailong's extend-vocab, tokenizer only), then for each initialization resizes a
copy of the base model, initializes the new rows exactly as the extended checkpoint would, and measures bits per
character (tokenizer-independent) next to the base model with its own tokenizer; `align` starts from zip-tie and is
measured every 10 steps up to `--align-steps`, with its wall time. `--untie` also runs an untied copy of the base
(its LM head cloned from the embedding) to choose the output-row option for untied bases like Llama 2.

After training (`--pretrain-steps N`): extend-vocab writes the checkpoint from zip-tie, from mean and from align, and
bailong's pretrain runs the demo's settings (configs/demo/pretrain.yaml) from each for N steps, align's run fewer:
its own cost is charged against the budget (equal compute, in token forward passes: a pretrain step reads
batch x block tokens forward and backward, 2 units a token; an align step reads the student's tokens forward, 1 unit,
and with `hidden_weight` above 0 also the teacher's forward, 1 unit, and the student's backward, 1 more). Held-out
TC and English-probe bits per character before and after show what the init buys and what is forgotten.

    python scripts/ablate_init.py                                  # SmolLM2 + the demo corpus, demo held-out text
    python scripts/ablate_init.py --untie --json ablation.json
    python scripts/ablate_init.py --corpus ../shared/data/tc/drcd_dev_paragraphs.txt \
        --heldout ../shared/data/tc/drcd_test_seen_titles_paragraphs.txt --new-tokens 7300
    python scripts/ablate_init.py --corpus ../shared/data/ko/ko_law_paragraphs.txt --heldout-last 40 --new-tokens 1000
    python scripts/ablate_init.py --align-steps 0 --pretrain-steps 48 --json after.json
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from pathlib import Path

import torch

from bailong.config import AlignConfig, ExtendVocabConfig, ModelConfig, NewRowsConfig, load_config
from bailong.console import format_table
from bailong.evaluation.bpc import bits_per_character
from bailong.loading import load_model, load_tokenizer
from bailong.stages.extend_vocab import run as extend_vocab
from bailong.stages.pretrain import run as pretrain
from bailong.vocab.align import align_new_rows
from bailong.vocab.checkpoint import base_pieces, token_texts
from bailong.vocab.checks import english_probe
from bailong.vocab.init import initialize_new_rows

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "src" / "bailong" / "demo_data"

TIED_METHODS = {
    "random (the model's initializer)": {"init": "random"},
    "mean of all rows + noise": {"init": "mean"},
    "subword-mean (the pieces' mean)": {"init": "subword-mean"},
    "norm-corrected mean": {"init": "subword-mean", "norm": "script"},
    "first piece only": {"init": "zip-tie", "decay": 0.0},
    "zip-tie, decay 0.9": {"init": "zip-tie", "decay": 0.9},
    "zip-tie, decay 0.8 (default)": {"init": "zip-tie", "decay": 0.8},
    "zip-tie, decay 0.7": {"init": "zip-tie", "decay": 0.7},
    "zip-tie + norm correction": {"init": "zip-tie", "norm": "script"},
}
UNTIED_METHODS = {
    "untied copy: subword-mean": {"init": "subword-mean"},
    "untied copy: zip-tie, output_row first": {"init": "zip-tie", "output_row": "first"},
    "untied copy: zip-tie (default)": {"init": "zip-tie"},
}


def untied_copy(model):
    model = copy.deepcopy(model)
    model.config.tie_word_embeddings = False
    model.lm_head.weight = torch.nn.Parameter(model.get_input_embeddings().weight.detach().clone())
    return model


def initialized(base_model, base_tok, new_tok, settings: dict, untie: bool):
    model = untied_copy(base_model) if untie else copy.deepcopy(base_model)
    new_ids = list(range(len(base_tok), len(new_tok)))
    pieces = base_pieces(base_tok, new_tok.convert_ids_to_tokens(new_ids))
    model.resize_token_embeddings(len(new_tok), mean_resizing=False)
    tied = model.get_output_embeddings().weight is model.get_input_embeddings().weight
    start = time.perf_counter()
    initialize_new_rows(
        model.get_input_embeddings().weight.data,
        None if tied else model.get_output_embeddings().weight.data,
        new_ids,
        pieces,
        NewRowsConfig(**settings),
        texts=token_texts(base_tok, new_tok, new_ids) if settings.get("norm") == "script" else None,
    )
    return model, time.perf_counter() - start, tied


def measure(base_model, base_tok, new_tok, texts, settings: dict, untie: bool) -> dict:
    model, seconds, tied = initialized(base_model, base_tok, new_tok, settings, untie)
    return {**bits_per_character(model, new_tok, texts), "init_seconds": seconds, "tied": tied}


def measure_align(base_model, base_tok, new_tok, texts, corpus: list[str], cfg: AlignConfig) -> dict:
    """align from zip-tie; the held-out bits per character every 10 steps (the evaluations are not timed)."""
    model, _, _ = initialized(base_model, base_tok, new_tok, {"init": "zip-tie"}, False)
    docs = [line.strip() for f in corpus for line in open(f, encoding="utf-8") if line.strip()]
    points = {}

    def snapshot(step: int, aligned) -> None:
        points[step] = bits_per_character(aligned, new_tok, texts)
        print(f"align, {step} steps: {points[step]['bits_per_char']:.3f} bits/char", flush=True)

    new_ids = list(range(len(base_tok), len(new_tok)))
    record = align_new_rows(model, base_tok, new_tok, new_ids, lambda: docs, cfg, snapshots=snapshot)
    seconds_per_step = record["seconds"] / cfg.steps
    return {
        f"align, {step} steps (from zip-tie)": {**r, "init_seconds": seconds_per_step * step, "tied": record["tied"]}
        for step, r in points.items()
    } | {"_align_record": record}


def align_units_per_step(record: dict) -> float:
    """Token passes a step: the teacher's forward, the student's forward and, when hidden states are matched, its
    backward to the inputs (with `hidden_weight: 0` the teacher is not run and the student runs forward only)."""
    student_passes = 2 if record["hidden_weight"] > 0 else 1
    return (record["teacher_tokens"] + student_passes * record["student_tokens"]) / record["steps"]


def after_training(args, texts: list[str], tmp: str) -> dict:
    """extend-vocab (zip-tie, mean, align) then the demo's pretrain from each; bits per character before and after."""
    probe = english_probe()
    pretrain_cfg = ROOT / "configs" / "demo" / "pretrain.yaml"
    base_cfg = load_config("pretrain", pretrain_cfg)
    units_per_step = 2 * base_cfg.train.batch_size * base_cfg.train.grad_accum * base_cfg.data.block_size
    runs = {
        "zip-tie": {"new_rows": {"init": "zip-tie"}},
        "mean": {"new_rows": {"init": "mean"}},
        f"align ({args.align_after} steps) + pretrain": {"align": {**align_settings(args), "steps": args.align_after}},
    }
    results = {}
    for name, extra in runs.items():
        folder = f"{tmp}/{len(results)}"
        cfg = ExtendVocabConfig.model_validate(
            {
                "model": {"name_or_path": args.model},
                "data": {"files": args.corpus, "validation": 0},
                "vocab": {"new_tokens": args.new_tokens},
                "output_dir": f"{folder}/extended",
                **extra,
            }
        )
        extend_vocab(cfg)
        meta = json.loads(Path(f"{folder}/extended/bailong_extension.json").read_text(encoding="utf-8"))
        charged = (
            round(align_units_per_step(meta["align"]) * meta["align"]["steps"] / units_per_step) if meta["align"] else 0
        )
        steps = args.pretrain_steps - charged
        before_model = load_model(ModelConfig(name_or_path=f"{folder}/extended", dtype="float32"))
        tok = load_tokenizer(f"{folder}/extended")
        before = {
            "tc": bits_per_character(before_model, tok, texts),
            "en": bits_per_character(before_model, tok, probe),
        }
        del before_model
        overrides = [
            f"model.name_or_path={folder}/extended",
            f"output_dir={folder}/pretrain",
            f"train.max_steps={steps}",
        ]
        pretrain(load_config("pretrain", pretrain_cfg, overrides))
        model = load_model(ModelConfig(name_or_path=f"{folder}/pretrain", dtype="float32"))
        results[name] = {
            "pretrain_steps": steps,
            "align_charged_steps": charged,
            "align_seconds": meta["align"]["seconds"] if meta["align"] else 0.0,
            "tc_before": before["tc"]["bits_per_char"],
            "tc_after": bits_per_character(model, tok, texts)["bits_per_char"],
            "en_before": before["en"]["bits_per_char"],
            "en_after": bits_per_character(model, tok, probe)["bits_per_char"],
        }
        print(f"{name}: {results[name]}", flush=True)
    return results


def align_settings(args) -> dict:
    return {
        "learning_rate": args.align_lr,
        "batch_size": args.align_batch,
        "block_size": args.align_block,
        "hidden_weight": args.align_hidden_weight,
        "output_weight": args.align_output_weight,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--corpus", nargs="+", default=[str(DEMO / "tc_corpus.txt")])
    parser.add_argument("--heldout", default=str(DEMO / "tc_heldout.txt"))
    parser.add_argument("--limit", type=int, default=30, help="held-out documents")
    parser.add_argument("--heldout-last", type=int, help="hold out the corpus's last N documents instead of --heldout")
    parser.add_argument("--new-tokens", type=int, default=2000)
    parser.add_argument("--untie", action="store_true", help="also ablate the output row on an untied copy")
    parser.add_argument("--align-steps", type=int, default=30, help="align up to this many steps (0: skip)")
    parser.add_argument("--align-lr", type=float, default=AlignConfig().learning_rate)
    parser.add_argument("--align-batch", type=int, default=AlignConfig().batch_size)
    parser.add_argument("--align-block", type=int, default=AlignConfig().block_size)
    parser.add_argument("--align-hidden-weight", type=float, default=AlignConfig().hidden_weight)
    parser.add_argument("--align-output-weight", type=float, default=AlignConfig().output_weight)
    parser.add_argument("--pretrain-steps", type=int, default=0, help="after-training table: pretrain steps (0: skip)")
    parser.add_argument("--align-after", type=int, default=10, help="align steps before pretrain, after-training table")
    parser.add_argument("--only", nargs="+", help="step 0: only the initializations whose names contain one of these")
    parser.add_argument("--skip-step0", action="store_true", help="only the after-training table")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()

    texts = [line.strip() for line in open(args.heldout, encoding="utf-8") if line.strip()][: args.limit]
    output: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        if args.heldout_last:
            docs = [line.strip() for f in args.corpus for line in open(f, encoding="utf-8") if line.strip()]
            texts = docs[-args.heldout_last :][: args.limit]
            args.corpus = [f"{tmp}/train.txt"]
            Path(args.corpus[0]).write_text("\n".join(docs[: -args.heldout_last]) + "\n", encoding="utf-8")
            args.heldout = f"the last {args.heldout_last} documents of the corpus"
        if not args.skip_step0:
            output["step0"] = step_zero(args, texts, tmp)
        if args.pretrain_steps:
            output["after_training"] = after = after_training(args, texts, tmp)
            rows = [
                [name, r["pretrain_steps"], f"{r['tc_before']:.3f}", f"{r['tc_after']:.3f}", f"{r['en_before']:.3f}",
                 f"{r['en_after']:.3f}"]
                for name, r in after.items()
            ]  # fmt: skip
            print()
            print(f"after pretrain ({args.pretrain_steps} steps' compute, configs/demo/pretrain.yaml), {len(texts)} "
                  f"held-out documents and the English probe")  # fmt: skip
            headers = ["init", "pretrain steps", "TC before", "TC after", "English before", "English after"]
            print(format_table(headers, rows))
    if args.json:
        Path(args.json).write_text(json.dumps(output, indent=2))


def step_zero(args, texts: list[str], tmp: str) -> dict:
    cfg = ExtendVocabConfig.model_validate(
        {
            "model": {"tokenizer": args.model},
            "data": {"files": args.corpus, "validation": 0},
            "vocab": {"new_tokens": args.new_tokens},
            "output_dir": f"{tmp}/tok",
        }
    )
    report = extend_vocab(cfg)
    new_tok = load_tokenizer(f"{tmp}/tok")
    base_tok = load_tokenizer(args.model)
    base_model = load_model(ModelConfig(name_or_path=args.model, dtype="float32"))

    base = bits_per_character(base_model, base_tok, texts)
    results = {"base model, own tokenizer": {**base, "init_seconds": 0.0}}
    methods = {name: (s, False) for name, s in TIED_METHODS.items()}
    if args.untie:
        methods.update({name: (s, True) for name, s in UNTIED_METHODS.items()})
    if args.only:
        methods = {name: m for name, m in methods.items() if any(word in name for word in args.only)}
    for name, (settings, untie) in methods.items():
        results[name] = measure(base_model, base_tok, new_tok, texts, settings, untie)
        print(f"{name}: {results[name]['bits_per_char']:.3f} bits/char", flush=True)
    record = None
    if args.align_steps:
        align_cfg = AlignConfig(steps=args.align_steps, **align_settings(args))
        aligned = measure_align(base_model, base_tok, new_tok, texts, args.corpus, align_cfg)
        record = aligned.pop("_align_record")
        results.update(aligned)

    rows = [
        [
            name,
            f"{r['bits_per_char']:.3f}",
            f"{r['bits_per_char'] / base['bits_per_char']:.2f}x",
            f"{r['tokens_per_char']:.3f}",
            f"{r['init_seconds']:.1f}",
        ]
        for name, r in results.items()
    ]
    print()
    print(
        f"{args.model}, {report['tokens_added']} tokens added from {', '.join(Path(c).name for c in args.corpus)}; "
        f"{len(texts)} held-out documents: {Path(args.heldout).name} ({sum(map(len, texts))} characters)"
    )
    print(format_table(["initialization", "bits/char", "vs base", "tokens/char", "seconds"], rows))
    return {"tokens_added": report["tokens_added"], "results": results, "align": record}


if __name__ == "__main__":
    main()
