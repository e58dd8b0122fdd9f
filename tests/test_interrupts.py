"""Ctrl-C at any moment ends with exit 130, the one line `interrupted` and no output that looks complete; a run
killed after logging past its last checkpoint logs each step once when resumed."""

import json
import shutil
import signal
import subprocess
import sys
import time

import pytest
import typer

from bailong.cli import guarded
from helpers import DEMO_DATA, MISTRAL_V1, read_report, signal_at, tiny_llama, write_config

BAILONG = [sys.executable, "-m", "bailong"]


def test_an_interrupt_that_a_library_wrapped_is_still_an_interrupt(capsys):
    def body():
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as exc:  # what transformers' lazy import does with Ctrl-C during an import
            raise ModuleNotFoundError("Could not import module 'LlamaConfig'") from exc

    with pytest.raises(typer.Exit) as exit_info:
        guarded(False, body)
    assert exit_info.value.exit_code == 130
    assert capsys.readouterr().err.strip() == "interrupted"


def test_ctrl_c_inside_a_destructor_prints_no_traceback():
    """Python reports an exception raised in a __del__ as "Exception ignored in ..." with a traceback; a Ctrl-C that
    lands there is remembered instead, and the command still ends as interrupted."""
    import subprocess
    import sys

    code = (
        "import gc, os, signal, time\n"
        "from bailong.errors import catch_interrupts, was_interrupted\n"
        "catch_interrupts()\n"
        "class Slow:\n"
        "    def __del__(self):\n"
        "        os.kill(os.getpid(), signal.SIGINT)\n"
        "        time.sleep(0.5)\n"
        "Slow()\n"
        "gc.collect()\n"
        "print('remembered' if was_interrupted() else 'lost')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr, proc.stderr
    assert proc.stdout.strip() == "remembered"


def assert_interrupted(proc, out, moment):
    assert proc.returncode == 130, (moment, proc.returncode, proc.stderr[-2000:])
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines[-1] == "interrupted", (moment, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr and not [x for x in lines if x.startswith("error:")], (moment, proc.stderr)
    leftovers = [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]
    assert not leftovers, (moment, leftovers)
    if out.exists():  # only ever the whole output, committed before the interrupt
        assert read_report(out)["tokens_added"] > 0, moment


@pytest.mark.slow
def test_ctrl_c_at_any_moment_of_extend_vocab(tmp_path):
    cfg = {
        "model": {"tokenizer": str(MISTRAL_V1)},
        "data": {"files": [str(DEMO_DATA / "tc_corpus.txt")]},
        "vocab": {"new_tokens": 200},
        "output_dir": str(tmp_path / "out"),
    }
    command = BAILONG + ["extend-vocab", str(write_config(tmp_path / "c.yaml", cfg))]
    out = tmp_path / "out"
    started, seen = time.monotonic(), []

    def committed_now() -> bool:
        if out.exists():
            seen.append(time.monotonic() - started)
        return bool(seen)

    reference = signal_at(command, 0, when=committed_now)  # uninterrupted (signal 0 sends nothing), timed
    committed = seen[0]
    assert reference.returncode == 0 and out.exists(), reference.stderr[-2000:]
    shutil.rmtree(out)
    # the first second (imports; before ~0.1 s the interpreter itself is starting, which no program can handle),
    # then reading, training the tokenizer, merging and checking, up to well before the output is committed
    moments = [0.2, 0.3, 0.45, 0.6, 0.8, 1.0] + [round(f * committed, 2) for f in (0.3, 0.45, 0.6, 0.7)]
    for moment in moments:
        assert_interrupted(signal_at(command, signal.SIGINT, after=moment), out, moment)
        assert not out.exists(), moment
    # the moment the output starts to be written
    proc = signal_at(command, signal.SIGINT, when=lambda: any(tmp_path.glob(".out.partial-*/*")))
    assert_interrupted(proc, out, "writing")


def pretrain_command(tmp_path, out):
    base = tiny_llama(tmp_path / "base", str(MISTRAL_V1))
    cfg = {
        "model": {"name_or_path": str(base)},
        "quantization": {"mode": "none"},
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
        "data": {"files": [str(DEMO_DATA / "tc_corpus.txt")], "validation": 0, "block_size": 64},
        "train": {"max_steps": 8, "save_steps": 3, "logging_steps": 1, "gradient_checkpointing": False},
        "output_dir": str(out),
    }
    return BAILONG + ["pretrain", str(write_config(tmp_path / "p.yaml", cfg))]


@pytest.mark.slow
def test_ctrl_c_during_training_leaves_no_finished_run(tmp_path):
    out = tmp_path / "run"
    command = pretrain_command(tmp_path, out)
    moments = {
        "loading": lambda: (out / "checkpoints").exists(),
        "logging": lambda: (out / "metrics.jsonl").exists(),
        "saving a checkpoint": lambda: (out / "checkpoints" / "checkpoint-3").exists(),
    }
    for moment, when in moments.items():
        proc = signal_at(command, signal.SIGINT, when=when)
        assert proc.returncode == 130, (moment, proc.stderr[-2000:])
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert lines[-1] == "interrupted" and "Traceback" not in proc.stderr, (moment, proc.stderr[-2000:])
        assert not (out / "bailong_run.json").exists() and not (out / "adapter").exists(), moment


@pytest.mark.slow
def test_a_run_killed_after_logging_past_its_checkpoint_logs_each_step_once(tmp_path):
    out = tmp_path / "run"
    command = pretrain_command(tmp_path, out)

    def steps() -> list[int]:
        metrics = out / "metrics.jsonl"
        lines = metrics.read_text().splitlines() if metrics.exists() else []
        return [json.loads(line)["step"] for line in lines if line.endswith("}")]

    killed = signal_at(command, signal.SIGKILL, when=lambda: 5 in steps())  # checkpoint-3 saved, steps 4-5 logged
    assert killed.returncode == -signal.SIGKILL
    assert {4, 5} <= set(steps()) and not (out / "checkpoints" / "checkpoint-6").exists()
    resumed = subprocess.run(command, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming from" in resumed.stdout and "checkpoint-3" in resumed.stdout
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    logged = [r["step"] for r in rows if "loss" in r]
    assert logged == list(range(1, 9))  # before the fix: 1 2 3 4 5 4 5 6 7 8
