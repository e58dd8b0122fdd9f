"""Bad input to extend-vocab: one clear message, exit 2, nothing written; or a clear note when it can go on."""

import json

import pytest

from bailong.vocab.bpe import bpe_encode
from bailong.vocab.byte_level import ByteLevelVocabulary
from bailong.vocab.sentencepiece_model import SentencePieceVocabulary
from helpers import read_report, run_cli, write_config

TC_LINES = ["台灣的天氣很好，我們去爬山。", "今天天氣很好，台北的捷運很方便。", "台灣的夜市很熱鬧，小吃很好吃。"]


def config(tmp_path, mistral_model, files, **vocab) -> dict:
    return {
        "model": {"tokenizer": str(mistral_model)},
        "data": {"files": [str(f) for f in files]},
        "vocab": {"new_tokens": 50, **vocab},
        "output_dir": str(tmp_path / "out"),
    }


def run(tmp_path, cfg, *extra):
    return run_cli("extend-vocab", write_config(tmp_path / "c.yaml", cfg), *extra)


def test_empty_corpus(tmp_path, mistral_model):
    corpus = tmp_path / "empty.txt"
    corpus.write_text("\n   \n\n", encoding="utf-8")
    result = run(tmp_path, config(tmp_path, mistral_model, [corpus]))
    assert result.code == 2
    assert f"the corpus is empty: no non-empty documents in {corpus}; put text in it" in result.stderr
    assert "or list another file in data.files" in result.stderr
    assert not (tmp_path / "out").exists()


def test_non_utf8_names_file_and_line_or_skips(tmp_path, mistral_model):
    corpus = tmp_path / "mixed.txt"
    corpus.write_bytes(("\n".join(TC_LINES * 20) + "\n").encode() + b"caf\xe9 latin-1\n" + "再見。\n".encode())
    result = run(tmp_path, config(tmp_path, mistral_model, [corpus]))
    assert result.code == 2
    assert f"{corpus}:61: not valid UTF-8 (byte 0xe9 at column 4)" in result.stderr
    assert "data.on_bad_record: skip" in result.stderr and "Traceback" not in result.stderr
    cfg = config(tmp_path, mistral_model, [corpus])
    cfg["data"]["on_bad_record"] = "skip"
    result = run(tmp_path, cfg)
    assert result.code == 0, result.stderr
    assert read_report(tmp_path / "out")["skipped_bad_records"] == 1
    assert f"skipped 1 bad record(s) (1 not UTF-8); first: {corpus}:61: not valid UTF-8" in result.stdout


def test_bad_jsonl_names_line(tmp_path, mistral_model):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text(
        json.dumps({"text": TC_LINES[0]}, ensure_ascii=False) + "\n" + '{"body": "x"}\n', encoding="utf-8"
    )
    result = run(tmp_path, config(tmp_path, mistral_model, [corpus]))
    assert result.code == 2 and f"{corpus}:2: no 'text' field; set data.text_field" in result.stderr


def test_corpus_too_small_for_tokens_asked(tmp_path, mistral_model):
    corpus = tmp_path / "small.txt"
    corpus.write_text("\n".join(TC_LINES * 5) + "\n", encoding="utf-8")
    result = run(tmp_path, config(tmp_path, mistral_model, [corpus], new_tokens=27241, held_out=0))
    assert result.code == 0, result.stderr
    report = read_report(tmp_path / "out")
    assert 0 < report["tokens_added"] < 100 and report["tokens_requested"] == 27241
    assert f"the corpus supports {report['tokens_added']} new tokens, fewer than the 27241 asked for" in result.stdout


def test_output_dir_not_empty_needs_overwrite(tmp_path, mistral_model):
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(TC_LINES * 20) + "\n", encoding="utf-8")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("precious")
    result = run(tmp_path, config(tmp_path, mistral_model, [corpus]))
    assert result.code == 2 and "exists and is not empty; pass --overwrite" in result.stderr
    assert (tmp_path / "out" / "keep.txt").read_text() == "precious"
    result = run(tmp_path, config(tmp_path, mistral_model, [corpus]), "--overwrite")
    assert result.code == 0, result.stderr
    assert not (tmp_path / "out" / "keep.txt").exists() and (tmp_path / "out" / "tokenizer.json").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]  # no temporary folder left behind


