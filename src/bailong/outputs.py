"""Stage outputs appear whole or not at all: written to a temporary sibling folder, renamed when complete."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bailong.errors import BailongError


def check_output_dir(path: Path, overwrite: bool) -> None:
    if path.exists() and not path.is_dir():
        raise BailongError(f"output_dir {path} is a file; choose a folder")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise BailongError(f"output_dir {path} exists and is not empty; pass --overwrite to replace it or choose another")


@contextmanager
def atomic_output_dir(path: str | Path, overwrite: bool) -> Iterator[Path]:
    """Yields a temporary folder that replaces `path` only if the block finishes without an exception."""
    path = Path(path)
    check_output_dir(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = path.parent / f".{path.name}.old-{os.getpid()}"
    if path.exists():
        os.rename(path, old)
    os.rename(tmp, path)
    shutil.rmtree(old, ignore_errors=True)
