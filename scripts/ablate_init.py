"""Step-0 ablation of the new-row initializations: bits per character on held-out TC text, before any training.

Extends the tokenizer once (bailong's extend-vocab, tokenizer only), then for each initialization resizes a copy of
the base model, initializes the new rows exactly as the extended checkpoint would, and measures bits per character
(tokenizer-independent) next to the base model with its own tokenizer. `--untie` also runs an untied copy of the
base (its LM head cloned from the embedding) to choose the output-row option for untied bases like Llama 2.

    python scripts/ablate_init.py                                  # SmolLM2 + the demo corpus, demo held-out text
    python scripts/ablate_init.py --untie --json ablation.json
    python scripts/ablate_init.py --corpus ../shared/data/tc/drcd_dev_paragraphs.txt \
        --heldout ../shared/data/tc/drcd_test_seen_titles_paragraphs.txt --new-tokens 7300
    python scripts/ablate_init.py --corpus ../shared/data/ko/ko_law_paragraphs.txt --heldout-last 40 --new-tokens 1000
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from pathlib import Path

import torch

from bailong.config import ExtendVocabConfig, ModelConfig, NewRowsConfig
from bailong.console import format_table
from bailong.evaluation.bpc import bits_per_character
from bailong.loading import load_model, load_tokenizer
from bailong.stages.extend_vocab import run as extend_vocab
from bailong.vocab.checkpoint import base_pieces
from bailong.vocab.init import initialize_new_rows

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "src" / "bailong" / "demo_data"

TIED_METHODS = {
    "random (the model's initializer)": {"init": "random"},
    "mean of all rows + noise": {"init": "mean"},
    "subword-mean (the pieces' mean)": {"init": "subword-mean"},
    "first piece only": {"init": "zip-tie", "decay": 0.0},
    "zip-tie, decay 0.9": {"init": "zip-tie", "decay": 0.9},
    "zip-tie, decay 0.8 (default)": {"init": "zip-tie", "decay": 0.8},
    "zip-tie, decay 0.7": {"init": "zip-tie", "decay": 0.7},
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


def measure(base_model, base_tok, new_tok, texts, settings: dict, untie: bool) -> dict:
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
    )
    seconds = time.perf_counter() - start
    return {**bits_per_character(model, new_tok, texts), "init_seconds": seconds, "tied": tied}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--corpus", nargs="+", default=[str(DEMO / "tc_corpus.txt")])
    parser.add_argument("--heldout", default=str(DEMO / "tc_heldout.txt"))
    parser.add_argument("--limit", type=int, default=30, help="held-out documents")
    parser.add_argument("--heldout-last", type=int, help="hold out the corpus's last N documents instead of --heldout")
    parser.add_argument("--new-tokens", type=int, default=2000)
    parser.add_argument("--untie", action="store_true", help="also ablate the output row on an untied copy")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()

    texts = [line.strip() for line in open(args.heldout, encoding="utf-8") if line.strip()][: args.limit]
    with tempfile.TemporaryDirectory() as tmp:
        corpus = args.corpus
        if args.heldout_last:
            docs = [line.strip() for f in args.corpus for line in open(f, encoding="utf-8") if line.strip()]
            texts = docs[-args.heldout_last :][: args.limit]
            corpus = [f"{tmp}/train.txt"]
            Path(corpus[0]).write_text("\n".join(docs[: -args.heldout_last]) + "\n", encoding="utf-8")
            args.heldout = f"the last {args.heldout_last} documents of the corpus"
        cfg = ExtendVocabConfig.model_validate(
            {
                "model": {"tokenizer": args.model},
                "data": {"files": corpus, "validation": 0},
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
    for name, (settings, untie) in methods.items():
        results[name] = measure(base_model, base_tok, new_tok, texts, settings, untie)
        print(f"{name}: {results[name]['bits_per_char']:.3f} bits/char", flush=True)

    rows = [
        [
            name,
            f"{r['bits_per_char']:.3f}",
            f"{r['bits_per_char'] / base['bits_per_char']:.2f}x",
            f"{r['tokens_per_char']:.3f}",
        ]
        for name, r in results.items()
    ]
    print()
    print(
        f"{args.model}, {report['tokens_added']} tokens added from {', '.join(Path(c).name for c in args.corpus)}; "
        f"{len(texts)} held-out documents: {Path(args.heldout).name} ({sum(map(len, texts))} characters)"
    )
    print(format_table(["initialization", "bits/char", "vs base", "tokens/char"], rows))
    if args.json:
        Path(args.json).write_text(json.dumps({"tokens_added": report["tokens_added"], "results": results}, indent=2))


if __name__ == "__main__":
    main()
