"""Another language: Korean (Hangul) on both tokenizer families, on real text (the Korean Constitution and bills).

Every guarantee of extend-vocab is checked here independently of the stage's own report; then zip-tie at step 0,
the whole flow (extend-vocab -> pretrain -> eval with bits per character and language consistency), and a
Latin-script target (Vietnamese), allowed only when named.
"""

import json

import pytest
import regex
import sentencepiece as spm
from transformers import AutoModelForCausalLM, AutoTokenizer

from bailong.evaluation.bpc import bits_per_character
from bailong.loading import load_tokenizer
from bailong.vocab.byte_level import byte_level_text
from bailong.vocab.checks import english_probe
from helpers import MISTRAL_V1, read_report, run_cli, shared_file, tiny_llama, write_config

HELD_OUT = 40  # the last paragraphs: never trained on
HANGUL = regex.compile(r"\p{Hangul}")
NON_LATIN = regex.compile(r"[\p{Han}\p{Hangul}\p{Hiragana}\p{Katakana}]")


def korean_paragraphs() -> list[str]:
    path = shared_file("ko/ko_law_paragraphs.txt")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def english_texts() -> list[str]:
    questions = [json.loads(line) for line in shared_file("bench/mt_bench_en_questions.jsonl").open(encoding="utf-8")]
    turns = [turn for q in questions for turn in q["turns"] if not NON_LATIN.search(turn)]
    assert len(turns) > 150
    return turns + english_probe()


def ids(tokenizer, texts):
    return tokenizer(texts, add_special_tokens=False)["input_ids"]


def tokens_per_char(tokenizer, texts) -> float:
    return sum(map(len, ids(tokenizer, texts))) / sum(map(len, texts))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """The Korean paragraphs split into a training file and a held-out file."""
    tmp = tmp_path_factory.mktemp("ko")
    docs = korean_paragraphs()
    (tmp / "train.txt").write_text("\n".join(docs[:-HELD_OUT]) + "\n", encoding="utf-8")
    (tmp / "held.txt").write_text("\n".join(docs[-HELD_OUT:]) + "\n", encoding="utf-8")
    return tmp


def extend(tmp, name: str, model: dict, corpus, *extra: str):
    cfg = {
        "model": model,
        "data": {"files": [str(corpus / "train.txt")], "validation": 0.1},
        "vocab": {"new_tokens": 1000},
        "output_dir": str(tmp / name),
    }
    result = run_cli("extend-vocab", write_config(tmp / f"{name}.yaml", cfg), *extra)
    assert result.code == 0, result.stderr
    return tmp / name, result


@pytest.fixture(scope="module")
def sp_run(tmp_path_factory, corpus):
    return extend(tmp_path_factory.mktemp("sp"), "out", {"tokenizer": str(MISTRAL_V1)}, corpus)


@pytest.fixture(scope="module")
def bl_run(tmp_path_factory, corpus):
    return extend(tmp_path_factory.mktemp("bl"), "out", {"name_or_path": "smollm2-135m-instruct"}, corpus)


def assert_pieces_reachable(tok, texts: dict[int, str]):
    """Each new token is what its text encodes to: alone (a word-initial piece gets its marker from the dummy
    prefix) or, for a word-internal piece, inside a word (after a line break)."""
    newline = ids(tok, ["\n"])[0]
    marker = tok.convert_tokens_to_ids("▁")
    for (token_id, text), alone, inside in zip(
        texts.items(), ids(tok, list(texts.values())), ids(tok, ["\n" + t for t in texts.values()])
    ):
        assert alone in ([token_id], [marker, token_id]) or inside == newline + [token_id], text


# ---------------------------------------------------------------- SentencePiece (Mistral v1)


def test_sp_report_chooses_hangul_and_shrinks_korean(sp_run, corpus):
    out, result = sp_run
    report = read_report(out)
    assert report["scripts"] == ["Hangul"] and report["letter_shares"]["Hangul"] > 0.9
    assert "vocab.scripts: auto chose Hangul" in result.stdout and "left out Latin" in result.stdout
    assert report["tokens_added"] == 1000
    for key in ("english_ids_unchanged", "all_new_pieces_reachable", "roundtrip_ok", "sentencepiece_matches_hf"):
        assert report[key] is True
    held = (corpus / "held.txt").read_text(encoding="utf-8").splitlines()
    before, after = (
        tokens_per_char(load_tokenizer(str(MISTRAL_V1)), held),
        tokens_per_char(AutoTokenizer.from_pretrained(out), held),
    )
    assert after < 0.75 * before


