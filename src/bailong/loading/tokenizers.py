"""Loading the tokenizer of any model source."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from bailong.errors import BailongError
from bailong.loading.integrity import check_tokenizer_folder, explain_gguf_failure
from bailong.loading.sources import Source, resolve_source

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


def load_tokenizer(
    name_or_path: str, *, revision: str | None = None, trust_remote_code: bool = False
) -> PreTrainedTokenizerBase:
    """The tokenizer of any source; a bare SentencePiece `.model` becomes a Llama-style fast tokenizer with BOS."""
    from transformers import AutoTokenizer, LlamaTokenizer

    source = resolve_source(name_or_path)
    try:
        if source.kind == "run":  # the run folder holds its tokenizer
            source = Source("hf_dir", source.path)
        check_tokenizer_folder(source)
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
    except Exception as exc:
        explain_gguf_failure(source, exc)
        if not isinstance(exc, (OSError, ValueError)):
            raise
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
