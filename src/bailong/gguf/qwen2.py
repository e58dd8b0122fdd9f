"""Qwen2 (Qwen 1.5 / 2 / 2.5) in llama.cpp's "qwen2" architecture, as convert_hf_to_gguf.py's Qwen2Model writes it:
the q/k/v biases as tensors, q and k rows as they are (llama.cpp applies rope to Qwen2 in the HF order)."""

from __future__ import annotations

from bailong.gguf.rope import add_linear_scaling, check_rope

ROPE_TYPES = ("default", "linear")


def check(config) -> dict:
    return check_rope(getattr(config, "rope_parameters", None), ROPE_TYPES, "Qwen2")


def add_hparams(writer, config) -> None:
    rope = check(config)
    writer.add_rope_freq_base(rope.get("rope_theta", 1_000_000.0))
    add_linear_scaling(writer, rope)


def tensor(name: str, data, config):
    return data


def extra_tensors(config):
    return ()
