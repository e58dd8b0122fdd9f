"""Documents of text corpora: a `.txt` line, or the text field of a JSON record, a parquet row or a dataset row."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from bailong.config.data import TextDataConfig
from bailong.data.readers import BadRecord, RecordReader
from bailong.errors import BailongError


@dataclass
class CorpusReader:
    """Iterates the documents of `data.files`, never holding a whole file in memory. Re-iterable."""

    data: TextDataConfig
    reader: RecordReader = field(init=False)

    def __post_init__(self):
        self.reader = RecordReader(self.data.on_bad_record)

    @property
    def skipped_records(self) -> int:
        return sum(self.reader.skipped.values())

    def __iter__(self) -> Iterator[str]:
        self.reader = RecordReader(self.data.on_bad_record)
        for source in self.data.files:
            for where, record in self.reader.records(source):
                text = record if isinstance(record, str) else self._text(where, record)
                if text and text.strip():
                    yield text

    def _text(self, where: str, record: object) -> str | None:
        key = self.data.text_field
        if not isinstance(record, dict) or key not in record:
            if " row " in where:  # a table: every row lacks the column
                raise BailongError(f"{where.rsplit(' row ', 1)[0]}: no column {key!r}; set data.text_field")
            raise BailongError(f"{where}: no {key!r} field; set data.text_field to the field holding the text")
        text = record[key]
        if text is None:
            return None
        if not isinstance(text, str):
            self.reader.bad(where, BadRecord("not text", f"field {key!r} is {type(text).__name__}, expected a string"))
            return None
        return text


def split_held_out(text: str, fraction: float) -> bool:
    """True for the stable `fraction` of documents held out of training (by a hash of the text)."""
    if fraction <= 0:
        return False
    return zlib.crc32(text.encode("utf-8")) % 10_000 < fraction * 10_000
