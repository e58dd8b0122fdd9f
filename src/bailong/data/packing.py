"""Training data for causal LM stages: tokenized with `datasets.map`, packed into fixed blocks, mixed, split.

Each document is tokenized as the tokenizer does by default (BOS where it adds one), followed by EOS; documents are
concatenated and cut into blocks of `block_size` tokens, so no position is padding. Within each `datasets.map`
batch of documents the last partial block is dropped (at most one block per batch of `PACK_BATCH` documents).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from bailong.config import DataConfig, TrainDataConfig
from bailong.data.corpus import CorpusReader, split_held_out
from bailong.errors import BailongError

PACK_BATCH = 1000


@dataclass
class TrainingData:
    train: object  # datasets.Dataset or IterableDataset of {"input_ids", "labels"} blocks
    validation: object | None
    train_blocks: int | None  # None when streaming
    validation_tokens_per_char: float | None  # converts eval loss (nats/token) into bits per character

    def bits_per_char(self, loss: float) -> float | None:
        if self.validation_tokens_per_char is None:
            return None
        return loss * self.validation_tokens_per_char / math.log(2)


def _documents(files: list[str], text_field: str, on_decode_error: str, fraction: float, held: bool, stamp: str):
    """Yields {"text"} rows of the documents on one side of the held-out split. `stamp` only busts the cache."""
    reader = CorpusReader(DataConfig(files=files, text_field=text_field, on_decode_error=on_decode_error))
    for doc in reader:
        if split_held_out(doc, fraction) == held:
            yield {"text": doc}


def _stamp(files: list[str]) -> str:
    """Changes whenever a file does, so the datasets cache never serves stale text."""
    parts = []
    for f in files:
        st = os.stat(f) if os.path.exists(f) else None
        parts.append(f"{f}:{st.st_size}:{st.st_mtime_ns}" if st else f)
    return "|".join(parts)


def _tokenize_fn(tokenizer):
    eos = tokenizer.eos_token_id

    def tokenize(batch):
        ids = tokenizer(batch["text"])["input_ids"]
        ids = [x if x and x[-1] == eos else x + [eos] for x in ids]
        return {"input_ids": ids, "n_chars": [len(t) for t in batch["text"]]}

    return tokenize


def _pack_fn(block_size: int):
    def pack(batch):
        flat = [token for ids in batch["input_ids"] for token in ids]
        usable = len(flat) // block_size * block_size
        blocks = [flat[i : i + block_size] for i in range(0, usable, block_size)]
        return {"input_ids": blocks, "labels": [list(b) for b in blocks]}

    return pack


def _source(files, data: TrainDataConfig, fraction: float, held: bool, streaming: bool):
    """The documents as a dataset, or None when there are none."""
    import datasets

    kwargs = {"files": files, "text_field": data.text_field, "on_decode_error": data.on_decode_error,
              "fraction": fraction, "held": held, "stamp": _stamp(files)}
    if next(iter(_documents(**kwargs)), None) is None:  # reads up to the first document only
        return None
    cls = datasets.IterableDataset if streaming else datasets.Dataset
    try:
        return cls.from_generator(_documents, gen_kwargs=kwargs)
    except datasets.exceptions.DatasetGenerationError as exc:
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, BailongError):
            raise cause from None
        raise


def _prepare(ds, tokenizer, data: TrainDataConfig, streaming: bool):
    """Tokenized documents -> (packed blocks, tokens, characters)."""
    map_kwargs = {} if streaming else {"num_proc": data.num_proc, "desc": "tokenizing"}
    tokenized = ds.map(_tokenize_fn(tokenizer), batched=True, remove_columns=["text"], **map_kwargs)
    tokens = chars = None
    if not streaming:
        chars = sum(tokenized["n_chars"])
        tokens = sum(len(x) for x in tokenized["input_ids"])
    pack_kwargs = {} if streaming else {"num_proc": data.num_proc, "desc": "packing"}
    packed = tokenized.map(_pack_fn(data.block_size), batched=True, batch_size=PACK_BATCH,
                           remove_columns=["input_ids", "n_chars"], **pack_kwargs)
    return packed, tokens, chars


def _mix(sets: list, shares: list[float], seed: int):
    """One epoch is one pass over the first source; the others are repeated or cut so each gets its share."""
    import datasets

    total = len(sets[0]) / shares[0] if shares[0] > 0 else sum(len(s) for s in sets)
    parts = []
    for blocks, share in zip(sets, shares):
        wanted = round(total * share)
        if wanted == 0:
            continue
        copies = datasets.concatenate_datasets([blocks] * math.ceil(wanted / len(blocks)))
        parts.append(copies.shuffle(seed=seed).select(range(wanted)) if wanted < len(copies) else copies)
    return datasets.concatenate_datasets(parts)


def build_training_data(data: TrainDataConfig, tokenizer, seed: int) -> TrainingData:
    """The packed training and validation sets of `data`, mixed by `data.weights` when there are several sources."""
    import datasets

    fraction = 0.0 if data.validation_files else data.validation
    trains = []
    for f in data.files:
        source = _source([f], data, fraction, False, data.streaming)
        if source is None:
            raise BailongError(f"{f}: no text to train on (empty or all-whitespace)")
        packed, tokens, _ = _prepare(source, tokenizer, data, data.streaming)
        if not data.streaming and len(packed) == 0:
            raise BailongError(
                f"{f}: {tokens} tokens, shorter than one block of data.block_size={data.block_size}; "
                "add text or lower data.block_size"
            )
        trains.append(packed)
    weights = data.weights or [1.0] * len(trains)
    shares = [w / sum(weights) for w in weights]
    if data.streaming:
        train = trains[0] if len(trains) == 1 else datasets.interleave_datasets(
            trains, probabilities=shares, seed=seed, stopping_strategy="all_exhausted")
        train = train.shuffle(seed=seed, buffer_size=1000)
    else:
        train = _mix(trains, shares, seed) if data.weights else datasets.concatenate_datasets(trains)
        train = train.shuffle(seed=seed)

    validation, per_char = None, None
    if data.validation_files or fraction > 0:
        if data.validation_files:
            source = _source(data.validation_files, data, 0.0, False, streaming=False)
        else:
            source = _source(data.files, data, fraction, True, streaming=False)
        if source is not None:
            validation, tokens, chars = _prepare(source, tokenizer, data, streaming=False)
            if len(validation) == 0:
                validation = None  # too little held-out text for one block: no evaluation
            elif chars:
                per_char = tokens / chars
    return TrainingData(train, validation, None if data.streaming else len(train), per_char)
