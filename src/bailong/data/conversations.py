"""Chat records -> conversations: the OpenAI `messages`, ShareGPT `conversations` and Alpaca forms, checked.

A conversation is a list of {"role": "system"|"user"|"assistant", "content": str}: an optional system message, then
user and assistant turns alternating, ending with an assistant turn. A record that is not one (malformed JSON, an
unknown role, turns that don't alternate, an empty turn) stops the run with its file and line, or is skipped and
counted with `data.on_bad_record: skip`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from bailong.config.data import CHAT_FIELDS, SftDataConfig
from bailong.data.readers import BadRecord, RecordReader
from bailong.errors import BailongError

SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "bot": "assistant",
    "model": "assistant",
    "chatgpt": "assistant",
    "system": "system",
}


def field_names(data: SftDataConfig) -> dict[str, str]:
    return {name: data.fields.get(name, name) for name in CHAT_FIELDS}


def to_conversation(record: object, fmt: str, names: dict[str, str]) -> list[dict]:
    """One record as a checked conversation; raises BadRecord."""
    if not isinstance(record, dict):
        raise BadRecord("not an object", f"expected a JSON object, got {type(record).__name__}")
    if fmt == "auto":
        fmt = next(
            (
                f
                for f, key in (("messages", "messages"), ("sharegpt", "conversations"), ("alpaca", "instruction"))
                if names[key] in record
            ),
            None,
        )
        if fmt is None:
            raise BadRecord(
                "unknown form",
                f"no {names['messages']!r}, {names['conversations']!r} or "
                f"{names['instruction']!r} field (set data.format and data.fields to match your files)",
            )
    if fmt == "alpaca":
        turns = _alpaca(record, names)
    else:
        key, role_key, content_key = (
            (names["messages"], names["role"], names["content"])
            if fmt == "messages"
            else (names["conversations"], names["from"], names["value"])
        )
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
            raise BadRecord(
                "not alternating",
                f"turn {number} is {turn['role']!r} where {expected!r} should be: "
                "turns must alternate user/assistant after an optional first system message",
            )
        if not turn["content"].strip():
            raise BadRecord("empty turn", f"turn {number} ({turn['role']}) is empty")
    if body[-1]["role"] != "assistant":
        raise BadRecord("ends with a user turn", "the conversation ends with a user turn: nothing to learn from it")


@dataclass
class ChatReader:
    """Iterates the conversations of some files (or `datasets` names); re-iterable, counts skipped records."""

    data: SftDataConfig
    files: list[str]
    reader: RecordReader = field(init=False)

    def __post_init__(self):
        self.reader = RecordReader(self.data.on_bad_record)

    def __iter__(self) -> Iterator[list[dict]]:
        self.reader = RecordReader(self.data.on_bad_record)
        names = field_names(self.data)
        for source in self.files:
            if source.endswith((".txt", ".txt.gz")):
                raise BailongError(
                    f"{source}: chat data is read from .jsonl, .json, .parquet (each also .gz) or a "
                    "datasets name, in the messages, ShareGPT or Alpaca form"
                )
            for where, record in self.reader.records(source):
                try:
                    yield to_conversation(record, self.data.format, names)
                except BadRecord as exc:
                    self.reader.bad(where, exc)

    @property
    def skipped(self):
        return self.reader.skipped

    def report(self) -> str | None:
        return self.reader.report()
