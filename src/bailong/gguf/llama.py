"""The Llama family (Llama 2/3, Mistral, SmolLM2) in llama.cpp's "llama" architecture, as convert_hf_to_gguf.py writes
it: q and k rows permuted for llama.cpp's rope, Llama 3.1's rope factors as a tensor, linear rope scaling as keys."""

from __future__ import annotations

import math

from bailong.gguf.rope import add_linear_scaling, check_rope, head_dim

ROPE_TYPES = ("default", "linear", "llama3")


def check(config) -> dict:
    return check_rope(getattr(config, "rope_parameters", None), ROPE_TYPES, "Llama")


def add_hparams(writer, config) -> None:
    rope = check(config)
    writer.add_rope_freq_base(rope.get("rope_theta", 10000.0))
    writer.add_rope_dimension_count(head_dim(config))
    add_linear_scaling(writer, rope)


def permute(weights, n_head: int, n_head_kv: int):
    """HF's q/k rows (rotate-half rope) in the order llama.cpp's rope reads them (interleaved pairs)."""
    n = n_head_kv if n_head_kv != n_head else n_head
    return weights.reshape(n, 2, weights.shape[0] // n // 2, *weights.shape[1:]).swapaxes(1, 2).reshape(weights.shape)


def tensor(name: str, data, config):
    n_head, n_kv = config.num_attention_heads, config.num_key_value_heads or config.num_attention_heads
    if name.endswith("q_proj.weight"):
        return permute(data, n_head, n_head)
    if name.endswith("k_proj.weight"):
        return permute(data, n_head, n_kv)
    return data


def extra_tensors(config):
    import gguf

    rope = check(config)
    if rope.get("rope_type") == "llama3":
        yield gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FREQS] + ".weight", llama3_rope_factors(config, rope)


def llama3_rope_factors(config, rope: dict):
    """Llama 3.1's frequency-dependent rope scaling, which llama.cpp reads from a rope_freqs tensor."""
    import torch

    dim = head_dim(config)
    freqs = 1.0 / (rope.get("rope_theta", 10000.0) ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    factor, low, high = rope.get("factor", 8.0), rope.get("low_freq_factor", 1.0), rope.get("high_freq_factor", 4.0)
    old_context = rope.get("original_max_position_embeddings", 8192)
    factors = []
    for freq in freqs.tolist():
        wavelen = 2 * math.pi / freq
        if wavelen < old_context / high:
            factors.append(1.0)
        elif wavelen > old_context / low:
            factors.append(factor)
        else:
            smooth = (old_context / wavelen - low) / (high - low)
            factors.append(1 / ((1 - smooth) / factor + smooth))
    return torch.tensor(factors, dtype=torch.float32)
