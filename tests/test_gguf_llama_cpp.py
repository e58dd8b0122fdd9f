"""The real llama.cpp (llama-cpp-python built from source, the `gguf-check` extra) reads bailong's GGUF exports of
extended runs, byte-level BPE (SmolLM2) and SentencePiece (a tiny Llama with Mistral v1's tokenizer): it tokenizes
held-out TC and English text to the HF export's ids, its vocabulary is the embedding's rows with every new piece one
token, and an f32 export generates greedily what transformers generates on the HF export."""

import json

import pytest
from transformers import AutoModelForCausalLM

from bailong.gguf.check import llama_cpp_greedy, llama_cpp_tokenize, open_gguf, transformers_greedy
from bailong.loading import load_tokenizer
from helpers import DEMO_DATA, extended_tiny_llama, run_cli, shared_file, train_tiny, write_config

pytest.importorskip("llama_cpp", reason="llama.cpp checks need the gguf-check extra (make install builds it)")
pytestmark = pytest.mark.slow

PROMPTS = [
    "台灣最高的山是",
    "臺北市是中華民國的",
    "The capital of France is",
    "Once upon a time",
]


def export_both(run, out):
    """The run's HF export and its f32 GGUF export."""
    assert run_cli("export", run, "--out", out / "hf").code == 0
    result = run_cli("export", run, "--out", out / "gguf", "--format", "gguf", "--outtype", "f32")
    assert result.code == 0, result.stderr
    return {"hf": out / "hf", "gguf": out / "gguf" / "run-f32.gguf"}


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """Both families, extended and trained a few steps with LoRA on embeddings and head (untied on export)."""
    tmp = tmp_path_factory.mktemp("smollm2")
    cfg = {
        "model": {"name_or_path": "smollm2-135m-instruct"},
        "data": {"files": [str(DEMO_DATA / "tc_corpus.txt")], "validation": 0},
        "vocab": {"new_tokens": 300},
        "output_dir": str(tmp / "extended"),
    }
    assert run_cli("extend-vocab", write_config(tmp / "extend.yaml", cfg)).code == 0
    smollm2 = train_tiny(tmp / "extended", tmp / "run", steps=2)
    mistral_tmp = tmp_path_factory.mktemp("mistral")
    mistral = train_tiny(extended_tiny_llama(mistral_tmp)["tied"], mistral_tmp / "run", steps=2)
    return {"byte-level": export_both(smollm2, tmp), "sentencepiece": export_both(mistral, mistral_tmp)}


def held_out_texts() -> list[str]:
    drcd = shared_file("tc/drcd_test_seen_titles_paragraphs.txt").read_text(encoding="utf-8").splitlines()
    bench = shared_file("bench/mt_bench_en_questions.jsonl").read_text(encoding="utf-8").splitlines()
    turns = [turn for line in bench for turn in json.loads(line)["turns"]]
    return [t for t in drcd if t.strip()] + turns


@pytest.mark.parametrize("family", ["byte-level", "sentencepiece"])
def test_llama_cpp_tokenizes_like_the_hf_export(exports, family):
    tokenizer = load_tokenizer(str(exports[family]["hf"]))
    llm = open_gguf(exports[family]["gguf"], vocab_only=True)
    texts = held_out_texts()
    assert len(texts) > 900
    for with_bos in (False, True):
        wrong = [
            t
            for t in texts
            if llama_cpp_tokenize(llm, t, with_bos) != tokenizer(t, add_special_tokens=with_bos)["input_ids"]
        ]
        assert not wrong, (with_bos, len(wrong), wrong[0][:80])
    llm.close()


@pytest.mark.parametrize("family", ["byte-level", "sentencepiece"])
def test_vocabulary_is_the_embedding_and_every_new_piece_one_token(exports, family):
    import llama_cpp

    hf = exports[family]["hf"]
    rows = json.loads((hf / "config.json").read_text())["vocab_size"]
    llm = open_gguf(exports[family]["gguf"], vocab_only=True)
    assert llm.n_vocab() == rows
    tokenizer = load_tokenizer(str(hf))
    new_ids = json.loads((hf / "bailong_extension.json").read_text())["new_token_ids"]
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    whole = 0
    for tid in new_ids:
        piece = tokenizer.convert_ids_to_tokens(tid)
        assert llama_cpp.llama_vocab_get_text(vocab, tid).decode("utf-8") == piece
        text = tokenizer.decode([tid]).removeprefix(" " if family == "sentencepiece" else "")
        ids = llama_cpp_tokenize(llm, text, with_bos=False)
        assert ids == tokenizer(text, add_special_tokens=False)["input_ids"], piece
        if "\ufffd" not in text:  # not a step inside a character's bytes that the merges need (byte-level)
            whole += 1
            assert ids == [tid] or (family == "sentencepiece" and tid in ids), (piece, ids)  # SP may add a "▁"
    assert whole > len(new_ids) / 2
    llm.close()


@pytest.mark.parametrize("family", ["byte-level", "sentencepiece"])
def test_f32_generates_like_transformers(exports, family):
    tokenizer = load_tokenizer(str(exports[family]["hf"]))
    model = AutoModelForCausalLM.from_pretrained(exports[family]["hf"]).eval()
    llm = open_gguf(exports[family]["gguf"])
    for prompt in PROMPTS:
        ids = tokenizer(prompt)["input_ids"]
        assert llama_cpp_greedy(llm, ids, 16) == transformers_greedy(model, ids, 16), prompt
    llm.close()
