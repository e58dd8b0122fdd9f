"""bailong pretrain on tiny models: what trains, logs, outputs, export, and every bad input the issue names."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

from bailong.config import LoraConfig
from bailong.pretrain import adapter_options
from conftest import DEMO_DATA, MISTRAL_V1, run_cli, tiny_llama, write_config


@pytest.fixture(scope="module")
def extended(tmp_path_factory):
    """A tiny untied Llama extended by extend-vocab (Mistral v1 tokenizer + 200 TC tokens), zip-tie rows."""
    tmp = tmp_path_factory.mktemp("ext")
    base = tiny_llama(tmp / "base", str(MISTRAL_V1))
    cfg = {"model": {"name_or_path": str(base)}, "data": {"files": [str(DEMO_DATA / "tc_corpus.txt")]},
           "vocab": {"new_tokens": 200, "held_out": 0}, "output_dir": str(tmp / "extended")}
    result = run_cli("extend-vocab", write_config(tmp / "c.yaml", cfg))
    assert result.code == 0, result.stderr
    return tmp / "extended"


def pretrain_config(model_dir, out, **overrides) -> dict:
    cfg = {
        "model": {"name_or_path": str(model_dir)},
        "quantization": {"mode": "none"},
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
        "data": {"files": [str(DEMO_DATA / "tc_corpus.txt")],
                 "validation_files": [str(DEMO_DATA / "tc_heldout.txt")], "block_size": 64},
        "train": {"max_steps": 4, "batch_size": 2, "save_steps": 2, "logging_steps": 1, "learning_rate": 5e-3,
                  "gradient_checkpointing": False},
        "output_dir": str(out),
    }
    for key, value in overrides.items():
        section, _, name = key.partition(".")
        cfg.setdefault(section, {})[name] = value
    return cfg


def run_pretrain(tmp_path, cfg, *extra):
    return run_cli("pretrain", write_config(tmp_path / "p.yaml", cfg), *extra)


def test_lora_run_logs_outputs_and_exports(extended, tmp_path):
    out = tmp_path / "run"
    result = run_pretrain(tmp_path, pretrain_config(extended, out))
    assert result.code == 0, result.stderr
    assert "trainable parameters:" in result.stdout
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if "loss" in r]
    assert [r["step"] for r in train_rows] == [1, 2, 3, 4]
    assert all({"learning_rate", "grad_norm", "tokens_seen"} <= r.keys() for r in train_rows)
    assert train_rows[-1]["tokens_seen"] == 4 * 2 * 64 and "tokens_per_s" in train_rows[-1]
    evals = [r for r in rows if "eval_loss" in r]
    assert [r["step"] for r in evals] == [0, 2, 4] and all("eval_bits_per_char" in r for r in evals)
    assert (out / "loss.png").stat().st_size > 1000
    run = json.loads((out / "bailong_run.json").read_text())
    assert run["steps"] == 4 and run["base_model"] == str(extended)
    adapter = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert {"embed_tokens", "lm_head"} <= set(adapter["target_modules"])
    assert not adapter.get("modules_to_save")  # no whole embedding matrices stored
    size = (out / "adapter" / "adapter_model.safetensors").stat().st_size
    assert size < 0.2 * (extended / "model.safetensors").stat().st_size


def test_paper_preset_trains_336m_parameters():
    """The paper's 4.6%: r=128 on the seven projections plus LoRA on embed_tokens and lm_head of Llama 2 7B (59,241)."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    from bailong.config import EmbeddingTrainingConfig

    config = LlamaConfig(vocab_size=59241, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                         num_attention_heads=32, num_key_value_heads=32, tie_word_embeddings=False)
    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    lora = LoraConfig(r=128, alpha=256, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                        "up_proj", "down_proj"])
    options = adapter_options(model, lora, EmbeddingTrainingConfig(train="lora"), None)
    peft_model = get_peft_model(model, PeftLoraConfig(r=128, lora_alpha=256, **options))
    trainable, total = peft_model.get_nb_trainable_parameters()
    assert trainable == 336_029_952
    assert round(100 * trainable / total, 1) == 4.6
