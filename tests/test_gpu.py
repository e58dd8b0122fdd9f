"""Checks for a CUDA GPU (marked `gpu`; `scripts/gpu_check.sh` runs them): NF4 loading with unquantized bf16
embeddings, the chunked loss on the device against the plain one, and one pretrain and one sft step of the embedded
SmolLM2 in NF4. Without CUDA they skip, unless BAILONG_GPU_TESTS_ON_CPU=1 runs them on the CPU (the dry run)."""

import json
import os

import pytest
import torch

from bailong.config import EmbeddingTrainingConfig, LoraConfig, ModelConfig, QuantizationConfig
from bailong.loading.adapters import model_with_fresh_adapter
from bailong.training.chunked_loss import chunked_head_loss
from helpers import DEMO_DATA, run_cli, write_config

pytestmark = pytest.mark.gpu
SMOLLM2 = "smollm2-135m-instruct"


@pytest.fixture
def device():
    if torch.cuda.is_available():
        return "cuda"
    if os.environ.get("BAILONG_GPU_TESTS_ON_CPU") == "1":
        return "cpu"
    pytest.skip("needs a CUDA GPU (BAILONG_GPU_TESTS_ON_CPU=1 runs these on the CPU)")


def test_nf4_load_keeps_embeddings_unquantized_in_bf16(device):
    cfg = ModelConfig(name_or_path=SMOLLM2, device=device, dtype="bfloat16")
    lora = LoraConfig(r=8, alpha=16, dropout=0.0)
    model = model_with_fresh_adapter(cfg, QuantizationConfig(mode="nf4"), lora, EmbeddingTrainingConfig(), None, True)
    base = model.get_base_model()
    assert base.get_input_embeddings().base_layer.weight.dtype == torch.bfloat16
    assert base.get_output_embeddings().base_layer.weight.dtype == torch.bfloat16
    assert type(base.model.layers[0].self_attn.q_proj.base_layer).__name__ == "Linear4bit"
    assert base.model.norm.weight.dtype == torch.bfloat16  # no fp32 upcast of the norms
    seen = []
    last = base.model.layers[-1]
    last.register_forward_hook(lambda m, a, out: seen.append(out[0] if isinstance(out, tuple) else out))
    ids = torch.randint(0, 49152, (1, 16), device=device)
    model(input_ids=ids, labels=ids).loss.backward()
    assert seen[0].dtype == torch.bfloat16


def test_chunked_loss_on_the_device_matches_the_plain_loss(device):
    torch.manual_seed(0)
    head = torch.nn.Linear(256, 8192, bias=False).to(device=device, dtype=torch.bfloat16)
    hidden = torch.randn(2, 600, 256, device=device, dtype=torch.bfloat16, requires_grad=True)
    labels = torch.randint(0, 8192, (2, 600), device=device)
    labels[1, 400:] = -100
    chunked = chunked_head_loss(hidden, labels, head, chunk_tokens=256)
    (grad_chunked,) = torch.autograd.grad(chunked, hidden)
    logits = head(hidden).float()[:, :-1].reshape(-1, 8192)
    plain = torch.nn.functional.cross_entropy(logits, labels[:, 1:].reshape(-1), ignore_index=-100)
    (grad_plain,) = torch.autograd.grad(plain, hidden)
    assert torch.allclose(chunked, plain, rtol=1e-3)
    assert torch.allclose(grad_chunked.float(), grad_plain.float(), rtol=2e-2, atol=1e-5)


def test_one_pretrain_and_one_sft_step_of_smollm2_in_nf4(device, tmp_path):
    common = {
        "model": {"name_or_path": SMOLLM2, "device": device},
        "quantization": {"mode": "nf4"},
        "lora": {"r": 8, "alpha": 16, "dropout": 0.0},
        "train": {"max_steps": 1, "batch_size": 2, "save_steps": 1, "logging_steps": 1, "gradient_checkpointing": True},
    }
    pretrain = {
        **common,
        "data": {"files": [str(DEMO_DATA / "tc_corpus.txt")], "block_size": 128, "validation": 0.0},
        "output_dir": str(tmp_path / "pretrain"),
    }
    result = run_cli("pretrain", write_config(tmp_path / "p.yaml", pretrain))
    assert result.code == 0, result.stderr
    sft = {
        **common,
        "model": {"name_or_path": str(tmp_path / "pretrain"), "device": device},
        "data": {"files": [str(DEMO_DATA / "sft_chat.jsonl")], "validation": 0.0, "max_length": 128},
        "output_dir": str(tmp_path / "sft"),
    }
    result = run_cli("sft", write_config(tmp_path / "s.yaml", sft))
    assert result.code == 0, result.stderr
    for stage in ("pretrain", "sft"):
        run = json.loads((tmp_path / stage / "bailong_run.json").read_text())
        assert run["steps"] == 1 and (tmp_path / stage / "adapter" / "adapter_model.safetensors").is_file()