def test_no_non_latin_text_with_auto_scripts(tmp_path, mistral_model):
    corpus = tmp_path / "en.txt"
    corpus.write_text("only english here\n", encoding="utf-8")
    result = run(tmp_path, config(tmp_path, mistral_model, [corpus]))
    assert result.code == 2 and "auto found no non-Latin script" in result.stderr
    assert "Latin 100.0%" in result.stderr and "vocab.scripts: [Latin]" in result.stderr
    assert not (tmp_path / "out").exists()


def test_named_script_absent_from_the_corpus(tmp_path, mistral_model):
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(TC_LINES * 20) + "\n", encoding="utf-8")
    result = run(tmp_path, config(tmp_path, mistral_model, [corpus]), "--set", "vocab.scripts=[thai]")
    assert result.code == 2 and "no text to train on in the scripts of vocab.scripts (Thai)" in result.stderr


def test_unknown_script_name(tmp_path, mistral_model):
    corpus = tmp_path / "c.txt"
    corpus.write_text(TC_LINES[0] + "\n", encoding="utf-8")
    result = run(tmp_path, config(tmp_path, mistral_model, [corpus]), "--set", "vocab.scripts=[Hangle]")
    assert result.code == 2 and "vocab.scripts" in result.stderr and "unknown Unicode script 'Hangle'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("value, scripts", [(True, "- Han\n  - Bopomofo"), (False, "scripts: all")])
def test_cjk_only_is_a_deprecated_alias(tmp_path, mistral_model, value, scripts):
    corpus = tmp_path / "c.txt"
    corpus.write_text(TC_LINES[0] + "\n", encoding="utf-8")
    cfg = config(tmp_path, mistral_model, [corpus])
    cfg["vocab"]["cjk_only"] = value
    result = run(tmp_path, cfg, "--print-config")
    assert result.code == 0, result.stderr
    assert f"`vocab.cjk_only: {str(value).lower()}` is deprecated; use `vocab.scripts:" in result.stdout + result.stderr
    assert scripts in result.stdout and "cjk_only:" not in result.stdout


def test_missing_base_tokenizer(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text(TC_LINES[0] + "\n", encoding="utf-8")
    cfg = {"model": {"tokenizer": "./nowhere"}, "data": {"files": [str(corpus)]}, "output_dir": str(tmp_path / "o")}
    result = run(tmp_path, cfg)
    assert result.code == 2 and "model source not found" in result.stderr


# ---------------------------------------------------------------- the merge algorithm on hand-made vocabularies


def test_bpe_encode_applies_best_rank_first():
    ranks = {("a", "b"): 0, ("b", "c"): 1, ("ab", "c"): 2}
    assert bpe_encode(list("abc"), lambda x, y: ranks.get((x, y))) == ["abc"]
    assert bpe_encode(list("bca"), lambda x, y: ranks.get((x, y))) == ["bc", "a"]


def test_sentencepiece_chain_adds_missing_characters_then_the_piece():
    base = [("<unk>", 0.0), ("<s>", 0.0), ("</s>", 0.0), ("台", -1.0), ("▁", -2.0)]
    vocab = SentencePieceVocabulary(base)
    ext = vocab.extend(["台灣", "灣"], budget=10)
    assert ext.tokens == ["灣", "台灣"]  # 灣 was byte fallback: it must become a piece before 台灣 can merge
    assert vocab.scores == [-3.0, -4.0]  # distinct, below every base piece, in id order
    assert ext.pieces == ["台灣"]


def test_budget_is_never_exceeded():
    base = [("<unk>", 0.0), ("a", -1.0)]
    vocab = SentencePieceVocabulary(base)
    ext = vocab.extend(["台灣大學", "台灣"], budget=3)
    assert len(ext.tokens) <= 3 and ext.pieces == ["台灣"] and ext.skipped_budget == 1


def test_byte_level_chain_uses_partial_character_steps():
    from bailong.vocab.byte_level import BYTE_TO_CHAR

    data = {"model": {"vocab": {BYTE_TO_CHAR[b]: b for b in range(256)}, "merges": []}, "added_tokens": []}
    vocab = ByteLevelVocabulary(data, pre_tokenizer=None)
    ext = vocab.extend(["台"], budget=5)  # three UTF-8 bytes: one partial step, then the character
    assert len(ext.tokens) == 2 and ext.pieces == ["台"]
    assert ext.merges[1] == (ext.tokens[0], BYTE_TO_CHAR["台".encode()[2]])
    assert vocab.encode_word("台") == [ext.tokens[1]]


def test_user_words_are_forced_in_and_unigram_works(tmp_path, mistral_model):
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(TC_LINES * 20) + "\n", encoding="utf-8")
    cfg = config(tmp_path, mistral_model, [corpus], model_type="unigram", user_words=["珍珠奶茶"], held_out=0)
    result = run(tmp_path, cfg)
    assert result.code == 0, result.stderr
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tmp_path / "out")
    ids = tok("珍珠奶茶", add_special_tokens=False).input_ids
    assert tok.convert_ids_to_tokens(ids[-1]) == "珍珠奶茶" and len(ids) <= 2
    report = read_report(tmp_path / "out")
    assert report["all_new_pieces_reachable"] and report["sentencepiece_matches_hf"]


