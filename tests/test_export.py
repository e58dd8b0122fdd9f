"""bailong export --format hf: the export equals the run it came from (base + adapter, as `bailong eval` loads it) for
every embeddings.train mode, on tied and untied bases, trained on a full-precision or a 4-bit base."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from helpers import DEMO_DATA, MISTRAL_V1, run_cli, tiny_llama, write_config

MODES = ["lora", "new-rows", "full", "frozen"]


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    """A tiny Llama extended by extend-vocab (Mistral v1 + 200 TC tokens), untied, and the same weights tied."""
    from bailong.artifacts import EXTENSION_FILE

    tmp = tmp_path_factory.mktemp("bases")
    base = tiny_llama(tmp / "base", str(MISTRAL_V1))
    cfg = {
        "model": {"name_or_path": str(base)},
        "data": {"files": [str(DEMO_DATA / "tc_corpus.txt")]},
        "vocab": {"new_tokens": 200, "held_out": 0},
        "output_dir": str(tmp / "untied"),
    }
    result = run_cli("extend-vocab", write_config(tmp / "c.yaml", cfg))
    assert result.code == 0, result.stderr
    untied = tmp / "untied"
    model = AutoModelForCausalLM.from_pretrained(untied)
    model.config.tie_word_embeddings = True
    model.lm_head.weight = model.model.embed_tokens.weight
    tied = tmp / "tied"
    model.save_pretrained(tied)
    for file in untied.iterdir():
        if file.name not in ("config.json", "model.safetensors", "generation_config.json"):
            (tied / file.name).write_bytes(file.read_bytes())
    extension = json.loads((tied / EXTENSION_FILE).read_text())
    (tied / EXTENSION_FILE).write_text(json.dumps({**extension, "tied_embeddings": True}))
    return {"untied": untied, "tied": tied}


def train(base, out, mode: str, quantized: bool):
    cfg = {
        "model": {"name_or_path": str(base)},
        "quantization": {"mode": "nf4" if quantized else "none"},
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
        "embeddings": {"train": mode, "learning_rate": 0.05},
        "data": {"files": [str(DEMO_DATA / "tc_corpus.txt")], "validation": 0, "block_size": 32},
        "train": {
            "max_steps": 2,
            "batch_size": 2,
            "save_steps": 2,
            "learning_rate": 0.02,
            "gradient_checkpointing": False,
            "precision": "float32",
        },
        "output_dir": str(out),
    }
    result = run_cli("pretrain", write_config(out.parent / f"{out.name}.yaml", cfg))
    assert result.code == 0, result.stderr


def held_out_ids(tokenizer) -> torch.Tensor:
    text = (DEMO_DATA / "tc_heldout.txt").read_text(encoding="utf-8")[:400]
    ids = tokenizer(text, return_tensors="pt")["input_ids"][:, :96]
    assert (ids >= 32000).any()  # the new rows are read
    return ids


@pytest.mark.parametrize("quantized", [False, True], ids=["fp32-base", "nf4-base"])
@pytest.mark.parametrize("tie", ["tied", "untied"])
@pytest.mark.parametrize("mode", MODES)
def test_export_equals_the_run(bases, tmp_path, mode, tie, quantized):
    from bailong.config import ModelConfig
    from bailong.loading import load_model, load_tokenizer

    run = tmp_path / "run"
    train(bases[tie], run, mode, quantized)
    result = run_cli("export", run, "--to", tmp_path / "merged")
    assert result.code == 0, result.stderr
    exported = AutoModelForCausalLM.from_pretrained(tmp_path / "merged").eval()
    on_base = load_model(ModelConfig(name_or_path=str(run))).eval()  # what `bailong eval` loads for a run folder
    ids = held_out_ids(load_tokenizer(str(tmp_path / "merged")))
    with torch.no_grad():
        want, got = on_base(input_ids=ids).logits, exported(input_ids=ids).logits
    assert torch.allclose(got, want, atol=1e-4), (got - want).abs().max()
    config = json.loads((tmp_path / "merged" / "config.json").read_text())
    heads_differ = tie == "tied" and mode in ("lora", "full")  # trained apart; new-rows shares its deltas when tied
    assert config["tie_word_embeddings"] is (tie == "tied" and not heads_differ)
    assert ("tie_word_embeddings: false" in result.stdout) is heads_differ
