"""Pretraining data: tokenized with `datasets.map`, packed into fixed blocks, mixed, split.

Each document is tokenized as the tokenizer does by default (BOS where it adds one), followed by EOS; documents are
concatenated and cut into blocks of `block_size` tokens, so no position is padding. Within each `datasets.map`
batch of documents the last partial block is dropped (at most one block per batch of `PACK_BATCH` documents).
"""

from __future__ import annotations

import os

from bailong.config.data import TextDataConfig, TrainDataConfig
from bailong.data.corpus import CorpusReader, split_held_out
from bailong.data.mixing import mix
from bailong.data.training_set import TrainingData, no_cache_progress_bar
from bailong.errors import BailongError

PACK_BATCH = 1000


def _documents(files: list[str], text_field: str, on_bad_record: str, fraction: float, held: bool, stamp: str):
    """Yields {"text"} rows of the documents on one side of the held-out split. `stamp` only busts the cache."""
    reader = CorpusReader(TextDataConfig(files=files, text_field=text_field, on_bad_record=on_bad_record))
    for doc in reader:
        if split_held_out(doc, fraction) == held:
            yield {"text": doc}


def source_stamp(files: list[str]) -> str:
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

    kwargs = {
        "files": files,
        "text_field": data.text_field,
        "on_bad_record": data.on_bad_record,
        "fraction": fraction,
        "held": held,
        "stamp": source_stamp(files),
    }
    if next(iter(_documents(**kwargs)), None) is None:  # reads up to the first document only
        return None
    cls = datasets.IterableDataset if streaming else datasets.Dataset
    try:
        with no_cache_progress_bar():
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
    packed = tokenized.map(
        _pack_fn(data.block_size),
        batched=True,
        batch_size=PACK_BATCH,
        remove_columns=["input_ids", "n_chars"],
        **pack_kwargs,
    )
    return packed, tokens, chars


def build_training_data(data: TrainDataConfig, tokenizer, seed: int) -> TrainingData:
    """The packed training and validation sets of `data`, mixed by `data.weights` when there are several sources."""
    fraction = 0.0 if data.validation_files else data.validation
    trains = []
    for f in data.files:
        source = _source([f], data, fraction, False, data.streaming)
        if source is None:
            raise BailongError(
                f"{f}: no text to train on (empty or all-whitespace); put text in it (a .txt file: one document a "
                f"line; .jsonl: one {{{data.text_field!r}: ...}} object a line) or remove it from data.files"
            )
        packed, tokens, _ = _prepare(source, tokenizer, data, data.streaming)
        if not data.streaming and len(packed) == 0:
            raise BailongError(
                f"{f}: {tokens} tokens, shorter than one block of data.block_size={data.block_size}; "
                "add text or lower data.block_size"
            )
        trains.append(packed)
    train = mix(trains, data.weights, seed, streaming=data.streaming)

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
