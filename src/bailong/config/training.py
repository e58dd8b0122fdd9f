"""The training loop (transformers' Trainer) that pretrain and sft share."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from bailong.artifacts import COMPLETE_MARKER
from bailong.config.base import Section, Source

# Trainer's reporting integrations: the module each needs and the package that provides it.
INTEGRATIONS = {
    "tensorboard": ("tensorboard", "tensorboard"),
    "wandb": ("wandb", "wandb"),
    "mlflow": ("mlflow", "mlflow"),
    "comet_ml": ("comet_ml", "comet-ml"),
    "clearml": ("clearml", "clearml"),
    "neptune": ("neptune", "neptune"),
    "dvclive": ("dvclive", "dvclive"),
    "swanlab": ("swanlab", "swanlab"),
    "trackio": ("trackio", "trackio"),
    "codecarbon": ("codecarbon", "codecarbon"),
    "azure_ml": ("azureml", "azureml-core"),
    "dagshub": ("dagshub", "dagshub"),
    "flyte": ("flytekit", "flytekit"),
}


class TrainConfig(Section):
    """The training loop (transformers Trainer)."""

    max_steps: int = Field(-1, ge=-1, description="optimizer steps; -1: train for `epochs`")
    epochs: float = Field(1.0, gt=0)
    """passes over the data when max_steps is -1"""
    learning_rate: float = Field(2e-4, gt=0)
    """peak learning rate"""
    batch_size: int = Field(1, gt=0, description="blocks per device per step")
    grad_accum: int = Field(1, gt=0)
    """micro-batches accumulated per optimizer step"""
    warmup_ratio: float = Field(0.03, ge=0, lt=1)
    """share of the steps spent warming up the learning rate"""
    lr_scheduler: Literal["cosine", "linear", "constant_with_warmup"] = "cosine"
    """transformers' scheduler name, e.g. cosine, linear, constant"""
    weight_decay: float = Field(0.0, ge=0)
    """AdamW's weight decay (not on norms and biases)"""
    max_grad_norm: float = Field(1.0, gt=0)
    """gradient clipping norm"""
    optimizer: Literal["adamw_torch", "paged_adamw_8bit", "adamw_8bit", "paged_adamw_32bit"] = "adamw_torch"
    """transformers' optimizer name, e.g. adamw_torch, paged_adamw_8bit"""
    gradient_checkpointing: bool = True
    """recompute activations in the backward pass (less memory, slower)"""
    precision: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        "auto", description="mixed-precision training dtype; auto: bfloat16 where supported, else float32"
    )
    chunked_loss: bool = Field(
        True, description="the LM head's loss chunk by chunk over tokens, never the whole batch's logits"
    )
    kernels: Literal["auto", "liger", "none"] = Field(
        "auto", description="fused RMSNorm/RoPE/SwiGLU kernels; auto: liger with CUDA and liger-kernel, else none"
    )
    logging_steps: int = Field(10, gt=0)
    """a console line and a metrics.jsonl row every N steps"""
    eval_steps: int | None = Field(None, gt=0, description="evaluate every N steps; default: save_steps")
    save_steps: int = Field(500, gt=0)
    """a checkpoint every N steps (and at the end)"""
    save_total_limit: int | None = Field(3, gt=0)
    """checkpoints kept (the oldest are removed)"""
    resume: Source = Field("auto", description="auto (the newest complete checkpoint), never, or a checkpoint folder")
    seed: int = 42
    """seed of the data order, dropout and the fresh adapter"""
    report_to: list[str] = Field(default_factory=list, description="e.g. [tensorboard] or [wandb] when installed")

    @field_validator("max_steps")
    @classmethod
    def _trains_at_least_one_step(cls, value: int) -> int:
        if value == 0:
            raise ValueError("0 steps would train nothing; give a positive number of steps, or -1 to train for epochs")
        return value

    @field_validator("resume")
    @classmethod
    def _resume_is_a_checkpoint(cls, value: str) -> str:
        if value not in ("auto", "never") and not (Path(value) / COMPLETE_MARKER).is_file():
            what = "does not exist" if not Path(value).exists() else "is not a complete bailong checkpoint"
            raise ValueError(
                f"{value} {what}; give auto, never, or a checkpoint folder (output_dir/checkpoints/checkpoint-N)"
            )
        return value

    @field_validator("report_to")
    @classmethod
    def _integrations_installed(cls, names: list[str]) -> list[str]:
        for name in names:
            if name in ("none", "all"):
                continue
            if name not in INTEGRATIONS:
                raise ValueError(f"{name!r} is not a reporting integration; use one of {', '.join(INTEGRATIONS)}")
            module, package = INTEGRATIONS[name]
            if importlib.util.find_spec(module) is None:
                raise ValueError(f"{name} is not installed; pip install {package}, or remove it")
        return names
