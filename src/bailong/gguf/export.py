"""`bailong export --format gguf`: the merged run as one GGUF file, written with gguf's GGUFWriter (llama.cpp's own).

The file is written under a temporary name and renamed when complete: a failed or interrupted write (a full disk)
leaves nothing under the final name.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bailong.errors import BailongError, WriteFailed, stop_if_interrupted
from bailong.gguf.model import OUTTYPES, add_hparams, add_tensors, architecture_of, check_config
from bailong.gguf.vocab import (
    add_vocab,
    byte_level_vocab,
    is_sentencepiece_json,
    pre_tokenizer_name,
    sentencepiece_json_vocab,
    sentencepiece_vocab,
)
from bailong.loading import extension_of, load_tokenizer, sentencepiece_file
from bailong.loading.merge import MergedRun, base_config, merged_run, read_finished_run


@dataclass
class GgufExport:
    path: Path
    merged: MergedRun


def gguf_path(run_dir: Path, target: Path, outtype: str) -> Path:
    return target / f"{Path(run_dir).resolve().name}-{outtype}.gguf"


def export_gguf(run_dir: Path, target: Path, outtype: str = "f16", overwrite: bool = False) -> GgufExport:
    """Merges the run and writes `target/<run name>-<outtype>.gguf`; checks what it can before the merge."""
    import gguf

    if outtype not in OUTTYPES:
        raise BailongError(f"--outtype {outtype!r} is not one of {', '.join(OUTTYPES)}")
    run = read_finished_run(run_dir)
    path = gguf_path(run_dir, target, outtype)
    if target.exists() and not target.is_dir():
        raise BailongError(f"--to {target} is a file; choose a folder")
    if path.exists() and not overwrite:
        raise BailongError(f"{path} exists; pass --overwrite to replace it or choose another --to")
    config = base_config(run)
    check_config(config)
    arch = architecture_of(config).gguf_arch
    merged = merged_run(run_dir)
    writer = gguf.GGUFWriter(path=None, arch=gguf.MODEL_ARCH_NAMES[getattr(gguf.MODEL_ARCH, arch)])
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(Path(run_dir).resolve().name)
    add_hparams(writer, merged.model.config, outtype)
    rows = merged.model.get_input_embeddings().weight.shape[0]
    with tempfile.TemporaryDirectory() as tokenizer_dir:
        merged.tokenizer.save_pretrained(tokenizer_dir)
        add_vocab(writer, run_vocab(run_dir, run, merged.tokenizer, rows), merged.tokenizer, Path(tokenizer_dir))
    add_tensors(writer, merged.model, outtype)
    write_atomically(writer, path)
    return GgufExport(path, merged)


def run_vocab(run_dir: Path, run: dict, tokenizer, rows: int):
    """The GGUF vocabulary of the run's tokenizer: byte-level BPE with the pre-tokenizer of the base it was extended
    from; SentencePiece from the base's SentencePiece model, or from tokenizer.json alone (Gemma 3)."""
    data = json.loads(tokenizer.backend_tokenizer.to_str())
    if "ByteLevel" in json.dumps(data.get("pre_tokenizer")):
        extension = extension_of(run["base_model"])
        base = extension["base_model"] if extension else run["base_model"]
        return byte_level_vocab(tokenizer, pre_tokenizer_name(load_tokenizer(base), base), rows)
    for source in (str(run_dir), run["base_model"]):
        sp_model = sentencepiece_file(source)
        if sp_model is not None:
            return sentencepiece_vocab(sp_model, tokenizer, rows)
    if is_sentencepiece_json(data):
        return sentencepiece_json_vocab(tokenizer, rows)
    raise BailongError(
        f"{run_dir}: --format gguf writes SentencePiece tokenizers (a tokenizer.model, or a tokenizer.json BPE with "
        f"byte fallback) and byte-level BPE tokenizers; this one is a {data['model']['type']} of neither kind"
    )


def write_atomically(writer, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.parent / f".{path.name}.partial-{os.getpid()}"
    try:
        writer.write_header_to_file(path=partial)
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        stop_if_interrupted()
    except OSError as exc:  # numpy reports a short write (a full disk) without an errno
        partial.unlink(missing_ok=True)
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise WriteFailed(f"cannot write {path}: {reason}; free some space on that disk and rerun") from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, path)
