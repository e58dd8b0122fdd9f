"""bailong pretrain on tiny models: what trains, logs, outputs, export, and every bad input the issue names."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

from bailong.config import LoraConfig
from bailong.loading.adapters import adapter_options
from helpers import DEMO_DATA, MISTRAL_V1, kill_when_created, logged_losses, run_cli, tiny_llama, write_config


@pytest.fixture(scope="module")
def extended(tmp_path_factory):
    """A tiny untied Llama extended by extend-vocab (Mistral v1 tokenizer + 200 TC tokens), zip-tie rows."""
    tmp = tmp_path_factory.mktemp("ext")
    base = tiny_llama(tmp / "base", str(MISTRAL_V1))
    cfg = {
        "model": {"name_or_path": str(base)},
        "data": {"files": [str(DEMO_DATA / "tc_corpus.txt")]},
        "vocab": {"new_tokens": 200, "held_out": 0},
        "output_dir": str(tmp / "extended"),
    }
    result = run_cli("extend-vocab", write_config(tmp / "c.yaml", cfg))
    assert result.code == 0, result.stderr
    return tmp / "extended"


def pretrain_config(model_dir, out, **overrides) -> dict:
    cfg = {
        "model": {"name_or_path": str(model_dir)},
        "quantization": {"mode": "none"},
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
        "data": {
            "files": [str(DEMO_DATA / "tc_corpus.txt")],
            "validation_files": [str(DEMO_DATA / "tc_heldout.txt")],
            "block_size": 64,
        },
        "train": {
            "max_steps": 4,
            "batch_size": 2,
            "save_steps": 2,
            "logging_steps": 1,
            "learning_rate": 5e-3,
            "gradient_checkpointing": False,
        },
        "output_dir": str(out),
    }
    for key, value in overrides.items():
        section, _, name = key.partition(".")
        cfg.setdefault(section, {})[name] = value
    return cfg


def run_pretrain(tmp_path, cfg, *extra):
    return run_cli("pretrain", write_config(tmp_path / "p.yaml", cfg), *extra)


@pytest.fixture(scope="module")
def lora_run(extended, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lora")
    result = run_pretrain(tmp, pretrain_config(extended, tmp / "run"))
    assert result.code == 0, result.stderr
    return tmp / "run", result


def test_export_matches_adapter_on_base_and_run_dir_loads_as_model(extended, lora_run, tmp_path):
    from bailong.config import ModelConfig
    from bailong.loading import load_model

    out, _ = lora_run
    result = run_cli("export", out)
    assert result.code == 0, result.stderr
    merged = AutoModelForCausalLM.from_pretrained(out / "run-merged")
    on_base = load_model(ModelConfig(name_or_path=str(out)))  # a run folder is a model source: base + adapter
    on_base.eval()
    ids = torch.randint(0, 32200, (1, 24))
    with torch.no_grad():
        assert torch.allclose(merged(input_ids=ids).logits, on_base(input_ids=ids).logits, atol=1e-4)
    assert f"read {out}/adapter (pretrain run, 4 steps) and its base {extended}" in result.stdout
    assert f"wrote the merged checkpoint {out / 'run-merged'}" in result.stdout
    modes = {f.name: f.stat().st_mode & 0o777 for f in (out / "run-merged").iterdir()}
    assert len(set(modes.values())) == 1, modes  # model.safetensors as readable as config.json
    again = run_cli("export", out)
    assert (
        again.code == 2 and f"export folder {out / 'run-merged'} exists" in again.stderr and "--to" not in again.stderr
    )
    not_a_run = run_cli("export", tmp_path)
    assert not_a_run.code == 2 and "pass the output_dir of a pretrain or sft run that finished" in not_a_run.stderr


def test_lora_run_logs_and_outputs(extended, lora_run):
    out, result = lora_run
    assert "trainable parameters:" in result.stdout
    lines = result.stdout.splitlines()
    assert sum(line.startswith("step ") and "  loss " in line and "  lr " in line for line in lines) == 4
    assert "step 4/4  held-out loss " in result.stdout and "  bits/char " in result.stdout
    assert "{'loss'" not in result.stdout + result.stderr  # not Trainer's dicts
    assert "done in " in result.stdout and "training loss: " in result.stdout and " -> " in result.stdout
    assert "Generating train split" not in result.stderr and "publisher trust check" not in result.stderr
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if "loss" in r]
    assert [r["step"] for r in train_rows] == [1, 2, 3, 4]
    assert all({"learning_rate", "grad_norm", "tokens_seen"} <= r.keys() for r in train_rows)
    assert train_rows[-1]["tokens_seen"] == 4 * 2 * 64 and "tokens_per_s" in train_rows[-1]
    evals = [r for r in rows if "eval_loss" in r]
    assert [r["step"] for r in evals] == [0, 2, 4] and all(
        "eval_packed_bits_per_char" in r and "eval_bits_per_char" not in r for r in evals
    )
    assert (out / "loss.png").stat().st_size > 1000
    run = json.loads((out / "bailong_run.json").read_text())
    assert run["steps"] == 4 and run["base_model"] == str(extended)
    adapter = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert {"embed_tokens", "lm_head"} <= set(adapter["target_modules"])
    assert not adapter.get("modules_to_save")  # no whole embedding matrices stored
    size = (out / "adapter" / "adapter_model.safetensors").stat().st_size
    assert size < 0.2 * (extended / "model.safetensors").stat().st_size


def test_a_finished_run_reruns_as_complete_and_continues_when_max_steps_grows(extended, lora_run, tmp_path):
    import shutil

    out = tmp_path / "moved"
    shutil.copytree(lora_run[0], out)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    again = run_pretrain(tmp_path, pretrain_config(extended, out))
    assert again.code == 0, again.stderr
    assert f"{out} is complete at step 4; nothing to do" in again.stdout
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before  # nothing trained or rewritten

    longer = run_pretrain(tmp_path, pretrain_config(extended, out, **{"train.max_steps": 6}))
    assert longer.code == 0, longer.stderr
    assert "resuming from" in longer.stdout and "checkpoint-4" in longer.stdout
    assert json.loads((out / "bailong_run.json").read_text())["steps"] == 6
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    train_steps = [s for s in steps if s > 0]
    assert train_steps == sorted(train_steps) and max(steps) == 6


def test_paper_preset_trains_336m_parameters():
    """The paper's 4.6%: r=128 on the seven projections plus LoRA on embed_tokens and lm_head of Llama 2 7B (59,241)."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    from bailong.config import EmbeddingTrainingConfig

    config = LlamaConfig(
        vocab_size=59241,
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=32,
        tie_word_embeddings=False,
    )
    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    lora = LoraConfig(
        r=128, alpha=256, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    options = adapter_options(model, lora, EmbeddingTrainingConfig(train="lora"), None)
    peft_model = get_peft_model(model, PeftLoraConfig(r=128, lora_alpha=256, **options))
    trainable, total = peft_model.get_nb_trainable_parameters()
    assert trainable == 336_029_952
    assert round(100 * trainable / total, 1) == 4.6


@pytest.mark.slow
def test_sigkill_at_any_moment_resumes_to_the_same_steps_and_losses(extended, tmp_path):
    import subprocess
    import sys

    def config(name):
        cfg = pretrain_config(extended, tmp_path / name, **{"train.max_steps": 8, "train.save_steps": 2})
        return write_config(tmp_path / f"{name}.yaml", cfg)

    command = [sys.executable, "-m", "bailong", "pretrain"]
    straight = subprocess.run(command + [str(config("straight"))], capture_output=True, text=True)
    assert straight.returncode == 0, straight.stderr

    killed = config("killed")
    checkpoints = tmp_path / "killed" / "checkpoints"
    for folder in ("checkpoint-2", "checkpoint-6"):  # kill the moment a checkpoint starts to be written
        kill_when_created(command + [str(killed)], checkpoints / folder)
        assert not (tmp_path / "killed" / "bailong_run.json").exists()
    resumed = subprocess.run(command + [str(killed)], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from" in resumed.stdout

    assert json.loads((tmp_path / "killed" / "bailong_run.json").read_text())["steps"] == 8
    state = json.loads((checkpoints / "checkpoint-8" / "trainer_state.json").read_text())
    assert state["global_step"] == 8
    expected, got = logged_losses(tmp_path / "straight"), logged_losses(tmp_path / "killed")
    assert sorted(got) == list(range(1, 9))
    for step in range(1, 9):  # the same trajectory (resuming restores weights, optimizer, schedule, data position)
        assert got[step] == pytest.approx(expected[step], rel=1e-2), step


@pytest.mark.parametrize("mode", ["new-rows", "full", "frozen"])
def test_embedding_modes(extended, tmp_path, mode):
    from safetensors.torch import load_file

    out = tmp_path / "run"
    cfg = pretrain_config(
        extended,
        out,
        **{"embeddings.train": mode, "train.max_steps": 2, "train.save_steps": 2, "embeddings.learning_rate": 0.05},
    )
    cfg["data"]["validation_files"] = []
    cfg["data"]["validation"] = 0
    result = run_pretrain(tmp_path, cfg)
    assert result.code == 0, result.stderr
    assert run_cli("export", out).code == 0
    before = load_file(str(extended / "model.safetensors"))
    after = load_file(str(out / "run-merged" / "model.safetensors"))
    for name in ("model.embed_tokens.weight", "lm_head.weight"):
        old_rows_same = torch.equal(after[name][:32000], before[name][:32000])
        new_rows_same = torch.equal(after[name][32000:], before[name][32000:])
        if mode == "new-rows":
            assert old_rows_same and not new_rows_same, name
        elif mode == "full":
            assert not old_rows_same and not new_rows_same, name
        else:
            assert old_rows_same and new_rows_same, name


@pytest.mark.slow
def test_nf4_base_trains_and_exports_onto_full_precision(extended, tmp_path):
    out = tmp_path / "run"
    cfg = pretrain_config(extended, out, **{"quantization.mode": "nf4", "train.max_steps": 2, "train.save_steps": 2})
    result = run_pretrain(tmp_path, cfg)
    assert result.code == 0, result.stderr
    assert run_cli("export", out).code == 0
    merged = AutoModelForCausalLM.from_pretrained(out / "run-merged")
    assert merged.model.layers[0].self_attn.q_proj.weight.dtype == torch.float32  # full precision, not 4-bit


def test_bad_input(extended, tmp_path):
    base_dir = extended.parent / "base"
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n\n", encoding="utf-8")
    short = tmp_path / "short.txt"
    short.write_text("台灣。\n", encoding="utf-8")
    cases = [
        ({"data.files": [str(empty)]}, "no text to train on (empty or all-whitespace); put text in it"),
        ({"data.files": [str(short)]}, "shorter than one block of data.block_size=64"),
        ({"data.block_size": 1024}, "data.block_size=1024 is above the model's context of 512 tokens"),
        (
            {"model.name_or_path": str(base_dir), "model.tokenizer": str(extended)},
            "the tokenizer has 32200 tokens but the model only 32000 embedding rows",
        ),
        (
            {"model.name_or_path": str(base_dir), "embeddings.train": "new-rows"},
            "embeddings.train: new-rows needs the output of bailong extend-vocab",
        ),
        ({"data.streaming": True, "train.max_steps": -1}, "data.streaming needs train.max_steps"),
    ]
    for i, (overrides, message) in enumerate(cases):
        result = run_pretrain(tmp_path, pretrain_config(extended, tmp_path / f"run{i}", **overrides))
        assert result.code == 2, (overrides, result.stderr)
        assert message in result.stderr, (overrides, result.stderr)
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "Traceback" not in result.stderr  # one message (progress bars aside)
        assert not (tmp_path / f"run{i}").exists()  # a run that failed before training leaves no folder


def test_a_full_disk_while_saving_a_checkpoint_names_the_folder_and_that_the_run_resumes(extended, tmp_path):
    """A real full disk: the run folder is a 5 MB tmpfs, room for the tokenizer but not for the first checkpoint."""
    import subprocess

    out = tmp_path / "run"
    out.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=5m", "tmpfs", str(out)], capture_output=True).returncode:
        pytest.skip("mounting a small tmpfs needs root")
    try:
        result = run_pretrain(tmp_path, pretrain_config(extended, out))
        assert result.code == 2, result.stderr
        assert f"no space left on the device while writing into {out / 'checkpoints'}" in result.stderr
        assert "the run resumes from the start (no complete checkpoint)" in result.stderr
        assert "Traceback" not in result.stderr and not (out / "bailong_run.json").exists()
    finally:
        subprocess.run(["umount", str(out)], check=True)


def test_output_dir_of_another_run_is_refused(lora_run, extended, tmp_path):
    out, _ = lora_run
    cfg = pretrain_config(extended, out, **{"lora.r": 8})
    result = run_pretrain(tmp_path, cfg)
    assert result.code == 2 and "holds another run's checkpoints with a different config (lora.r)" in result.stderr


LAUNCHERS = {
    "accelerate": [
        "accelerate",
        "launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
    ],
    "torchrun": ["torchrun", "--nproc_per_node", "2"],
}


@pytest.mark.slow
@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_ddp_two_processes_stay_in_sync(extended, tmp_path, launcher):
    """`accelerate launch -m bailong pretrain` (and torchrun) with two CPU processes over gloo."""
    import subprocess
    import sys
    from pathlib import Path

    out = tmp_path / "run"
    cfg = pretrain_config(extended, out, **{"train.max_steps": 3, "train.save_steps": 3})
    path = write_config(tmp_path / "ddp.yaml", cfg)
    exe, *args = LAUNCHERS[launcher]
    command = [str(Path(sys.executable).with_name(exe)), *args, "-m", "bailong", "pretrain", str(path)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = json.loads((out / "bailong_run.json").read_text())
    assert run["world_size"] == 2 and run["ranks_in_sync"] is True and run["steps"] == 3
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert max(r["tokens_seen"] for r in rows) == 3 * 2 * 2 * 64  # steps x processes x batch x block
    # status lines come from the main process only
    assert proc.stdout.count("trainable parameters:") == 1 and proc.stdout.count(f"wrote {out}") == 1, proc.stdout
