"""Streams documents from text corpora: .txt (one document per line), .jsonl (a text field), parquet, `datasets`."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bailong.config import DATA_SUFFIXES, DataConfig
from bailong.errors import BailongError


@dataclass
class CorpusReader:
    """Iterates the documents of `data.files`, never holding a whole file in memory. Re-iterable."""

    data: DataConfig
    skipped_lines: int = 0
    skipped_where: list[str] = field(default_factory=list)

    def __iter__(self) -> Iterator[str]:
        self.skipped_lines = 0
        self.skipped_where = []
        for source in self.data.files:
            if source.endswith(DATA_SUFFIXES):
                yield from self._file(Path(source))
            else:
                yield from self._dataset(source)

    def _file(self, path: Path) -> Iterator[str]:
        name = path.name.removesuffix(".gz")
        if name.endswith(".parquet"):
            yield from self._parquet(path)
            return
        is_json = name.endswith((".jsonl", ".json"))
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as handle:
            for lineno, raw in enumerate(handle, 1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    self._bad_bytes(path, lineno, exc)
                    continue
                line = line.rstrip("\r\n")
                if not line.strip():
                    continue
                text = self._json_text(path, lineno, line) if is_json else line
                if text and text.strip():
                    yield text

    def _bad_bytes(self, path: Path, lineno: int, exc: UnicodeDecodeError) -> None:
        if self.data.on_decode_error == "skip":
            self.skipped_lines += 1
            if len(self.skipped_where) < 5:
                self.skipped_where.append(f"{path}:{lineno}")
            return
        raise BailongError(
            f"{path}:{lineno}: not valid UTF-8 (byte 0x{exc.object[exc.start]:02x} at column {exc.start + 1}); "
            "convert the file to UTF-8 or set data.on_decode_error: skip to skip such lines"
        )

    def _json_text(self, path: Path, lineno: int, line: str) -> str | None:
        key = self.data.text_field
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BailongError(f"{path}:{lineno}: not valid JSON ({exc.msg}); each line must be one JSON object") from None
        if not isinstance(record, dict) or key not in record:
            raise BailongError(f"{path}:{lineno}: no {key!r} field; set data.text_field to the field holding the text")
        text = record[key]
        if not isinstance(text, str):
            raise BailongError(f"{path}:{lineno}: field {key!r} is {type(text).__name__}, expected a string")
        return text

    def _parquet(self, path: Path) -> Iterator[str]:
        import pyarrow.parquet as pq

        table = pq.ParquetFile(path)
        if self.data.text_field not in table.schema_arrow.names:
            raise BailongError(f"{path}: no column {self.data.text_field!r}; set data.text_field")
        for batch in table.iter_batches(columns=[self.data.text_field]):
            for text in batch.column(0).to_pylist():
                if text and text.strip():
                    yield text

    def _dataset(self, name: str) -> Iterator[str]:
        """A `datasets` name, optionally with a config after a colon: `wikimedia/wikipedia:20231101.zh`."""
        import datasets

        name, _, subset = name.partition(":")
        try:
            dataset = datasets.load_dataset(name, subset or None, split="train", streaming=True)
        except Exception as exc:  # noqa: BLE001 - datasets raises many types for a bad name
            raise BailongError(f"data.files: cannot load the dataset {name!r}: {exc}") from None
        for row in dataset:
            text = row.get(self.data.text_field)
            if isinstance(text, str) and text.strip():
                yield text


def split_held_out(text: str, fraction: float) -> bool:
    """True for the stable `fraction` of documents held out of training (by a hash of the text)."""
    if fraction <= 0:
        return False
    return zlib.crc32(text.encode("utf-8")) % 10_000 < fraction * 10_000
