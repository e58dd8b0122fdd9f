"""The training loop (transformers' Trainer) that pretrain and sft share."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from bailong.config.base import Section


class TrainConfig(Section):
    """The training loop (transformers Trainer)."""

    max_steps: int = Field(-1, description="optimizer steps; -1: train for `epochs`")
    epochs: float = Field(1.0, gt=0)
    learning_rate: float = Field(2e-4, gt=0)
    batch_size: int = Field(1, gt=0, description="blocks per device per step")
    grad_accum: int = Field(1, gt=0)
    warmup_ratio: float = Field(0.03, ge=0, lt=1)
    lr_scheduler: Literal["cosine", "linear", "constant_with_warmup"] = "cosine"
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    optimizer: Literal["adamw_torch", "paged_adamw_8bit", "adamw_8bit", "paged_adamw_32bit"] = "adamw_torch"
    gradient_checkpointing: bool = True
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
    eval_steps: int | None = Field(None, gt=0, description="evaluate every N steps; default: save_steps")
    save_steps: int = Field(500, gt=0)
    save_total_limit: int | None = Field(3, gt=0)
    resume: str = Field("auto", description="auto (the newest complete checkpoint), never, or a checkpoint folder")
    seed: int = 42
    report_to: list[str] = Field(default_factory=list, description="e.g. [tensorboard] or [wandb] when installed")
