"""How closely llama.cpp follows the HF export of a run: tokenization of held-out TC and English text, and greedy
tokens from the f32 and q8_0 GGUF exports against transformers on the merged HF export. Prints one table.

Run (after `make demo`, with the gguf-check extra installed; any pretrain or sft run of a supported architecture,
Gemma 3 and Qwen2 included):
    python scripts/gguf_agreement.py runs/demo/sft [--prompts 20] [--tokens 16]
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def held_out_texts() -> list[str]:
    drcd = (SHARED / "tc" / "drcd_test_seen_titles_paragraphs.txt").read_text(encoding="utf-8").splitlines()
    bench = (SHARED / "bench" / "mt_bench_en_questions.jsonl").read_text(encoding="utf-8").splitlines()
    return [t for t in drcd if t.strip()], [turn for line in bench for turn in json.loads(line)["turns"]]


def export(run: Path, out: Path, *args: str) -> None:
    from typer.testing import CliRunner

    from bailong.cli import app

    result = CliRunner().invoke(app, ["export", str(run), "--out", str(out), *args])
    if result.exit_code:
        sys.exit(f"export {' '.join(args)} failed: {result.stderr or result.stdout}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, nargs="?", default=ROOT / "runs" / "demo" / "sft")
    parser.add_argument("--prompts", type=int, default=20, help="half TC paragraph openings, half MT-bench turns")
    parser.add_argument("--tokens", type=int, default=16)
    args = parser.parse_args()

    from transformers import AutoModelForCausalLM

    from bailong.console import format_table
    from bailong.gguf.check import llama_cpp_greedy, llama_cpp_tokenize, open_gguf, transformers_greedy
    from bailong.loading import load_tokenizer

    tc, english = held_out_texts()
    prompts = [t[:24] for t in tc[: args.prompts // 2]] + english[: args.prompts - args.prompts // 2]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        export(args.run, tmp / "hf")
        tokenizer = load_tokenizer(str(tmp / "hf"))
        model = AutoModelForCausalLM.from_pretrained(tmp / "hf").eval()
        wanted = [transformers_greedy(model, tokenizer(p)["input_ids"], args.tokens) for p in prompts]
        for outtype in ("f32", "q8_0"):
            export(args.run, tmp / "gguf", "--format", "gguf", "--outtype", outtype)
            path = next((tmp / "gguf").glob(f"*-{outtype}.gguf"))
            if outtype == "f32":
                vocab = open_gguf(path, vocab_only=True)
                for name, texts in (("TC (DRCD paragraphs)", tc), ("English (MT-bench turns)", english)):
                    for bos in (False, True):
                        same = sum(
                            llama_cpp_tokenize(vocab, t, bos) == tokenizer(t, add_special_tokens=bos)["input_ids"]
                            for t in texts
                        )
                        what = f"tokenization, {name}, {'with' if bos else 'without'} BOS"
                        rows.append([what, f"{same}/{len(texts)}", f"{same / len(texts):.1%}"])
                vocab.close()
            llm = open_gguf(path, n_ctx=512)
            got = [llama_cpp_greedy(llm, tokenizer(p)["input_ids"], args.tokens) for p in prompts]
            llm.close()
            identical = sum(g == w for g, w in zip(got, wanted))
            prefix = [next((i for i, (a, b) in enumerate(zip(g, w)) if a != b), len(w)) for g, w in zip(got, wanted)]
            share = sum(prefix) / (len(prompts) * args.tokens)
            what = f"greedy {args.tokens} tokens, {outtype} GGUF vs transformers (f32)"
            rows.append([what, f"{identical}/{len(prompts)} prompts identical", f"{share:.1%} tokens before a split"])
    print(f"run: {args.run}")
    print(format_table(["check", "agreeing", "share"], rows))


if __name__ == "__main__":
    main()
