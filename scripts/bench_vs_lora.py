"""Vocabulary extension against plain LoRA on the base tokenizer, at equal compute: held-out curves.

Every arm trains the same base on the same documents (shuffled once, the same order for every arm) with a LoRA
adapter, each for `--budget-s` seconds of training on this machine (evaluations are not counted), and is evaluated
every `--eval-every` training seconds: bits per character of held-out TC text (`--heldout`) and of the English probe
(forgetting). Three x-axes: wall seconds of training, characters of training text consumed, and estimated training
FLOPs. Arms (`--arms` picks some):

- plain-lora: the base tokenizer, LoRA on every projection and on embed_tokens and lm_head (the paper's targets,
  what LLaMA-Factory users run without extending the vocabulary);
- zip-tie: `bailong extend-vocab` (`--new-tokens` from the training text) with zip-tie rows, then the same LoRA;
- mean: the same extension with mean-initialized rows (transformers' `mean_resizing`), then the same LoRA;
- zip-tie-new-rows: the zip-tie extension, LoRA on the projections and the new rows themselves trained at their own
  rate (`--rows-lr`, `embeddings.train: new-rows`), the best small-compute recipe found for the demo.

FLOPs estimate per training token: 2 x forward, forward = 2 (P + V d) + 2 L T d, where P is the parameters of the
decoder's linear layers, V d the LM head (V rows of width d; the embedding lookup is free), L layers and T the block
length (causal attention: QK^T and AV over T/2 positions on average). The backward of a frozen layer computes only its
input's gradient (one more forward's cost); LoRA's and the rows' own weight gradients are below 1% and left out. An
extended model pays a larger V per token but reads a character in fewer tokens.

    python scripts/bench_vs_lora.py --json bench.json --plot docs/method-vs-lora.png     # 900 s per arm
    python scripts/bench_vs_lora.py --budget-s 300 --eval-every 60 --arms plain-lora zip-tie
    python scripts/bench_vs_lora.py --budget-flops 2e15 --eval-every-flops 4e14   # equal FLOPs on a loaded machine
    python scripts/bench_vs_lora.py --replot bench.json --plot bench.png   # the tables and figure of a run again
"""

from __future__ import annotations

import argparse
import json
import math
import random
import tempfile
import time
from pathlib import Path

import torch

from bailong.config import EmbeddingTrainingConfig, ExtendVocabConfig, LoraConfig, ModelConfig, QuantizationConfig
from bailong.console import format_table
from bailong.evaluation.bpc import bits_per_character
from bailong.loading import extension_of, load_model, load_tokenizer
from bailong.loading.adapters import model_with_fresh_adapter
from bailong.stages.extend_vocab import run as extend_vocab
from bailong.training.trainer import optimizer_groups
from bailong.vocab.checks import english_probe

ROOT = Path(__file__).resolve().parents[1]
TC = ROOT.parent / "shared" / "data" / "tc"
ARMS = {
    "plain-lora": {"init": None, "embeddings": "lora"},
    "zip-tie": {"init": "zip-tie", "embeddings": "lora"},
    "mean": {"init": "mean", "embeddings": "lora"},
    "zip-tie-new-rows": {"init": "zip-tie", "embeddings": "new-rows"},
}


def read_docs(path: str, limit: int | None = None) -> list[str]:
    docs = [line.strip() for line in open(path, encoding="utf-8") if line.strip()]
    return docs[:limit] if limit else docs


def packed_blocks(tokenizer, docs: list[str], block: int) -> list[tuple[list[int], float]]:
    """Documents joined with EOS and cut into blocks; each block with the characters its tokens stand for (a
    document's characters spread evenly over its tokens)."""
    ids: list[int] = []
    chars: list[float] = []
    for doc, tokens in zip(docs, tokenizer(docs, add_special_tokens=False)["input_ids"]):
        tokens = tokens + [tokenizer.eos_token_id]
        ids += tokens
        chars += [len(doc) / len(tokens)] * len(tokens)
    return [(ids[i : i + block], sum(chars[i : i + block])) for i in range(0, len(ids) - block + 1, block)]


def flops_per_token(model, block: int) -> float:
    """Training FLOPs per token by the formula in the module's docstring."""
    base = model.get_base_model()
    head = base.get_output_embeddings().weight
    linear = sum(
        m.weight.numel()
        for name, m in base.named_modules()
        if isinstance(m, torch.nn.Linear) and "lm_head" not in name and "lora_" not in name
    )
    cfg = base.config
    forward = 2 * (linear + head.numel()) + 2 * cfg.num_hidden_layers * block * cfg.hidden_size
    return 2.0 * forward


def evaluate(model, tokenizer, heldout: list[str], probe: list[str]) -> dict:
    model.eval()
    tc = bits_per_character(model, tokenizer, heldout)["bits_per_char"]
    en = bits_per_character(model, tokenizer, probe)["bits_per_char"]
    model.train()
    return {"tc_bpc": tc, "en_bpc": en}


