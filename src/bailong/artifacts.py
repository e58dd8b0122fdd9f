"""Every file and folder name a stage writes, and the readers and writers of those files.

Outputs appear whole or not at all: a stage writes into a temporary sibling folder that is renamed when complete,
and single files are written to a temporary name and renamed.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bailong.errors import BailongError, stop_if_interrupted

# every stage
CONFIG_FILE = "bailong_config.yaml"  # the resolved config
# extend-vocab
EXTENSION_FILE = "bailong_extension.json"  # how the extended checkpoint was made (new token ids, init)
VOCAB_REPORT_FILE = "extend_vocab_report.json"
# pretrain and sft
RUN_FILE = "bailong_run.json"  # marks a finished training run; lets later stages load it as a model
ADAPTER_DIR = "adapter"
CHECKPOINTS_DIR = "checkpoints"
COMPLETE_MARKER = "bailong_complete"  # written into a checkpoint folder once it is saved whole
METRICS_FILE = "metrics.jsonl"
METRICS_PNG = "loss.png"
MERGED_BASE_DIR = "base"  # sft with pretrain_adapter: merge
GGUF_DIR = "gguf"  # export --format gguf's default folder, holding <run name>-<outtype>.gguf
# eval
RESULTS_FILE = "results.json"
TABLE_FILE = "results.md"
CHART_FILE = "results.png"
CATEGORY_CHART_FILE = "judge_categories.png"
ANSWERS_FILE = "answers.jsonl"
JUDGMENTS_FILE = "judgments.jsonl"
QUESTIONS_FILE = "questions.jsonl"  # the judge benches' questions and references, for the HTML report
# eval and `bailong report`
REPORT_HTML_FILE = "report.html"  # one self-contained page: tables, charts, answers side by side, curves


def merged_dir(run_dir: Path) -> Path:
    """Export's default target: inside the run, named after it (a server lists the folder's name as the model id)."""
    return run_dir / f"{run_dir.resolve().name}-merged"


def check_output_dir(path: Path, overwrite: bool, name: str = "output_dir") -> None:
    if path.exists() and not path.is_dir():
        raise BailongError(f"{name} {path} is a file; choose a folder")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise BailongError(f"{name} {path} exists and is not empty; pass --overwrite to replace it or choose another")


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
        stop_if_interrupted()  # a Ctrl-C that a library swallowed: leave no output that looks complete
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _readable_by_all(tmp)  # libraries write some files through mkstemp (0600) and others with the umask's mode
    old = path.parent / f".{path.name}.old-{os.getpid()}"
    if path.exists():
        os.rename(path, old)
    os.rename(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


def _readable_by_all(folder: Path) -> None:
    umask = os.umask(0)
    os.umask(umask)
    for file in folder.rglob("*"):
        if file.is_file():
            file.chmod(0o666 & ~umask)


def write_json(path: Path, data: object) -> None:
    """Writes `data` as indented JSON through a temporary file, so readers never see half a file."""
    tmp = path.parent / f".{path.name}.tmp"
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")
    tmp.replace(path)


def write_jsonl(path: Path, rows: list[dict]) -> None:
    """Writes JSON lines through a temporary file, so readers never see half a file."""
    tmp = path.parent / f".{path.name}.tmp"
    tmp.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    tmp.replace(path)


def read_json(path: Path) -> dict | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def read_run(path: str | Path) -> dict | None:
    """The metadata of a finished training run folder, or None if `path` is not one."""
    return read_json(Path(path) / RUN_FILE)


def write_run(run_dir: Path, metadata: dict) -> None:
    stop_if_interrupted()
    write_json(run_dir / RUN_FILE, metadata)


def read_extension(folder: str | Path) -> dict | None:
    """The metadata extend-vocab wrote beside an extended checkpoint, or None."""
    return read_json(Path(folder) / EXTENSION_FILE)


def read_metrics(run_dir: Path) -> list[dict]:
    """The rows of a run's metrics.jsonl (a line cut by a kill is skipped)."""
    file = Path(run_dir) / METRICS_FILE
    rows = []
    if file.is_file():
        for line in file.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


def keep_metrics_until(run_dir: Path, step: int) -> None:
    """Drops the rows logged after `step` (a resumed run logs those steps again from its checkpoint) and a line cut
    by a kill (the next row would be appended to it)."""
    file = Path(run_dir) / METRICS_FILE
    if file.is_file():
        kept = [r for r in read_metrics(run_dir) if r.get("step", 0) <= step]
        tmp = file.parent / f".{file.name}.tmp"
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")
        tmp.replace(file)


def append_jsonl(path: Path, record: dict) -> None:
    """Appends one JSON line and makes it durable before returning (resumable logs)."""
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
