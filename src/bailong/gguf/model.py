"""The GGUF model keys and tensors of a merged transformers model, for the architectures in `ARCHITECTURES`.

Names come from gguf's own tensor-name map; what differs by architecture (rope keys, q/k permutation, Gemma's norm
shift) lives in one module each, following llama.cpp's convert_hf_to_gguf.py. Norms stay f32; a tied head is written
once (llama.cpp reads the embedding for it).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

from bailong.errors import BailongError
from bailong.gguf import gemma3, llama, qwen2
from bailong.gguf.rope import head_dim


@dataclass(frozen=True)
class Architecture:
    gguf_arch: str  # gguf MODEL_ARCH member name
    family: ModuleType  # check(config), add_hparams(writer, config), tensor(name, data, config), extra_tensors(config)
    models: str  # what a user would call it


ARCHITECTURES = {
    "LlamaForCausalLM": Architecture("LLAMA", llama, "Llama 2/3, SmolLM2"),
    "MistralForCausalLM": Architecture("LLAMA", llama, "Mistral"),
    "Gemma3ForCausalLM": Architecture("GEMMA3", gemma3, "Gemma 3, text only"),
    "Qwen2ForCausalLM": Architecture("QWEN2", qwen2, "Qwen 1.5/2/2.5"),
}
OUTTYPES = {"f32": ("ALL_F32", "F32"), "f16": ("MOSTLY_F16", "F16"), "bf16": ("MOSTLY_BF16", "BF16")}
OUTTYPES["q8_0"] = ("MOSTLY_Q8_0", "Q8_0")
SKIPPED = ("rotary_emb.inv_freq", "embed_scale")  # buffers, not weights


def architecture_of(config) -> Architecture:
    """The GGUF architecture for a transformers config, or one line naming it and what is supported."""
    names = list(getattr(config, "architectures", None) or [type(config).__name__])
    for name in names:
        if name in ARCHITECTURES:
            return ARCHITECTURES[name]
    supported = ", ".join(f"{name} ({arch.models})" for name, arch in ARCHITECTURES.items())
    raise BailongError(
        f"--format gguf does not support the architecture {names[0]}; it writes {supported}; use --format hf and "
        "convert with llama.cpp's convert_hf_to_gguf.py"
    )


def check_config(config) -> None:
    """Refuses what the GGUF cannot express (an architecture, a rope type) before any merge."""
    architecture_of(config).family.check(config)


def add_hparams(writer, config, outtype: str) -> None:
    import gguf

    writer.add_block_count(config.num_hidden_layers)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads or config.num_attention_heads)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_key_length(head_dim(config))
    writer.add_value_length(head_dim(config))
    writer.add_vocab_size(config.vocab_size)
    architecture_of(config).family.add_hparams(writer, config)
    writer.add_file_type(getattr(gguf.LlamaFileType, OUTTYPES[outtype][0]))


def gguf_tensors(model):
    """(gguf name, float32 tensor) for every weight of the merged model; a tied head is not written twice."""
    import gguf

    config = model.config
    arch = architecture_of(config)
    name_map = gguf.get_tensor_name_map(getattr(gguf.MODEL_ARCH, arch.gguf_arch), config.num_hidden_layers)
    tied = model.get_output_embeddings().weight is model.get_input_embeddings().weight
    yield from arch.family.extra_tensors(config)
    for name, tensor in model.state_dict().items():
        if name.endswith(SKIPPED) or (tied and name == "lm_head.weight"):
            continue
        data = arch.family.tensor(name, tensor.detach().float(), config)
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
