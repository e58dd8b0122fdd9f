"""The `judge` task: answers generated turn by turn with the model's chat template, graded by an LLM judge through
an OpenAI-compatible endpoint (single answer, against a reference, multi-turn), plus language consistency.

Answers go to `answers.jsonl` and judgments to `judgments.jsonl` as they are made, so an interrupted evaluation
picks up where it stopped: nothing is generated or judged twice, nothing is lost.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from bailong.artifacts import ANSWERS_FILE, JUDGMENTS_FILE, append_jsonl
from bailong.config import JudgeTask
from bailong.data import RecordReader
from bailong.errors import BailongError
from bailong.evaluation.judge_client import JudgeClient, judge_all, read_judgments
from bailong.evaluation.judge_prompts import render_messages
from bailong.evaluation.language import consistency_rate, expected_language

REFERENCE_CATEGORIES = {"math", "reasoning", "coding"}


def _jsonl(path: str) -> list[tuple[str, dict]]:
    return list(RecordReader().records(path))


def load_bench(path: str, limit: int | None = None, references: str | None = None) -> list[dict]:
    """Questions {question_id, category, turns: [1 or 2 strings], reference?: [...]}, references merged in."""
    refs = {}
    if references:
        for _, row in _jsonl(references):  # FastChat answer format
            refs[row.get("question_id")] = row.get("choices", [{}])[0].get("turns")
    questions = []
    for where, q in _jsonl(path):
        turns = q.get("turns") if isinstance(q, dict) else None
        if (
            not isinstance(turns, list)
            or not 1 <= len(turns) <= 2
            or not all(isinstance(t, str) for t in turns)
            or "question_id" not in q
        ):
            raise BailongError(f"{where}: expected {{question_id, category, turns: [one or two strings]}}")
        q = {**q, "category": q.get("category", "general")}
        if q["question_id"] in refs and not q.get("reference"):
            q["reference"] = refs[q["question_id"]]
        questions.append(q)
    if not questions:
        raise BailongError(f"{path}: no questions")
    return questions[:limit] if limit else questions


def read_answers(path: Path, model_name: str) -> dict:
    done = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a kill: that answer is generated again
            if row.get("model") == model_name:
                done[row["question_id"]] = row
    return done


def generate_answers(bot, model_name: str, questions: list[dict], task: JudgeTask, path: Path) -> dict:
    """{question_id: answer row}; generates only what `path` does not hold yet."""
    from bailong.inference import GenerationSettings

    done = read_answers(path, model_name)
    for q in questions:
        if q["question_id"] in done:
            continue
        temperature = task.temperatures.get(q["category"], task.default_temperature)
        settings = GenerationSettings(max_new_tokens=task.max_new_tokens, temperature=temperature)
        history, answers = [], []
        for turn in q["turns"]:
            history.append({"role": "user", "content": turn})
            answers.append(bot.reply(history, settings))
            history.append({"role": "assistant", "content": answers[-1]})
        row = {
            "model": model_name,
            "question_id": q["question_id"],
            "category": q["category"],
            "turns": answers,
            "temperature": temperature,
        }
        append_jsonl(path, row)
        done[q["question_id"]] = row
    return done


def judge_jobs(model_name: str, questions: list[dict], answers: dict) -> list[dict]:
    jobs = []
    for q in questions:
        got = answers[q["question_id"]]["turns"]
        ref = q.get("reference") if q["category"] in REFERENCE_CATEGORIES else None
        for turn in range(len(q["turns"])):
            if turn == 0:
                kind, fields = "single", {"question": q["turns"][0], "answer": got[0]}
                if ref:
                    kind, fields = "reference", {**fields, "reference": ref[0]}
            else:
                kind = "multi_turn"
                fields = {
                    "question_1": q["turns"][0],
                    "answer_1": got[0],
                    "question_2": q["turns"][1],
                    "answer_2": got[1],
                }
                if ref and len(ref) > 1:
                    kind, fields = "multi_turn_reference", {**fields, "reference_1": ref[0], "reference_2": ref[1]}
            jobs.append(
                {
                    "key": f"{model_name}/{q['question_id']}/{turn + 1}",
                    "model": model_name,
                    "question_id": q["question_id"],
                    "category": q["category"],
                    "turn": turn + 1,
                    "template": kind,
                    "_fields": fields,
                }
            )
    return jobs


def summarize(model_name: str, questions: list[dict], answers: dict, judgments: dict) -> dict:
    by_category, by_turn, scores, failures = defaultdict(list), defaultdict(list), [], 0
    for record in judgments.values():
        if record.get("model") != model_name:
            continue
        if record.get("status") != "ok" or record.get("rating") is None:
            failures += 1
            continue
        scores.append(record["rating"])
        by_category[record["category"]].append(record["rating"])
        by_turn[str(record["turn"])].append(record["rating"])
    pairs = []
    for q in questions:
        expected = q.get("answer_language") or expected_language(q["turns"][0])
        for turn, answer in zip(q["turns"], answers[q["question_id"]]["turns"]):
            pairs.append((turn, answer, expected))
    mean = lambda xs: round(sum(xs) / len(xs), 3) if xs else None  # noqa: E731
    return {
        "mean": mean(scores),
        "judged": len(scores),
        "failures": failures,
        "per_category": {c: mean(v) for c, v in sorted(by_category.items())},
        "per_turn": {t: mean(v) for t, v in sorted(by_turn.items())},
        "language_consistency": consistency_rate(pairs),
    }


def run_judge(task: JudgeTask, bot, model_name: str, client: JudgeClient, templates: dict, out: Path) -> dict:
    questions = load_bench(task.questions, task.limit, task.references)
    answers = generate_answers(bot, model_name, questions, task, out / ANSWERS_FILE)
    jobs = judge_jobs(model_name, questions, answers)
    judgments_path = out / JUDGMENTS_FILE
    progress = judge_all(
        client, jobs, judgments_path, lambda job: render_messages(templates[job["template"]], **job["_fields"])
    )
    keys = {job["key"] for job in jobs}
    judgments = {k: v for k, v in read_judgments(judgments_path).items() if k in keys}
    return {
        "questions": len(questions),
        "newly_judged": progress["done"],
        **summarize(model_name, questions, answers, judgments),
    }
