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
