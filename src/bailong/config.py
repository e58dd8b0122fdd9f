"""The config schemas: one pydantic model per stage, built from shared sections.

Reading a YAML file into them (overrides, relative paths, error messages) is `bailong.config_file`.
"""

from __future__ import annotations

import os
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator



class PathMarker:
    """Marks a string field as a local path (always resolved) or a model source (resolved when it looks local)."""

    def __init__(self, always: bool):
        self.always = always


LocalPath = Annotated[str, PathMarker(always=True)]
Source = Annotated[str, PathMarker(always=False)]

DATA_SUFFIXES = (".txt", ".jsonl", ".json", ".parquet", ".gz")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class ModelConfig(Section):
    """What the loading core loads."""

    name_or_path: Source | None = Field(None, description="HF dir, hub id, .gguf file, run dir, or 'smollm2-135m-instruct'")
    tokenizer: Source | None = Field(None, description="base tokenizer (HF dir, hub id, .model file); defaults to name_or_path")
    revision: str | None = None
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    device: str = Field("auto", description="'auto', 'cpu', 'cuda', 'cuda:1', ...")
    trust_remote_code: bool = False
    adapter: LocalPath | None = Field(None, description="a saved LoRA adapter to load on top")

    @property
    def tokenizer_source(self) -> str | None:
        return self.tokenizer or self.name_or_path


class QuantizationConfig(Section):
    mode: Literal["none", "nf4", "int8"] = "none"
    double_quant: bool = True
    compute_dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    quant_storage: Literal["uint8", "bfloat16", "float16", "float32"] = Field(
        "uint8", description="4-bit storage dtype; FSDP + QLoRA needs the compute dtype here (bfloat16)"
    )
    skip_modules: list[str] = Field(default_factory=lambda: ["embed_tokens", "lm_head"])


class LoraConfig(Section):
    r: int = Field(64, gt=0)
    alpha: int = Field(128, gt=0)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: Union[Literal["all-linear"], list[str]] = "all-linear"


class DataConfig(Section):
    """Text sources: .txt (one document per line), .jsonl with a text field, parquet, or a `datasets` name."""

    files: list[Source] = Field(default_factory=list)
    text_field: str = "text"
    on_decode_error: Literal["error", "skip"] = "error"

    @field_validator("files")
    @classmethod
    def _files_exist(cls, files: list[str]) -> list[str]:
        for f in files:
            if f.endswith(DATA_SUFFIXES) and not os.path.exists(f):
                raise ValueError(f"file not found: {f}")
        return files


class TrainDataConfig(DataConfig):
    """Training text: tokenized, packed into fixed blocks with EOS between documents, split for validation."""

    block_size: int = Field(2048, gt=0, description="tokens per packed training block")
    weights: list[float] | None = Field(None, description="mixing weights, one per entry of files (e.g. [0.9, 0.1])")
    streaming: bool = Field(False, description="stream corpora bigger than RAM (needs train.max_steps)")
    validation: float = Field(0.01, ge=0, lt=1, description="share of documents held out for validation")
    validation_files: list[Source] = Field(default_factory=list, description="validation text instead of a share")
    num_proc: int | None = Field(None, gt=0, description="processes for tokenization (datasets.map)")

    @field_validator("weights")
    @classmethod
    def _positive(cls, weights: list[float] | None) -> list[float] | None:
        if weights is not None and (not weights or min(weights) < 0 or sum(weights) <= 0):
            raise ValueError("mixing weights must be non-negative with a positive sum, one per file")
        return weights


