"""Supervised fine-tuning data: conversations rendered with the chat template, tokenized with `datasets.map`,
labels only where the model should learn (assistant turns by default), long conversations cut at turn borders."""

from __future__ import annotations

import json
from dataclasses import dataclass

from bailong.config.data import SftDataConfig
from bailong.data.chat_template import IGNORE, encode
from bailong.data.conversations import ChatReader
from bailong.data.corpus import split_held_out
from bailong.data.mixing import mix
from bailong.data.pretrain_data import source_stamp
from bailong.data.training_set import TrainingData, no_cache_progress_bar
from bailong.errors import BailongError

# `cut` column values: how a sample came out of its conversation
WHOLE, PIECE, DROPPED, NOTHING_TO_LEARN = 0, 1, 2, 3


@dataclass
class SftCounts:
    conversations: int = 0
    samples: int = 0
    split: int = 0  # conversations cut into several samples
    dropped_long: int = 0  # conversations (or single turns) longer than max_length, dropped
    no_target: int = 0  # samples without a token to learn
    skipped_bad: str | None = None

    def summary(self) -> str:
        parts = [f"{self.conversations} conversations -> {self.samples} samples"]
        if self.split:
            parts.append(f"{self.split} split at turn borders")
        if self.dropped_long:
            parts.append(f"{self.dropped_long} dropped as longer than data.max_length")
        if self.no_target:
            parts.append(f"{self.no_target} without tokens to learn dropped")
        return ", ".join(parts) + (f"; {self.skipped_bad}" if self.skipped_bad else "")


def _conversations(
    files: list[str], data_json: str, fraction: float, held: bool, system_prompt: str | None, stamp: str
):
    """Yields {"messages"} rows on one side of the held-out split. `stamp` only busts the datasets cache."""
    reader = ChatReader(SftDataConfig.model_validate_json(data_json), files)
    for messages in reader:
        if system_prompt and messages[0]["role"] != "system":
            messages = [{"role": "system", "content": system_prompt}, *messages]
        if split_held_out(json.dumps(messages, ensure_ascii=False), fraction) == held:
            yield {"messages": messages}


def _pieces(messages: list[dict]) -> tuple[list[dict], list[list[dict]]]:
    """The system message (as a list) and the user/assistant pairs of a conversation."""
    head = messages[:1] if messages[0]["role"] == "system" else []
    body = messages[len(head) :]
    return head, [body[i : i + 2] for i in range(0, len(body), 2)]


def _encode_fn(tokenizer, max_length: int, overlong: str, train_on: str):
    def encode_batch(batch, indices):
        out = {"input_ids": [], "labels": [], "cut": [], "conversation": []}

        def emit(sample, cut):
            out["input_ids"].append(sample["input_ids"] if sample else [])
            out["labels"].append(sample["labels"] if sample else [])
            out["cut"].append(cut)
            out["conversation"].append(index)

        for index, messages in zip(indices, batch["messages"]):  # noqa: B007 - emit() reads index
            whole = encode(tokenizer, messages, train_on)
            if len(whole["input_ids"]) <= max_length:
                emit(whole, WHOLE)
                continue
            if overlong == "drop":
                emit(None, DROPPED)
                continue
            head, pairs = _pieces(messages)
            current: list[dict] = []
            for pair in pairs:  # greedy: as many whole turns per sample as fit
                trial = encode(tokenizer, head + current + pair, train_on)
                if len(trial["input_ids"]) <= max_length:
                    current += pair
                    kept = trial
                    continue
                if current:
                    emit(kept, PIECE)
                single = encode(tokenizer, head + pair, train_on)
                current, kept = (pair, single) if len(single["input_ids"]) <= max_length else ([], None)
                if kept is None:
                    emit(None, DROPPED)
            if current:
                emit(kept, PIECE)
        out["cut"] = [
            NOTHING_TO_LEARN if c in (WHOLE, PIECE) and all(t == IGNORE for t in labels) else c
            for c, labels in zip(out["cut"], out["labels"])
        ]
        return out

    return encode_batch


def _prepare(files, data: SftDataConfig, tokenizer, train_on: str, system_prompt, fraction, held, counts):
    import datasets

    kwargs = {
        "files": files,
        "data_json": data.model_dump_json(),
        "fraction": fraction,
        "held": held,
        "system_prompt": system_prompt,
        "stamp": source_stamp(files),
    }
    reader = ChatReader(data, files)
    count = sum(1 for _ in reader)  # reads every record once here, so that a bad one stops with a clean message
    counts.skipped_bad = reader.report()
    if count == 0:
        return None
    with no_cache_progress_bar():
        conversations = datasets.Dataset.from_generator(_conversations, gen_kwargs=kwargs)
    encoded = conversations.map(
        _encode_fn(tokenizer, data.max_length, data.overlong, train_on),
        batched=True,
        with_indices=True,
        remove_columns=["messages"],
        num_proc=data.num_proc,
        desc="tokenizing chats",
    )
    cuts = encoded["cut"]
    counts.conversations += len(conversations)
    counts.dropped_long += cuts.count(DROPPED)
    counts.no_target += cuts.count(NOTHING_TO_LEARN)
    counts.split += len({c for c, cut in zip(encoded["conversation"], cuts) if cut == PIECE})
    kept = encoded.filter(lambda c: c in (WHOLE, PIECE), input_columns="cut").remove_columns(["cut", "conversation"])
    counts.samples += len(kept)
    return kept


def build_sft_data(data: SftDataConfig, tokenizer, train_on: str, system_prompt: str | None, seed: int):
    """(training data, counts): the tokenized, masked samples of `data`, mixed by `data.weights`."""
    fraction = 0.0 if data.validation_files else data.validation
    counts = SftCounts()
    trains = []
    for f in data.files:
        samples = _prepare([f], data, tokenizer, train_on, system_prompt, fraction, False, counts)
        if samples is None or len(samples) == 0:
            why = (
                f" ({counts.skipped_bad})"
                if counts.skipped_bad
                else ""
                if samples is None
                else f" (all longer than data.max_length={data.max_length} or without assistant tokens)"
            )
            raise BailongError(f"{f}: no usable conversation to train on{why}")
        trains.append(samples)
    train = mix(trains, data.weights, seed)

    validation = None
    if data.validation_files or fraction > 0:
        files, held = (data.validation_files, False) if data.validation_files else (data.files, True)
        validation = _prepare(
            files, data, tokenizer, train_on, system_prompt, fraction if held else 0.0, held, SftCounts()
        )
        if validation is not None and len(validation) == 0:
            validation = None
    return TrainingData(train, validation, len(train), None), counts
