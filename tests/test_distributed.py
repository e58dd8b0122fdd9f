"""Multi-process finish: the rank check's tensors live on the parameters' device (NCCL refuses CPU tensors), and the
shipped FSDP accelerate config trains to the end on two CPU processes over gloo."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from bailong.training.trainer import ranks_in_sync, weights_fingerprint
from helpers import DEMO_DATA, MISTRAL_V1, ROOT, tiny_llama, write_config


def test_rank_fingerprint_lives_on_the_parameters_device():
    """On a GPU the parameters are on cuda and NCCL all-gathers only device tensors; the meta device stands in."""
    with torch.device("meta"):
        model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))
    model[0].requires_grad_(False)
    fingerprint = weights_fingerprint(model)
    assert fingerprint.device.type == "meta" and fingerprint.dtype == torch.float64 and fingerprint.shape == (2,)
    cpu = torch.nn.Linear(3, 2)
    assert torch.allclose(weights_fingerprint(cpu)[1], sum(p.detach().double().abs().sum() for p in cpu.parameters()))
    assert ranks_in_sync(cpu)  # not distributed: nothing to compare


def cpu_fsdp_config(path: Path) -> Path:
    """The shipped FSDP config with the two settings torch's FSDP refuses on CPU turned off (`sync_module_states`:
    'FSDP parameter initialization with sync_module_states=True is not supported on cpu', and the RAM-efficient
    loading that needs it) and no mixed precision; everything else as shipped."""
    config = yaml.safe_load((ROOT / "configs" / "accelerate" / "fsdp_qlora.yaml").read_text())
    config["fsdp_config"].update(fsdp_sync_module_states=False, fsdp_cpu_ram_efficient_loading=False)
    config["mixed_precision"] = "no"
    config["num_processes"] = 2
    return write_config(path, config)


@pytest.mark.slow
def test_fsdp_pretrain_on_two_cpu_processes_finishes_with_the_adapter(tmp_path):
    base = tiny_llama(tmp_path / "base", str(MISTRAL_V1))
    out = tmp_path / "run"
    cfg = {
        "model": {"name_or_path": str(base)},
        "quantization": {"mode": "none"},
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
        "data": {"files": [str(DEMO_DATA / "tc_corpus.txt")], "block_size": 64, "validation": 0.0},
        "train": {"max_steps": 3, "batch_size": 2, "save_steps": 3, "learning_rate": 5e-3, "logging_steps": 1},
        "output_dir": str(out),
    }
    launch = Path(sys.executable).with_name("accelerate")
    command = [str(launch), "launch", "--config_file", str(cpu_fsdp_config(tmp_path / "fsdp.yaml"))]
    command += ["-m", "bailong", "pretrain", str(write_config(tmp_path / "p.yaml", cfg))]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = json.loads((out / "bailong_run.json").read_text())
    assert run["world_size"] == 2 and run["ranks_in_sync"] is True and run["steps"] == 3
    weights = load_file(out / "adapter" / "adapter_model.safetensors")
    head_b = weights["base_model.model.lm_head.lora_B.weight"]
    assert head_b.shape == (32000, 4) and head_b.abs().sum() > 0  # whole, not a shard, and trained (starts at 0)
