"""Rope settings shared by the architectures: which rope types an architecture's GGUF can express."""

from __future__ import annotations

from bailong.errors import BailongError


def check_rope(rope_parameters, allowed: tuple[str, ...], architecture: str) -> dict:
    """The rope parameters, or one line when their rope type has no GGUF form here."""
    rope = dict(rope_parameters or {})
    rope_type = rope.get("rope_type", "default")
    if rope_type not in allowed:
        raise BailongError(
            f"--format gguf does not support rope_type {rope_type!r} for {architecture} (it writes "
            f"{', '.join(allowed)}); use --format hf and convert with llama.cpp's convert_hf_to_gguf.py"
        )
    return rope


def head_dim(config) -> int:
    return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


def add_linear_scaling(writer, rope: dict) -> None:
    """Linear rope scaling as GGUF keys (the other rope types are written by their architecture)."""
    import gguf

    if rope.get("rope_type") == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(rope["factor"])
