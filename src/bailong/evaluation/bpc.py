"""The `bpc` task: bits per character, per-token perplexity and tokens per character on held-out text."""

from __future__ import annotations

import math

import torch
from tqdm.auto import tqdm

from bailong.config import BpcTask, TextDataConfig
from bailong.console import is_main_process
from bailong.data import CorpusReader
from bailong.errors import BailongError
from bailong.inference.head_outputs import next_token_losses


def read_documents(files: list[str], limit: int | None) -> list[str]:
    """One document a line (or record), through the one data reader."""
    docs = []
    for doc in CorpusReader(TextDataConfig.model_construct(files=files, text_field="text", on_bad_record="error")):
        docs.append(doc.strip())
        if limit and len(docs) == limit:
            break
    if not docs:
        raise BailongError(f"bpc task: no text in {', '.join(files)}")
    return docs


@torch.no_grad()
def bits_per_character(model, tokenizer, texts: list[str], max_length: int = 1024, stride: int = 512) -> dict:
    """Bits per character (tokenizer-independent) and per-token perplexity of `texts`, one document each.

    Each document is scored after one start token (BOS, else EOS) so its first token is predicted too; documents
    longer than `max_length` tokens are scored with a sliding window that gives every token at least
    `max_length - stride` tokens of context. The LM head runs chunk by chunk over the window (the whole window's
    logits in fp32 would be 242 MiB at 1,024 tokens and the paper's 59,241-row vocabulary).
    """
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    nll = 0.0
    tokens = chars = 0
    for text in tqdm(texts, desc="bits per character", unit="doc", mininterval=1.0, disable=not is_main_process()):
        ids = [start] + tokenizer(text, add_special_tokens=False)["input_ids"]
        chars += len(text)
        tokens += len(ids) - 1
        scored_until = 1  # positions before this one are already scored (position 0 is never a target)
        for begin in range(0, max(1, len(ids) - 1), stride):
            end = min(begin + max_length, len(ids))
            losses = next_token_losses(model, torch.tensor([ids[begin:end]], device=device))
            first_new = max(scored_until, begin + 1) - (begin + 1)
            nll += losses[first_new:].sum().item()
            scored_until = end
            if end == len(ids):
                break
    model.train(was_training)
    return {
        "bits_per_char": nll / math.log(2) / max(1, chars),
        "perplexity": math.exp(nll / max(1, tokens)),
        "tokens_per_char": tokens / max(1, chars),
        "characters": chars,
        "tokens": tokens,
    }


def run_bpc(task: BpcTask, model, tokenizer) -> dict:
    """Bits per character is the figure to compare models whose tokenizers differ (base vs extended)."""
    docs = read_documents(task.files, task.limit)
    stride = min(task.stride, task.window - 1)
    result = bits_per_character(model, tokenizer, docs, max_length=task.window, stride=stride)
    return {"documents": len(docs), **result}
