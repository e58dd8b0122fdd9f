"""How many English texts the HF tokenizer encodes differently from sentencepiece, for a SentencePiece base.

Texts: every turn of MT-bench's English questions and bailong's English probe. Tokenizers: the one transformers
converts from the base's tokenizer.model, and the one extend-vocab writes (here with one TC piece added, which none of
these texts touches). The reference is sentencepiece itself with the base model.

    python scripts/sp_english_agreement.py        # Mistral v1 (the tokenizer.model shipped in mistral_common)
    python scripts/sp_english_agreement.py --base PATH/tokenizer.model --bench PATH/question.jsonl
"""

from __future__ import annotations

import argparse
import json
import tempfile
from importlib.util import find_spec
from pathlib import Path

import sentencepiece as spm

from bailong.console import format_table
from bailong.loading import load_tokenizer
from bailong.vocab.checks import english_probe
from bailong.vocab.sentencepiece_model import extend_sentencepiece

ROOT = Path(__file__).resolve().parents[1]
MISTRAL_V1 = Path(find_spec("mistral_common").submodule_search_locations[0]) / "data" / "tokenizer.model.v1"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default=str(MISTRAL_V1))
    parser.add_argument("--bench", default=str(ROOT.parent / "shared/data/bench/mt_bench_en_questions.jsonl"))
    args = parser.parse_args()
    turns = [t for line in Path(args.bench).open(encoding="utf-8") for t in json.loads(line)["turns"]]
    texts = turns + english_probe()
    reference = spm.SentencePieceProcessor(model_file=args.base).encode(texts)
    converted = load_tokenizer(args.base)
    with tempfile.TemporaryDirectory() as tmp:
        extended = extend_sentencepiece(args.base, converted, ["臺灣"], 1, Path(tmp)).tokenizer
        rows = []
        for name, tok in (("converted by transformers", converted), ("written by extend-vocab", extended)):
            ids = tok(texts, add_special_tokens=False)["input_ids"]
            differ = [i for i, (a, b) in enumerate(zip(ids, reference)) if a != b]
            mt = sum(i < len(turns) for i in differ)
            rows.append([name, f"{mt} of {len(turns)}", f"{len(differ) - mt} of {len(texts) - len(turns)}"])
    print(format_table(["HF tokenizer", "MT-bench turns differing", "probe lines differing"], rows))


if __name__ == "__main__":
    main()