class TrainConfig(Section):
    """The training loop (transformers Trainer)."""

    max_steps: int = Field(-1, description="optimizer steps; -1: train for `epochs`")
    epochs: float = Field(1.0, gt=0)
    learning_rate: float = Field(2e-4, gt=0)
    batch_size: int = Field(1, gt=0, description="blocks per device per step")
    grad_accum: int = Field(1, gt=0)
    warmup_ratio: float = Field(0.03, ge=0, lt=1)
    lr_scheduler: Literal["cosine", "linear", "constant_with_warmup"] = "cosine"
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    optimizer: Literal["adamw_torch", "paged_adamw_8bit", "adamw_8bit", "paged_adamw_32bit"] = "adamw_torch"
    gradient_checkpointing: bool = True
    precision: Literal["auto", "bf16", "fp16", "fp32"] = Field("auto", description="auto: bf16 where supported")
    logging_steps: int = Field(10, gt=0)
    eval_steps: int | None = Field(None, gt=0, description="evaluate every N steps; default: save_steps")
    save_steps: int = Field(500, gt=0)
    save_total_limit: int | None = Field(3, gt=0)
    resume: str = Field("auto", description="auto (the newest complete checkpoint), never, or a checkpoint folder")
    seed: int = 42
    report_to: list[str] = Field(default_factory=list, description="e.g. [tensorboard] or [wandb] when installed")


class EmbeddingTrainingConfig(Section):
    """What trains of the embedding matrix and the LM head."""

    train: Literal["lora", "new-rows", "full", "frozen"] = Field(
        "lora", description="lora (the paper), new-rows (only rows added by extend-vocab), full, frozen"
    )
    learning_rate: float | None = Field(None, gt=0, description="for embedding parameters; default train.learning_rate")


class VocabConfig(Section):
    """How extend-vocab trains and merges the new tokenizer."""

    new_tokens: int = Field(27241, gt=0, description="how many tokens to add (the paper: 27,241)")
    model_type: Literal["bpe", "unigram"] = "bpe"
    cjk_only: bool = Field(True, description="keep only new pieces made of CJK characters")
    min_frequency: int = Field(2, ge=1, description="drop pieces seen fewer times in the corpus")
    character_coverage: float = Field(0.9995, gt=0, le=1)
    user_words: list[str] = Field(default_factory=list, description="words forced in first")
    user_words_file: LocalPath | None = None
    held_out: float = Field(0.05, ge=0, lt=1, description="fraction of documents kept out of training for the report")
    max_sentences: int = Field(2_000_000, gt=0, description="sentences sampled for tokenizer training")
    seed: int = 0

    @field_validator("user_words_file")
    @classmethod
    def _words_file_exists(cls, value: str | None) -> str | None:
        if value is not None and not os.path.isfile(value):
            raise ValueError(f"file not found: {value}")
        return value


class EmbeddingsConfig(Section):
    """How extend-vocab initializes the embedding rows of the new tokens (when it writes a checkpoint)."""

    init: Literal["zip-tie", "subword-mean", "mean", "random"] = "zip-tie"
    decay: float = Field(0.8, ge=0, le=4, description="zip-tie: piece i of a token's text weighs decay**i (1 = mean)")
    output_row: Literal["pieces", "first"] = Field(
        "pieces", description="zip-tie, untied bases: LM head row from the weighted pieces, or the first piece only"
    )
    pad_to_multiple_of: int | None = Field(None, gt=0, description="pad the matrices (padded rows stay unreachable)")
    seed: int = 0


class StageConfig(Section):
    output_dir: LocalPath


class ExtendVocabConfig(StageConfig):
    model: ModelConfig
    data: DataConfig
    vocab: VocabConfig = Field(default_factory=VocabConfig)
    embeddings: EmbeddingsConfig = Field(default_factory=EmbeddingsConfig)

    @field_validator("model")
    @classmethod
    def _needs_tokenizer(cls, model: ModelConfig) -> ModelConfig:
        if model.tokenizer_source is None:
            raise ValueError("set model.tokenizer or model.name_or_path to the base tokenizer")
        return model

    @field_validator("data")
    @classmethod
    def _needs_files(cls, data: DataConfig) -> DataConfig:
        if not data.files:
            raise ValueError("data.files is empty: list the corpus files (.txt or .jsonl) to train the tokenizer on")
        return data


