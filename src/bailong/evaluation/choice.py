"""The `choice` task: multiple choice scored by log-likelihood, zero- or k-shot, accuracy per subject.

`text` scoring compares the log-likelihood of each choice's text after the question (per character, so long choices
are not penalised for their length); `letter` scoring lists the lettered choices and compares the likelihood of
each letter as the answer.
"""

from __future__ import annotations

import copy
import inspect
import string
from collections import defaultdict

import torch

from bailong.config import ChoiceTask
from bailong.data import RecordReader
from bailong.errors import BailongError

LETTERS = string.ascii_uppercase


def load_questions(path: str, limit: int | None = None) -> list[dict]:
    questions = []
    for where, q in RecordReader().records(path):
        choices = q.get("choices") if isinstance(q, dict) else None
        if (
            not isinstance(q, dict)
            or not isinstance(q.get("question"), str)
            or not isinstance(choices, list)
            or len(choices) < 2
            or not all(isinstance(c, str) for c in choices)
        ):
            raise BailongError(f"{where}: expected {{question, choices: [2+ strings], answer: letter, subject?}}")
        if q.get("answer") not in LETTERS[: len(choices)]:
            raise BailongError(f"{where}: answer {q.get('answer')!r} is not one of {LETTERS[: len(choices)]}")
        questions.append(q)
        if limit and len(questions) == limit:
            break
    if not questions:
        raise BailongError(f"{path}: no questions")
    return questions


def prompt(q: dict, lettered: bool) -> str:
    text = f"問題：{q['question'].strip()}\n"
    if lettered:
        text += "".join(f"{LETTERS[i]}. {c.strip()}\n" for i, c in enumerate(q["choices"]))
    return text + "答案："


def continuations(q: dict, lettered: bool) -> list[str]:
    return [f" {LETTERS[i]}" if lettered else f" {c.strip()}" for i, c in enumerate(q["choices"])]


def few_shot_prefix(examples: list[dict], lettered: bool) -> str:
    parts = []
    for q in examples:
        answer = LETTERS.index(q["answer"])
        parts.append(prompt(q, lettered) + continuations(q, lettered)[answer] + "\n\n")
    return "".join(parts)


def encode_pairs(tokenizer, pairs: list[tuple[str, str]]) -> list[tuple[tuple[int, ...], list[int]]]:
    """Each (context, continuation) as (context tokens, continuation tokens), tokenized together as generated text
    is: where the pair's tokens cross the boundary (a merge), the context's last token goes to the continuation."""
    encoded, contexts = [], {}
    for context, continuation in pairs:
        if context not in contexts:  # the choices of a question share its (few-shot) prompt
            contexts[context] = tokenizer(context)["input_ids"]
        context_ids = contexts[context]
        whole = tokenizer(context + continuation)["input_ids"]
        start = len(context_ids) if whole[: len(context_ids)] == context_ids else len(context_ids) - 1
        start = max(1, start)
        encoded.append((tuple(whole[:start]), whole[start:]))
    return encoded


@torch.no_grad()
def log_likelihoods(model, tokenizer, pairs: list[tuple[str, str]], batch_size: int) -> list[float]:
    """Sum of log-probabilities of each continuation given its context. A context is run once for all the
    continuations that share it: single tokens (letters) are read from its last logits, longer ones run from its
    KV cache."""
    encoded = encode_pairs(tokenizer, pairs)
    sharing: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for n, (context, continuation) in enumerate(encoded):
        if continuation:  # an empty continuation has log-likelihood 0
            sharing[context].append(n)
    scores = [0.0] * len(pairs)
    single = [c for c, members in sharing.items() if all(len(encoded[n][1]) == 1 for n in members)]
    longer = [c for c in sharing if any(len(encoded[n][1]) > 1 for n in sharing[c])]
    single.sort(key=len, reverse=True)  # similar lengths batch together: less padding
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    for i in range(0, len(single), batch_size):
        batch = single[i : i + batch_size]
        for context, logprobs in zip(batch, _last_logprobs(model, batch, pad)):
            for n in sharing[context]:
                scores[n] = logprobs[encoded[n][1][0]].item()
    for context in longer:
        members = sharing[context]
        continuations = [encoded[n][1] for n in members]
        for n, score in zip(members, _continuations_from_cache(model, context, continuations, pad, batch_size)):
            scores[n] = score
    return scores


