"""Gemma 3 (text only) in llama.cpp's "gemma3" architecture, as convert_hf_to_gguf.py's Gemma3Model writes it: the rope
base of the global layers and of the sliding-window (local) layers, the sliding window, a final logit softcap if set;
every RMSNorm weight +1 (HF's Gemma RMSNorm multiplies by 1 + w, llama.cpp's by w); q and k rows as they are."""

from __future__ import annotations

from bailong.gguf.rope import add_linear_scaling, check_rope

ROPE_TYPES = ("default", "linear")


def check(config) -> tuple[dict, dict]:
    return rope_by_layer_type(config)


def rope_by_layer_type(config) -> tuple[dict, dict]:
    """(global, local) rope parameters: transformers 5 keeps one set per attention type."""
    rope = dict(getattr(config, "rope_parameters", None) or {})
    full = rope.get("full_attention", rope)
    local = rope.get("sliding_attention", {})
    return check_rope(full, ROPE_TYPES, "Gemma 3"), check_rope(local, ("default",), "Gemma 3's local layers")


def add_hparams(writer, config) -> None:
    full, local = rope_by_layer_type(config)
    writer.add_rope_freq_base(full.get("rope_theta", 1_000_000.0))
    if "rope_theta" in local:
        writer.add_rope_freq_base_swa(local["rope_theta"])
    add_linear_scaling(writer, full)
    if getattr(config, "final_logit_softcapping", None):
        writer.add_final_logit_softcapping(config.final_logit_softcapping)
    if getattr(config, "sliding_window", None) and "sliding_attention" in (getattr(config, "layer_types", None) or []):
        writer.add_sliding_window(config.sliding_window)


def tensor(name: str, data, config):
    return data + 1 if name.endswith("norm.weight") else data


def extra_tensors(config):
    return ()
