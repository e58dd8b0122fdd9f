"""LoRA adapters: which modules train (LoRA targets plus the embedding mode) and a fresh adapter on a base."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bailong.loading.models import attach_lora, load_model

if TYPE_CHECKING:
    from bailong.config import EmbeddingTrainingConfig, LoraConfig, ModelConfig, QuantizationConfig

__all__ = ["adapter_options", "all_linear_names", "attach_lora", "model_with_fresh_adapter"]


def all_linear_names(model) -> list[str]:
    """The names of the linear layers LoRA targets with `all-linear` (every one but the LM head)."""
    import torch

    names = set()
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) or type(module).__name__ in ("Linear4bit", "Linear8bitLt"):
            names.add(name.rsplit(".", 1)[-1])
    names.discard("lm_head")
    return sorted(names)


def adapter_options(model, lora: LoraConfig, embeddings: EmbeddingTrainingConfig, new_ids: list[int] | None) -> dict:
    """peft LoraConfig arguments for what trains: LoRA targets plus the embedding mode."""
    targets = all_linear_names(model) if lora.target_modules == "all-linear" else list(lora.target_modules)
    options: dict = {}
    if embeddings.train == "lora":  # the paper: LoRA on embed_tokens and lm_head too
        targets += ["embed_tokens", "lm_head"]
    elif embeddings.train == "new-rows":
        tied = model.get_output_embeddings().weight is model.get_input_embeddings().weight
        options["trainable_token_indices"] = (
            {"embed_tokens": new_ids} if tied else {"embed_tokens": new_ids, "lm_head": new_ids}
        )
    elif embeddings.train == "full":
        options["modules_to_save"] = ["embed_tokens", "lm_head"]
    options["target_modules"] = sorted(set(targets))
    return options


def model_with_fresh_adapter(
    model_cfg: ModelConfig,
    quant: QuantizationConfig,
    lora: LoraConfig,
    embeddings: EmbeddingTrainingConfig,
    new_ids: list[int] | None,
    gradient_checkpointing: bool,
):
    """The base through the loading core, made ready for k-bit training, with a fresh adapter attached."""
    model = load_model(model_cfg, quant, gradient_checkpointing=gradient_checkpointing)
    return attach_lora(model, lora, **adapter_options(model, lora, embeddings, new_ids))
