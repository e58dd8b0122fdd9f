"""The chunked LM-head loss against transformers' plain loss, in fp64: loss and every gradient, for every embedding
mode, tied and untied heads, padded labels and gradient accumulation's `num_items_in_batch`."""

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from bailong.config import EmbeddingTrainingConfig, LoraConfig
from bailong.inference.head_outputs import next_token_losses
from bailong.loading.adapters import adapter_options, attach_lora
from bailong.training.chunked_loss import causal_lm_loss, chunked_head_loss

VOCAB, NEW_IDS = 96, list(range(88, 96))


def tiny_model(mode: str, tied: bool):
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=tied,
    )
    model = LlamaForCausalLM(config).double()
    lora = LoraConfig(r=4, alpha=8, dropout=0.0, target_modules=["q_proj", "v_proj"])
    options = adapter_options(model, lora, EmbeddingTrainingConfig(train=mode), NEW_IDS)
    model = attach_lora(model, lora, **options)
    with torch.no_grad():  # LoRA's B starts at zero and new rows at their base values: move every trainable weight
        for param in model.parameters():
            if param.requires_grad:
                param.add_(torch.randn_like(param) * 0.05)
    return model


def batch():
    torch.manual_seed(1)
    ids = torch.randint(0, VOCAB, (3, 17))
    ids[:, 3] = NEW_IDS[0]  # a new token, so its rows get gradients
    labels = ids.clone()
    labels[1, 11:] = -100  # a padded sample
    labels[2, :5] = -100  # a masked prompt
    mask = torch.ones_like(ids)
    mask[1, 11:] = 0
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def plain_loss(model, inputs, num_items):
    """transformers' causal-LM loss (shift, ignore -100, sum / items), kept in fp64: its own upcasts to fp32."""
    logits = model(**{k: v for k, v in inputs.items() if k != "labels"}).logits
    targets = torch.nn.functional.pad(inputs["labels"], (0, 1), value=-100)[:, 1:]
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), targets.reshape(-1), reduction="sum")
    return loss / (num_items if num_items is not None else (targets != -100).sum())


def loss_and_grads(model, compute):
    model.zero_grad(set_to_none=True)
    loss = compute()
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    return loss.detach(), grads


@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("mode", ["lora", "new-rows", "full", "frozen"])
@pytest.mark.parametrize("num_items", [None, 70])
def test_chunked_loss_and_every_gradient_match_the_plain_path(mode, tied, num_items):
    model = tiny_model(mode, tied)
    inputs = batch()
    extra = {} if num_items is None else {"num_items_in_batch": torch.tensor(num_items)}
    plain, plain_grads = loss_and_grads(model, lambda: plain_loss(model, inputs, num_items))
    with torch.no_grad():  # the reference is transformers' own loss, up to its fp32 upcast
        assert torch.allclose(model(**inputs, **extra).loss.double(), plain, rtol=1e-6)
    chunked, chunked_grads = loss_and_grads(
        model, lambda: causal_lm_loss(model, inputs, extra.get("num_items_in_batch"), chunk_tokens=5)
    )
    assert torch.allclose(plain, chunked, rtol=1e-10, atol=0), (plain, chunked)
    assert plain_grads.keys() == chunked_grads.keys()
    head_grads = [n for n in plain_grads if "lm_head" in n or (tied and "embed_tokens" in n)]
    assert head_grads or mode == "frozen"  # the head's own trainable weights are compared too
    for name, grad in plain_grads.items():
        assert grad.abs().sum() > 0, name
        assert torch.allclose(grad, chunked_grads[name], rtol=1e-9, atol=1e-12), name


def test_ignored_positions_never_reach_the_head_and_all_ignored_is_zero():
    calls = []
    head = torch.nn.Linear(8, 11, bias=False).double()
    head.register_forward_hook(lambda m, a, o: calls.append(a[0].shape[0]))
    hidden = torch.randn(2, 6, 8, dtype=torch.float64, requires_grad=True)
    labels = torch.full((2, 6), -100)
    labels[0, 2:4] = 3  # two targets, predicted from positions 1 and 2
    loss = chunked_head_loss(hidden, labels, head, chunk_tokens=1)
    loss.backward()
    assert calls == [1, 1]
    assert hidden.grad[0, [1, 2]].abs().sum() > 0 and hidden.grad[0, [0, 3, 4, 5]].abs().sum() == 0
    calls.clear()
    empty = chunked_head_loss(hidden.detach(), torch.full((2, 6), -100), head)
    assert empty.item() == 0 and calls == []


def test_under_no_grad_the_loss_is_the_same_and_nothing_is_differentiated():
    """Evaluation runs under no_grad: same loss, and the head is called without building a graph."""
    head = torch.nn.Linear(8, 11, bias=False).double()
    graphs = []
    head.register_forward_hook(lambda m, a, out: graphs.append(out.requires_grad))
    hidden, labels = torch.randn(2, 6, 8, dtype=torch.float64), torch.randint(0, 11, (2, 6))
    with_grad = chunked_head_loss(hidden, labels, head, chunk_tokens=4)
    with torch.no_grad():
        without = chunked_head_loss(hidden, labels, head, chunk_tokens=4)
    assert torch.equal(with_grad.detach(), without) and graphs == [True, True, True, False, False, False]


def test_the_trainer_computes_its_loss_chunked_and_equal_to_the_plain_path(tmp_path):
    from transformers import TrainingArguments

    from bailong.data import TrainingData
    from bailong.training.trainer import BailongTrainer

    model = tiny_model("lora", tied=False)
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none")
    trainer = BailongTrainer(model=model, args=args, data=TrainingData([], None, 0, None), chunked_loss=True)
    assert trainer.chunked_loss  # a peft-wrapped Llama qualifies
    calls = []
    model.get_base_model().lm_head.register_forward_hook(lambda m, a, out: calls.append(a[0].shape))
    inputs = batch()
    loss = trainer.compute_loss(model, inputs, num_items_in_batch=torch.tensor(70))
    assert calls[0][:-1] == (3, 1)  # the model's own head ran on the last position only
    assert torch.allclose(loss, plain_loss(model, inputs, 70), rtol=1e-10)


@pytest.mark.parametrize("mode", ["lora", "full"])
def test_next_token_losses_chunk_by_chunk_equal_the_full_logits(mode):
    """eval's bits per character scores windows through the chunked head: the same per-token losses as full logits."""
    model = tiny_model(mode, tied=False).eval()
    ids = batch()["input_ids"][:1]
    with torch.no_grad():
        full = torch.nn.functional.cross_entropy(model(input_ids=ids).logits[0, :-1], ids[0, 1:], reduction="none")
    chunked = next_token_losses(model, ids, chunk_tokens=5)
    assert chunked.shape == full.shape
    assert torch.allclose(chunked, full.float(), atol=1e-6)
