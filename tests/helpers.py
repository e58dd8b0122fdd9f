"""Shared test helpers: paths to real data, the CLI in-process, tiny real models, and kill-at-a-moment."""

import json
from importlib.util import find_spec
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
DEMO_DATA = ROOT / "src" / "bailong" / "demo_data"
MISTRAL_V1 = Path(find_spec("mistral_common").submodule_search_locations[0]) / "data" / "tokenizer.model.v1"


def shared_file(relative: str) -> Path:
    path = SHARED / relative
    if not path.exists():
        pytest.skip(f"shared test data not found: {path}")
    return path


class CliResult:
    def __init__(self, code: int, stdout: str, stderr: str):
        self.code, self.stdout, self.stderr = code, stdout, stderr


def run_cli(*args: str) -> CliResult:
    """Runs `bailong ARGS` in this process (the real Typer app, no mocks)."""
    from bailong.cli import app

    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return CliResult(result.exit_code, result.stdout, result.stderr)


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


def read_report(out: Path) -> dict:
    return json.loads((out / "extend_vocab_report.json").read_text(encoding="utf-8"))


def tiny_llama(
    path: Path, tokenizer_source: str, *, vocab_size: int | None = None, tied: bool = False, context: int = 512
) -> Path:
    """A tiny random Llama saved as an HF dir with the given base tokenizer beside it (sizes multiple of 32);
    `context` is its max_position_embeddings (what `bailong serve` lets a prompt and reply fill)."""
    import shutil

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from bailong.loading import load_tokenizer, sentencepiece_file

    tok = load_tokenizer(tokenizer_source)
    config = LlamaConfig(
        vocab_size=vocab_size or len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=context,
        tie_word_embeddings=tied,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(path)
    tok.save_pretrained(path)
    sp = sentencepiece_file(tokenizer_source)
    if sp is not None:
        shutil.copy(sp, path / "tokenizer.model")
    return path


def extended_tiny_llama(tmp: Path, new_tokens: int = 200) -> dict[str, Path]:
    """A tiny Llama (Mistral v1 tokenizer) extended by extend-vocab with `new_tokens` TC pieces, untied, and the same
    weights tied (a tied base, as SmolLM2 and Gemma are): {"untied": dir, "tied": dir}."""
    from transformers import AutoModelForCausalLM

    base = tiny_llama(tmp / "base", str(MISTRAL_V1))
    cfg = {
        "model": {"name_or_path": str(base)},
        "data": {"files": [str(DEMO_DATA / "tc_corpus.txt")]},
        "vocab": {"new_tokens": new_tokens, "held_out": 0},
        "output_dir": str(tmp / "untied"),
    }
    result = run_cli("extend-vocab", write_config(tmp / "extend.yaml", cfg))
    assert result.code == 0, result.stderr
    untied, tied = tmp / "untied", tmp / "tied"
    model = AutoModelForCausalLM.from_pretrained(untied)
    model.config.tie_word_embeddings = True
    model.lm_head.weight = model.model.embed_tokens.weight
    model.save_pretrained(tied)
    for file in untied.iterdir():
        if file.name not in ("config.json", "model.safetensors", "generation_config.json"):
            (tied / file.name).write_bytes(file.read_bytes())
    extension = json.loads((tied / "bailong_extension.json").read_text())
    (tied / "bailong_extension.json").write_text(json.dumps({**extension, "tied_embeddings": True}))
    return {"untied": untied, "tied": tied}


def train_tiny(base: Path, out: Path, mode: str = "lora", quantized: bool = False, steps: int = 2) -> Path:
    """A short `bailong pretrain` run on `base` (embeddings.train `mode`, optionally on a 4-bit base) with a high
    learning rate, so that every trained matrix moves."""
    cfg = {
        "model": {"name_or_path": str(base)},
        "quantization": {"mode": "nf4" if quantized else "none"},
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
        "embeddings": {"train": mode, "learning_rate": 0.05},
        "data": {"files": [str(DEMO_DATA / "tc_corpus.txt")], "validation": 0, "block_size": 32},
        "train": {
            "max_steps": steps,
            "batch_size": 2,
            "save_steps": steps,
            "learning_rate": 0.02,
            "gradient_checkpointing": False,
            "precision": "float32",
        },
        "output_dir": str(out),
    }
    result = run_cli("pretrain", write_config(out.parent / f"{out.name}.yaml", cfg))
    assert result.code == 0, result.stderr
    return out


def kill_when_created(command: list[str], path: Path, timeout: float = 300) -> None:
    """Starts `command` and SIGKILLs it the moment `path` appears (or when it ends / times out)."""
    import subprocess
    import time

    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while not path.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    proc.kill()
    proc.wait()


def logged_losses(run_dir: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


def signal_at(command: list[str], sig: int, *, after: float = 0.0, when=None, timeout: float = 300):
    """Starts `command`, sends `sig` `after` seconds or once `when()` is true, and returns the finished process with
    its output (`.returncode`, `.stdout`, `.stderr`)."""
    import subprocess
    import time

    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    start = time.time()
    while proc.poll() is None and time.time() - start < timeout:
        if (when is None and time.time() - start >= after) or (when is not None and when()):
            proc.send_signal(sig)
            break
        time.sleep(0.002)
    stdout, stderr = proc.communicate(timeout=timeout)
    proc.stdout, proc.stderr = stdout, stderr
    return proc


def corpus_slice(path: Path, lines: int, name: str = "tc/drcd_dev_paragraphs.txt") -> Path:
    source = shared_file(name)
    path.write_text("".join(source.open(encoding="utf-8").readlines()[:lines]), encoding="utf-8")
    return path


GEMMA3_NEW_TOKENS = 1000


def extended_gemma3_run(tmp: Path) -> dict[str, Path]:
    """The real Gemma 3 270M extended with GEMMA3_NEW_TOKENS TC pieces (zip-tie) on a corpus slice, then 3 LoRA
    pretrain steps on short blocks: {"extended", "run", "corpus"} (the `gemma3_run` fixture builds it once)."""
    corpus = corpus_slice(tmp / "tc.txt", 400)
    held_out = corpus_slice(tmp / "held.txt", 2, "tc/drcd_test_seen_titles_paragraphs.txt")
    cfg = {
        "model": {"name_or_path": "gemma-3-270m"},
        "data": {"files": [str(corpus)], "validation": 0.05},
        "vocab": {"new_tokens": GEMMA3_NEW_TOKENS},
        "output_dir": str(tmp / "extended"),
    }
    result = run_cli("extend-vocab", write_config(tmp / "e.yaml", cfg))
    assert result.code == 0, result.stderr
    pretrain = {
        "model": {"name_or_path": str(tmp / "extended")},
        "quantization": {"mode": "none"},
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
        "data": {"files": [str(corpus)], "validation_files": [str(held_out)], "block_size": 64},
        "train": {"max_steps": 3, "batch_size": 1, "save_steps": 3, "logging_steps": 1, "learning_rate": 1e-3,
                  "gradient_checkpointing": False},
        "output_dir": str(tmp / "run"),
    }  # fmt: skip
    result = run_cli("pretrain", write_config(tmp / "p.yaml", pretrain))
    assert result.code == 0, result.stderr
    return {"extended": tmp / "extended", "run": tmp / "run", "corpus": corpus}
