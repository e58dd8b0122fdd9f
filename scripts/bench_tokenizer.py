"""Tokens per character on held-out text: the base, a naive Chinese-LLaMA-style merge, and bailong's merge.

The naive merge is what Chinese-LLaMA-Alpaca's merge script does: train a SentencePiece BPE model on the whole corpus
and append every piece the base lacks with score 0. Both merges get the same corpus and add the same number of tokens.

    python scripts/bench_tokenizer.py                       # Mistral v1 base, ../shared/data/tc, 5k/10k/20k tokens
    python scripts/bench_tokenizer.py --budgets 2000 --json out.json
    python scripts/bench_tokenizer.py --files ../shared/data/ko/ko_law_paragraphs.txt --budgets 1000 2000 4000
"""

from __future__ import annotations

import argparse
import io
import json
import os
import tempfile
import time
from importlib.util import find_spec
from pathlib import Path

import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as pb

from bailong.config import ExtendVocabConfig
from bailong.console import format_table
from bailong.data import CorpusReader, split_held_out
from bailong.loading import load_tokenizer
from bailong.stages.extend_vocab import run as extend_vocab

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "tc"
MISTRAL = Path(find_spec("mistral_common").submodule_search_locations[0]) / "data" / "tokenizer.model.v1"


def naive_merge(base_model: Path, train_docs: list[str], budget: int) -> tuple[spm.SentencePieceProcessor, dict]:
    """Chinese-LLaMA's merge: SentencePiece BPE on the corpus, new pieces appended with score 0, first `budget` kept."""
    base = pb.ModelProto()
    base.ParseFromString(base_model.read_bytes())
    known = {p.piece for p in base.pieces}
    timings = {}
    vocab_size = budget + budget // 2
    while True:
        start = time.perf_counter()
        writer = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(train_docs),
            model_writer=writer,
            model_type="bpe",
            vocab_size=vocab_size,
            character_coverage=0.9995,
            byte_fallback=True,
            split_digits=True,
            max_sentence_length=1 << 16,
            num_threads=os.cpu_count(),
            minloglevel=2,
        )
        timings["train_tokenizer_s"] = time.perf_counter() - start
        trained = pb.ModelProto()
        trained.ParseFromString(writer.getvalue())
        new = [p.piece for p in trained.pieces if p.type == pb.ModelProto.SentencePiece.NORMAL and p.piece not in known]
        if len(new) >= budget:
            break
        vocab_size = int(vocab_size * 1.1 * budget / max(1, len(new)))
    start = time.perf_counter()
    for piece in new[:budget]:
        base.pieces.add(piece=piece, score=0.0)
    timings["merge_s"] = time.perf_counter() - start
    return spm.SentencePieceProcessor(model_proto=base.SerializeToString()), timings


def tokens_per_char(sp: spm.SentencePieceProcessor, docs: list[str]) -> float:
    return sum(len(ids) for ids in sp.encode(docs)) / sum(len(d) for d in docs)


def hf_view(sp: spm.SentencePieceProcessor, docs: list[str]) -> tuple[float, float]:
    """Tokens per character with the HF fast tokenizer that transformers converts from the model (what training sees),
    and the share of documents on which it agrees with sentencepiece."""
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "tokenizer.model").write_bytes(sp.serialized_model_proto())
        tok = load_tokenizer(f"{tmp}/tokenizer.model")
    hf_ids = tok(docs, add_special_tokens=False)["input_ids"]
    agree = sum(a == b for a, b in zip(hf_ids, sp.encode(docs))) / len(docs)
    return sum(map(len, hf_ids)) / sum(len(d) for d in docs), agree


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", nargs="+", default=[str(p) for p in sorted(SHARED.glob("*paragraphs.txt"))])
    parser.add_argument("--base", default=str(MISTRAL), help="a SentencePiece BPE .model (default: Mistral v1)")
    parser.add_argument("--budgets", nargs="+", type=int, default=[5000, 10000, 20000])
    parser.add_argument("--held-out", type=float, default=0.1)
    parser.add_argument("--scripts", nargs="+", default=["auto"], help="vocab.scripts for bailong (default: auto)")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    cfg = {"model": {"tokenizer": args.base}, "data": {"files": args.files}, "output_dir": "unused"}
    scripts = args.scripts[0] if args.scripts in (["auto"], ["all"]) else args.scripts
    docs = list(CorpusReader(ExtendVocabConfig.model_validate(cfg).data))
    held = [d for d in docs if split_held_out(d, args.held_out)]
    train = [d for d in docs if not split_held_out(d, args.held_out)]
    base_sp = spm.SentencePieceProcessor(model_file=args.base)
    rows, results = [], []
    base_tpc = tokens_per_char(base_sp, held)
    base_hf, base_agree = hf_view(base_sp, held)
    rows.append(["base", 0, f"{base_tpc:.4f}", f"{base_hf:.4f}", f"{base_agree:.0%}", "-", "-"])
    for budget in args.budgets:
        naive_sp, naive_t = naive_merge(Path(args.base), train, budget)
        naive_tpc = tokens_per_char(naive_sp, held)
        naive_hf, naive_agree = hf_view(naive_sp, held)
        with tempfile.TemporaryDirectory() as tmp:
            run_cfg = ExtendVocabConfig.model_validate(
                {
                    **cfg,
                    "vocab": {"new_tokens": budget, "scripts": scripts},
                    "data": {**cfg["data"], "validation": args.held_out},
                    "output_dir": f"{tmp}/out",
                }
            )
            report = extend_vocab(run_cfg)
            ours_sp = spm.SentencePieceProcessor(model_file=f"{tmp}/out/tokenizer.model")
            ours_tpc = tokens_per_char(ours_sp, held)
            ours_hf, ours_agree = hf_view(ours_sp, held)
        t = report["timings"]
        rows.append(
            [
                "naive (Chinese-LLaMA)",
                budget,
                f"{naive_tpc:.4f}",
                f"{naive_hf:.4f}",
                f"{naive_agree:.0%}",
                f"{naive_t['train_tokenizer_s']:.1f}",
                f"{naive_t['merge_s']:.2f}",
            ]
        )
        rows.append(
            [
                "bailong",
                report["tokens_added"],
                f"{ours_tpc:.4f}",
                f"{ours_hf:.4f}",
                f"{ours_agree:.0%}",
                f"{t['train_tokenizer_s']:.1f}",
                f"{t['merge_s'] + t['check_s']:.2f}",
            ]
        )
        results.append(
            {
                "budget": budget,
                "base": base_tpc,
                "naive": naive_tpc,
                "bailong": ours_tpc,
                "base_hf": base_hf,
                "naive_hf": naive_hf,
                "bailong_hf": ours_hf,
                "bailong_tokens_added": report["tokens_added"],
                "naive_timings": naive_t,
                "bailong_timings": t,
            }
        )
    print()
    print(f"held-out: {len(held)} documents, {sum(map(len, held))} characters; training: {len(train)} documents")
    print(
        format_table(
            ["tokenizer", "tokens added", "tokens/char (spm)", "tokens/char (HF)", "spm = HF", "train s", "merge s"],
            rows,
        )
    )
    print("tokens/char: lower is better; 'spm = HF': share of held-out documents both encode identically;")
    print("merge s for bailong includes checking every guarantee")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