def _last_logprobs(model, contexts: list[tuple[int, ...]], pad: int) -> torch.Tensor:
    """The next-token log-probabilities after each context (right-padded into one batch)."""
    device = next(model.parameters()).device
    width = max(len(c) for c in contexts)
    ids = torch.tensor([list(c) + [pad] * (width - len(c)) for c in contexts], device=device)
    mask = torch.tensor([[1] * len(c) + [0] * (width - len(c)) for c in contexts], device=device)
    lasts = torch.tensor([len(c) - 1 for c in contexts], device=device)
    # Only the positions some row ends at go through the LM head (the full vocabulary at every position is the bulk).
    keep, row_keep = torch.unique(lasts, return_inverse=True)
    logits = model(input_ids=ids, attention_mask=mask, logits_to_keep=keep).logits
    return torch.log_softmax(logits[torch.arange(len(contexts), device=device), row_keep].float(), dim=-1)


def _continuations_from_cache(
    model, context: tuple[int, ...], continuations: list[list[int]], pad: int, batch_size: int
) -> list[float]:
    """Sum of log-probabilities of each continuation after one context: the context runs once, its KV cache is
    repeated over a batch of continuations, which run together (right-padded) from it."""
    device = next(model.parameters()).device
    keyword = _cache_keyword(model)
    out = model(input_ids=torch.tensor([list(context)], device=device), use_cache=True, logits_to_keep=1)
    first = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
    scores = [first[c[0]].item() for c in continuations]
    for i in range(0, len(continuations), batch_size):
        batch = continuations[i : i + batch_size]
        width = max(len(c) for c in batch) - 1
        if width == 0:
            continue
        cache = copy.deepcopy(getattr(out, keyword))  # repeating a cache works in place; the next batch needs it whole
        cache.batch_repeat_interleave(len(batch))
        # Input: each continuation but its last token; targets: each but its first (scored from the context above).
        ids = torch.tensor([c[:-1] + [pad] * (width - len(c) + 1) for c in batch], device=device)
        mask = [[1] * (len(context) + len(c) - 1) + [0] * (width - len(c) + 1) for c in batch]
        mask = torch.tensor(mask, device=device)
        logits = model(input_ids=ids, attention_mask=mask, use_cache=True, **{keyword: cache}).logits
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        for row, c in enumerate(batch):
            targets = torch.tensor(c[1:], device=device)[:, None]
            scores[i + row] += logprobs[row, : len(c) - 1].gather(1, targets).sum().item()
    return scores


def _cache_keyword(model) -> str:
    """The forward argument (and output field) of the KV cache: transformers 5 renamed `past_key_values` to `cache`."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def run_choice(task: ChoiceTask, model, tokenizer) -> dict:
    questions = load_questions(task.file, task.limit)
    lettered = task.scoring == "letter"
    prefix = few_shot_prefix(load_questions(task.dev_file)[: task.shots], lettered) if task.shots else ""
    pairs, owners = [], []
    for n, q in enumerate(questions):
        for continuation in continuations(q, lettered):
            pairs.append((prefix + prompt(q, lettered), continuation))
            owners.append(n)
    was_training = model.training
    model.eval()
    scores = log_likelihoods(model, tokenizer, pairs, task.batch_size)
    model.train(was_training)
    per_question = defaultdict(list)
    for n, (score, (_, continuation)) in zip(owners, zip(scores, pairs)):
        per_question[n].append(score if lettered else score / max(1, len(continuation.strip())))
    right, total = defaultdict(int), defaultdict(int)
    for n, q in enumerate(questions):
        picked = max(range(len(per_question[n])), key=per_question[n].__getitem__)
        subject = q.get("subject", "all")
        total[subject] += 1
        right[subject] += int(LETTERS[picked] == q["answer"])
    return {
        "accuracy": sum(right.values()) / len(questions),
        "questions": len(questions),
        "per_subject": {s: right[s] / total[s] for s in sorted(total)},
        "chance": sum(1 / len(q["choices"]) for q in questions) / len(questions),
        "scoring": task.scoring,
        "shots": task.shots,
    }
