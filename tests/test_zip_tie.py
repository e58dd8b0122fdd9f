"""The extended base checkpoint: zip-tie rows by hand, old rows untouched, ties kept, reload, logits, generation."""

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from bailong.vocab.init import piece_weights
from helpers import DEMO_DATA, run_cli, shared_file, tiny_llama, write_config

ENGLISH = "The committee approved the budget for twelve new libraries on Tuesday."


def extend(tmp_path, base_dir, files, new_tokens=300, **extra):
    cfg = {
        "model": {"name_or_path": str(base_dir)},
        "data": {"files": [str(f) for f in files]},
        "vocab": {"new_tokens": new_tokens, "held_out": 0},
        "output_dir": str(tmp_path / "out"),
        **extra,
    }
    return run_cli("extend-vocab", write_config(tmp_path / "c.yaml", cfg))


def weights_of(path):
    return load_file(str(path / "model.safetensors"))


@pytest.fixture(scope="module")
def untied(tmp_path_factory, mistral_model):
    tmp = tmp_path_factory.mktemp("untied")
    base = tiny_llama(tmp / "base", str(mistral_model))
    result = extend(tmp, base, [shared_file("tc/drcd_dev_paragraphs.txt")])
    assert result.code == 0, result.stderr
    return base, tmp / "out"


def pieces_of(base_dir, out_dir):
    base_tok = AutoTokenizer.from_pretrained(base_dir)
    new_tok = AutoTokenizer.from_pretrained(out_dir)
    model = base_tok.backend_tokenizer.model
    ids = range(len(base_tok), len(new_tok))
    return {i: [t.id for t in model.tokenize(new_tok.convert_ids_to_tokens(i))] for i in ids}, base_tok


def test_untied_metadata_and_reload(untied):
    base, out = untied
    meta = json.loads((out / "bailong_extension.json").read_text(encoding="utf-8"))
    assert meta["base_model"] == str(base) and meta["base_vocab_size"] == 32000
    assert meta["new_token_ids"] == list(range(32000, 32300))
    assert meta["init"]["init"] == "zip-tie" and meta["tied_embeddings"] is False
    assert meta["tokenizer_report"]["tokens_added"] == 300
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.get_input_embeddings().weight.shape[0] == 32300 == model.config.vocab_size


def test_untied_rows_by_hand_and_old_rows_unchanged(untied):
    base, out = untied
    before, after = weights_of(base), weights_of(out)
    for name in ("model.embed_tokens.weight", "lm_head.weight"):
        assert torch.equal(after[name][:32000], before[name])  # bit for bit
    pieces, base_tok = pieces_of(base, out)
    byte_tokens = {i for i, t in enumerate(base_tok.convert_ids_to_tokens(list(range(32000)))) if t.startswith("<0x")}
    only_bytes = next(i for i, p in pieces.items() if all(x in byte_tokens for x in p) and len(p) == 3)
    ordinary = next(i for i, p in pieces.items() if not any(x in byte_tokens for x in p) and len(p) >= 2)
    for token_id in (only_bytes, ordinary):
        p = pieces[token_id]
        w = torch.tensor([0.8**i for i in range(len(p))])
        w /= w.sum()
        for name in ("model.embed_tokens.weight", "lm_head.weight"):  # zip-tie, untied: both rows, same weights
            assert torch.allclose(after[name][token_id], (w[:, None] * before[name][p]).sum(dim=0), atol=1e-6)


def test_untied_logits_on_old_text_equal_the_base_and_it_generates(untied):
    base, out = untied
    base_model, new_model = AutoModelForCausalLM.from_pretrained(base), AutoModelForCausalLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    ids = tok(ENGLISH, return_tensors="pt").input_ids
    with torch.no_grad():
        old, new = base_model(ids).logits, new_model(ids).logits
    assert new.shape[-1] == 32300
    assert torch.allclose(new[..., :32000], old, atol=1e-5)
    prompt = tok("台灣的", return_tensors="pt")
    generated = new_model.generate(**prompt, max_new_tokens=5, do_sample=False)
    assert generated.shape[1] == prompt.input_ids.shape[1] + 5


def test_tied_base_stays_tied_and_uses_the_same_weights(tmp_path):
    base = tiny_llama(tmp_path / "base", "smollm2-135m-instruct", tied=True)
    result = extend(tmp_path, base, [DEMO_DATA / "tc_corpus.txt"], new_tokens=200)
    assert result.code == 0, result.stderr
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    assert model.get_output_embeddings().weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    before = weights_of(base)["model.embed_tokens.weight"]
    after = model.get_input_embeddings().weight.detach()
    assert torch.equal(after[:49152], before)
    pieces, _ = pieces_of(base, tmp_path / "out")
    three = next(i for i, p in pieces.items() if len(p) == 3)
    w = torch.tensor(piece_weights([3], 0.8)[0])
    assert torch.allclose(after[three], (w[:, None] * before[pieces[three]]).sum(dim=0), atol=1e-6)
    assert w[0] > w[1] > w[2]


