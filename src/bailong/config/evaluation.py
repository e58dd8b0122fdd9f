"""eval: the models to compare, the tasks (a union on `type`: only a task type's own keys are allowed) and the judge."""

from __future__ import annotations

import json
import os
import string
from importlib.util import find_spec
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import Field, field_validator, model_validator

from bailong.config.base import ExistingFile, LocalPath, Section, Source

JUDGE_TEMPERATURES = {"writing": 0.7, "roleplay": 0.7, "math": 0.0, "reasoning": 0.0, "coding": 0.0, "extraction": 0.0}


# The judge templates and the format fields each may use.
JUDGE_TEMPLATE_FIELDS: dict[str, frozenset[str]] = {
    "single": frozenset({"question", "answer"}),
    "reference": frozenset({"question", "reference", "answer"}),
    "multi_turn": frozenset({"question_1", "answer_1", "question_2", "answer_2"}),
    "multi_turn_reference": frozenset(
        {"question_1", "answer_1", "question_2", "answer_2", "reference_1", "reference_2"}
    ),
}


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def read_judge_templates(path: str | Path) -> dict[str, dict[str, str]]:
    """The judge templates of a YAML/JSON file: all four keys, each {system, user} strings using only their own
    format fields. Raises ValueError naming the missing key or field, or a format field the template may not use."""
    path = Path(path)
    text = path.read_text(encoding="utf-8-sig")
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as err:
        raise ValueError(f"{path}: cannot read judge templates: {err}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: judge templates must be a mapping with keys {', '.join(JUDGE_TEMPLATE_FIELDS)}")
    templates: dict[str, dict[str, str]] = {}
    for name in JUDGE_TEMPLATE_FIELDS:
        pair = data.get(name)
        if not isinstance(pair, dict):
            raise ValueError(f"{path}: judge templates miss the key {name!r} (a mapping with 'system' and 'user')")
        for part in ("system", "user"):
            value = pair.get(part)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{path}: judge template {name!r} misses the field {part!r} (a non-empty string)")
            try:
                unknown = _fields(value) - JUDGE_TEMPLATE_FIELDS[name]
            except ValueError as err:
                raise ValueError(f"{path}: judge template {name}.{part} is not a valid format string: {err}") from None
            if unknown:
                raise ValueError(
                    f"{path}: judge template {name}.{part} uses unknown field(s) "
                    f"{', '.join(sorted(unknown))}; allowed: {', '.join(sorted(JUDGE_TEMPLATE_FIELDS[name]))}"
                )
        templates[name] = {"system": pair["system"], "user": pair["user"]}
    unknown_keys = set(data) - set(JUDGE_TEMPLATE_FIELDS)
    if unknown_keys:
        raise ValueError(f"{path}: unknown judge template key(s) {', '.join(sorted(map(str, unknown_keys)))}")
    return templates


class EvalModel(Section):
    name: str = Field(description="the model's name in the report")
    name_or_path: Source = Field(description="HF dir, hub id, .gguf, any stage's output_dir, or the embedded default")


class TaskBase(Section):
    name: str | None = Field(None, description="the task's name in the report; default: its type")
    limit: int | None = Field(None, gt=0, description="use only the first N items")


class BpcTask(TaskBase):
    """Bits per character of held-out text, one document per line."""

    type: Literal["bpc"]
    """bpc: bits per character, perplexity and tokens per character on held-out text"""
    files: list[ExistingFile] = Field(min_length=1, description="text files, one document per line")
    window: int = Field(1024, gt=1, description="tokens per sliding window")
    stride: int = Field(512, gt=0, description="tokens the window moves by")


class ChoiceTask(TaskBase):
    """Multiple choice scored by log-likelihood."""

    type: Literal["choice"]
    """choice: multiple-choice accuracy by log-likelihood"""
    file: ExistingFile = Field(description="JSONL {question, choices, answer, subject?}")
    dev_file: ExistingFile | None = Field(None, description="examples for k-shot prompts")
    shots: int = Field(0, ge=0, description="examples from dev_file before each question")
    scoring: Literal["text", "letter"] = Field(
        "text", description="log-likelihood of the choice text, or of its letter after a lettered prompt"
    )
    batch_size: int = Field(8, gt=0, description="questions per forward (each with all its choices)")

    @model_validator(mode="after")
    def _shots_need_examples(self) -> ChoiceTask:
        if self.shots and not self.dev_file:
            raise ValueError("shots > 0 needs dev_file: the examples to show")
        return self


