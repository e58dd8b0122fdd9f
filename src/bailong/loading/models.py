"""Loading a causal LM from any source: device, dtype, 4-bit/8-bit quantization, resized embeddings, an adapter."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from bailong.artifacts import ADAPTER_DIR, read_run
from bailong.errors import BailongError
from bailong.loading.integrity import check_model_folder, explain_gguf_failure
from bailong.loading.sources import rebuilt, resolve_source

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from bailong.config import LoraConfig, ModelConfig, QuantizationConfig


def pick_device(device: str) -> str:
    import torch

    if device != "auto":
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def pick_dtype(dtype: str, device: str):
    import torch

    if dtype != "auto":
        return getattr(torch, dtype)
    if device.startswith("cuda") and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def quantization_config(quant: QuantizationConfig, compute_dtype):
    """transformers' BitsAndBytesConfig for `quant`; embeddings and LM head stay unquantized."""
    if quant.mode == "none":
        return None
    import torch
    from transformers import BitsAndBytesConfig

    if quant.compute_dtype != "auto":
        compute_dtype = getattr(torch, quant.compute_dtype)
    if quant.mode == "nf4":
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=quant.double_quant,
            bnb_4bit_compute_dtype=compute_dtype,
            bnb_4bit_quant_storage=getattr(torch, quant.quant_storage),
            llm_int8_skip_modules=list(quant.skip_modules),
        )
    return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=list(quant.skip_modules))


def load_model(
    model_cfg: ModelConfig,
    quant: QuantizationConfig | None = None,
    *,
    vocab_size: int | None = None,
    lora: LoraConfig | None = None,
    trainable: bool = False,
    keep_checkpoint_dtype: bool = False,
    gradient_checkpointing: bool | None = None,
) -> PreTrainedModel:
    """Loads a causal LM; resizes its embeddings to `vocab_size` before any adapter is attached or loaded.

    With `keep_checkpoint_dtype`, `model.dtype: auto` keeps the dtype the checkpoint was saved in. For training a
    quantized base, `gradient_checkpointing` (True/False) makes it ready for k-bit training before an adapter loads.
    """
    from transformers import AutoModelForCausalLM

    if model_cfg.name_or_path is None:
        raise BailongError("model.name_or_path is not set: name the base model to load")
    source = resolve_source(model_cfg.name_or_path)
    if source.kind == "run":  # a training stage's output: its base plus its adapter
        run = read_run(source.path)
        adapter = model_cfg.adapter or str(Path(source.path) / ADAPTER_DIR)
        base_cfg = model_cfg.model_copy(update={"name_or_path": run["base_model"], "adapter": adapter})
        return load_model(
            base_cfg,
            quant,
            vocab_size=vocab_size,
            lora=lora,
            trainable=trainable,
            keep_checkpoint_dtype=keep_checkpoint_dtype,
            gradient_checkpointing=gradient_checkpointing,
        )
    if source.kind == "sentencepiece":
        raise BailongError(f"{source.path}: a SentencePiece .model file is a tokenizer, not a model")
    check_model_folder(source)
    device = pick_device(model_cfg.device)
    dtype = pick_dtype(model_cfg.dtype, device)
    if keep_checkpoint_dtype and model_cfg.dtype == "auto":
        dtype = "auto"
    kwargs = {"dtype": dtype, "revision": model_cfg.revision, "trust_remote_code": model_cfg.trust_remote_code}
    if source.kind == "gguf":
        kwargs["gguf_file"] = source.gguf_file
    if quant is not None and quant.mode != "none":
        kwargs["quantization_config"] = quantization_config(quant, dtype)
        kwargs["device_map"] = {"": device}
    try:
        model = AutoModelForCausalLM.from_pretrained(source.path, **kwargs)
    except Exception as exc:
        explain_gguf_failure(source, exc)
        if not isinstance(exc, (OSError, ValueError)):
            raise
        raise BailongError(f"cannot load a model from {model_cfg.name_or_path!r}: {exc}") from None
    if source.kind == "gguf":
        model = rebuilt(model)
    if "device_map" not in kwargs:
        model.to(device)
    if vocab_size is not None and vocab_size != model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(vocab_size)
    if gradient_checkpointing is not None and quant is not None and quant.mode != "none":
        prepare_for_kbit_training(model, gradient_checkpointing)
    if model_cfg.adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, model_cfg.adapter, is_trainable=trainable)
        if trainable:
            master_weights_in_fp32(model)
    elif lora is not None:
        model = attach_lora(model, lora)
    return model