def test_sp_pieces_are_hangul_words_and_reachable(sp_run):
    out, _ = sp_run
    tok = AutoTokenizer.from_pretrained(out)
    sp = spm.SentencePieceProcessor(model_file=str(out / "tokenizer.model"))
    pieces = {i: sp.id_to_piece(i) for i in range(32000, sp.get_piece_size())}
    assert all(regex.fullmatch(r"▁?\p{Hangul}+", p) for p in pieces.values())
    assert sum(p.startswith("▁") for p in pieces.values()) > 300  # word-initial pieces carry the marker
    assert_pieces_reachable(tok, {i: p.removeprefix("▁") if len(p) > 1 else p for i, p in pieces.items()})


def test_sp_english_unchanged_roundtrip_and_hf_equals_sentencepiece(sp_run):
    out, _ = sp_run
    tok = AutoTokenizer.from_pretrained(out)
    english = english_texts()
    base_sp = spm.SentencePieceProcessor(model_file=str(MISTRAL_V1))
    assert ids(tok, english) == base_sp.encode(english)  # exactly as sentencepiece encodes with the base
    new_sp = spm.SentencePieceProcessor(model_file=str(out / "tokenizer.model"))
    assert base_sp.encode(english) == new_sp.encode(english)
    docs = korean_paragraphs()
    hf_ids = ids(tok, docs)
    assert hf_ids == new_sp.encode(docs)
    assert tok.batch_decode(hf_ids) == docs


# ---------------------------------------------------------------- byte-level BPE (SmolLM2)


def test_bl_korean_guarantees(bl_run, corpus):
    out, _ = bl_run
    report = read_report(out)
    assert report["scripts"] == ["Hangul"] and report["merge_steps_added"] > 0  # Hangul syllables are 3 bytes
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
    assert len(texts) > 700 and all(regex.fullmatch(r" ?\p{Hangul}+", t) for t in texts.values())
    assert sum(t.startswith(" ") for t in texts.values()) > 200  # word-initial pieces carry their space
    assert_pieces_reachable(tok, texts)
    docs = korean_paragraphs()
    assert tok.batch_decode(ids(tok, docs)) == docs
    held = (corpus / "held.txt").read_text(encoding="utf-8").splitlines()
    assert tokens_per_char(tok, held) < 0.6 * tokens_per_char(base, held)


@pytest.mark.slow
def test_zip_tie_step0_bits_per_char_on_korean_beat_random(bl_run, corpus, tmp_path):
    zip_tie, _ = bl_run
    random_init, _ = extend(
        tmp_path, "random", {"name_or_path": "smollm2-135m-instruct"}, corpus, "--set", "new_rows.init=random"
    )
    held = (corpus / "held.txt").read_text(encoding="utf-8").splitlines()[:12]
    bpc = {}
    for name, path in (("zip-tie", zip_tie), ("random", random_init)):
        model = AutoModelForCausalLM.from_pretrained(path)
        bpc[name] = bits_per_character(model, AutoTokenizer.from_pretrained(path), held)["bits_per_char"]
    assert bpc["zip-tie"] < 0.8 * bpc["random"], bpc


KOREAN_QUESTIONS = [  # written for this test
    {"question_id": 1, "category": "humanities", "turns": ["대한민국 헌법 제1조는 무엇을 말합니까?"]},
    {"question_id": 2, "category": "writing", "turns": ["국회에 대해 짧은 글을 써 주세요."]},
    {"question_id": 3, "category": "translation", "turns": ["영어로 번역해 주세요: 모든 국민은 법 앞에 평등하다."]},
]


