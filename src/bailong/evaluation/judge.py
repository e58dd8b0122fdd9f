"""The `judge` task: answers generated turn by turn with the model's chat template, graded by an LLM judge through
an OpenAI-compatible endpoint (single answer, against a reference, multi-turn), plus language consistency.

Answers go to `answers.jsonl` and judgments to `judgments.jsonl` as they are made, so an interrupted evaluation
picks up where it stopped: nothing is generated or judged twice, nothing is lost.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import defaultdict
from pathlib import Path

from bailong.artifacts import ANSWERS_FILE, CHECKPOINTS_DIR, JUDGMENTS_FILE, append_jsonl, read_run
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
    questions, first_seen = [], {}
    for where, q in _jsonl(path):
        turns = q.get("turns") if isinstance(q, dict) else None
        if (
            not isinstance(turns, list)
            or not 1 <= len(turns) <= 2
            or not all(isinstance(t, str) for t in turns)
            or "question_id" not in q
        ):
            raise BailongError(f"{where}: expected {{question_id, category, turns: [one or two strings]}}")
        if q["question_id"] in first_seen:
            raise BailongError(
                f"{where}: question_id {q['question_id']!r} repeats {first_seen[q['question_id']]}; answers are kept "
                "by id, so give every question its own id (e.g. prefix the ids of a translated bench)"
            )
        first_seen[q["question_id"]] = where
        q = {**q, "category": q.get("category", "general")}
        if q["question_id"] in refs and not q.get("reference"):
            q["reference"] = refs[q["question_id"]]
        questions.append(q)
    if not questions:
        raise BailongError(f"{path}: no questions")
    return questions[:limit] if limit else questions


def model_identity(name_or_path: str, depth: int = 0) -> str:
    """A digest that changes when the model changes: the resolved path and the name, size and modification time of
    each of its files (checkpoints aside; a run folder's base too), so a model retrained under the same name and
    path is not taken for the old one. A hub id is its name."""
    from bailong.loading import resolve_source

    source = resolve_source(name_or_path)
    digest = hashlib.sha256(
        f"{source.kind}:{os.path.abspath(source.path) if source.is_local else source.path}".encode()
    )
    if source.is_local:
        root = Path(source.path)
        files = [root / source.gguf_file] if source.gguf_file else [root] if root.is_file() else sorted(root.rglob("*"))
        for file in files:
            if file.is_file() and CHECKPOINTS_DIR not in file.relative_to(root.parent).parts:
                stat = file.stat()
                digest.update(f"{file.relative_to(root.parent)}:{stat.st_size}:{stat.st_mtime_ns};".encode())
        run = read_run(root) if source.kind == "run" else None
        if run and depth < 3:
            digest.update(model_identity(str(run["base_model"]), depth + 1).encode())
    return digest.hexdigest()[:16]


def generation_settings(task: JudgeTask, category: str):
    from bailong.inference import GenerationSettings

    temperature = task.temperatures.get(category, task.default_temperature)
    return GenerationSettings(max_new_tokens=task.max_new_tokens, temperature=temperature)


def read_answers(path: Path, model_name: str, identity: str) -> dict:
    """The answers of `path` made by this very model (same name and identity), by question id."""
    done = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a kill: that answer is generated again
            if row.get("model") == model_name and row.get("model_identity") == identity:
                done[row["question_id"]] = row
    return done


def generate_answers(bot, model_name: str, identity: str, questions: list[dict], task: JudgeTask, path: Path) -> dict:
    """{question_id: answer row}; generates only what `path` does not hold yet for this model and these settings."""
    from dataclasses import asdict

    from tqdm.auto import tqdm

    from bailong.console import is_main_process

    done = read_answers(path, model_name, identity)
    todo = []
    for q in questions:
        settings = generation_settings(task, q["category"])
        if done.get(q["question_id"], {}).get("generation") != asdict(settings):
            todo.append((q, settings))
    for q, settings in tqdm(todo, desc=f"answers ({model_name})", unit="question", disable=not is_main_process()):
        history, answers = [], []
        for turn in q["turns"]:
            history.append({"role": "user", "content": turn})
            answers.append(bot.reply(history, settings))
            history.append({"role": "assistant", "content": answers[-1]})
        row = {
            "model": model_name,
            "model_identity": identity,
            "question_id": q["question_id"],
            "category": q["category"],
            "turns": answers,
            "temperature": settings.temperature,
            "generation": asdict(settings),
        }
        append_jsonl(path, row)
        done[q["question_id"]] = row
    return done


def judge_jobs(model_name: str, questions: list[dict], answers: dict, templates: dict, judge_model: str) -> list[dict]:
    """One job per turn; its key carries a digest of everything the judgment depends on (answers, question,
    reference, prompt, judge model), so a changed answer or judge is judged again, never read from an old record."""
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
            judged = json.dumps([kind, fields, templates[kind], judge_model], ensure_ascii=False, sort_keys=True)
            digest = hashlib.sha256(judged.encode("utf-8")).hexdigest()[:12]
            jobs.append(
                {
                    "key": f"{model_name}/{q['question_id']}/{turn + 1}/{digest}",
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


def run_judge(
    task: JudgeTask, questions: list[dict], bot, model: tuple[str, str], client: JudgeClient, templates: dict, out: Path
) -> dict:
    """`model` is (name, identity); `questions` come from `load_bench`, loaded before any model."""
    model_name, identity = model
    answers = generate_answers(bot, model_name, identity, questions, task, out / ANSWERS_FILE)
    jobs = judge_jobs(model_name, questions, answers, templates, client.settings.model)
    judgments_path = out / JUDGMENTS_FILE
    progress = judge_all(
        client,
        jobs,
        judgments_path,
        lambda job: render_messages(templates[job["template"]], **job["_fields"]),
        progress=f"judging ({model_name})",
    )
    keys = {job["key"] for job in jobs}
    judgments = {k: v for k, v in read_judgments(judgments_path).items() if k in keys}
    return {
        "questions": len(questions),
        "newly_judged": progress["done"],
        **summarize(model_name, questions, answers, judgments),
    }
