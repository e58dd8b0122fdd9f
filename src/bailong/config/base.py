"""What every config section shares: unknown keys are errors, and path-typed fields are marked for resolving."""

from __future__ import annotations

import os
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict

DATA_SUFFIXES = (".txt", ".jsonl", ".json", ".parquet", ".gz")


class PathMarker:
    """Marks a string field as a local path (always resolved) or a model source (resolved when it looks local)."""

    def __init__(self, always: bool):
        self.always = always


LocalPath = Annotated[str, PathMarker(always=True)]
Source = Annotated[str, PathMarker(always=False)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


def check_files_exist(files: list[str]) -> list[str]:
    """Local data files must exist (a name without a data suffix is a `datasets` name)."""
    for f in files:
        if f.endswith(DATA_SUFFIXES) and not os.path.exists(f):
            raise ValueError(f"file not found: {f}")
    return files


def check_weights(weights: list[float] | None) -> list[float] | None:
    if weights is not None and (not weights or min(weights) < 0 or sum(weights) <= 0):
        raise ValueError("mixing weights must be non-negative with a positive sum, one per file")
    return weights


DataFiles = Annotated[list[Source], AfterValidator(check_files_exist)]
Weights = Annotated[list[float] | None, AfterValidator(check_weights)]