def prepare_for_kbit_training(model, gradient_checkpointing: bool):
    """peft's `prepare_model_for_kbit_training` without its upcast: that casts every weight that is not 4-bit
    (embeddings, LM head, norms) to fp32, and an RMSNorm with an fp32 weight returns fp32, so most of the residual
    stream would run in fp32 and the two vocabulary-sized matrices would take twice the memory. Frozen weights stay
    in the compute dtype; what trains is made fp32 by `master_weights_in_fp32` once the adapter is attached."""
    for param in model.parameters():
        param.requires_grad_(False)
    if gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()  # checkpointed blocks see an input that requires grad
    return model


def master_weights_in_fp32(model):
    """Trainable weights in fp32 (the optimizer's master copies: a bf16 weight loses AdamW's small updates to
    rounding), with the compute dtype kept around them. peft already makes LoRA matrices and new-row deltas fp32;
    this covers fully trained copies (`modules_to_save`): the input embedding's output is cast back to the compute
    dtype, so the residual stream stays in it, and the LM head reads its input in fp32 (its logits go to the loss)."""
    import torch

    low = (torch.bfloat16, torch.float16)
    compute = next((p.dtype for p in model.parameters() if not p.requires_grad and p.is_floating_point()), None)
    if compute not in low or not any(p.requires_grad and p.dtype in low for p in model.parameters()):
        return model
    for param in model.parameters():
        if param.requires_grad and param.dtype in low:
            param.data = param.data.float()
    embeddings, head = model.get_input_embeddings(), model.get_output_embeddings()
    if any(p.requires_grad and p.dtype == torch.float32 for p in embeddings.parameters()):
        embeddings.register_forward_hook(lambda module, args, out: out.to(compute))
    if head is not None and any(p.requires_grad and p.dtype == torch.float32 for p in head.parameters()):
        head.register_forward_pre_hook(lambda module, args: (args[0].float(), *args[1:]))
    return model


def check_model_fits(model_cfg: ModelConfig, name_or_path: str, tokenizer, length: tuple[str, int]) -> None:
    """The model (by its config alone) has room for `length` = (key, tokens) and for every token of `tokenizer`."""
    from transformers import AutoConfig

    source = resolve_source(name_or_path)
    config = AutoConfig.from_pretrained(
        source.path,
        revision=model_cfg.revision,
        trust_remote_code=model_cfg.trust_remote_code,
        **({"gguf_file": source.gguf_file} if source.gguf_file else {}),
    )
    key, tokens = length
    context = getattr(config, "max_position_embeddings", None)
    if context and tokens > context:
        raise BailongError(f"{key}={tokens} is above the model's context of {context} tokens; lower {key}")
    rows = getattr(config, "vocab_size", None)
    if rows and len(tokenizer) > rows:
        raise BailongError(
            f"the tokenizer has {len(tokenizer)} tokens but the model only {rows} embedding rows: they do not belong "
            "together; point model.tokenizer and model.name_or_path at the same run or extend-vocab output"
        )


def attach_lora(model: PreTrainedModel, lora: LoraConfig, **extra):
    """Wraps `model` with a fresh LoRA adapter from the `lora` config section."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    options = {"target_modules": lora.target_modules, **extra}  # `extra` may widen the targets
    config = PeftLoraConfig(
        r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, task_type="CAUSAL_LM", **options
    )
    return master_weights_in_fp32(get_peft_model(model, config))
