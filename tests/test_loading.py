"""The model half of the loading core: sources, 4-bit NF4 with unquantized embeddings, LoRA, adapters, GGUF."""

import pytest
import torch

from bailong.config import LoraConfig, ModelConfig, QuantizationConfig
from bailong.errors import BailongError
from bailong.loading import embedded_gguf, load_model, resolve_source
from helpers import MISTRAL_V1, run_cli, tiny_llama


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_llama(tmp_path_factory.mktemp("tiny") / "base", str(MISTRAL_V1))


def test_sources_are_recognized(tiny):
    assert resolve_source(str(tiny)).kind == "hf_dir"
    assert resolve_source(str(MISTRAL_V1)).kind == "sentencepiece"  # by content: the file is named .model.v1
    gguf = resolve_source(str(embedded_gguf()))
    assert gguf.kind == "gguf" and gguf.gguf_file.endswith(".gguf")
    assert resolve_source("meta-llama/Llama-2-7b-hf").kind == "hub"  # named only; nothing is fetched
    for bad, message in [("./missing-dir", "not found"), ("no-slash-name", "neither a local path nor a hub id")]:
        with pytest.raises(BailongError, match=message):
            resolve_source(bad)


def test_a_mistyped_local_folder_is_not_found_and_a_hub_id_offline_says_so(tiny, monkeypatch):
    """`bailong chat runs/nope`: a folder beside an existing one is a local path, not a hub id to download."""
    result = run_cli("chat", str(tiny.parent / "nope"))
    assert result.code == 2 and "model source not found:" in result.stderr and "huggingface" not in result.stderr
    monkeypatch.chdir(tiny.parent.parent)
    result = run_cli("chat", f"{tiny.parent.name}/nope")  # relative, one slash: shaped like a hub id
    assert result.code == 2 and f"model source not found: {tiny.parent.name}/nope" in result.stderr
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = run_cli("chat", "someone/not-cached-model")
    assert result.code == 2
    assert "offline mode is on (HF_HUB_OFFLINE)" in result.stderr and "unset HF_HUB_OFFLINE" in result.stderr
    with pytest.raises(BailongError, match="is a tokenizer, not a model"):
        load_model(ModelConfig(name_or_path=str(MISTRAL_V1)))


def test_nf4_keeps_embeddings_unquantized_resizes_before_lora(tiny):
    import bitsandbytes as bnb

    model = load_model(
        ModelConfig(name_or_path=str(tiny)), QuantizationConfig(mode="nf4"), vocab_size=32064, lora=LoraConfig(r=8)
    )
    base = model.get_base_model()
    assert isinstance(base.model.layers[0].self_attn.q_proj.base_layer, bnb.nn.Linear4bit)
    assert base.model.layers[0].self_attn.q_proj.base_layer.weight.quant_state.quant_type == "nf4"
    assert (
        type(base.get_input_embeddings()) is torch.nn.Embedding and base.get_input_embeddings().weight.shape[0] == 32064
    )
    assert type(base.lm_head) is torch.nn.Linear and base.lm_head.weight.dtype == torch.float32
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    ids = torch.randint(0, 32064, (2, 16))
    model(input_ids=ids, labels=ids).loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_saved_adapter_loads_back(tiny, tmp_path):
    model = load_model(ModelConfig(name_or_path=str(tiny)), lora=LoraConfig(r=8, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_()  # a trained-looking adapter: B is zero at init
    model.save_pretrained(tmp_path / "adapter")
    model.eval()  # a fresh LoRA model is in training mode: dropout
    ids = torch.randint(0, 32000, (1, 12))
    with torch.no_grad():
        expected = model(input_ids=ids).logits
        loaded = load_model(ModelConfig(name_or_path=str(tiny), adapter=str(tmp_path / "adapter")))
        assert torch.allclose(loaded(input_ids=ids).logits, expected, atol=1e-5)
        plain = load_model(ModelConfig(name_or_path=str(tiny)))
        assert not torch.allclose(plain(input_ids=ids).logits, expected, atol=1e-3)


@pytest.mark.slow
def test_gguf_file_loads_as_a_saveable_model(tmp_path):
    model = load_model(ModelConfig(name_or_path=str(embedded_gguf())))
    assert model.config.tie_word_embeddings and not hasattr(model.config, "quantization_config")
    model.save_pretrained(tmp_path / "saved")
    assert (tmp_path / "saved" / "model.safetensors").exists()
