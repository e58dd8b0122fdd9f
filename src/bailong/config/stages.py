"""One root schema per config-driven stage, assembled from the sections; `STAGE_CONFIGS` maps command to schema."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from bailong.config.base import LocalPath, Section
from bailong.config.data import ChatConfig, SftDataConfig, TrainDataConfig, VocabDataConfig
from bailong.config.evaluation import EvalModel, EvalTask, JudgeConfig
from bailong.config.model import EmbeddingTrainingConfig, LoraConfig, ModelConfig, QuantizationConfig
from bailong.config.training import TrainConfig
from bailong.config.vocab import AlignConfig, NewRowsConfig, VocabConfig


class StageConfig(Section):
    output_dir: LocalPath
    """where the stage writes (a folder; refused when not empty unless --overwrite, except a run resuming)"""

    @field_validator("output_dir")
    @classmethod
    def _writable_folder(cls, value: str) -> str:
        """Checked when the config loads, so a bad output_dir fails before any model loads or tokenizer trains."""
        path = Path(value)
        if path.exists() and not path.is_dir():
            raise ValueError(f"{path} is a file; choose a folder")
        existing = next(p for p in (path, *path.parents) if p.exists())
        if not existing.is_dir():
            raise ValueError(f"{existing} is a file, so {path} cannot be created; choose another folder")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise ValueError(f"{existing} is not writable; choose a folder you can write to")
        return value


class ExtendVocabConfig(StageConfig):
    model: ModelConfig
    data: VocabDataConfig
    vocab: VocabConfig = Field(default_factory=VocabConfig)
    new_rows: NewRowsConfig = Field(default_factory=NewRowsConfig)
    align: AlignConfig = Field(default_factory=AlignConfig)

    @field_validator("model")
    @classmethod
    def _needs_tokenizer(cls, model: ModelConfig) -> ModelConfig:
        if model.tokenizer_source is None:
            raise ValueError("set model.tokenizer or model.name_or_path to the base tokenizer")
        return model

    @field_validator("data")
    @classmethod
    def _needs_files(cls, data: VocabDataConfig) -> VocabDataConfig:
        if not data.files:
            raise ValueError("data.files is empty: list the corpus files (.txt or .jsonl) to train the tokenizer on")
        return data

    @model_validator(mode="after")
    def _align_needs_a_model(self) -> ExtendVocabConfig:
        if self.align.steps and not self.model.name_or_path:
            raise ValueError("align.steps needs model.name_or_path: align trains the new rows of a base model")
        return self


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
    def _streaming_needs_max_steps(self) -> PretrainConfig:
        if self.data.streaming and self.train.max_steps <= 0:
            raise ValueError("data.streaming needs train.max_steps: a stream has no length to count epochs by")
        if self.data.streaming and self.data.validation > 0 and not self.data.validation_files:
            raise ValueError("data.streaming: set data.validation_files for held-out text, or data.validation: 0")
        return self


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
