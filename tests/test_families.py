"""extend-vocab on today's base tokenizers (Llama 3.x, Qwen2.5, Mistral Nemo's tekken, Gemma 3), each with a tiny
random model of its real vocabulary: every guarantee checked here independently of the stage's report, and the
zip-tie rows by hand (tied and untied heads)."""

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer

from bailong.vocab.guarantees import SAMPLE_CONVERSATION, check_base_kept
from helpers import read_report, run_cli, shared_file, write_config
from test_extend_vocab import english_texts, ids, tc_documents

# family -> (base tokenizer size, tied head, embedding rows of the tiny model, "Hello world" ids, architecture)
BASES = {
    "llama3": (128256, True, 128256, [9906, 1917], "llama"),
    "qwen": (151665, False, 151936, [9707, 1879], "llama"),  # Qwen2.5's checkpoints have 271 spare rows
    "tekken": (131072, False, 131072, [22177, 4304], "llama"),
    "gemma3": (262144, True, 262144, [9259, 1902], "gemma3"),
}
NEW_TOKENS = 1000


def tiny_model(path, tokenizer_dir, rows: int, tied: bool, arch: str):
    """A tiny random model of the real vocabulary, saved with the base tokenizer beside it."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    sizes = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4)
    ids = dict(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    if arch == "gemma3":  # its forward scales the embeddings by sqrt(hidden_size)
        config = Gemma3TextConfig(vocab_size=rows, num_key_value_heads=1, head_dim=16, **sizes, **ids)
        model = Gemma3ForCausalLM(config)
    else:
        config = LlamaConfig(vocab_size=rows, num_key_value_heads=2, tie_word_embeddings=tied, **sizes, **ids)
        model = LlamaForCausalLM(config)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="module", params=list(BASES))
def family_run(request, tmp_path_factory, real_tokenizers):
    name = request.param
    size, tied, rows, _, arch = BASES[name]
    tmp = tmp_path_factory.mktemp(name)
    base = tiny_model(tmp / "base", real_tokenizers(name), rows, tied, arch)
    cfg = {
        "model": {"name_or_path": str(base)},
        "data": {"files": [str(shared_file("tc/drcd_dev_paragraphs.txt"))], "validation": 0.1},
        "vocab": {"new_tokens": NEW_TOKENS},
        "output_dir": str(tmp / "out"),
    }
    result = run_cli("extend-vocab", write_config(tmp / "c.yaml", cfg))
    assert result.code == 0, result.stderr
    return name, base, tmp / "out", result


def test_report_every_guarantee(family_run):
    name, _, out, result = family_run
    report = read_report(out)
    size, tied, rows, _, _ = BASES[name]
    assert report["family"] == ("sentencepiece-json" if name == "gemma3" else "byte-level")
    assert report["tokens_added"] == NEW_TOKENS and report["vocab_size"] == size + NEW_TOKENS
    assert report["first_new_id"] == size
    for key in ("english_ids_unchanged", "all_new_pieces_reachable", "roundtrip_ok", "base_tokens_kept"):
        assert report[key] is True, key
    assert report["special_token_ids_kept"] is True and report["chat_template_kept"] is True
    assert report["special_tokens_added_kept"] is True
    assert report["tokens_per_char_after"] < 0.95 * report["tokens_per_char_before"]
    ckpt = report["checkpoint"]
    assert ckpt["tied_embeddings"] is tied and ckpt["spare_rows_filled"] == min(rows - size, NEW_TOKENS)
    assert ckpt["embedding_rows"] == max(rows, size + NEW_TOKENS)
    if name == "qwen":
        assert "271 new tokens took the checkpoint's spare rows" in result.stdout


def test_every_base_token_special_id_and_chat_template_kept(family_run):
    name, base_dir, out, _ = family_run
    base, new = AutoTokenizer.from_pretrained(base_dir), AutoTokenizer.from_pretrained(out)
    size = BASES[name][0]
    every = list(range(size))
    assert base.convert_ids_to_tokens(every) == new.convert_ids_to_tokens(every)
    assert {i: (t.content, t.special) for i, t in base.added_tokens_decoder.items()} == {
        i: (t.content, t.special) for i, t in new.added_tokens_decoder.items() if i < size
    }
    added = [t.content for t in base.added_tokens_decoder.values()]
    assert ids(base, added) == ids(new, added)
    for key in ("bos_token_id", "eos_token_id", "pad_token_id", "unk_token_id"):
        assert getattr(base, key) == getattr(new, key), key
    assert new.chat_template == base.chat_template
    conversation = SAMPLE_CONVERSATION[1:]
    text = base.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
    assert new.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True) == text
    assert ids(new, [text]) == ids(base, [text])
    assert ids(new, ["Hello world"]) == ids(base, ["Hello world"]) == [BASES[name][3]]


def test_english_ids_unchanged_new_pieces_reachable_roundtrip(family_run):
    name, base_dir, out, _ = family_run
    base, new = AutoTokenizer.from_pretrained(base_dir), AutoTokenizer.from_pretrained(out)
    english = english_texts()
    assert ids(base, english) == ids(new, english)
    docs = tc_documents()
    encoded = ids(new, docs)
    assert new.batch_decode(encoded) == docs
    assert sum(map(len, encoded)) < 0.95 * sum(map(len, ids(base, docs)))
    size = BASES[name][0]
    assert max(max(e) for e in encoded) >= size  # the new pieces are used


def test_tokenizer_json_has_no_id_gap(family_run):
    """`tokenizers` numbers an added token the model lacks after the model's count of entries: every added token must
    sit in model.vocab at its id once new entries follow (this moved Llama 3's <|begin_of_text|> to 136000)."""
    name, _, out, _ = family_run
    data = json.loads((out / "tokenizer.json").read_text(encoding="utf-8"))
    vocab = data["model"]["vocab"]
    assert sorted(vocab.values()) == list(range(BASES[name][0] + NEW_TOKENS))
    assert all(vocab[t["content"]] == t["id"] for t in data["added_tokens"])


def test_zip_tie_rows_by_hand_old_rows_unchanged(family_run):
    name, base_dir, out, _ = family_run
    size, tied, rows, _, _ = BASES[name]
    before, after = load_file(str(base_dir / "model.safetensors")), load_file(str(out / "model.safetensors"))
    names = ["model.embed_tokens.weight"] + ([] if tied else ["lm_head.weight"])
    assert ("lm_head.weight" in after) is not tied
    base_tok, new_tok = AutoTokenizer.from_pretrained(base_dir), AutoTokenizer.from_pretrained(out)
    model = base_tok.backend_tokenizer.model
    for key in names:
        assert torch.equal(after[key][:size], before[key][:size])  # bit for bit
        assert after[key].shape[0] == max(rows, size + NEW_TOKENS)
    for token_id in (size, size + NEW_TOKENS // 2, size + NEW_TOKENS - 1):  # the first one sits in a spare row (Qwen)
        pieces = [t.id for t in model.tokenize(new_tok.convert_ids_to_tokens(token_id))]
        w = torch.tensor([0.8**i for i in range(len(pieces))])
        w /= w.sum()
        for key in names:  # in the stored space: Gemma's sqrt(hidden) scale applies to every row alike
            assert torch.allclose(after[key][token_id], (w[:, None] * before[key][pieces]).sum(dim=0), atol=1e-6)


def test_checks_catch_a_moved_added_token_a_moved_bos_and_another_template(family_run, tmp_path):
    """The writer before the fix: new entries after a gap of added-token ids, the added tokens left out of
    model.vocab. The checks must refuse it, and a changed chat template or BOS."""
    name, base_dir, out, _ = family_run
    base = AutoTokenizer.from_pretrained(base_dir)
    data = json.loads((out / "tokenizer.json").read_text(encoding="utf-8"))
    base_vocab = json.loads(base.backend_tokenizer.to_str())["model"]["vocab"]
    for token in data["added_tokens"]:
        if token["content"] not in base_vocab:
            del data["model"]["vocab"][token["content"]]
    for f in out.iterdir():
        if f.suffix in (".json", ".jinja"):
            (tmp_path / f.name).write_bytes(f.read_bytes())
    (tmp_path / "tokenizer.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    kept = check_base_kept(base, AutoTokenizer.from_pretrained(tmp_path))
    if name in ("llama3", "qwen"):  # their special tokens live only in added_tokens
        assert kept["base_tokens_kept"] is False and kept["special_token_ids_kept"] is False
        assert kept["chat_template_kept"] is False and len(kept["failures"]) == 3
        assert kept["special_tokens_added_kept"] is True  # the post-processor names its BOS by id, which it keeps
    else:
        assert kept["failures"] == []
    new = AutoTokenizer.from_pretrained(out)
    new.chat_template = base.chat_template + "{{ ' ' }}"  # one more space after the conversation
    assert check_base_kept(base, new)["chat_template_kept"] is False
    new = AutoTokenizer.from_pretrained(out)
    new.bos_token = new.eos_token
    kept = check_base_kept(base, new)
    assert kept["special_token_ids_kept"] is (base.bos_token_id == base.eos_token_id)


def test_a_sentencepiece_folder_base_keeps_its_bos(tmp_path):
    """A Llama 2 / Mistral v1 folder (tokenizer.json beside tokenizer.model), which transformers loads with
    add_bos_token off: the extended tokenizer still puts the base's BOS before every text."""
    import shutil

    from bailong.loading.tokenizers import load_tokenizer
    from helpers import DEMO_DATA, MISTRAL_V1

    base_dir = tmp_path / "base"
    load_tokenizer(str(MISTRAL_V1)).save_pretrained(base_dir)
    shutil.copy(MISTRAL_V1, base_dir / "tokenizer.model")
    base = load_tokenizer(str(base_dir))
    cfg = {
        "model": {"tokenizer": str(base_dir)},
        "data": {"files": [str(DEMO_DATA / "tc_corpus.txt")]},
        "vocab": {"new_tokens": 100},
        "output_dir": str(tmp_path / "out"),
    }
    result = run_cli("extend-vocab", write_config(tmp_path / "extend.yaml", cfg))
    assert result.code == 0, result.stderr
    new = AutoTokenizer.from_pretrained(tmp_path / "out")
    assert new("Hello world")["input_ids"] == base("Hello world")["input_ids"] == [1, 22557, 1526]
    assert read_report(tmp_path / "out")["special_tokens_added_kept"] is True


@pytest.mark.slow
def test_bench_families_script_at_toy_size(tmp_path):
    """scripts/bench_families.py, the source of docs/families.md's table, on one family and a small budget."""
    import subprocess
    import sys

    from helpers import ROOT

    out = tmp_path / "rows.json"
    command = [sys.executable, str(ROOT / "scripts" / "bench_families.py"), "--families", "smollm2", "--new-tokens"]
    proc = subprocess.run(
        [*command, "300", "--bpc-docs", "0", "--json", str(out)], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    [row] = json.loads(out.read_text(encoding="utf-8"))
    assert row["added"] == 300 and row["guarantees"] is True and row["english_turns_changed"].startswith("0/")
    assert row["tok_per_char_after"] < row["tok_per_char_before"]
    assert "tok_per_char_after" in proc.stdout
