"""The causal-LM loss without the logits of the whole batch: the LM head's cross-entropy, chunk by chunk over tokens.

The head is whatever module the model calls (a plain `lm_head`, peft's LoRA layer on it, trainable new rows, a fully
trained copy), so everything that trains of it gets its gradient. Fused losses that read `lm_head.weight` directly
(Liger-kernel's, unsloth's) skip a LoRA on `lm_head`; this one cannot, because it calls the module itself.

Each chunk's logits exist only while its loss and gradients are computed in the forward pass; backward then only
scales the stored gradients. Peak extra memory is one chunk's logits (and their gradient), not the batch's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from bailong.inference.head_outputs import chunk_tokens_for, decoder_states, unwrap_causal_lm

IGNORE_INDEX = -100


class ChunkedHeadLoss(torch.autograd.Function):
    """Summed cross-entropy of `head(hidden)` against `labels`; gradients for `hidden` and `params` (the head's
    trainable parameters, passed so autograd returns their gradients)."""

    @staticmethod
    def forward(ctx, hidden, labels, head, chunk_tokens, *params):
        want_hidden = hidden.requires_grad
        wanted = [p for p in params if p.requires_grad]
        grad_hidden = torch.zeros_like(hidden) if want_hidden else None
        grad_params = [torch.zeros_like(p, dtype=torch.promote_types(p.dtype, torch.float32)) for p in wanted]
        wide = torch.promote_types(hidden.dtype, torch.float32)  # logits and sums in fp32 at least
        total = torch.zeros((), dtype=wide, device=hidden.device)
        for start in range(0, hidden.shape[0], chunk_tokens):
            part = hidden[start : start + chunk_tokens].detach().requires_grad_(want_hidden)
            inputs = ([part] if want_hidden else []) + wanted
            with torch.set_grad_enabled(bool(inputs)):
                logits = head(part)
            loss, grad_logits = _cross_entropy_and_grad(
                logits.detach(), labels[start : start + chunk_tokens], wide, bool(inputs)
            )
            if inputs:
                grads = torch.autograd.grad(logits, inputs, grad_logits.to(logits.dtype), allow_unused=True)
                if want_hidden:
                    grad_hidden[start : start + chunk_tokens] = grads[0]
                    grads = grads[1:]
                for acc, grad in zip(grad_params, grads):
                    if grad is not None:
                        acc += grad
            total += loss
            del logits, grad_logits
        ctx.wanted = [p.requires_grad for p in params]
        ctx.param_dtypes = [p.dtype for p in wanted]
        ctx.save_for_backward(*([grad_hidden] if want_hidden else []), *grad_params)
        ctx.want_hidden = want_hidden
        return total

    @staticmethod
    def backward(ctx, grad_output):
        saved = list(ctx.saved_tensors)
        grad_hidden = None
        if ctx.want_hidden:
            grad_hidden = saved.pop(0)
            grad_hidden = grad_hidden * grad_output.to(grad_hidden.dtype)
        grads = iter((g * grad_output).to(dtype) for g, dtype in zip(saved, ctx.param_dtypes))
        return (grad_hidden, None, None, None, *[next(grads) if w else None for w in ctx.wanted])


def _cross_entropy_and_grad(logits, labels, wide, need_grad: bool = True):
    """Summed cross-entropy of one chunk and its gradient (softmax minus one-hot, zero on ignored rows), written
    in place over one log-softmax buffer: two vocabulary-wide buffers a chunk where autograd's would keep four."""
    log_probs = torch.log_softmax(logits, dim=-1, dtype=wide)
    valid = labels != IGNORE_INDEX
    targets = labels.clamp(min=0).unsqueeze(1)
    loss = -(log_probs.gather(1, targets).squeeze(1) * valid).sum()
    if not need_grad:
        return loss, None
    grad = log_probs.exp_()
    grad.scatter_add_(1, targets, torch.full_like(targets, -1, dtype=grad.dtype))
    grad.mul_(valid.unsqueeze(1).to(grad.dtype))
    return loss, grad


def chunked_head_loss(hidden, labels, head, *, num_items_in_batch=None, chunk_tokens: int = 512):
    """The mean (or, with `num_items_in_batch`, the sum over that many items, as transformers' loss does under
    gradient accumulation) next-token cross-entropy of `head` on `hidden` (batch, seq, dim) against `labels`
    (batch, seq), shifted by one as causal LMs' labels are. Positions labelled -100 are skipped before the head."""
    targets = F.pad(labels, (0, 1), value=IGNORE_INDEX)[..., 1:].reshape(-1)
    keep = targets != IGNORE_INDEX
    rows = hidden.reshape(-1, hidden.shape[-1])[keep]
    params = [p for p in head.parameters() if p.requires_grad] if torch.is_grad_enabled() else []
    total = ChunkedHeadLoss.apply(rows, targets[keep], head, chunk_tokens, *params)
    if num_items_in_batch is None:
        return total / keep.sum().clamp(min=1)
    if torch.is_tensor(num_items_in_batch):
        num_items_in_batch = num_items_in_batch.to(total.device)
    return total / num_items_in_batch


def causal_lm_loss(model, inputs: dict, num_items_in_batch=None, *, chunk_tokens: int | None = None):
    """Runs `model` (wrapped or not: the call goes through its wrappers, as DDP needs) on `inputs` without its own
    loss and with logits for the last position only, and returns the chunked loss on the decoder's output."""
    base = unwrap_causal_lm(model)
    labels = inputs["labels"]
    states = decoder_states(model, **{k: v for k, v in inputs.items() if k != "labels"})
    return chunked_head_loss(
        states,
        labels,
        base.get_output_embeddings(),
        num_items_in_batch=num_items_in_batch,
        chunk_tokens=chunk_tokens or chunk_tokens_for(base.config.vocab_size),
    )
