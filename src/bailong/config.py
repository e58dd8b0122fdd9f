"""Validated YAML configs: one pydantic model per stage, built from shared sections.

Relative paths in a config file resolve against that file's folder; relative paths given with `--set`
resolve against the current directory.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bailong.errors import BailongError


class PathMarker:
    """Marks a string field as a local path (always resolved) or a model source (resolved when it looks local)."""

    def __init__(self, always: bool):
        self.always = always


LocalPath = Annotated[str, PathMarker(always=True)]
Source = Annotated[str, PathMarker(always=False)]

DATA_SUFFIXES = (".txt", ".jsonl", ".json", ".parquet", ".gz")
_LOCAL_SUFFIXES = DATA_SUFFIXES + (".model", ".gguf", ".yaml")


def _resolve(value: str, base: Path, always: bool) -> str:
    expanded = os.path.expanduser(value)
    if os.path.isabs(expanded):
        return expanded
    candidate = base / expanded
    looks_local = always or value.startswith((".", "~")) or candidate.exists() or value.endswith(_LOCAL_SUFFIXES)
    return str(candidate.resolve()) if looks_local else value


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


class PretrainConfig(StageConfig):
    model: ModelConfig
    quantization: QuantizationConfig = Field(default_factory=lambda: QuantizationConfig(mode="nf4"))
    lora: LoraConfig = Field(default_factory=LoraConfig)
    embeddings: EmbeddingTrainingConfig = Field(default_factory=EmbeddingTrainingConfig)
    data: TrainDataConfig
    train: TrainConfig = Field(default_factory=TrainConfig)

    @field_validator("data")
    @classmethod
    def _needs_files(cls, data: TrainDataConfig) -> TrainDataConfig:
        if not data.files:
            raise ValueError("data.files is empty: list the training text (.txt, .jsonl, .parquet or a datasets name)")
        if data.weights is not None and len(data.weights) != len(data.files):
            raise ValueError(f"data.weights has {len(data.weights)} entries for {len(data.files)} files; give one each")
        return data

    @model_validator(mode="after")
    def _streaming_needs_max_steps(self) -> "PretrainConfig":
        if self.data.streaming and self.train.max_steps <= 0:
            raise ValueError("data.streaming needs train.max_steps: a stream has no length to count epochs by")
        if self.data.streaming and self.data.validation > 0 and not self.data.validation_files:
            raise ValueError("data.streaming: set data.validation_files for held-out text, or data.validation: 0")
        return self


class SftConfig(PretrainConfig):
    pass


class EvalModel(Section):
    name: str
    name_or_path: Source


class EvalTask(Section):
    type: Literal["bpc", "choice", "judge"]
    files: list[LocalPath] = Field(default_factory=list)
    file: LocalPath | None = None
    questions: LocalPath | None = None
    limit: int | None = None


class JudgeConfig(Section):
    base_url: str = "http://127.0.0.1:8000/v1"
    model: str = "judge"
    api_key_env: str = "OPENAI_API_KEY"


class EvalConfig(StageConfig):
    models: list[EvalModel]
    tasks: list[EvalTask]
    judge: JudgeConfig = Field(default_factory=JudgeConfig)


STAGE_CONFIGS: dict[str, type[StageConfig]] = {
    "extend-vocab": ExtendVocabConfig,
    "pretrain": PretrainConfig,
    "sft": SftConfig,
    "eval": EvalConfig,
}


# ---------------------------------------------------------------------------------------------- loading


def _path_marker(annotation: Any) -> PathMarker | None:
    for arg in getattr(annotation, "__metadata__", ()):
        if isinstance(arg, PathMarker):
            return arg
    for arg in get_args(annotation):
        marker = _path_marker(arg)
        if marker:
            return marker
    return None


def _submodel(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _submodel(arg)
        if found:
            return found
    return None


def resolve_paths(raw: Any, model: type[BaseModel], base: Path) -> Any:
    """Returns `raw` with every path-typed value made absolute against `base`."""
    if not isinstance(raw, dict):
        return raw
    out = dict(raw)
    for key, value in raw.items():
        field = model.model_fields.get(key)
        if field is None or value is None:
            continue
        marker = next((m for m in field.metadata if isinstance(m, PathMarker)), None) or _path_marker(field.annotation)
        sub = _submodel(field.annotation)
        if marker and isinstance(value, str):
            out[key] = _resolve(value, base, marker.always)
        elif marker and isinstance(value, list):
            out[key] = [_resolve(v, base, marker.always) if isinstance(v, str) else v for v in value]
        elif sub and isinstance(value, dict):
            out[key] = resolve_paths(value, sub, base)
        elif sub and isinstance(value, list) and get_origin(field.annotation) is list:
            out[key] = [resolve_paths(v, sub, base) for v in value]
    return out


def parse_override(item: str) -> tuple[list[str], Any]:
    """`a.b=value` -> (['a', 'b'], YAML-parsed value)."""
    if "=" not in item:
        raise BailongError(f"--set {item!r}: expected KEY=VALUE, e.g. --set train.max_steps=10")
    key, _, text = item.partition("=")
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError as exc:
        raise BailongError(f"--set {item!r}: the value is not valid YAML ({exc.problem})") from None
    return key.strip().split("."), value


def apply_override(raw: dict, keys: list[str], value: Any, item: str) -> None:
    node = raw
    for key in keys[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise BailongError(f"--set {item!r}: {key} is not a section")
        node = child
    node[keys[-1]] = value


def load_config(stage: str, path: Path, overrides: list[str] = ()) -> StageConfig:
    """Reads, resolves and validates the YAML config of `stage`; raises BailongError with one clear message."""
    model = STAGE_CONFIGS[stage]
    path = Path(path)
    if not path.is_file():
        raise BailongError(f"config file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise BailongError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise BailongError(f"{path}: the top level must be a mapping of sections (model:, data:, ...)")
    raw = resolve_paths(raw, model, path.resolve().parent)
    for item in overrides:
        keys, value = parse_override(item)
        nested: dict = {}
        apply_override(nested, keys, value, item)
        nested = resolve_paths(nested, model, Path.cwd())
        _deep_merge(raw, nested)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise BailongError(f"{path}: " + format_validation_error(exc, model)) from None


def _deep_merge(into: dict, extra: dict) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value)
        else:
            into[key] = value


_TYPE_WORDS = {
    "int_parsing": "an integer", "int_type": "an integer", "int_from_float": "an integer",
    "float_parsing": "a number", "float_type": "a number", "bool_parsing": "true or false", "bool_type": "true or false",
    "string_type": "a string", "list_type": "a list", "dict_type": "a mapping", "model_type": "a mapping",
}


def format_validation_error(exc: ValidationError, model: type[BaseModel]) -> str:
    lines = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        key = ".".join(loc) or "(top level)"
        kind = err["type"]
        if kind == "extra_forbidden":
            parent = _model_at(model, err["loc"][:-1])
            valid = list(parent.model_fields) if parent else []
            close = difflib.get_close_matches(loc[-1], valid, n=1, cutoff=0.5)
            hint = f"did you mean '{close[0]}'?" if close else f"valid keys here: {', '.join(valid)}"
            lines.append(f"{key}: unknown key; {hint}")
        elif kind == "missing":
            lines.append(f"{key}: required key is missing")
        elif kind in _TYPE_WORDS:
            lines.append(f"{key}: expected {_TYPE_WORDS[kind]}, got {err.get('input')!r}")
        elif kind == "literal_error":
            lines.append(f"{key}: got {err.get('input')!r}; {err['msg'].lower()}")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"{key}: {msg}")
    return "; ".join(lines)


def _model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    current: type[BaseModel] | None = model
    for part in loc:
        if isinstance(part, int) or current is None:
            continue
        field = current.model_fields.get(part)
        current = _submodel(field.annotation) if field else None
    return current


def dump_config(config: StageConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
