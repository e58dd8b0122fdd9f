"""Optional fused kernels (`train.kernels`): Liger-kernel's RMSNorm, RoPE and SwiGLU, on CUDA only.

The loss is not Liger's: its fused linear cross-entropy reads `lm_head.weight` and would skip a LoRA on the LM head
(the paper's setting); bailong's chunked loss (`train.chunked_loss`) covers that part.
"""

from __future__ import annotations

from importlib.util import find_spec

from bailong.errors import BailongError


def resolve_kernels(choice: str) -> tuple[str, str]:
    """(`liger` or `none`, why) for `train.kernels`; asking for liger where it cannot run is an error."""
    import torch

    cuda = torch.cuda.is_available()
    installed = find_spec("liger_kernel") is not None
    if choice == "none":
        return "none", "train.kernels: none"
    if choice == "liger":
        if not cuda:
            raise BailongError("train.kernels: liger needs a CUDA GPU and none is available; set train.kernels: auto")
        if not installed:
            raise BailongError(
                "train.kernels: liger needs the liger-kernel package; pip install 'bailong[gpu]' or set "
                "train.kernels: auto"
            )
        return "liger", "train.kernels: liger"
    if not cuda:
        return "none", "auto: no CUDA GPU"
    if not installed:
        return "none", "auto: liger-kernel is not installed (pip install 'bailong[gpu]')"
    return "liger", "auto: CUDA and liger-kernel present"


def apply_kernels(model, kernels: str) -> None:
    """Patches the decoder's RMSNorm, RoPE and SwiGLU of `model` (any peft wrapper) in place with Liger's kernels."""
    if kernels != "liger":
        return
    from liger_kernel.transformers import _apply_liger_kernel_to_instance

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    _apply_liger_kernel_to_instance(
        model=base, rope=True, rms_norm=True, swiglu=True, cross_entropy=False, fused_linear_cross_entropy=False
    )
