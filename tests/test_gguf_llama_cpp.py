"""The real llama.cpp (llama-cpp-python built from source, the `gguf-check` extra) reads bailong's GGUF exports of
extended runs, one per architecture and tokenizer family: SmolLM2 (byte-level BPE), a tiny Llama with Mistral v1's
SentencePiece model, the real Gemma 3 270M (a SentencePiece-style tokenizer.json, no tokenizer.model) and a tiny Qwen2
with Qwen2.5's tokenizer (byte-level BPE, q/k/v biases). llama.cpp tokenizes held-out TC and English text to the HF
export's ids, its vocabulary is the embedding's rows with every new piece one token, and an f32 export generates
greedily what transformers generates on the HF export."""

import json

import pytest
import torch
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


def smollm2_run(tmp):
    cfg = {
        "model": {"name_or_path": "smollm2-135m-instruct"},
        "data": {"files": [str(DEMO_DATA / "tc_corpus.txt")], "validation": 0},
        "vocab": {"new_tokens": 300},
        "output_dir": str(tmp / "extended"),
    }
    assert run_cli("extend-vocab", write_config(tmp / "extend.yaml", cfg)).code == 0
    return train_tiny(tmp / "extended", tmp / "run", steps=2)


def tiny_qwen2(path, tokenizer_dir):
    """A tiny random Qwen2 (tied, as Qwen2.5 0.5B) of Qwen2.5's vocabulary and spare rows, with random q/k/v biases so
    that a dropped or misplaced bias changes the tokens."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tok = load_tokenizer(str(tokenizer_dir))
    config = Qwen2Config(
        vocab_size=151936,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config)
    with torch.no_grad():
        for layer in model.model.layers:
            for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                proj.bias.normal_(0.0, 0.5)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def qwen2_run(tmp, tokenizer_dir):
    base = tiny_qwen2(tmp / "base", tokenizer_dir)
    cfg = {
        "model": {"name_or_path": str(base)},
        "data": {"files": [str(DEMO_DATA / "tc_corpus.txt")], "validation": 0},
        "vocab": {"new_tokens": 300},
        "output_dir": str(tmp / "extended"),
    }
    result = run_cli("extend-vocab", write_config(tmp / "extend.yaml", cfg))
    assert result.code == 0, result.stderr
    return train_tiny(tmp / "extended", tmp / "run", steps=2)


FAMILIES = ["byte-level", "sentencepiece", "gemma3", "qwen2"]


@pytest.fixture(scope="module")
def exports(tmp_path_factory, request, real_tokenizers):
    """Each family's run (extended, trained a few steps with LoRA on embeddings and head: untied on export), exported
    as HF and as an f32 GGUF on first use."""
    built = {}

    def get(family: str):
        if family not in built:
            tmp = tmp_path_factory.mktemp(family)
            if family == "byte-level":
                run = smollm2_run(tmp)
            elif family == "sentencepiece":
                run = train_tiny(extended_tiny_llama(tmp)["tied"], tmp / "run", steps=2)
            elif family == "gemma3":
                run = request.getfixturevalue("gemma3_run")["run"]
            else:
                run = qwen2_run(tmp, real_tokenizers("qwen"))
            built[family] = export_both(run, tmp)
        return built[family]

    return get


def held_out_texts() -> list[str]:
    drcd = shared_file("tc/drcd_test_seen_titles_paragraphs.txt").read_text(encoding="utf-8").splitlines()
    bench = shared_file("bench/mt_bench_en_questions.jsonl").read_text(encoding="utf-8").splitlines()
    turns = [turn for line in bench for turn in json.loads(line)["turns"]]
    return [t for t in drcd if t.strip()] + turns


@pytest.mark.parametrize("family", FAMILIES)
def test_llama_cpp_tokenizes_like_the_hf_export(exports, family):
    tokenizer = load_tokenizer(str(exports(family)["hf"]))
    llm = open_gguf(exports(family)["gguf"], vocab_only=True)
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


@pytest.mark.parametrize("family", FAMILIES)
def test_vocabulary_is_the_embedding_and_every_new_piece_one_token(exports, family):
    import llama_cpp

    hf = exports(family)["hf"]
    rows = json.loads((hf / "config.json").read_text())["vocab_size"]
    llm = open_gguf(exports(family)["gguf"], vocab_only=True)
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


@pytest.mark.parametrize("family", FAMILIES)
def test_f32_generates_like_transformers(exports, family):
    tokenizer = load_tokenizer(str(exports(family)["hf"]))
    model = AutoModelForCausalLM.from_pretrained(exports(family)["hf"]).eval()
    llm = open_gguf(exports(family)["gguf"])
    for prompt in PROMPTS:
        ids = tokenizer(prompt)["input_ids"]
        assert llama_cpp_greedy(llm, ids, 16) == transformers_greedy(model, ids, 16), prompt
    llm.close()
