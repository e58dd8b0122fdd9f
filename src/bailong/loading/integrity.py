"""Damaged or incomplete local model files, named before (or instead of) a library's raw error: a cut
`.safetensors`, a `config.json` or `tokenizer.json` that is not JSON, a cut `.gguf`, a tokenizer folder given as a
model."""

from __future__ import annotations

import json
from pathlib import Path

from bailong.errors import BailongError
from bailong.loading.sources import Source

JSON_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json")
WEIGHTS = ("*.safetensors", "*.bin", "*.pt")
FETCH_AGAIN = "download or copy it again"


def damaged(path: Path, what: str) -> BailongError:
    return BailongError(f"{path} is damaged ({what}); {FETCH_AGAIN}")


def check_json_files(folder: Path, names=JSON_FILES) -> None:
    for name in names:
        file = folder / name
        if file.is_file():
            try:
                json.loads(file.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise damaged(file, f"not valid JSON: {exc}") from None


def check_model_folder(source: Source) -> None:
    """A local HF folder must hold a readable config and complete weights before a model loads from it."""
    if source.kind != "hf_dir":
        return
    folder = Path(source.path)
    if not (folder / "config.json").is_file() or not any(p for g in WEIGHTS for p in folder.glob(g)):
        raise BailongError(
            f"{folder} holds no model (no config.json or no weights), only a tokenizer; give a model folder, a "
            ".gguf file or a run folder (a tokenizer alone goes in model.tokenizer)"
        )
    check_json_files(folder)
    from safetensors import safe_open

    for file in sorted(folder.glob("*.safetensors")):
        try:
            with safe_open(str(file), framework="pt"):
                pass
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own error type for every kind of damage
            raise damaged(file, f"{exc}; it may be cut short") from None


def check_tokenizer_folder(source: Source) -> None:
    if source.kind == "hf_dir":
        check_json_files(Path(source.path))


def explain_gguf_failure(source: Source, exc: Exception) -> None:
    """Raises a one-line BailongError if the GGUF file `exc` came from is damaged (then the cause is the file)."""
    if source.kind != "gguf":
        return
    from gguf import GGUFReader

    file = Path(source.path) / source.gguf_file
    try:
        GGUFReader(str(file))
    except Exception as reader_exc:  # noqa: BLE001 - the reader fails in many ways on a cut file
        raise damaged(file, f"the GGUF file cannot be read: {reader_exc}; it may be cut short") from None
