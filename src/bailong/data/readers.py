"""The one reader of data files: every file kind yields records with where they came from (`file:line`).

Kinds: `.txt` (a record is one line of text), `.jsonl` (one JSON value a line), `.json` (a list of records),
`.parquet` (one row a record), each optionally `.gz`-compressed, and a `datasets` name (`name` or `name:config`,
split train, streamed). A record that cannot be read (not UTF-8, malformed JSON) or that a caller rejects is a bad
record: with `on_bad_record: error` the run stops with its place and the fix, with `skip` it is counted.
"""

from __future__ import annotations

import gzip
import json
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bailong.config.base import DATA_SUFFIXES
from bailong.errors import BailongError

_TRUE = {"1", "ON", "YES", "TRUE"}
READABLE = ".txt, .jsonl, .json, .parquet (each also .gz) or a datasets name"


class BadRecord(ValueError):
    """A record that cannot be used: `kind` (what is counted when skipping) and why."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


@dataclass
class RecordReader:
    """Iterates the records of files; bad ones stop the run or are counted, by `on_bad_record`."""

    on_bad_record: str = "error"
    skipped: Counter = field(default_factory=Counter)
    first_skipped: list[str] = field(default_factory=list)

    def records(self, source: str) -> Iterator[tuple[str, object]]:
        """(where, record) for every readable record of `source`."""
        if not source.endswith(DATA_SUFFIXES):
            yield from self._dataset(source)
            return
        path = Path(source)
        if path.is_dir():
            raise BailongError(f"{path} is a folder; name the data files in it ({READABLE})")
        name = path.name.removesuffix(".gz")
        if name.endswith(".parquet"):
            yield from self._parquet(path)
        elif name.endswith(".json"):
            yield from self._json_list(path)
        else:
            yield from self._lines(path, is_json=name.endswith(".jsonl"))

    def bad(self, where: str, exc: BadRecord, fix: str = "") -> None:
        """Stops the run at a bad record, or counts it."""
        if self.on_bad_record == "error":
            fix = fix or "fix the record"
            raise BailongError(f"{where}: {exc}; {fix} or set data.on_bad_record: skip to skip such records")
        self.skipped[exc.kind] += 1
        if len(self.first_skipped) < 3:
            self.first_skipped.append(f"{where}: {exc}")

    def report(self) -> str | None:
        if not self.skipped:
            return None
        total = sum(self.skipped.values())
        kinds = ", ".join(f"{n} {kind}" for kind, n in self.skipped.most_common())
        return f"skipped {total} bad record(s) ({kinds}); first: {'; '.join(self.first_skipped)}"

    def _open(self, path: Path):
        return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")

    def _lines(self, path: Path, is_json: bool) -> Iterator[tuple[str, object]]:
        with self._open(path) as handle:
            for lineno, raw in enumerate(handle, 1):
                where = f"{path}:{lineno}"
                try:
                    line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8").rstrip("\r\n")  # a BOM is fine
                except UnicodeDecodeError as exc:
                    self.bad(
                        where,
                        BadRecord(
                            "not UTF-8",
                            f"not valid UTF-8 (byte 0x{exc.object[exc.start]:02x} at column {exc.start + 1})",
                        ),
                        "convert the file to UTF-8",
                    )
                    continue
                if not line.strip():
                    continue
                if not is_json:
                    yield where, line
                    continue
                try:
                    yield where, json.loads(line)
                except json.JSONDecodeError as exc:
                    self.bad(
                        where,
                        BadRecord("malformed JSON", f"malformed JSON ({exc.msg} at column {exc.colno})"),
                        "make each line one JSON object",
                    )

    def _json_list(self, path: Path) -> Iterator[tuple[str, object]]:
        try:
            with self._open(path) as handle:
                records = json.loads(handle.read().decode("utf-8-sig"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BailongError(f"{path}: not a valid JSON file ({exc})") from None
        if not isinstance(records, list):
            raise BailongError(f"{path}: a .json data file must hold a list of records; use .jsonl for one a line")
        for i, record in enumerate(records):
            yield f"{path} record {i + 1}", record

    def _parquet(self, path: Path) -> Iterator[tuple[str, object]]:
        import pyarrow.parquet as pq

        row = 0
        for batch in pq.ParquetFile(path).iter_batches():
            for record in batch.to_pylist():
                row += 1
                yield f"{path} row {row}", record

    def _dataset(self, name: str) -> Iterator[tuple[str, object]]:
        import datasets

        name, _, subset = name.partition(":")
        try:
            rows = datasets.load_dataset(name, subset or None, split="train", streaming=True)
        except Exception as exc:  # noqa: BLE001 - datasets raises many types for a bad name
            if datasets.config.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").upper() in _TRUE:
                raise BailongError(
                    f"data.files: {name!r} is read as a hub dataset name, but offline mode is on (HF_HUB_OFFLINE) and "
                    f"it is not in the local cache; unset HF_HUB_OFFLINE to download it, or give a local file "
                    f"({READABLE.removesuffix(' or a datasets name')})"
                ) from None
            raise BailongError(f"data.files: cannot load the dataset {name!r}: {exc}") from None
        for i, row in enumerate(rows):
            yield f"{name} row {i + 1}", row
