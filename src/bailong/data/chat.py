"""Chat records -> conversations: the OpenAI `messages`, ShareGPT `conversations` and Alpaca forms, checked.

A conversation is a list of {"role": "system"|"user"|"assistant", "content": str}: an optional system message, then
user and assistant turns alternating, ending with an assistant turn. A record that is not one (malformed JSON, an
unknown role, turns that don't alternate, an empty turn) stops the run with its file and line, or is skipped and
counted with `data.on_bad_record: skip`.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bailong.config import DATA_SUFFIXES, SftDataConfig
from bailong.errors import BailongError

SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "bot": "assistant",
                  "model": "assistant", "chatgpt": "assistant", "system": "system"}


class BadRecord(ValueError):
    """A record that is not a usable conversation: `kind` (what is counted when skipping) and why."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def field_names(data: SftDataConfig) -> dict[str, str]:
    from bailong.config import CHAT_FIELDS

    return {name: data.fields.get(name, name) for name in CHAT_FIELDS}


def to_conversation(record: object, fmt: str, names: dict[str, str]) -> list[dict]:
    """One record as a checked conversation; raises BadRecord."""
    if not isinstance(record, dict):
        raise BadRecord("not an object", f"expected a JSON object, got {type(record).__name__}")
    if fmt == "auto":
        fmt = next((f for f, key in (("messages", "messages"), ("sharegpt", "conversations"), ("alpaca", "instruction"))
                    if names[key] in record), None)
        if fmt is None:
            raise BadRecord("unknown form", f"no {names['messages']!r}, {names['conversations']!r} or "
                            f"{names['instruction']!r} field (set data.format and data.fields to match your files)")
    if fmt == "alpaca":
        turns = _alpaca(record, names)
    else:
        key, role_key, content_key = ((names["messages"], names["role"], names["content"]) if fmt == "messages" else
                                      (names["conversations"], names["from"], names["value"]))
        turns = record.get(key)
        if not isinstance(turns, list) or not turns:
            raise BadRecord("missing field", f"field {key!r} must be a non-empty list of turns")
        turns = [_turn(t, i, role_key, content_key, fmt) for i, t in enumerate(turns)]
    check_conversation(turns)
    return turns


def _alpaca(record: dict, names: dict[str, str]) -> list[dict]:
    parts = {k: record.get(names[k]) or "" for k in ("instruction", "input", "output", "system")}
    for key, value in parts.items():
        if not isinstance(value, str):
            raise BadRecord("missing field", f"field {names[key]!r} must be a string")
    prompt = parts["instruction"].strip() + ("\n\n" + parts["input"].strip() if parts["input"].strip() else "")
    turns = [{"role": "system", "content": parts["system"]}] if parts["system"].strip() else []
    return turns + [{"role": "user", "content": prompt}, {"role": "assistant", "content": parts["output"]}]


def _turn(turn: object, index: int, role_key: str, content_key: str, fmt: str) -> dict:
    if not isinstance(turn, dict) or role_key not in turn or content_key not in turn:
        raise BadRecord("missing field", f"turn {index + 1} needs {role_key!r} and {content_key!r} fields")
    role, content = turn[role_key], turn[content_key]
    if not isinstance(content, str):
        raise BadRecord("missing field", f"turn {index + 1}: {content_key!r} must be a string")
    if fmt == "sharegpt":
        role = SHAREGPT_ROLES.get(str(role).lower(), role)
    if role not in ("system", "user", "assistant"):
        raise BadRecord("unknown role", f"turn {index + 1}: unknown role {role!r} (expected system, user or assistant)")
    return {"role": role, "content": content}


def check_conversation(turns: list[dict]) -> None:
    body = turns[1:] if turns[0]["role"] == "system" else turns
    if not body:
        raise BadRecord("no turns", "no user or assistant turn")
    for i, turn in enumerate(body):
        expected, number = ("user" if i % 2 == 0 else "assistant"), i + 1 + len(turns) - len(body)
        if turn["role"] != expected:
            raise BadRecord("not alternating", f"turn {number} is {turn['role']!r} where {expected!r} should be: "
                            "turns must alternate user/assistant after an optional first system message")
        if not turn["content"].strip():
            raise BadRecord("empty turn", f"turn {number} ({turn['role']}) is empty")
    if body[-1]["role"] != "assistant":
        raise BadRecord("ends with a user turn", "the conversation ends with a user turn: nothing to learn from it")


@dataclass
class ChatReader:
    """Iterates the conversations of some files (or `datasets` names); re-iterable, counts skipped records."""

    data: SftDataConfig
    files: list[str]
    skipped: Counter = field(default_factory=Counter)
    first_skipped: list[str] = field(default_factory=list)

    def __iter__(self) -> Iterator[list[dict]]:
        self.skipped, self.first_skipped = Counter(), []
        names = field_names(self.data)
        for source in self.files:
            for where, record in self._records(source):
                try:
                    yield to_conversation(record, self.data.format, names)
                except BadRecord as exc:
                    self._bad(where, exc)

    def _bad(self, where: str, exc: BadRecord) -> None:
        reason = str(exc)
        if self.data.on_bad_record == "error":
            raise BailongError(f"{where}: {reason}; fix the record or set data.on_bad_record: skip")
        self.skipped[exc.kind] += 1
        if len(self.first_skipped) < 3:
            self.first_skipped.append(f"{where}: {reason}")

    def _records(self, source: str) -> Iterator[tuple[str, object]]:
        if not source.endswith(DATA_SUFFIXES):
            yield from self._dataset(source)
            return
        path = Path(source)
        if path.name.endswith(".parquet"):
            import pyarrow.parquet as pq

            for i, row in enumerate(pq.read_table(path).to_pylist()):
                yield f"{path} row {i + 1}", row
            return
        if path.name.endswith(".json"):
            try:
                records = json.loads(path.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise BailongError(f"{path}: not a valid JSON file ({exc})") from None
            if not isinstance(records, list):
                raise BailongError(f"{path}: a .json chat file must hold a list of records; use .jsonl for one a line")
            for i, record in enumerate(records):
                yield f"{path} record {i + 1}", record
            return
        with open(path, "rb") as handle:
            for lineno, raw in enumerate(handle, 1):
                where = f"{path}:{lineno}"
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError:
                    self._bad(where, BadRecord("not UTF-8", "not valid UTF-8"))
                    continue
                if not line.strip():
                    continue
                try:
                    yield where, json.loads(line)
                except json.JSONDecodeError as exc:
                    self._bad(where, BadRecord("malformed JSON", f"malformed JSON ({exc.msg} at column {exc.colno})"))

    def _dataset(self, name: str) -> Iterator[tuple[str, object]]:
        import datasets

        name, _, subset = name.partition(":")
        try:
            rows = datasets.load_dataset(name, subset or None, split="train", streaming=True)
        except Exception as exc:  # noqa: BLE001 - datasets raises many types for a bad name
            raise BailongError(f"data.files: cannot load the dataset {name!r}: {exc}") from None
        for i, row in enumerate(rows):
            yield f"{name} row {i + 1}", row

    def report(self) -> str | None:
        total = sum(self.skipped.values())
        if not total:
            return None
        kinds = ", ".join(f"{n} {k}" for k, n in self.skipped.most_common())
        return f"skipped {total} bad record(s) ({kinds}); first: {'; '.join(self.first_skipped)}"
