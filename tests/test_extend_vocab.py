"""extend-vocab on both tokenizer families, each guarantee checked here independently of the stage's own report."""

import json

import pytest
import sentencepiece as spm
from transformers import AutoTokenizer

from bailong.loading import load_tokenizer
from bailong.vocab.byte_level import byte_level_text
from bailong.vocab.checks import english_probe
from bailong.vocab.train import has_cjk
from helpers import DEMO_DATA, read_report, run_cli, shared_file, write_config


def english_texts() -> list[str]:
    """Real English: MT-bench questions (less the few that quote Chinese), plus bailong's probe (code, accents)."""
    questions = [json.loads(line) for line in shared_file("bench/mt_bench_en_questions.jsonl").open(encoding="utf-8")]
    turns = [turn for q in questions for turn in q["turns"] if not has_cjk(turn)]
    assert len(turns) > 150
    return turns + english_probe()


def tc_documents() -> list[str]:
    docs = []
    for name in ("tc/drcd_dev_paragraphs.txt", "tc/drcd_test_seen_titles_paragraphs.txt"):
        docs += [line.rstrip("\n") for line in shared_file(name).open(encoding="utf-8") if line.strip()]
    return docs


def ids(tokenizer, texts):
    return tokenizer(texts, add_special_tokens=False)["input_ids"]


@pytest.fixture(scope="module")
def sp_run(tmp_path_factory, mistral_model):
    tmp = tmp_path_factory.mktemp("sp")
    cfg = {
        "model": {"tokenizer": str(mistral_model)},
        "data": {"files": [str(shared_file("tc/drcd_dev_paragraphs.txt"))]},
        "vocab": {"new_tokens": 3000, "held_out": 0.1},
        "output_dir": str(tmp / "out"),
    }
    result = run_cli("extend-vocab", write_config(tmp / "c.yaml", cfg))
    assert result.code == 0, result.stderr
    return tmp / "out", result


@pytest.fixture(scope="module")
def bl_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bl")
    cfg = {
        "model": {"name_or_path": "smollm2-135m-instruct"},
        "data": {"files": [str(shared_file("tc/drcd_dev_paragraphs.txt")), str(DEMO_DATA / "tc_corpus.txt")]},
        "vocab": {"new_tokens": 3000, "held_out": 0.1},
        "output_dir": str(tmp / "out"),
    }
    result = run_cli("extend-vocab", write_config(tmp / "c.yaml", cfg))
    assert result.code == 0, result.stderr
    return tmp / "out", result


# ---------------------------------------------------------------- SentencePiece (Mistral v1, Llama 2 family)


def test_sp_report_and_table(sp_run):
    out, result = sp_run
    report = read_report(out)
    assert report["tokens_added"] == 3000 and report["vocab_size"] == 35000
    assert report["tokens_per_char_after"] < 0.75 * report["tokens_per_char_before"]
    for key in ("english_ids_unchanged", "all_new_pieces_reachable", "roundtrip_ok", "sentencepiece_matches_hf"):
        assert report[key] is True
    assert "tokens_per_char_after" in result.stdout and "english_ids_unchanged" in result.stdout


def test_sp_loads_alone_and_keeps_bos(sp_run, mistral_model):
    out, _ = sp_run
    tok = AutoTokenizer.from_pretrained(out)
    assert len(tok) == 35000
    assert tok("台灣").input_ids[0] == tok.bos_token_id == 1
    assert (out / "tokenizer.model").exists()


CODE_AND_SPACES = [  # MT-bench-style turns with code blocks, indentation and runs of spaces
    "Fix this:\n```python\ndef mean(xs):\n    if not xs:\n        return 0\n    return sum(xs)  /  len(xs)\n```",
    "    indented first line, then  two spaces,   three, and a tab\tbefore the end  ",
    '```c\nint main(void) {\n  for (int i = 0; i < 10; ++i) {\n      printf("%d\\n", i);\n  }\n}\n```',
    "Table:\n| a   | b |\n|-----|---|\n| 1   | 2 |" + " " * 40 + "end",
    " leading space, " + "x" + " " * 17 + "y" + " " * 33,
]


def test_sp_english_ids_as_sentencepiece_encodes_them(sp_run, mistral_model):
    """The extended HF tokenizer encodes untouched text exactly as sentencepiece encodes it with the base model."""
    out, _ = sp_run
    english = english_texts() + CODE_AND_SPACES
    assert ids(AutoTokenizer.from_pretrained(out), english) == spm.SentencePieceProcessor(
        model_file=str(mistral_model)
    ).encode(english)
    base_sp = spm.SentencePieceProcessor(model_file=str(mistral_model))
    new_sp = spm.SentencePieceProcessor(model_file=str(out / "tokenizer.model"))
    assert base_sp.encode(english) == new_sp.encode(english)


