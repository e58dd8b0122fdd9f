"""What the loading core loads: the model, its quantization and the LoRA adapter."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from bailong.config.base import LocalPath, Section, Source

Dtype = Literal["auto", "float32", "bfloat16", "float16"]


class ModelConfig(Section):
    """What the loading core loads."""

    name_or_path: Source | None = Field(
        None, description="HF dir, hub id, .gguf file, run dir, or 'smollm2-135m-instruct'"
    )
    tokenizer: Source | None = Field(
        None, description="base tokenizer (HF dir, hub id, .model file); defaults to name_or_path"
    )
    revision: str | None = None
    """the hub revision (branch, tag or commit) of a hub id"""
    dtype: Dtype = "auto"
    """the weights' dtype when loading: auto, bfloat16, float16, float32"""
    device: str = Field("auto", description="'auto', 'cpu', 'cuda', 'cuda:1', ...")
    trust_remote_code: bool = False
    """let transformers run the model repository's own code"""
    adapter: LocalPath | None = Field(None, description="a saved LoRA adapter to load on top")

    @property
    def tokenizer_source(self) -> str | None:
        return self.tokenizer or self.name_or_path


class QuantizationConfig(Section):
    mode: Literal["none", "nf4", "int8"] = "none"
    """none, nf4 (4-bit NF4) or int8; the embeddings and LM head stay unquantized"""
    double_quant: bool = True
    """quantize the 4-bit quantization constants too (QLoRA's double quantization)"""
    compute_dtype: Dtype = "auto"
    """the dtype 4-bit layers compute in: auto, bfloat16, float16, float32"""
    quant_storage: Literal["uint8", "bfloat16", "float16", "float32"] = Field(
        "uint8", description="4-bit storage dtype; FSDP + QLoRA needs the compute dtype here (bfloat16)"
    )
    skip_modules: list[str] = Field(default_factory=lambda: ["embed_tokens", "lm_head"])
    """modules kept unquantized"""


class LoraConfig(Section):
    r: int = Field(64, gt=0)
    """LoRA rank"""
    alpha: int = Field(128, gt=0)
    """LoRA alpha (the update is scaled by alpha / r)"""
    dropout: float = Field(0.05, ge=0, lt=1)
    """dropout on the LoRA input"""
    target_modules: Literal["all-linear"] | list[str] = "all-linear"
    """the layers LoRA wraps: all-linear or a list of module names"""


class EmbeddingTrainingConfig(Section):
    """What trains of the embedding matrix and the LM head."""

    train: Literal["lora", "new-rows", "full", "frozen"] = Field(
        "lora", description="lora (the paper), new-rows (only rows added by extend-vocab), full, frozen"
    )
    learning_rate: float | None = Field(None, gt=0, description="for embedding parameters; default train.learning_rate")