@pytest.mark.parametrize(
    ("kind", "named"),
    [("wordpiece", "is a WordPiece tokenizer"), ("bpe", "is a BPE tokenizer without byte fallback")],
)
def test_unsupported_tokenizer_is_one_line_naming_its_type(tmp_path, kind, named):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"[UNK]": 0, "a": 1, "b": 2, "ab": 3}
    if kind == "wordpiece":
        backend = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    else:
        backend = Tokenizer(models.BPE(vocab, [("a", "b")], unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]").save_pretrained(tmp_path / "tok")
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(TC_LINES * 20) + "\n", encoding="utf-8")
    cfg = {"model": {"tokenizer": str(tmp_path / "tok")}, "data": {"files": [str(corpus)]}, "output_dir": "out"}
    result = run(tmp_path, cfg)
    assert result.code == 2 and not (tmp_path / "out").exists()
    lines = [line for line in result.stderr.splitlines() if line.strip() and "docs/s]" not in line]  # no progress
    assert len(lines) == 1 and named in lines[0] and "bailong extends SentencePiece BPE with byte fallback" in lines[0]
    assert "Traceback" not in result.stderr


def byte_alphabet_json(added: list[dict]) -> dict:
    from bailong.vocab.byte_level import BYTE_TO_CHAR

    return {
        "version": "1.0",
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
        "model": {"type": "BPE", "vocab": {BYTE_TO_CHAR[b]: b for b in range(256)}, "merges": []},
    }


def test_added_tokens_keep_their_ids_past_the_new_entries():
    """Special tokens only in added_tokens (Llama 3, Qwen): `tokenizers` numbers them after the model's count of
    entries, so the written file must hold them in model.vocab too, or they move onto the new pieces' ids."""
    from tokenizers import Tokenizer

    from bailong.vocab.bpe import append_to_tokenizer_json

    special = {"id": 256, "content": "<|begin|>", "single_word": False, "lstrip": False, "rstrip": False,
               "normalized": False, "special": True}  # fmt: skip
    data = byte_alphabet_json([special])
    vocab = ByteLevelVocabulary(data)
    vocab.extend(["台灣"], budget=10)
    assert vocab.first_id == 257
    written = Tokenizer.from_str(json.dumps(append_to_tokenizer_json(data, vocab)))
    assert written.token_to_id("<|begin|>") == 256
    assert written.encode("<|begin|>台灣").ids == [256, vocab.vocab[vocab.extension.tokens[-1]]]
    assert written.get_vocab_size() == 257 + len(vocab.extension.tokens)


def test_a_piece_the_normalizer_changes_is_skipped():
    """Qwen's NFC normalizer turns a CJK compatibility ideograph into the unified one: such a piece is unreachable."""
    from tokenizers import normalizers

    vocab = ByteLevelVocabulary(byte_alphabet_json([]), normalizer=normalizers.NFC())
    ext = vocab.extend(["\uf929", "台"], budget=10)
    assert ext.pieces == ["台"] and ext.skipped_split == 1
