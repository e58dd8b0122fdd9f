"""The GGUF model keys and tensors of a merged transformers model (the Llama family: Llama 2/3, Mistral, SmolLM2).

Names come from gguf's own tensor-name map; the rest follows llama.cpp's convert_hf_to_gguf.py for these
architectures: q and k rows permuted for llama.cpp's rope, norms kept f32, Llama 3.1's rope factors as a tensor.
"""

from __future__ import annotations

import math

from bailong.errors import BailongError

# transformers architecture -> gguf MODEL_ARCH member name
SUPPORTED = {"LlamaForCausalLM": "LLAMA", "MistralForCausalLM": "LLAMA"}
OUTTYPES = {"f32": ("ALL_F32", "F32"), "f16": ("MOSTLY_F16", "F16"), "bf16": ("MOSTLY_BF16", "BF16")}
OUTTYPES["q8_0"] = ("MOSTLY_Q8_0", "Q8_0")
ROPE_TYPES = ("default", "linear", "llama3")


def architecture_of(config) -> str:
    """The gguf architecture for a transformers config, or one line naming it and what is supported."""
    names = list(getattr(config, "architectures", None) or [type(config).__name__])
    for name in names:
        if name in SUPPORTED:
            return SUPPORTED[name]
    raise BailongError(
        f"--format gguf does not support the architecture {names[0]}; it writes "
        f"{', '.join(sorted(SUPPORTED))} (Llama 2/3, Mistral, SmolLM2); use --format hf and convert with "
        "llama.cpp's convert_hf_to_gguf.py"
    )


def check_rope(config) -> dict:
    rope = dict(getattr(config, "rope_parameters", None) or {})
    rope_type = rope.get("rope_type", "default")
    if rope_type not in ROPE_TYPES:
        raise BailongError(
            f"--format gguf does not support rope_type {rope_type!r}; it writes {', '.join(ROPE_TYPES)} rope; use "
            "--format hf and convert with llama.cpp's convert_hf_to_gguf.py"
        )
    return rope


def add_hparams(writer, config, outtype: str) -> None:
    import gguf

    rope = check_rope(config)
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    writer.add_block_count(config.num_hidden_layers)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads or config.num_attention_heads)
    writer.add_rope_freq_base(rope.get("rope_theta", 10000.0))
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_dimension_count(head_dim)
    writer.add_vocab_size(config.vocab_size)
    if rope.get("rope_type") == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(rope["factor"])
    writer.add_file_type(getattr(gguf.LlamaFileType, OUTTYPES[outtype][0]))


def permute(weights, n_head: int, n_head_kv: int):
    """HF's q/k rows (rotate-half rope) in the order llama.cpp's rope reads them (interleaved pairs)."""
    n = n_head_kv if n_head_kv != n_head else n_head
    return weights.reshape(n, 2, weights.shape[0] // n // 2, *weights.shape[1:]).swapaxes(1, 2).reshape(weights.shape)


def llama3_rope_factors(config, rope: dict):
    """Llama 3.1's frequency-dependent rope scaling, which llama.cpp reads from a rope_freqs tensor."""
    import torch

    dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
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


def gguf_tensors(model):
    """(gguf name, float32 tensor) for every weight of the merged model; a tied head is not written twice."""
    import gguf

    config = model.config
    name_map = gguf.get_tensor_name_map(getattr(gguf.MODEL_ARCH, architecture_of(config)), config.num_hidden_layers)
    tied = model.get_output_embeddings().weight is model.get_input_embeddings().weight
    n_head, n_kv = config.num_attention_heads, config.num_key_value_heads or config.num_attention_heads
    rope = check_rope(config)
    if rope.get("rope_type") == "llama3":
        yield gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FREQS] + ".weight", llama3_rope_factors(config, rope)
    for name, tensor in model.state_dict().items():
        if name.endswith("rotary_emb.inv_freq") or (tied and name == "lm_head.weight"):
            continue
        data = tensor.detach().float()
        if name.endswith("q_proj.weight"):
            data = permute(data, n_head, n_head)
        elif name.endswith("k_proj.weight"):
            data = permute(data, n_head, n_kv)
        gguf_name = name_map.get_name(name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise BailongError(f"--format gguf: no GGUF name for the weight {name}; use --format hf")
        yield gguf_name, data


def add_tensors(writer, model, outtype: str) -> None:
    """Adds every tensor in `outtype`; 1-d tensors and norms stay f32, and a q8_0 tensor whose rows do not split into
    blocks of 32 falls back to f16 (as llama.cpp's converter does)."""
    import gguf

    wanted = getattr(gguf.GGMLQuantizationType, OUTTYPES[outtype][1])
    for name, tensor in gguf_tensors(model):
        data = tensor.numpy()
        qtype = wanted
        if data.ndim <= 1 or name.endswith("_norm.weight"):
            qtype = gguf.GGMLQuantizationType.F32
        try:
            packed = gguf.quants.quantize(data, qtype)
        except gguf.QuantError:
            qtype = gguf.GGMLQuantizationType.F16
            packed = gguf.quants.quantize(data, qtype)
        writer.add_tensor(name, packed, raw_dtype=qtype)  # a packed (uint8) array's shape is read back from qtype
