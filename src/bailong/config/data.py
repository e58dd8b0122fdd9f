"""Where text and chat data come from, how bad records are handled, and what is held out for validation."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from bailong.config.base import DataFiles, Section, Weights

OnBadRecord = Literal["error", "skip"]
ON_BAD_RECORD_HELP = "error: stop at the first bad record (file:line); skip: drop such records and count them"


class TextDataConfig(Section):
    """Text sources: .txt (one document per line), .jsonl/.json with a text field, parquet, .gz of those, or a
    `datasets` name."""

    files: DataFiles = Field(default_factory=list)
    """.txt (a document a line), .jsonl/.json (data.text_field), .parquet, each also .gz, or a datasets name"""
    text_field: str = "text"
    """the JSONL / parquet / dataset field holding the text"""
    on_bad_record: OnBadRecord = Field("error", description=ON_BAD_RECORD_HELP + " (a line that is not UTF-8, ...)")


class VocabDataConfig(TextDataConfig):
    """The corpus the tokenizer trains on; a share of documents is held out to measure what the extension buys."""

    validation: float = Field(0.05, ge=0, lt=1, description="share of documents held out for the report")


class TrainDataConfig(TextDataConfig):
    """Training text: tokenized, packed into fixed blocks with EOS between documents, split for validation."""

    block_size: int = Field(
        2048, ge=2, description="tokens per packed training block (a token is learned from the ones before it)"
    )
    weights: Weights = Field(None, description="mixing weights, one per entry of files (e.g. [0.9, 0.1])")
    streaming: bool = Field(False, description="stream corpora bigger than RAM (needs train.max_steps)")
    validation: float = Field(0.01, ge=0, lt=1, description="share of documents held out for validation")
    validation_files: DataFiles = Field(default_factory=list, description="validation text instead of a share")
    """held-out text files; default: data.validation's share of data.files"""
    num_proc: int | None = Field(None, gt=0, description="processes for tokenization (datasets.map)")


CHAT_FIELDS = (
    "messages",
    "role",
    "content",
    "conversations",
    "from",
    "value",
    "instruction",
    "input",
    "output",
    "system",
)


class SftDataConfig(Section):
    """Chat data: JSONL/JSON/parquet or a `datasets` name, in the messages, ShareGPT or Alpaca form."""

    files: DataFiles = Field(default_factory=list)
    """chat data: .jsonl/.json/.parquet records (messages, ShareGPT or Alpaca) or a datasets name"""
    weights: Weights = Field(None, description="mixing weights, one per entry of files")
    format: Literal["auto", "messages", "sharegpt", "alpaca"] = Field("auto", description="auto: decided per record")
    fields: dict[str, str] = Field(
        default_factory=dict, description="field names in the files, e.g. {messages: dialog}"
    )
    on_bad_record: OnBadRecord = Field("error", description=ON_BAD_RECORD_HELP)
    max_length: int = Field(2048, ge=2, description="tokens per sample; longer conversations are cut at turn borders")
    overlong: Literal["split", "drop"] = Field(
        "split", description="split a long conversation into samples, or drop it"
    )
    packing: bool = Field(False, description="pack short samples into one row; positions restart per sample")
    validation: float = Field(0.0, ge=0, lt=1, description="share of conversations held out for validation")
    validation_files: DataFiles = Field(default_factory=list)
    """held-out chat data; default: data.validation's share of data.files"""
    num_proc: int | None = Field(None, gt=0, description="processes for tokenization (datasets.map)")

    @field_validator("fields")
    @classmethod
    def _known_fields(cls, fields: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(fields) - set(CHAT_FIELDS))
        if unknown:
            raise ValueError(f"unknown field name(s) {unknown}; map any of {list(CHAT_FIELDS)} to your files' names")
        return fields


class ChatConfig(Section):
    """The chat format a model is trained and used with."""

    template: str = Field(
        "auto",
        description="auto (the base tokenizer's own, else speaker-labels), base, llama-2, speaker-labels, "
        "or a Jinja file",
    )
    train_on: Literal["assistant", "last", "all"] = Field(
        "assistant", description="loss on every assistant turn, the last one only, or all tokens"
    )
    system_prompt: str | None = Field(None, description="added to conversations that have no system message")