def test_padding_rows_are_never_reachable(tmp_path, mistral_model):
    base = tiny_llama(tmp_path / "base", str(mistral_model))
    result = extend(tmp_path, base, [DEMO_DATA / "tc_corpus.txt"], new_tokens=100, new_rows={"pad_to_multiple_of": 64})
    assert result.code == 0, result.stderr
    meta = json.loads((tmp_path / "out" / "bailong_extension.json").read_text())
    assert meta["embedding_rows"] == 32128 and meta["vocab_size"] == 32100
    tok = AutoTokenizer.from_pretrained(tmp_path / "out")
    assert max(tok.get_vocab().values()) == 32099


def test_padded_base_is_aligned(tmp_path, mistral_model):
    base = tiny_llama(tmp_path / "base", str(mistral_model), vocab_size=32064)
    result = extend(tmp_path, base, [DEMO_DATA / "tc_corpus.txt"], new_tokens=100)
    assert result.code == 0, result.stderr
    meta = json.loads((tmp_path / "out" / "bailong_extension.json").read_text())
    assert meta["embedding_rows_before"] == 32064 and meta["new_token_ids"][0] == 32000
    assert meta["embedding_rows"] == 32100


def test_model_smaller_than_its_tokenizer(tmp_path, mistral_model):
    base = tiny_llama(tmp_path / "base", str(mistral_model), vocab_size=31968)
    result = extend(tmp_path, base, [DEMO_DATA / "tc_corpus.txt"], new_tokens=50)
    assert result.code == 2
    assert "the model has 31968 embedding rows but its tokenizer has 32000 tokens" in result.stderr
    assert not (tmp_path / "out").exists()


def test_tokenizer_not_an_extension_of_the_model(tmp_path, mistral_model):
    base = tiny_llama(tmp_path / "base", str(mistral_model))
    result = extend(tmp_path, base, [DEMO_DATA / "tc_corpus.txt"], new_tokens=50)
    assert result.code == 0
    cfg_model = {"name_or_path": str(base), "tokenizer": "smollm2-135m-instruct"}
    cfg = {
        "model": cfg_model,
        "data": {"files": [str(DEMO_DATA / "tc_corpus.txt")]},
        "vocab": {"new_tokens": 50},
        "output_dir": str(tmp_path / "other"),
    }
    result = run_cli("extend-vocab", write_config(tmp_path / "c2.yaml", cfg))
    assert result.code == 2 and "is not an extension of" in result.stderr
    assert not (tmp_path / "other").exists()


@pytest.mark.parametrize("init", ["zip-tie", "subword-mean", "mean", "random"])
def test_each_method_on_small_matrices(init):
    from bailong.config import NewRowsConfig
    from bailong.vocab.init import initialize_new_rows

    torch.manual_seed(0)
    embed, head = torch.randn(20, 8), torch.randn(20, 8)
    old_embed, old_head = embed[:16].clone(), head[:16].clone()
    pieces = [[3, 7, 9], [1], [4, 4, 2, 0]]
    cfg = NewRowsConfig(init=init, output_row="first")
    initialize_new_rows(embed, head, [16, 17, 18], pieces, cfg, init_std=0.02)
    assert torch.equal(embed[:16], old_embed) and torch.equal(head[:16], old_head)
    if init == "zip-tie":
        w = torch.tensor([1.0, 0.8, 0.64]) / 2.44
        assert torch.allclose(embed[16], (w[:, None] * old_embed[[3, 7, 9]]).sum(0), atol=1e-6)
        assert torch.equal(head[16], old_head[3]) and torch.equal(head[18], old_head[4])  # output_row: first
    elif init == "subword-mean":
        assert torch.allclose(embed[18], old_embed[[4, 4, 2, 0]].mean(0), atol=1e-6)
        assert torch.allclose(head[16], old_head[[3, 7, 9]].mean(0), atol=1e-6)
    elif init == "mean":
        assert torch.allclose(embed[16:19], old_embed.mean(0).expand(3, 8), atol=0.05)
    else:
        assert embed[16:19].abs().max() < 0.2 and embed[16:19].std() > 0.005


@pytest.mark.parametrize("init", ["zip-tie", "subword-mean"])
def test_norm_correction_rescales_to_the_scripts_median_norm(init):
    from bailong.config import NewRowsConfig
    from bailong.vocab.init import initialize_new_rows, piece_weights

    torch.manual_seed(0)
    embed = torch.randn(8, 4)
    embed[:3] *= 5  # the Han tokens' rows are long, the Latin ones short
    old = embed[:6].clone()
    base_texts = ["台", "灣", "學", "a", "b", "\ufffd"]  # a byte token decodes to no letter
    new_texts = ["台灣", "ab"]
    initialize_new_rows(embed, None, [6, 7], [[0, 1], [3, 4]], NewRowsConfig(init=init, norm="script"), 0.02,
                        texts=(base_texts, new_texts))  # fmt: skip
    assert torch.equal(embed[:6], old)
    han, latin = old[:3].norm(dim=1).median(), old[3:5].norm(dim=1).median()
    assert torch.allclose(embed[6].norm(), han) and torch.allclose(embed[7].norm(), latin)
    decay = 0.8 if init == "zip-tie" else 1.0
    w = torch.tensor(piece_weights([2], decay)[0])
    direction = (w[:, None] * old[[0, 1]]).sum(0)
    assert torch.allclose(embed[6] / embed[6].norm(), direction / direction.norm(), atol=1e-6)
