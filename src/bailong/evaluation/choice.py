"""The `choice` task: multiple choice scored by log-likelihood, zero- or k-shot, accuracy per subject.

`text` scoring compares the log-likelihood of each choice's text after the question (per character, so long choices
are not penalised for their length); `letter` scoring lists the lettered choices and compares the likelihood of
each letter as the answer.
"""

from __future__ import annotations

import inspect
import string
from collections import defaultdict

import torch
from tqdm.auto import tqdm

from bailong.config import ChoiceTask
from bailong.console import is_main_process
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
    """Sum of log-probabilities of each continuation given its context. Each context runs once for all the
    continuations that share it, `batch_size` contexts per forward: a continuation's first token (a letter's only
    one) is read from the context's last logits, the rest of all the batch's continuations run together from the
    contexts' KV cache."""
    encoded = encode_pairs(tokenizer, pairs)
    sharing: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for n, (context, continuation) in enumerate(encoded):
        if continuation:  # an empty continuation has log-likelihood 0
            sharing[context].append(n)
    contexts = sorted(sharing, key=len, reverse=True)  # similar lengths batch together: less padding
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    scores = [0.0] * len(pairs)
    steps = range(0, len(contexts), batch_size)
    for i in tqdm(steps, desc="multiple choice", unit="batch", mininterval=1.0, disable=not is_main_process()):
        batch = contexts[i : i + batch_size]
        continuations = [[encoded[n][1] for n in sharing[context]] for context in batch]
        for context, row in zip(batch, _score_batch(model, batch, continuations, pad)):
            for n, score in zip(sharing[context], row):
                scores[n] = score
    return scores


def _score_batch(model, contexts: list[tuple[int, ...]], continuations: list[list[list[int]]], pad: int):
    """For each context (right-padded into one batch), the log-likelihoods of its continuations."""
    device = next(model.parameters()).device
    width = max(len(c) for c in contexts)
    ids = torch.tensor([list(c) + [pad] * (width - len(c)) for c in contexts], device=device)
    mask = torch.tensor([[1] * len(c) + [0] * (width - len(c)) for c in contexts], device=device)
    # Only the positions some row ends at go through the LM head (the full vocabulary at every position is the bulk).
    keep, row_keep = torch.unique(torch.tensor([len(c) - 1 for c in contexts], device=device), return_inverse=True)
    longer = [(row, k) for row, tails in enumerate(continuations) for k, tail in enumerate(tails) if len(tail) > 1]
    out = model(input_ids=ids, attention_mask=mask, logits_to_keep=keep, use_cache=bool(longer))
    first = torch.log_softmax(out.logits[torch.arange(len(contexts), device=device), row_keep].float(), dim=-1)
    scores = [[first[row, tail[0]].item() for tail in tails] for row, tails in enumerate(continuations)]
    if not longer:
        return scores
    # Each longer continuation gets its context's cache row; its tokens but the last go in after the context's
    # padding, at the positions right after the context's own tokens (the mask hides the padding between).
    keyword = _cache_keyword(model)
    cache = getattr(out, keyword)
    rows = torch.tensor([row for row, _ in longer], device=device)
    cache.batch_select_indices(rows)
    tails = [continuations[row][k] for row, k in longer]
    span = max(len(t) for t in tails) - 1
    tail_ids = torch.tensor([t[:-1] + [pad] * (span - len(t) + 1) for t in tails], device=device)
    tail_mask = torch.tensor([[1] * (len(t) - 1) + [0] * (span - len(t) + 1) for t in tails], device=device)
    positions = torch.tensor([[len(contexts[row]) + j for j in range(span)] for row, _ in longer], device=device)
    logits = model(
        input_ids=tail_ids,
        attention_mask=torch.cat([mask[rows], tail_mask], dim=1),
        position_ids=positions,
        use_cache=True,
        **{keyword: cache},
    ).logits
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    for i, ((row, k), tail) in enumerate(zip(longer, tails)):
        targets = torch.tensor(tail[1:], device=device)[:, None]
        scores[row][k] += logprobs[i, : len(tail) - 1].gather(1, targets).sum().item()
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
