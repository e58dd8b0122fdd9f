"""The corpus reader streams every supported format and keeps documents whole."""

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq

from bailong.config import TextDataConfig
from bailong.data import CorpusReader, split_held_out
from helpers import DEMO_DATA, shared_file

DOCS = ["台灣的天氣很好。", "第二篇文件，有「引號」與 English words.", "第三篇"]


def test_every_format_yields_the_same_documents(tmp_path):
    (tmp_path / "a.txt").write_text("\n".join(DOCS) + "\n\n  \n", encoding="utf-8")
    with (tmp_path / "b.jsonl").open("w", encoding="utf-8") as handle:
        for doc in DOCS:
            handle.write(json.dumps({"text": doc, "id": 1}, ensure_ascii=False) + "\n")
    with gzip.open(tmp_path / "c.txt.gz", "wt", encoding="utf-8") as handle:
        handle.write("\n".join(DOCS) + "\n")
    pq.write_table(pa.table({"text": DOCS}), tmp_path / "d.parquet")
    for name in ("a.txt", "b.jsonl", "c.txt.gz", "d.parquet"):
        assert list(CorpusReader(TextDataConfig(files=[str(tmp_path / name)]))) == DOCS, name


def test_reader_is_reiterable_and_reads_real_data():
    reader = CorpusReader(
        TextDataConfig(files=[str(shared_file("tc/drcd_dev_paragraphs.txt")), str(DEMO_DATA / "tc_corpus.txt")])
    )
    first = list(reader)
    assert len(first) == 1000 + 240 and first == list(reader)


def test_held_out_split_is_stable_and_near_the_fraction():
    docs = [line for line in shared_file("tc/drcd_dev_paragraphs.txt").read_text(encoding="utf-8").splitlines() if line]
    held = [d for d in docs if split_held_out(d, 0.1)]
    assert 60 < len(held) < 140
    assert held == [d for d in docs if split_held_out(d, 0.1)]
    assert not any(split_held_out(d, 0.0) for d in docs)
