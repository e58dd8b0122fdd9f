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
    model_config = ConfigDict(extra="forbid", validate_default=True, use_attribute_docstrings=True)


DATA_FORMATS = ".txt, .jsonl, .json, .parquet, or any of them as .gz"


def check_files_exist(files: list[str]) -> list[str]:
    """Local data files must exist and be in a format that is read (a name without a data suffix is a `datasets`
    name)."""
    for f in files:
        if os.path.isdir(f):
            raise ValueError(f"{f} is a folder; list the data files in it ({DATA_FORMATS})")
        if f.endswith(DATA_SUFFIXES) and not os.path.exists(f):
            raise ValueError(f"file not found: {f}")
        if not f.endswith(DATA_SUFFIXES) and (os.path.isfile(f) or f.lower().endswith((".csv", ".tsv", ".xlsx"))):
            raise ValueError(f"{f}: this format is not read; convert it to {DATA_FORMATS}")
    return files


def check_file(path: str | None) -> str | None:
    """A file the stage reads: it must exist (checked when the config loads, before anything runs)."""
    if path is not None and not os.path.isfile(path):
        raise ValueError(f"{path} is a folder, not a file" if os.path.isdir(path) else f"file not found: {path}")
    return path


def check_weights(weights: list[float] | None) -> list[float] | None:
    if weights is not None and (not weights or min(weights) < 0 or sum(weights) <= 0):
        raise ValueError("mixing weights must be non-negative with a positive sum, one per file")
    return weights


ExistingFile = Annotated[LocalPath, AfterValidator(check_file)]
DataFiles = Annotated[list[Source], AfterValidator(check_files_exist)]
Weights = Annotated[list[float] | None, AfterValidator(check_weights)]
