"""Training checkpoints: Trainer's own (adapter, optimizer, scheduler, RNG, trainer state incl. the data position) in
`output_dir/checkpoints/checkpoint-N`. A checkpoint counts as complete only once a marker file is written after
Trainer has saved everything, so `train.resume: auto` never picks one that a kill left half-written."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from bailong.artifacts import COMPLETE_MARKER
from bailong.errors import BailongError

_STEP = re.compile(r"^checkpoint-(\d+)$")


def checkpoints(folder: Path) -> tuple[list[Path], list[Path]]:
    """(complete, incomplete) checkpoint folders, oldest first."""
    found = sorted((p for p in folder.glob("checkpoint-*") if _STEP.match(p.name)), key=lambda p: int(p.name[11:]))
    complete = [p for p in found if (p / COMPLETE_MARKER).exists()]
    return complete, [p for p in found if p not in complete]


def mark_complete(folder: Path, step: int) -> None:
    (folder / COMPLETE_MARKER).write_text(str(step))


def resume_from(folder: Path, resume: str, is_main: bool) -> str | None:
    """The checkpoint to resume from: `auto` picks the newest complete one (and removes half-written ones)."""
    if resume == "never":
        return None
    if resume != "auto":
        if not (Path(resume) / COMPLETE_MARKER).exists():
            raise BailongError(f"train.resume: {resume} is not a complete bailong checkpoint")
        return resume
    complete, incomplete = checkpoints(folder)
    if is_main:
        for path in incomplete:
            shutil.rmtree(path, ignore_errors=True)
    return str(complete[-1]) if complete else None
