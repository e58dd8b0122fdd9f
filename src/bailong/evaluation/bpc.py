"""The `bpc` task: bits per character, per-token perplexity and tokens per character on held-out text."""

from __future__ import annotations

from pathlib import Path

from bailong.config import EvalTask
from bailong.errors import BailongError
from bailong.metrics import bits_per_character


def read_documents(files: list[str], limit: int | None) -> list[str]:
    docs = []
    for f in files:
        try:
            docs += [line.strip() for line in Path(f).read_text(encoding="utf-8").splitlines() if line.strip()]
        except UnicodeDecodeError as exc:
            raise BailongError(f"{f}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    if not docs:
        raise BailongError(f"bpc task: no text in {', '.join(files)}")
    return docs[:limit] if limit else docs


def run_bpc(task: EvalTask, model, tokenizer) -> dict:
    """Bits per character is the figure to compare models whose tokenizers differ (base vs extended)."""
    docs = read_documents(task.files, task.limit)
    stride = min(task.stride, task.window - 1)
    result = bits_per_character(model, tokenizer, docs, max_length=task.window, stride=stride)
    return {"documents": len(docs), **result}
