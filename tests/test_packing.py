"""Packing, mixing and streaming of training text (the real SmolLM2 tokenizer, the demo corpus)."""

import pytest

from bailong.config import TrainDataConfig
from bailong.data.pretrain_data import build_training_data
from bailong.loading import load_tokenizer
from helpers import DEMO_DATA


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer("smollm2-135m-instruct")


def test_blocks_are_full_with_eos_between_documents(tok):
    data = TrainDataConfig(files=[str(DEMO_DATA / "tc_corpus.txt")], block_size=128, validation=0.1)
    built = build_training_data(data, tok, seed=0)
    lengths = {len(row["input_ids"]) for row in built.train}
    assert lengths == {128}
    flat = [t for row in built.train for t in row["input_ids"]]
    assert flat.count(tok.eos_token_id) >= 150  # one per document, ~216 training documents
    assert all(row["labels"] == row["input_ids"] for row in built.train.select(range(3)))
    assert built.validation is not None
    assert 1.5 < built.validation_tokens_per_char < 2.5  # the base SmolLM2 needs about 2 tokens per TC character


def test_mixing_weights_give_each_source_its_share(tok, tmp_path):
    english = tmp_path / "en.txt"
    english.write_text("\n".join(["An English sentence about the harbour and its boats."] * 40) + "\n")
    data = TrainDataConfig(
        files=[str(DEMO_DATA / "tc_corpus.txt"), str(english)], weights=[0.75, 0.25], block_size=64, validation=0
    )
    alone = build_training_data(
        TrainDataConfig(files=[str(DEMO_DATA / "tc_corpus.txt")], block_size=64, validation=0), tok, seed=0
    )
    mixed = build_training_data(data, tok, seed=0)
    assert mixed.train_blocks == round(alone.train_blocks / 0.75)  # one epoch = one pass over the first file
    english_blocks = sum(1 for row in mixed.train if tok.decode(row["input_ids"]).count("harbour") >= 2)
    assert abs(english_blocks - mixed.train_blocks * 0.25) <= 2


def test_streaming_yields_blocks(tok):
    data = TrainDataConfig(files=[str(DEMO_DATA / "tc_corpus.txt")], block_size=64, validation=0, streaming=True)
    built = build_training_data(data, tok, seed=0)
    assert built.train_blocks is None
    rows = [row for _, row in zip(range(20), built.train)]
    assert len(rows) == 20 and all(len(r["input_ids"]) == 64 for r in rows)