def test_sp_every_new_piece_reachable(sp_run):
    out, _ = sp_run
    tok = AutoTokenizer.from_pretrained(out)
    sp = spm.SentencePieceProcessor(model_file=str(out / "tokenizer.model"))
    pieces = [sp.id_to_piece(i) for i in range(32000, sp.get_piece_size())]
    dummy = sp.piece_to_id("▁")
    for token_id, piece, hf_ids, sp_ids in zip(range(32000, 35000), pieces, ids(tok, pieces), sp.encode(pieces)):
        assert hf_ids in ([token_id], [dummy, token_id]), piece
        assert sp_ids == hf_ids, piece
    assert sp.id_to_piece(35000 - 1) == tok.convert_ids_to_tokens(35000 - 1)


def test_sp_roundtrip_and_hf_equals_sentencepiece_on_corpus(sp_run):
    out, _ = sp_run
    tok = AutoTokenizer.from_pretrained(out)
    sp = spm.SentencePieceProcessor(model_file=str(out / "tokenizer.model"))
    docs = tc_documents()
    hf_ids = ids(tok, docs)
    assert hf_ids == sp.encode(docs)
    assert tok.batch_decode(hf_ids) == docs


def test_sp_rerun_on_own_output_adds_nothing_twice(sp_run, tmp_path):
    out, _ = sp_run
    first = AutoTokenizer.from_pretrained(out).get_vocab()
    cfg = {
        "model": {"tokenizer": str(out)},
        "data": {"files": [str(shared_file("tc/drcd_test_seen_titles_paragraphs.txt"))]},
        "vocab": {"new_tokens": 300},
        "output_dir": str(tmp_path / "again"),
    }
    result = run_cli("extend-vocab", write_config(tmp_path / "c.yaml", cfg))
    assert result.code == 0, result.stderr
    second = AutoTokenizer.from_pretrained(tmp_path / "again").get_vocab()
    assert len(second) == len(set(second.values())) == len(first) + 300
    assert all(second[token] == i for token, i in first.items())  # nothing moved, nothing added twice


# ---------------------------------------------------------------- byte-level BPE (SmolLM2, Llama 3 family)


def test_bl_report(bl_run):
    out, _ = bl_run
    report = read_report(out)
    assert report["family"] == "byte-level"
    assert report["tokens_added"] == 3000 and report["vocab_size"] == 49152 + 3000
    assert report["merge_steps_added"] > 0  # three-byte characters need a partial-character step
    assert report["tokens_per_char_after"] < 0.6 * report["tokens_per_char_before"]


def test_bl_real_vocabulary_entries_not_added_tokens(bl_run):
    out, _ = bl_run
    data = json.loads((out / "tokenizer.json").read_text(encoding="utf-8"))
    vocab, merges = data["model"]["vocab"], data["model"]["merges"]
    assert len(vocab) == 49152 + 3000
    assert max(t["id"] for t in data["added_tokens"]) < 49152
    new = sorted((i, t) for t, i in vocab.items() if i >= 49152)
    assert [i for i, _ in new] == list(range(49152, 52152))
    made = {a + b for a, b in merges[-3000:]}
    assert all(token in made for _, token in new)


def test_bl_english_unchanged_pieces_reachable_roundtrip(bl_run):
    out, _ = bl_run
    base = load_tokenizer("smollm2-135m-instruct")
    tok = AutoTokenizer.from_pretrained(out)
    english = english_texts()
    assert ids(base, english) == ids(tok, english)
    texts = {}
    for token, i in tok.get_vocab().items():
        if i >= 49152:
            try:
                texts[i] = byte_level_text(token).decode("utf-8")
            except UnicodeDecodeError:
                pass
    assert len(texts) > 2500
    for (token_id, text), got in zip(texts.items(), ids(tok, list(texts.values()))):
        assert got == [token_id], text
    docs = tc_documents()
    assert tok.batch_decode(ids(tok, docs)) == docs
    assert tok.chat_template == base.chat_template


@pytest.mark.slow
def test_bl_extended_smollm2_generates_tc_faster_than_its_base(bl_run):
    """eval's speed task on the real SmolLM2 and its extension (zip-tie rows, no training): the same new characters
    cost the extended model fewer tokens, so fewer forward passes. The models take turns prompt by prompt, so a load
    that changes during the test weighs on both alike."""
    from bailong.evaluation.speed import default_prompts, generation_speed
    from bailong.inference import ChatModel

    out, _ = bl_run
    models = {"base": ChatModel("smollm2-135m-instruct"), "extended": ChatModel(str(out))}
    totals = {name: {"new_characters": 0, "new_tokens": 0, "generation_seconds": 0.0} for name in models}
    for bot in models.values():  # the warm-up
        generation_speed(bot.model, bot.tokenizer, default_prompts()[-1:], characters=4, warmup=0)
    for prompt in default_prompts()[:3]:
        for name, bot in models.items():
            result = generation_speed(bot.model, bot.tokenizer, [prompt], characters=24, warmup=0)
            assert result["chars_per_s"] > 0 and result["tokens_per_s"] > 0 and result["new_characters"] >= 24
            for key in totals[name]:
                totals[name][key] += result[key]
    base, extended = totals["base"], totals["extended"]
    assert extended["new_tokens"] / extended["new_characters"] < base["new_tokens"] / base["new_characters"]
    assert (
        extended["new_characters"] / extended["generation_seconds"]
        > base["new_characters"] / base["generation_seconds"]
    ), totals
