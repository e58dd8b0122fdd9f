"""extend-vocab: how the new tokenizer is trained and merged, and how the new embedding rows start."""

from __future__ import annotations

import os
from typing import Literal

import regex
from pydantic import Field, field_validator, model_validator

from bailong.config.base import LocalPath, Section


class VocabConfig(Section):
    """How extend-vocab trains and merges the new tokenizer."""

    new_tokens: int = Field(27241, gt=0, description="how many tokens to add (the paper: 27,241)")
    model_type: Literal["bpe", "unigram"] = "bpe"
    """the SentencePiece model trained on the corpus: bpe or unigram"""
    scripts: Literal["auto", "all"] | list[str] = Field(
        "auto",
        description="Unicode scripts whose pieces may be added (e.g. [Han, Bopomofo], [Hangul]); auto: the corpus's "
        "non-Latin scripts with at least 10% of its letters; all: every piece",
    )
    min_frequency: int = Field(2, ge=1, description="drop pieces seen fewer times in the corpus")
    character_coverage: float = Field(0.9995, gt=0, le=1)
    """SentencePiece's character coverage"""
    user_words: list[str] = Field(default_factory=list, description="words forced in first")
    user_words_file: LocalPath | None = None
    """a file of words forced in first, one a line"""
    max_sentences: int = Field(2_000_000, gt=0, description="sentences sampled for tokenizer training")
    seed: int = 0
    """seed of the sentence sampling"""

    @field_validator("scripts", mode="before")
    @classmethod
    def _one_script(cls, value):
        return [value] if isinstance(value, str) and value not in ("auto", "all") else value

    @field_validator("scripts")
    @classmethod
    def _known_scripts(cls, value):
        if isinstance(value, str):
            return value
        if not value:
            raise ValueError("name at least one script, or use auto")
        names = []
        for name in value:
            name = "_".join(part.capitalize() for part in str(name).strip().split("_"))
            try:
                regex.compile(rf"\p{{Script={name}}}")
            except regex.error:
                raise ValueError(
                    f"unknown Unicode script {name!r}; use Unicode script names such as Han, Bopomofo, Hangul, "
                    "Hiragana, Katakana, Thai, Devanagari, Arabic, Cyrillic or Latin"
                ) from None
            names.append(name)
        return list(dict.fromkeys(names))

    @field_validator("user_words_file")
    @classmethod
    def _words_file_exists(cls, value: str | None) -> str | None:
        if value is not None and not os.path.isfile(value):
            raise ValueError(f"file not found: {value}")
        return value


class NewRowsConfig(Section):
    """How extend-vocab initializes the embedding rows of the new tokens (when it writes a checkpoint)."""

    init: Literal["zip-tie", "subword-mean", "mean", "random"] = "zip-tie"
    """how the new embedding rows start: zip-tie, subword-mean, mean, random"""
    decay: float = Field(0.8, ge=0, le=4, description="zip-tie: piece i of a token's text weighs decay**i (1 = mean)")
    norm: Literal["pieces", "script"] = Field(
        "pieces",
        description="zip-tie and subword-mean: keep the combined row's norm (pieces), or rescale it to the median "
        "norm of the base's rows for tokens of the same script (script: the norm correction)",
    )
    output_row: Literal["pieces", "first"] = Field(
        "pieces", description="zip-tie, untied bases: LM head row from the weighted pieces, or the first piece only"
    )
    pad_to_multiple_of: int | None = Field(None, gt=0, description="pad the matrices (padded rows stay unreachable)")
    seed: int = 0
    """seed of the random init"""


class AlignConfig(Section):
    """extend-vocab's optional alignment of the new rows against the base model (Token Distillation's idea).

    The teacher is the base model reading corpus text with the base tokenizer, the student the extended model reading
    the same text with the extended tokenizer; only the new rows train.
    """

    steps: int = Field(0, ge=0, description="optimizer steps; 0 turns align off")
    learning_rate: float = Field(
        0.01, gt=0, le=1, description="Adam's rate, in units of the old rows' root-mean-square coordinate"
    )
    decay: bool = Field(True, description="decay the learning rate linearly to zero over the steps")
    batch_size: int = Field(32, ge=1, description="text blocks per step")
    block_size: int = Field(128, ge=8, le=8192, description="base-tokenizer tokens per text block")
    layers: Literal["last", "all"] | list[int] = Field(
        "last",
        description="hidden states matched: last, all, or layer numbers (1 = after the first block; negative counts "
        "from the last)",
    )
    hidden_weight: float = Field(
        0.0,
        ge=0,
        description="weight of the hidden-state loss that trains input rows; 0 (the measured best per second) skips "
        "the teacher and the backward pass",
    )
    output_weight: float = Field(
        1.0, ge=0, description="weight of the next-token loss that trains output rows (and a tied row's output role)"
    )
    corpus_share: float = Field(1.0, gt=0, le=1, description="share of the training documents align reads")
    seed: int = 0
    """seed of align's document order"""

    @field_validator("layers")
    @classmethod
    def _some_layers(cls, value):
        if isinstance(value, list):
            if not value:
                raise ValueError("name at least one layer, or use last or all")
            if 0 in value:
                raise ValueError("layer 0 is the embedding output itself; layers count from 1 (or -1 for the last)")
        return value

    @model_validator(mode="after")
    def _some_loss(self) -> AlignConfig:
        if self.hidden_weight == 0 and self.output_weight == 0:
            raise ValueError(
                "align.hidden_weight and align.output_weight are both 0: nothing to learn; set one above 0"
            )
        return self
