"""The model-loading core: the only place that loads tokenizers and models. Every stage goes through it."""

from bailong.loading.models import check_model_fits, load_model, pick_device, pick_dtype
from bailong.loading.sources import (
    EMBEDDED_DEFAULT,
    EMBEDDED_GEMMA,
    EMBEDDED_MODELS,
    Source,
    embedded_gguf,
    extension_of,
    resolve_source,
)
from bailong.loading.tokenizers import load_tokenizer, sentencepiece_file

__all__ = [
    "EMBEDDED_DEFAULT",
    "EMBEDDED_GEMMA",
    "EMBEDDED_MODELS",
    "Source",
    "check_model_fits",
    "embedded_gguf",
    "extension_of",
    "load_model",
    "load_tokenizer",
    "pick_device",
    "pick_dtype",
    "resolve_source",
    "sentencepiece_file",
]
