"""k-bit training without peft's fp32 upcast: the residual stream stays in the compute dtype (bf16), what trains is
fp32, the loss stays close to the upcast path's, and training lowers the loss in every embedding mode."""

import pytest
import torch

from bailong.config import EmbeddingTrainingConfig, LoraConfig, ModelConfig, QuantizationConfig
from bailong.loading import load_model
from bailong.loading.adapters import adapter_options, model_with_fresh_adapter
from bailong.training.chunked_loss import causal_lm_loss
from helpers import MISTRAL_V1, tiny_llama

LORA = LoraConfig(r=8, alpha=16, dropout=0.0)
NEW_IDS = list(range(31_900, 32_000))
NF4 = QuantizationConfig(mode="nf4")


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return tiny_llama(tmp_path_factory.mktemp("kbit") / "base", str(MISTRAL_V1))


def bf16_model(base, mode):
    torch.manual_seed(0)
    cfg = ModelConfig(name_or_path=str(base), device="cpu", dtype="bfloat16")
    return model_with_fresh_adapter(cfg, NF4, LORA, EmbeddingTrainingConfig(train=mode), NEW_IDS, True)


def batch():
    torch.manual_seed(1)
    ids = torch.randint(0, 32_000, (2, 32))
    ids[:, ::4] = NEW_IDS[0]
    return {"input_ids": ids, "labels": ids.clone()}


@pytest.mark.parametrize("mode", ["lora", "new-rows", "full", "frozen"])
def test_hidden_states_stay_in_the_compute_dtype_and_training_lowers_the_loss(base, mode):
    model = bf16_model(base, mode)
    model.train()
    frozen = {p.dtype for p in model.parameters() if not p.requires_grad}
    assert torch.float32 not in frozen, frozen  # no upcast of embeddings, LM head or norms
    assert {p.dtype for p in model.parameters() if p.requires_grad} <= {torch.float32}  # master copies
    layer_dtypes = []
    for layer in model.get_base_model().model.layers:
        layer.register_forward_hook(
            lambda m, a, out: layer_dtypes.append(out[0].dtype if isinstance(out, tuple) else out.dtype)
        )
    inputs = batch()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-2) if params else None
    losses = []
    for _ in range(4):
        loss = causal_lm_loss(model, inputs)
        losses.append(loss.item())
        if optimizer:
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    assert layer_dtypes and set(layer_dtypes) == {torch.bfloat16}
    if mode == "frozen":  # LoRA on the projections only still trains
        assert losses[-1] < losses[0]
    else:
        assert losses[-1] < losses[0] - 0.05, losses


def test_loss_matches_the_fp32_upcast_path_within_one_percent(base):
    """The same adapter on peft's fp32-upcast preparation: the bf16 residual stream changes the loss by < 1%."""
    from peft import prepare_model_for_kbit_training

    from bailong.loading.adapters import attach_lora

    ours = bf16_model(base, "lora")
    torch.manual_seed(0)
    cfg = ModelConfig(name_or_path=str(base), device="cpu", dtype="bfloat16")
    upcast = prepare_model_for_kbit_training(load_model(cfg, NF4), use_gradient_checkpointing=False)
    assert upcast.get_input_embeddings().weight.dtype == torch.float32  # peft's upcast, which we leave out
    upcast = attach_lora(upcast, LORA, **adapter_options(upcast, LORA, EmbeddingTrainingConfig(train="lora"), None))
    upcast.load_state_dict(ours.state_dict(), strict=False)
    with torch.no_grad():
        for model in (ours, upcast):  # move LoRA off its zero start so the adapter matters
            torch.manual_seed(2)
            for _name, param in sorted(model.named_parameters()):
                if param.requires_grad:
                    param.add_(torch.randn_like(param) * 0.02)
        mine, theirs = causal_lm_loss(ours, batch()).item(), causal_lm_loss(upcast, batch()).item()
    assert abs(mine - theirs) / theirs < 0.01, (mine, theirs)
