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


def test_a_utf8_bom_at_the_start_of_a_file_is_accepted(tmp_path):
    """Notepad's UTF-8 writes a BOM: it is not part of the first record (a JSON line or list would not parse)."""
    bom = "\ufeff"
    (tmp_path / "a.txt").write_text(bom + "\n".join(DOCS) + "\n", encoding="utf-8")
    lines = [json.dumps({"text": doc}, ensure_ascii=False) for doc in DOCS]
    (tmp_path / "b.jsonl").write_text(bom + "\n".join(lines) + "\n", encoding="utf-8")
    (tmp_path / "c.json").write_text(bom + json.dumps([{"text": d} for d in DOCS], ensure_ascii=False), "utf-8")
    with gzip.open(tmp_path / "d.jsonl.gz", "wt", encoding="utf-8") as handle:
        handle.write(bom + "\n".join(lines) + "\n")
    for name in ("a.txt", "b.jsonl", "c.json", "d.jsonl.gz"):
        assert list(CorpusReader(TextDataConfig(files=[str(tmp_path / name)]))) == DOCS, name


def test_a_hub_dataset_name_while_offline_says_offline_mode_is_on(tmp_path, monkeypatch):
    import datasets

    from helpers import MISTRAL_V1, run_cli, write_config

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)  # as when the variable is set before the run
    cfg = {
        "model": {"name_or_path": str(MISTRAL_V1)},
        "data": {"files": ["someone/tc-corpus"]},
        "output_dir": str(tmp_path / "out"),
    }
    result = run_cli("extend-vocab", write_config(tmp_path / "c.yaml", cfg))
    assert result.code == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "'someone/tc-corpus' is read as a hub dataset name" in errors[0]
    assert "offline mode is on (HF_HUB_OFFLINE)" in errors[0] and "give a local file (.txt" in errors[0]
    assert not (tmp_path / "out").exists()


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
