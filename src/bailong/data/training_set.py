"""What a training stage hands the trainer: the training and validation sets and how to read the held-out loss."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@contextmanager
def no_cache_progress_bar() -> Iterator[None]:
    """Hides datasets' "Generating train split" bar (writing the cache of what was just read; bailong's own bars
    show the reading and tokenizing)."""
    import datasets

    shown = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if shown:
            datasets.enable_progress_bars()


@dataclass
class TrainingData:
    train: object  # datasets.Dataset or IterableDataset of {"input_ids", "labels"} blocks
    validation: object | None
    train_blocks: int | None  # None when streaming
    validation_tokens_per_char: float | None  # converts eval loss (nats/token) into bits per character

    def packed_bits_per_char(self, loss: float) -> float | None:
        """Held-out loss (nats per token of packed blocks) as bits per character of the held-out text. Packed blocks
        run documents together without a BOS each, so this is a little lower than eval's per-document bpc."""
        if self.validation_tokens_per_char is None:
            return None
        return loss * self.validation_tokens_per_char / math.log(2)
