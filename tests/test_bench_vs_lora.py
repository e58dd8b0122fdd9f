"""The scripts of docs/method-vs-lora.md at a toy size: bench_vs_lora.py on a tiny random Llama with SmolLM2's
tokenizer (every arm, a few steps) and bench_generation_speed.py on two tiny models."""

import json
import subprocess
import sys

import pytest

from helpers import DEMO_DATA, ROOT, tiny_llama


@pytest.mark.slow  # two extensions and four arms in a subprocess
def test_bench_vs_lora_prints_tables_and_writes_curves_for_every_arm(tmp_path):
    base = tiny_llama(tmp_path / "base", "smollm2-135m-instruct", tied=True)
    command = [
        sys.executable,
        str(ROOT / "scripts" / "bench_vs_lora.py"),
        *("--model", str(base), "--train", str(DEMO_DATA / "tc_corpus.txt")),
        *("--heldout", str(DEMO_DATA / "tc_heldout.txt"), "--limit", "2", "--new-tokens", "100"),
        *("--budget-s", "3", "--eval-every", "1", "--block", "32", "--batch", "1"),
        *("--json", str(tmp_path / "bench.json"), "--plot", str(tmp_path / "bench.png")),
    ]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    arms = ["plain-lora", "zip-tie", "mean", "zip-tie-new-rows"]
    for title in ("equal training seconds", "equal characters consumed", "equal training FLOPs"):
        table = proc.stdout.split(title)[1]
        assert all(f"\n{arm} " in table for arm in arms), table
    result = json.loads((tmp_path / "bench.json").read_text(encoding="utf-8"))
    assert list(result["arms"]) == arms
    for curve in result["arms"].values():
        first, last = curve["points"][0], curve["points"][-1]
        assert first["step"] == 0 and last["step"] > 0 and last["seconds"] >= 3
        assert last["chars"] > 0 and last["flops"] == last["tokens"] * curve["flops_per_token"]
        assert all(p["tc_bpc"] > 0 and p["en_bpc"] > 0 for p in curve["points"])
    # the extension reads the TC training text in fewer tokens, so a character costs fewer FLOPs
    assert result["arms"]["zip-tie"]["tokens_per_char"] < result["arms"]["plain-lora"]["tokens_per_char"]
    assert result["base"]["en_bpc"] > 0
    assert (tmp_path / "bench.png").stat().st_size > 10_000

    again = [sys.executable, str(ROOT / "scripts" / "bench_vs_lora.py"), "--replot", str(tmp_path / "bench.json")]
    replot = subprocess.run(again, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert replot.returncode == 0, replot.stderr[-3000:]
    assert replot.stdout.split("equal training FLOPs")[1] == proc.stdout.split("equal training FLOPs")[1]


def test_bench_generation_speed_prints_a_row_per_model(tmp_path):
    models = [str(tiny_llama(tmp_path / name, "smollm2-135m-instruct", tied=True)) for name in ("a", "b")]
    command = [sys.executable, str(ROOT / "scripts" / "bench_generation_speed.py"), *models, "--prompts", "2"]
    proc = subprocess.run([*command, "--characters", "6"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    header, _, *rows = proc.stdout.strip().splitlines()
    assert "chars/s" in header and len(rows) == 2
    for model, row in zip(models, rows):
        cells = [c.strip() for c in row.split("|")]
        assert cells[0] == model and int(cells[1]) >= 12 and float(cells[4]) > 0 and float(cells[5]) > 0


def test_check_demo_fails_when_the_pretrained_model_is_not_below_its_base(tmp_path):
    """CI's check of the README's demo claims (scripts/check_demo.py) on results.json files shaped like eval's."""
    script = ROOT / "scripts" / "check_demo.py"

    def check(pretrained_bpc: float) -> subprocess.CompletedProcess:
        results = {
            "base": {"bpc": 8.7, "chars_per_s": 2.0},
            "pretrained": {"bpc": pretrained_bpc, "chars_per_s": 6.0},
            "sft": {"bpc": 8.9, "chars_per_s": 5.0},
        }
        path = tmp_path / "results.json"
        path.write_text(json.dumps(results), encoding="utf-8")
        return subprocess.run([sys.executable, str(script), str(path)], capture_output=True, text=True, timeout=60)

    good, bad = check(8.4), check(8.8)
    assert good.returncode == 0 and "ok     held-out bits per character: pretrained 8.400, base 8.700" in good.stdout
    assert bad.returncode == 1 and "FAILED held-out bits per character" in bad.stdout
    missing = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "none.json")], capture_output=True, text=True, timeout=60
    )
    assert missing.returncode == 2 and "run `make demo` first" in missing.stderr