def train_arm(name: str, source: str, args, docs: list[str], heldout: list[str], probe: list[str]) -> dict:
    spec = ARMS[name]
    tokenizer = load_tokenizer(source)
    extension = extension_of(source)
    torch.manual_seed(args.seed)
    embeddings = EmbeddingTrainingConfig(
        train=spec["embeddings"], learning_rate=args.rows_lr if spec["embeddings"] == "new-rows" else None
    )
    model = model_with_fresh_adapter(
        ModelConfig(name_or_path=source, dtype="float32"),
        QuantizationConfig(mode="none"),
        LoraConfig(r=args.rank, alpha=2 * args.rank, dropout=0.0),
        embeddings,
        extension["new_token_ids"] if extension else None,
        gradient_checkpointing=False,
    )
    model.train()
    optimizer = torch.optim.AdamW(
        optimizer_groups(model, 0.0, set(), embeddings.learning_rate), lr=args.lr, weight_decay=0.0
    )
    per_token = flops_per_token(model, args.block)
    blocks = packed_blocks(tokenizer, docs, args.block)
    tokens_per_char = sum(len(b) for b, _ in blocks) / sum(c for _, c in blocks)
    print(f"{name}: {len(blocks)} blocks of {args.block} tokens, {tokens_per_char:.3f} tokens/char", flush=True)

    state = {"step": 0, "seconds": 0.0, "chars": 0.0, "tokens": 0, "flops": 0.0}
    points = [{**state, **evaluate(model, tokenizer, heldout, probe)}]
    print(f"  {points[-1]}", flush=True)
    next_eval = {"seconds": args.eval_every, "flops": args.eval_every_flops}
    while state["seconds"] < args.budget_s and (not args.budget_flops or state["flops"] < args.budget_flops):
        batch = [blocks[(state["step"] * args.batch + i) % len(blocks)] for i in range(args.batch)]
        ids = torch.tensor([b for b, _ in batch])
        for group in optimizer.param_groups:  # linear warm-up, then constant: the run's length is a time budget
            group.setdefault("peak_lr", group["lr"])
            group["lr"] = group["peak_lr"] * min(1.0, (state["step"] + 1) / args.warmup_steps)
        began = time.perf_counter()
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        state["seconds"] += time.perf_counter() - began
        state["step"] += 1
        state["tokens"] += ids.numel()
        state["chars"] += sum(c for _, c in batch)
        state["flops"] += per_token * ids.numel()
        last = state["seconds"] >= args.budget_s or bool(args.budget_flops and state["flops"] >= args.budget_flops)
        due = state["seconds"] >= next_eval["seconds"] or bool(
            args.eval_every_flops and state["flops"] >= next_eval["flops"]
        )
        if due or last:
            while next_eval["seconds"] <= state["seconds"]:
                next_eval["seconds"] += args.eval_every
            while args.eval_every_flops and next_eval["flops"] <= state["flops"]:
                next_eval["flops"] += args.eval_every_flops
            points.append({**state, "loss": loss.item(), **evaluate(model, tokenizer, heldout, probe)})
            print(f"  {points[-1]}", flush=True)
    return {"source": source, "tokens_per_char": tokens_per_char, "flops_per_token": per_token, "points": points}


def extended_checkpoints(args, inits: set[str], tmp: str) -> dict[str, str]:
    """One `bailong extend-vocab` output per initialization the chosen arms need."""
    folders = {}
    for init in sorted(inits):
        folder = f"{tmp}/extend-{init}"
        cfg = ExtendVocabConfig.model_validate(
            {
                "model": {"name_or_path": args.model},
                "data": {"files": [args.train], "validation": 0},
                "vocab": {"new_tokens": args.new_tokens},
                "new_rows": {"init": init},
                "output_dir": folder,
            }
        )
        extend_vocab(cfg)
        folders[init] = folder
    return folders


def at(points: list[dict], axis: str, x: float, key: str) -> float | None:
    """The curve's value at x (linear between evaluations); None past the arm's last evaluation."""
    for left, right in zip(points, points[1:]):
        if left[axis] <= x <= right[axis]:
            share = (x - left[axis]) / (right[axis] - left[axis]) if right[axis] > left[axis] else 1.0
            return left[key] + share * (right[key] - left[key])
    return None


AXES = {"seconds": "training seconds", "chars": "characters consumed", "flops": "training FLOPs"}


