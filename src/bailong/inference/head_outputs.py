"""The decoder's last hidden states without the logits of the whole sequence, and per-token losses from them chunk
by chunk: what training's chunked loss and eval's bits per character share."""

from __future__ import annotations

import torch

# Logits a chunk: 64 MiB in fp32, 283 tokens of the paper's 59,241-row vocabulary. A chunk's peak is several such
# buffers (peft keeps a LoRA on the head in fp32, so its output and scaled copy are fp32 even in a bf16 model).
CHUNK_LOGITS = 2**24


def chunk_tokens_for(vocab_size: int) -> int:
    return max(16, CHUNK_LOGITS // max(1, vocab_size))


def unwrap_causal_lm(model):
    """The transformers model inside DDP/accelerate and peft wrappers."""
    while hasattr(model, "module"):
        model = model.module
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def supports_chunked_head(model) -> bool:
    """Whether the model's logits are its output embeddings applied to the decoder's last hidden state (no logit
    soft-capping or scaling, which would need the full path)."""
    config = getattr(model, "config", None)
    if config is None or not hasattr(model, "get_decoder") or model.get_output_embeddings() is None:
        return False
    if getattr(config, "final_logit_softcapping", None) or getattr(config, "logit_scale", None) is not None:
        return False
    return getattr(config, "logits_scaling", 1.0) in (None, 1, 1.0)


def decoder_states(model, **inputs) -> torch.Tensor:
    """Runs `model` (wrapped or not: the call goes through its wrappers, as DDP needs) with logits for the last
    position only and returns the decoder's output (batch, seq, hidden), which the LM head turns into logits."""
    captured = []

    def keep_output(module, args, output):
        captured.append(output[0] if isinstance(output, tuple) else output.last_hidden_state)

    handle = unwrap_causal_lm(model).get_decoder().register_forward_hook(keep_output)
    try:
        model(**inputs, logits_to_keep=1, use_cache=False)
    finally:
        handle.remove()
    return captured[-1]


@torch.no_grad()
def next_token_losses(model, input_ids: torch.Tensor, chunk_tokens: int | None = None) -> torch.Tensor:
    """The cross-entropy (nats, fp32) of each next token of `input_ids` (1, seq): seq - 1 values, computed from the
    LM head chunk by chunk where the model allows it, so the full logits never exist at once."""
    targets = input_ids[0, 1:]
    base = unwrap_causal_lm(model)
    if not supports_chunked_head(base):
        logits = model(input_ids=input_ids).logits[0, :-1].float()
        return torch.nn.functional.cross_entropy(logits, targets, reduction="none")
    states = decoder_states(model, input_ids=input_ids)[0, :-1]
    head = base.get_output_embeddings()
    step = chunk_tokens or chunk_tokens_for(base.config.vocab_size)
    parts = [
        torch.nn.functional.cross_entropy(head(states[i : i + step]).float(), targets[i : i + step], reduction="none")
        for i in range(0, states.shape[0], step)
    ]
    return torch.cat(parts)