def _weighted_files(data, what: str):
    if not data.files:
        raise ValueError(f"data.files is empty: list {what}")
    if data.weights is not None and len(data.weights) != len(data.files):
        raise ValueError(f"data.weights has {len(data.weights)} entries for {len(data.files)} files; give one each")
    return data


class AdapterTrainingConfig(StageConfig):
    """What the training stages share: the base, its quantization, the adapter and the training loop."""

    model: ModelConfig
    quantization: QuantizationConfig = Field(default_factory=lambda: QuantizationConfig(mode="nf4"))
    lora: LoraConfig = Field(default_factory=LoraConfig)
    embeddings: EmbeddingTrainingConfig = Field(default_factory=EmbeddingTrainingConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)


class PretrainConfig(AdapterTrainingConfig):
    data: TrainDataConfig

    @field_validator("data")
    @classmethod
    def _needs_files(cls, data: TrainDataConfig) -> TrainDataConfig:
        return _weighted_files(data, "the training text (.txt, .jsonl, .parquet or a datasets name)")

    @model_validator(mode="after")
    def _streaming_needs_max_steps(self) -> "PretrainConfig":
        if self.data.streaming and self.train.max_steps <= 0:
            raise ValueError("data.streaming needs train.max_steps: a stream has no length to count epochs by")
        if self.data.streaming and self.data.validation > 0 and not self.data.validation_files:
            raise ValueError("data.streaming: set data.validation_files for held-out text, or data.validation: 0")
        return self


CHAT_FIELDS = ("messages", "role", "content", "conversations", "from", "value", "instruction", "input", "output",
               "system")


class SftDataConfig(Section):
    """Chat data: JSONL/JSON/parquet or a `datasets` name, in the messages, ShareGPT or Alpaca form."""

    files: list[Source] = Field(default_factory=list)
    weights: list[float] | None = Field(None, description="mixing weights, one per entry of files")
    format: Literal["auto", "messages", "sharegpt", "alpaca"] = Field("auto", description="auto: decided per record")
    fields: dict[str, str] = Field(default_factory=dict, description="field names in the files, e.g. {messages: dialog}")
    on_bad_record: Literal["error", "skip"] = Field("error", description="skip: drop malformed records and count them")
    max_length: int = Field(2048, gt=0, description="tokens per sample; longer conversations are cut at turn borders")
    overlong: Literal["split", "drop"] = Field("split", description="split a long conversation into samples, or drop it")
    packing: bool = Field(False, description="pack short samples into one row; positions restart per sample")
    validation: float = Field(0.0, ge=0, lt=1, description="share of conversations held out for validation")
    validation_files: list[Source] = Field(default_factory=list)
    num_proc: int | None = Field(None, gt=0, description="processes for tokenization (datasets.map)")

    _files_exist = field_validator("files", "validation_files")(DataConfig._files_exist.__func__)
    _positive = field_validator("weights")(TrainDataConfig._positive.__func__)

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
        "auto", description="auto (the base tokenizer's own, else speaker-labels), base, llama-2, speaker-labels, "
        "or a Jinja file"
    )
    train_on: Literal["assistant", "last", "all"] = Field(
        "assistant", description="loss on every assistant turn, the last one only, or all tokens"
    )
    system_prompt: str | None = Field(None, description="added to conversations that have no system message")


class SftConfig(AdapterTrainingConfig):
    pretrain_adapter: Literal["continue", "merge"] = Field(
        "continue", description="with a pretrain run as model: train its adapter on, or merge it and add a fresh one"
    )
    chat: ChatConfig = Field(default_factory=ChatConfig)
    data: SftDataConfig

    @field_validator("data")
    @classmethod
    def _needs_files(cls, data: SftDataConfig) -> SftDataConfig:
        return _weighted_files(data, "the chat data (.jsonl, .json, .parquet or a datasets name)")


