"""Per tokenizer family: tokens per character on held-out TC text before and after extend-vocab adds 8,000 tokens,
whether English keeps its ids, the guarantees, and wall time; for Gemma 3 270M also the step-0 bits per character of
the zip-tie checkpoint against the base model (tokenizer-independent; target <= 1.3x).

Bases: Llama 3 (Meta's tiktoken file), Qwen2.5 (qwen.tiktoken), Mistral Nemo (tekken), converted with transformers'
converters as the tests do (tests/real_tokenizers.py); Gemma 3 and SmolLM2 (the embedded GGUFs); Mistral v1 (.model).
New tokens come from ../shared/data/tc/drcd_dev_paragraphs.txt; tokens per character is measured on
../shared/data/tc/drcd_test_seen_titles_paragraphs.txt; English is the MT-bench turns that quote no Chinese.

    python scripts/bench_families.py                                  # every family, 8,000 new tokens
    python scripts/bench_families.py --families gemma3 --bpc-docs 40
    python scripts/bench_families.py --families llama3 qwen --new-tokens 2000 --json families.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT / "tests"))  # the tokenizer converters the tests use

import real_tokenizers  # noqa: E402
from bailong.config import ExtendVocabConfig  # noqa: E402
from bailong.console import format_table  # noqa: E402
from bailong.evaluation.bpc import bits_per_character  # noqa: E402
from bailong.loading import load_tokenizer  # noqa: E402
from bailong.stages.extend_vocab import run as extend_vocab  # noqa: E402
from bailong.vocab.train import has_cjk  # noqa: E402

FAMILIES = {  # name -> (label, how to get the base tokenizer source)
    "llama3": ("Llama 3.x (tiktoken)", real_tokenizers.llama3),
    "qwen": ("Qwen2.5 (qwen.tiktoken)", real_tokenizers.qwen),
    "tekken": ("Mistral Nemo (tekken)", real_tokenizers.tekken),
    "gemma3": ("Gemma 3 (tokenizer.json)", None),
    "smollm2": ("SmolLM2 (byte-level)", None),
    "mistral-v1": ("Mistral v1 (.model)", None),
}
SOURCES = {"gemma3": "gemma-3-270m", "smollm2": "smollm2-135m-instruct", "mistral-v1": str(real_tokenizers.MISTRAL_V1)}


def lines(name: str) -> list[str]:
    return [line.rstrip("\n") for line in (SHARED / name).open(encoding="utf-8") if line.strip()]


def english_turns() -> list[str]:
    questions = [json.loads(line) for line in (SHARED / "bench" / "mt_bench_en_questions.jsonl").open()]
    return [turn for q in questions for turn in q["turns"] if not has_cjk(turn)]  # less the turns quoting Chinese


def ids(tokenizer, texts: list[str]) -> list[list[int]]:
    return tokenizer(texts, add_special_tokens=False)["input_ids"]


def tokens_per_char(tokenizer, texts: list[str]) -> float:
    return sum(map(len, ids(tokenizer, texts))) / sum(map(len, texts))


def base_english_ids(name: str, source: str, base, english: list[str]) -> list[list[int]]:
    if name != "mistral-v1":
        return ids(base, english)
    import sentencepiece as spm  # the ids the base model was trained on

    return spm.SentencePieceProcessor(model_file=source).encode(english)


def run_family(name: str, args, work: Path) -> dict:
    label, build = FAMILIES[name]
    source = str(build(work / f"{name}-base")) if build else SOURCES[name]
    base = load_tokenizer(source)
    with_model = name == "gemma3" and args.bpc_docs > 0
    model = {"name_or_path": source} if with_model else {"tokenizer": source}
    cfg = ExtendVocabConfig(
        model=model,
        data={"files": [str(SHARED / "tc" / "drcd_dev_paragraphs.txt")], "validation": 0},
        vocab={"new_tokens": args.new_tokens},
        output_dir=str(work / name),
    )
    start = time.perf_counter()
    report = extend_vocab(cfg, overwrite=True)
    seconds = time.perf_counter() - start
    new = load_tokenizer(str(work / name))
    held_out, english = lines("tc/drcd_test_seen_titles_paragraphs.txt"), english_turns()
    changed = sum(a != b for a, b in zip(base_english_ids(name, source, base, english), ids(new, english)))
    row = {
        "family": label,
        "kind": report["family"],
        "base_tokens": len(base),
        "added": report["tokens_added"],
        "first_new_id": report["first_new_id"],
        "tok_per_char_before": round(tokens_per_char(base, held_out), 4),
        "tok_per_char_after": round(tokens_per_char(new, held_out), 4),
        "english_turns_changed": f"{changed}/{len(english)}",
        "guarantees": all(
            report[k] is not False
            for k in ("base_tokens_kept", "special_token_ids_kept", "chat_template_kept", "roundtrip_ok")
        ),
        "seconds": round(seconds, 1),
    }
    if with_model:
        row.update(step0_bpc(source, work / name, held_out[: args.bpc_docs]))
    return row


def step0_bpc(base_source: str, extended: Path, docs: list[str]) -> dict:
    from transformers import AutoModelForCausalLM

    from bailong.loading.sources import resolve_source

    result = {}
    for key, path in (("bpc_base", resolve_source(base_source).path), ("bpc_zip_tie", str(extended))):
        model = AutoModelForCausalLM.from_pretrained(path)
        result[key] = round(bits_per_character(model, load_tokenizer(path), docs, max_length=512)["bits_per_char"], 4)
        del model
    result["bpc_ratio"] = round(result["bpc_zip_tie"] / result["bpc_base"], 3)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", nargs="+", choices=list(FAMILIES), default=list(FAMILIES))
    parser.add_argument("--new-tokens", type=int, default=8000)
    parser.add_argument("--bpc-docs", type=int, default=40, help="held-out documents for Gemma's bits/char (0: skip)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.families:
            rows.append(run_family(name, args, Path(tmp)))
    headers = list(dict.fromkeys(k for row in rows for k in row))
    print(format_table(headers, [[row.get(k, "") for k in headers] for row in rows]))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main()