def budget_tables(results: dict, base: dict) -> list[tuple[str, list[str], list[list[str]]]]:
    """Per axis, held-out TC (and English) bits per character of every arm at a quarter, half and all of the
    smallest final value among the arms (so every arm reached each budget)."""
    tables = []
    for axis, label in AXES.items():
        reach = min(r["points"][-1][axis] for r in results.values())
        budgets = [reach / 4, reach / 2, reach]
        headers = ["arm", *(f"TC @ {_short(b, axis)}" for b in budgets), f"English @ {_short(reach, axis)}"]
        rows = []
        for name, r in results.items():
            tc = [_fmt(at(r["points"], axis, b, "tc_bpc")) for b in budgets]
            rows.append([name, *tc, _fmt(at(r["points"], axis, reach, "en_bpc"))])
        rows.append(["base model, no training", *(_fmt(base["tc_bpc"]) for _ in budgets), _fmt(base["en_bpc"])])
        tables.append((f"held-out bits per character at equal {label}", headers, rows))
    return tables


def _short(value: float, axis: str) -> str:
    if axis == "seconds":
        return f"{value:.0f} s"
    if axis == "chars":
        return f"{value / 1000:.1f}k chars"
    return f"{value / 1e12:.1f} TFLOP" if value >= 1e12 else f"{value / 1e9:.0f} GFLOP"


def _fmt(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.3f}"


def plot(results: dict, base: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(13, 7), sharey="row")
    for row, (key, title) in enumerate((("tc_bpc", "held-out TC bits/char"), ("en_bpc", "English probe bits/char"))):
        for col, (axis, label) in enumerate(AXES.items()):
            ax = axes[row][col]
            for i, (name, r) in enumerate(results.items()):
                ax.plot(
                    [p[axis] for p in r["points"]], [p[key] for p in r["points"]], "o-", ms=3, label=name, color=f"C{i}"
                )
            ax.axhline(base[key], color="grey", ls="--", lw=1, label="base model")
            ax.set_xlabel(label)
            if col == 0:
                ax.set_ylabel(title)
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle("held-out bits per character while training (lower is better), dashed: the base model untrained")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--train", default=str(TC / "drcd_dev_paragraphs.txt"))
    parser.add_argument("--heldout", default=str(TC / "drcd_test_seen_titles_paragraphs.txt"))
    parser.add_argument("--limit", type=int, default=20, help="held-out documents")
    parser.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS))
    parser.add_argument("--new-tokens", type=int, default=7300)
    parser.add_argument("--budget-s", type=float, default=900, help="training seconds per arm")
    parser.add_argument("--budget-flops", type=float, help="also stop an arm at this many training FLOPs")
    parser.add_argument("--eval-every", type=float, default=150, help="training seconds between evaluations")
    parser.add_argument("--eval-every-flops", type=float, help="also evaluate every this many training FLOPs")
    parser.add_argument("--block", type=int, default=256, help="tokens per training block")
    parser.add_argument("--batch", type=int, default=2, help="blocks per step")
    parser.add_argument("--lr", type=float, default=1e-3, help="LoRA learning rate (the demo's)")
    parser.add_argument("--rows-lr", type=float, default=2e-3, help="the new rows' rate (zip-tie-new-rows)")
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--warmup-steps", type=int, default=4)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json", help="write the curves here")
    parser.add_argument("--plot", help="write the figure (PNG) here")
    parser.add_argument("--replot", help="no training: print the tables (and --plot) of an earlier run's --json")
    args = parser.parse_args()
    if args.replot:
        saved = json.loads(Path(args.replot).read_text(encoding="utf-8"))
        report(saved["summary"], saved["arms"], saved["base"], args.plot)
        return

    docs = read_docs(args.train)
    random.Random(args.seed).shuffle(docs)
    heldout, probe = read_docs(args.heldout, args.limit), english_probe()
    with tempfile.TemporaryDirectory() as tmp:
        folders = extended_checkpoints(args, {ARMS[a]["init"] for a in args.arms if ARMS[a]["init"]}, tmp)
        base_model = load_model(ModelConfig(name_or_path=args.model, dtype="float32"))
        base = evaluate(base_model, load_tokenizer(args.model), heldout, probe)
        del base_model
        results = {}
        for name in args.arms:
            source = folders[ARMS[name]["init"]] if ARMS[name]["init"] else args.model
            results[name] = train_arm(name, source, args, docs, heldout, probe)
    summary = (
        f"{args.model}; train {Path(args.train).name}, held out {len(heldout)} documents of {Path(args.heldout).name};"
        f" {args.new_tokens} new tokens; blocks {args.batch} x {args.block}, LoRA r={args.rank}, lr {args.lr}"
    )
    tables = report(summary, results, base, args.plot)
    if args.json:
        output = {"settings": vars(args), "summary": summary, "base": base, "arms": results, "tables": tables}
        Path(args.json).write_text(json.dumps(output, indent=2), encoding="utf-8")


def report(summary: str, results: dict, base: dict, plot_path: str | None) -> list:
    print("\n" + summary)
    tables = budget_tables(results, base)
    for title, headers, rows in tables:
        print(f"\n{title}\n{format_table(headers, rows)}")
    if plot_path:
        plot(results, base, plot_path)
    return tables


if __name__ == "__main__":
    main()
