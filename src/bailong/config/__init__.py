"""The config schemas, one pydantic section per concern and one root per stage, and the YAML loader."""

from bailong.config.base import DATA_SUFFIXES, LocalPath, PathMarker, Section, Source
from bailong.config.data import (
    CHAT_FIELDS,
    ChatConfig,
    SftDataConfig,
    TextDataConfig,
    TrainDataConfig,
    VocabDataConfig,
)
from bailong.config.evaluation import (
    BpcTask,
    ChoiceTask,
    EvalModel,
    EvalTask,
    JudgeConfig,
    JudgeTask,
    LmEvalTask,
    SpeedTask,
)
from bailong.config.loader import dump_config, load_config
from bailong.config.model import EmbeddingTrainingConfig, LoraConfig, ModelConfig, QuantizationConfig
from bailong.config.stages import (
    STAGE_CONFIGS,
    AdapterTrainingConfig,
    EvalConfig,
    ExtendVocabConfig,
    PretrainConfig,
    SftConfig,
    StageConfig,
)
from bailong.config.training import TrainConfig
from bailong.config.vocab import AlignConfig, NewRowsConfig, VocabConfig

__all__ = [
    "CHAT_FIELDS",
    "DATA_SUFFIXES",
    "STAGE_CONFIGS",
    "AdapterTrainingConfig",
    "AlignConfig",
    "BpcTask",
    "ChatConfig",
    "ChoiceTask",
    "EmbeddingTrainingConfig",
    "EvalConfig",
    "EvalModel",
    "EvalTask",
    "ExtendVocabConfig",
    "JudgeConfig",
    "JudgeTask",
    "LmEvalTask",
    "LocalPath",
    "LoraConfig",
    "ModelConfig",
    "NewRowsConfig",
    "PathMarker",
    "PretrainConfig",
    "QuantizationConfig",
    "Section",
    "SftConfig",
    "SftDataConfig",
    "Source",
    "SpeedTask",
    "StageConfig",
    "TextDataConfig",
    "TrainConfig",
    "TrainDataConfig",
    "VocabConfig",
    "VocabDataConfig",
    "dump_config",
    "load_config",
]
