"""The `choice` task: multiple choice scored by log-likelihood, zero- or k-shot, accuracy per subject.

`text` scoring compares the log-likelihood of each choice's text after the question (per character, so long choices
are not penalised for their length); `letter` scoring lists the lettered choices and compares the likelihood of
each letter as the answer.
"""

from __future__ import annotations

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


@torch.no_grad()
def log_likelihoods(model, tokenizer, pairs: list[tuple[str, str]], batch_size: int) -> list[float]:
    """Sum of log-probabilities of each continuation given its context (tokenized together, as generated)."""
    device = next(model.parameters()).device
    encoded, contexts = [], {}
    for context, continuation in pairs:
        if context not in contexts:  # the choices of a question share its (few-shot) prompt
            contexts[context] = tokenizer(context)["input_ids"]
        context_ids = contexts[context]
        whole = tokenizer(context + continuation)["input_ids"]
        start = len(context_ids) if whole[: len(context_ids)] == context_ids else len(context_ids) - 1
        encoded.append((whole, max(1, start)))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    scores = []
    for i in range(0, len(encoded), batch_size):
        batch = encoded[i : i + batch_size]
        width = max(len(ids) for ids, _ in batch)
        ids = torch.tensor([x + [pad] * (width - len(x)) for x, _ in batch], device=device)
        mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x, _ in batch], device=device)
        logprobs = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits.float(), dim=-1)
        for row, (x, start) in enumerate(batch):
            targets = torch.tensor(x[start:], device=device)
            scores.append(logprobs[row, start - 1 : len(x) - 1].gather(1, targets[:, None]).sum().item())
    return scores


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