@pytest.mark.slow
def test_korean_end_to_end(corpus, tmp_path):
    """extend-vocab (Hangul, zip-tie) -> pretrain a few steps -> eval bits per character and language consistency."""
    base = tiny_llama(tmp_path / "base", str(MISTRAL_V1))
    extended, _ = extend(tmp_path, "extended", {"name_or_path": str(base)}, corpus)
    assert json.loads((extended / "bailong_extension.json").read_text())["tokenizer_report"]["scripts"] == ["Hangul"]
    pretrain = {
        "model": {"name_or_path": str(extended)},
        "quantization": {"mode": "none"},
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
        "data": {"files": [str(corpus / "train.txt")], "validation_files": [str(corpus / "held.txt")]},
        "train": {"max_steps": 4, "batch_size": 2, "save_steps": 4, "logging_steps": 1, "learning_rate": 5e-3},
        "output_dir": str(tmp_path / "pretrain"),
    }
    pretrain["data"]["block_size"] = 64
    pretrain["train"]["gradient_checkpointing"] = False
    result = run_cli("pretrain", write_config(tmp_path / "p.yaml", pretrain))
    assert result.code == 0, result.stderr
    metrics = [json.loads(line) for line in (tmp_path / "pretrain" / "metrics.jsonl").read_text().splitlines()]
    assert any("eval_packed_bits_per_char" in m for m in metrics)

    questions = tmp_path / "questions.jsonl"
    questions.write_text("".join(json.dumps(q, ensure_ascii=False) + "\n" for q in KOREAN_QUESTIONS), encoding="utf-8")
    evaluation = {
        "models": [
            {"name": "extended", "name_or_path": str(extended)},
            {"name": "pretrained", "name_or_path": str(tmp_path / "pretrain")},
        ],
        "tasks": [
            {"type": "bpc", "files": [str(corpus / "held.txt")], "limit": 8},
            {"type": "judge", "questions": str(questions), "max_new_tokens": 8},
        ],
        "judge": {
            "serve": str(base),
            "model": "tiny-judge",
            "max_tokens": 8,
            "max_retries": 0,
            "concurrency": 1,
            "max_failed_share": 1.0,
        },  # a tiny random judge gives no ratings: the language check is the point,
        "output_dir": str(tmp_path / "eval"),
    }
    result = run_cli("eval", write_config(tmp_path / "e.yaml", evaluation))
    assert result.code == 0, result.stderr
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    for name in ("extended", "pretrained"):
        assert 0 < results[name]["bpc"] < 100
        consistency = results[name]["details"]["judge"]["language_consistency"]
        assert consistency["checked"] + consistency["skipped"] == len(KOREAN_QUESTIONS)
    answers = [json.loads(line) for line in (tmp_path / "eval" / "answers.jsonl").read_text().splitlines()]
    assert len(answers) == 2 * len(KOREAN_QUESTIONS)


# ---------------------------------------------------------------- a Latin-script target: only when named

VIETNAMESE = [  # written for this test
    "Hà Nội là thủ đô của Việt Nam.",
    "Tôi thích đọc sách vào buổi sáng.",
    "Thời tiết hôm nay rất đẹp và mát mẻ.",
    "Chúng tôi đi chợ mua rau và trái cây.",
    "Người dân ở đây rất thân thiện và hiếu khách.",
]


def test_latin_target_only_when_named_and_english_changes_are_counted(tmp_path):
    corpus = tmp_path / "vi.txt"
    corpus.write_text("\n".join(VIETNAMESE * 30) + "\n", encoding="utf-8")
    cfg = {
        "model": {"tokenizer": str(MISTRAL_V1)},
        "data": {"files": [str(corpus)], "validation": 0},
        "vocab": {"new_tokens": 60},
        "output_dir": str(tmp_path / "out"),
    }
    result = run_cli("extend-vocab", write_config(tmp_path / "auto.yaml", cfg))
    assert result.code == 2 and "auto found no non-Latin script" in result.stderr  # never chosen by auto
    result = run_cli("extend-vocab", write_config(tmp_path / "c.yaml", cfg), "--set", "vocab.scripts=[Latin]")
    assert result.code == 0, result.stderr
    assert "warning: vocab.scripts names Latin" in result.stdout
    report = read_report(tmp_path / "out")
    assert report["scripts"] == ["Latin"] and report["tokens_added"] > 0
    tok, base = AutoTokenizer.from_pretrained(tmp_path / "out"), spm.SentencePieceProcessor(model_file=str(MISTRAL_V1))
    probe = english_probe()  # compared with what the base model was trained on: sentencepiece's own ids
    changed = sum(a != b for a, b in zip(base.encode(probe), ids(tok, probe)))
    assert report["english_probe_changed"] == changed
    assert report["english_ids_unchanged"] is (changed == 0)
    assert report["all_new_pieces_reachable"] and report["roundtrip_ok"] and report["sentencepiece_matches_hf"]