class JudgeTask(TaskBase):
    """An MT-bench-style bench: answers graded by an LLM judge, plus language consistency."""

    type: Literal["judge"]
    """judge: answers graded by an LLM judge, with language consistency"""
    questions: ExistingFile = Field(description="MT-bench-style JSONL {question_id, category, turns}")
    references: ExistingFile | None = Field(None, description="FastChat-style answer file with reference answers")
    temperatures: dict[str, float] = Field(
        default_factory=lambda: dict(JUDGE_TEMPERATURES), description="sampling temperature per category"
    )
    default_temperature: float = Field(0.1, ge=0)
    """the answers' sampling temperature for categories not in temperatures"""
    max_new_tokens: int = Field(512, gt=0, description="answer length limit per turn")


class LmEvalTask(TaskBase):
    """Benchmarks of EleutherAI's lm-evaluation-harness (the `lm-eval` extra), run on each model as bailong loads it."""

    type: Literal["lm-eval"]
    """lm-eval: lm-evaluation-harness tasks"""
    tasks: list[str] = Field(min_length=1, description="lm-eval task or group names")
    num_fewshot: int | None = Field(None, ge=0, description="examples before each question; default: each task's own")
    include_path: LocalPath | None = Field(None, description="a folder of extra task YAMLs (local benchmarks)")
    batch_size: int = Field(8, gt=0, description="the harness's requests per forward")

    @field_validator("include_path")
    @classmethod
    def _folder_exists(cls, path: str | None) -> str | None:
        if path is not None and not os.path.isdir(path):
            raise ValueError(
                f"{path} is a file; give the folder of task YAMLs"
                if os.path.exists(path)
                else f"folder not found: {path}"
            )
        return path

    @model_validator(mode="before")
    @classmethod
    def _harness_installed(cls, data):
        if find_spec("lm_eval") is None:  # before the other keys: without the harness none of them matters
            raise ValueError(
                "the lm-eval task needs lm-evaluation-harness, which is not installed: pip install 'bailong[lm-eval]'"
            )
        return data


class SpeedTask(TaskBase):
    """Characters and tokens per second of greedy generation: the same number of new characters after each prompt
    for every model, timed after a warm-up."""

    type: Literal["speed"]
    """speed: characters and tokens per second of greedy generation on fixed TC prompts"""
    prompts: ExistingFile | None = Field(
        None, description="prompts, one a line; default: five TC sentence openings shipped with bailong"
    )
    characters: int = Field(64, gt=0, description="new characters generated after each prompt")
    warmup: int = Field(1, ge=0, description="untimed generations first (the first calls of a model are slower)")


EvalTask = Annotated[BpcTask | ChoiceTask | JudgeTask | LmEvalTask | SpeedTask, Field(discriminator="type")]


class JudgeConfig(Section):
    """An OpenAI-compatible chat-completions endpoint that grades answers."""

    base_url: str = "http://127.0.0.1:8000/v1"
    """the judge's OpenAI-compatible base URL"""
    model: str = "judge"
    """the judge's model id at that endpoint"""
    api_key_env: str | None = Field("OPENAI_API_KEY", description="environment variable holding the API key")
    serve: Source | None = Field(None, description="start this model on loopback as the judge (demos and tests)")
    concurrency: int = Field(4, gt=0)
    """judge requests in flight at once"""
    max_retries: int = Field(3, ge=0, le=20, description="re-asks when a reply has no parseable rating")
    http_retries: int = Field(
        4,
        ge=0,
        le=20,
        description="the openai client's max_retries: connection errors, timeouts, 408/409/429 and 5xx, with backoff",
    )
    timeout_s: float = Field(120, gt=0, le=3600, description="the openai client's timeout: seconds per request")
    max_tokens: int = Field(1024, gt=0, description="length limit of a judgment")
    templates: ExistingFile | None = Field(None, description="a YAML/JSON file overriding the grading prompts")

    @field_validator("templates")
    @classmethod
    def _templates_complete(cls, path: str | None) -> str | None:
        if path is not None:
            read_judge_templates(path)
        return path

    max_failed_share: float = Field(
        0.2, ge=0, le=1, description="eval ends non-zero (its report written) when more judgments than this fail"
    )