JUDGE_TEMPERATURES = {"writing": 0.7, "roleplay": 0.7, "math": 0.0, "reasoning": 0.0, "coding": 0.0,
                      "extraction": 0.0}


class EvalModel(Section):
    name: str = Field(description="the model's name in the report")
    name_or_path: Source = Field(description="HF dir, hub id, .gguf, any stage's output_dir, or the embedded default")


class EvalTask(Section):
    """One measurement; which keys apply depends on `type`."""

    type: Literal["bpc", "choice", "judge"]
    name: str | None = Field(None, description="the task's name in the report; default: its type")
    files: list[LocalPath] = Field(default_factory=list, description="bpc: text files, one document per line")
    window: int = Field(1024, gt=1, description="bpc: tokens per sliding window")
    stride: int = Field(512, gt=0, description="bpc: tokens the window moves by")
    file: LocalPath | None = Field(None, description="choice: JSONL {question, choices, answer, subject?}")
    dev_file: LocalPath | None = Field(None, description="choice: examples for k-shot prompts")
    shots: int = Field(0, ge=0, description="choice: examples from dev_file before each question")
    scoring: Literal["text", "letter"] = Field("text", description="choice: log-likelihood of the choice text, or "
                                               "of its letter after a lettered prompt")
    questions: LocalPath | None = Field(None, description="judge: MT-bench-style JSONL {question_id, category, turns}")
    references: LocalPath | None = Field(None, description="judge: FastChat-style answer file with reference answers")
    temperatures: dict[str, float] = Field(default_factory=lambda: dict(JUDGE_TEMPERATURES),
                                           description="judge: sampling temperature per category")
    default_temperature: float = Field(0.1, ge=0)
    max_new_tokens: int = Field(512, gt=0, description="judge: answer length limit per turn")
    limit: int | None = Field(None, gt=0, description="use only the first N items")
    batch_size: int = Field(8, gt=0)

    @model_validator(mode="after")
    def _inputs(self) -> "EvalTask":
        needed = {"bpc": ("files", "a list of text files"), "choice": ("file", "a JSONL of questions"),
                  "judge": ("questions", "an MT-bench-style question file")}[self.type]
        if not getattr(self, needed[0]):
            raise ValueError(f"a {self.type} task needs `{needed[0]}`: {needed[1]}")
        if self.shots and not self.dev_file:
            raise ValueError("shots > 0 needs dev_file: the examples to show")
        return self


class JudgeConfig(Section):
    """An OpenAI-compatible chat-completions endpoint that grades answers."""

    base_url: str = "http://127.0.0.1:8000/v1"
    model: str = "judge"
    api_key_env: str | None = Field("OPENAI_API_KEY", description="environment variable holding the API key")
    serve: Source | None = Field(None, description="start this model on loopback as the judge (demos and tests)")
    concurrency: int = Field(4, gt=0)
    max_retries: int = Field(3, ge=0, description="re-asks when a reply has no parseable rating")
    timeout_s: float = Field(120, gt=0)
    max_tokens: int = Field(1024, gt=0, description="length limit of a judgment")
    templates: LocalPath | None = Field(None, description="a YAML/JSON file overriding the grading prompts")


class EvalConfig(StageConfig):
    models: list[EvalModel]
    tasks: list[EvalTask]
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    device: str = Field("auto", description="'auto', 'cpu', 'cuda', ...")

    @field_validator("models", "tasks")
    @classmethod
    def _not_empty(cls, items: list, info) -> list:
        if not items:
            raise ValueError(f"{info.field_name} is empty: list at least one")
        names = [getattr(item, "name", None) or getattr(item, "type", None) for item in items]
        if len(set(names)) != len(names):
            raise ValueError(f"{info.field_name}: names must be unique (give each a distinct `name`)")
        return items


STAGE_CONFIGS: dict[str, type[StageConfig]] = {
    "extend-vocab": ExtendVocabConfig,
    "pretrain": PretrainConfig,
    "sft": SftConfig,
    "eval": EvalConfig,
}
