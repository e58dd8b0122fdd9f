"""eval: the models to compare, the tasks (a union on `type`: only a task type's own keys are allowed) and the judge."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from bailong.config.base import ExistingFile, Section, Source

JUDGE_TEMPERATURES = {"writing": 0.7, "roleplay": 0.7, "math": 0.0, "reasoning": 0.0, "coding": 0.0, "extraction": 0.0}


class EvalModel(Section):
    name: str = Field(description="the model's name in the report")
    name_or_path: Source = Field(description="HF dir, hub id, .gguf, any stage's output_dir, or the embedded default")


class TaskBase(Section):
    name: str | None = Field(None, description="the task's name in the report; default: its type")
    limit: int | None = Field(None, gt=0, description="use only the first N items")


class BpcTask(TaskBase):
    """Bits per character of held-out text, one document per line."""

    type: Literal["bpc"]
    files: list[ExistingFile] = Field(min_length=1, description="text files, one document per line")
    window: int = Field(1024, gt=1, description="tokens per sliding window")
    stride: int = Field(512, gt=0, description="tokens the window moves by")


class ChoiceTask(TaskBase):
    """Multiple choice scored by log-likelihood."""

    type: Literal["choice"]
    file: ExistingFile = Field(description="JSONL {question, choices, answer, subject?}")
    dev_file: ExistingFile | None = Field(None, description="examples for k-shot prompts")
    shots: int = Field(0, ge=0, description="examples from dev_file before each question")
    scoring: Literal["text", "letter"] = Field(
        "text", description="log-likelihood of the choice text, or of its letter after a lettered prompt"
    )
    batch_size: int = Field(8, gt=0)

    @model_validator(mode="after")
    def _shots_need_examples(self) -> ChoiceTask:
        if self.shots and not self.dev_file:
            raise ValueError("shots > 0 needs dev_file: the examples to show")
        return self


class JudgeTask(TaskBase):
    """An MT-bench-style bench: answers graded by an LLM judge, plus language consistency."""

    type: Literal["judge"]
    questions: ExistingFile = Field(description="MT-bench-style JSONL {question_id, category, turns}")
    references: ExistingFile | None = Field(None, description="FastChat-style answer file with reference answers")
    temperatures: dict[str, float] = Field(
        default_factory=lambda: dict(JUDGE_TEMPERATURES), description="sampling temperature per category"
    )
    default_temperature: float = Field(0.1, ge=0)
    max_new_tokens: int = Field(512, gt=0, description="answer length limit per turn")


EvalTask = Annotated[BpcTask | ChoiceTask | JudgeTask, Field(discriminator="type")]


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
    templates: ExistingFile | None = Field(None, description="a YAML/JSON file overriding the grading prompts")
    max_failed_share: float = Field(
        0.2, ge=0, le=1, description="eval ends non-zero (its report written) when more judgments than this fail"
    )
