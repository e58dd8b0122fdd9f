"""One self-contained report.html: Jinja2 templates shipped with the package, images inlined as data URIs, nothing
fetched from the network. The static page is complete without JavaScript; a few lines of it only filter.

Sections come from `report_sections`: an eval output (comparison table, charts, the answers of every model side by
side with the judge's rating and explanation, the reference and the language check), a training run (its curves)
and an extend-vocab output (held-out sentences cut by the base's and the extended tokenizer).
"""

from __future__ import annotations

import base64
import json
import os
from datetime import datetime, timezone
from pathlib import Path

from bailong.artifacts import (
    ANSWERS_FILE,
    CATEGORY_CHART_FILE,
    CHART_FILE,
    JUDGMENTS_FILE,
    QUESTIONS_FILE,
    RESULTS_FILE,
    read_json,
)
from bailong.evaluation.language import detect_script, expected_language, is_consistent

TEMPLATES = Path(__file__).parent / "templates"
CHART_TITLES = {CHART_FILE: "every model on each headline figure", CATEGORY_CHART_FILE: "judge mean per category"}
SKIPPED_KEYS = {"seconds", "type", "questions", "newly_judged", "documents", "characters", "judged", "chance"}


def render_html(sections: list[dict], title: str = "bailong report") -> str:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, trim_blocks=True, lstrip_blocks=True
    )
    env.filters["num"] = _number
    env.filters["rating"] = lambda r: f"{r:g}" if isinstance(r, (int, float)) else str(r)
    for number, section in enumerate(sections, 1):
        section["id"] = f"section-{number}"
    created = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return env.get_template("report.html.j2").render(title=title, sections=sections, created=created)


def write_html(path: Path, sections: list[dict], title: str = "bailong report") -> Path:
    """Renders and writes through a temporary name, so the file is never seen half-written."""
    path = Path(path)
    text = render_html(sections, title)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


def image_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def read_jsonl(path: Path) -> list[dict]:
    """The records of a JSON-lines file; a line cut by a kill is skipped."""
    rows = []
    if Path(path).is_file():
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict):
                rows.append(row)
    return rows


def is_eval_output(folder: Path) -> bool:
    return (folder / RESULTS_FILE).is_file() or (folder / ANSWERS_FILE).is_file()


def eval_section(folder: Path) -> dict:
    """What an eval output folder shows: the table, the charts, and per question every model's answers."""
    folder = Path(folder)
    results = read_json(folder / RESULTS_FILE) or {}
    answers = {(a.get("model"), a.get("question_id")): a for a in read_jsonl(folder / ANSWERS_FILE)}  # last wins
    models = list(results) or list(dict.fromkeys(model for model, _ in answers))
    judgments = {}
    for record in read_jsonl(folder / JUDGMENTS_FILE):  # the last record of a turn is the current one
        judgments[(record.get("model"), record.get("question_id"), record.get("turn"))] = record
    charts = [folder / CHART_FILE, folder / CATEGORY_CHART_FILE]
    charts += sorted(p for p in folder.glob("*.png") if p not in charts)
    judged = not results or any(
        d.get("type") == "judge" for r in results.values() for d in r.get("details", {}).values()
    )
    questions = _questions(folder, models, answers, judgments) if judged else []
    return {
        "kind": "eval",
        "title": f"eval: {folder.name}",
        "path": str(folder),
        "models": models,
        "table": comparison_table(results),
        "images": [{"title": CHART_TITLES.get(p.name, p.stem), "uri": image_uri(p)} for p in charts if p.is_file()],
        "questions": questions,
        "categories": sorted({q["category"] for q in questions}),
        "languages": sorted({q["language"] for q in questions}),
    }


def comparison_table(results: dict) -> dict:
    """Rows per model; columns per task metric ({"task", "metric", "better"}), the best value of a column marked."""
    columns: list[dict] = []
    for result in results.values():
        for task, detail in result.get("details", {}).items():
            for metric, better, _ in _metrics(detail):
                if not any(c["task"] == task and c["metric"] == metric for c in columns):
                    columns.append({"task": task, "metric": metric, "better": better})
    rows = []
    for name, result in results.items():
        values = {}
        for task, detail in result.get("details", {}).items():
            for metric, _, value in _metrics(detail):
                values[(task, metric)] = value
        rows.append(
            {
                "model": name,
                "path": result.get("name_or_path", ""),
                "cells": [{"value": values.get((c["task"], c["metric"]))} for c in columns],
            }
        )
    for i, column in enumerate(columns):
        present = [row["cells"][i]["value"] for row in rows if isinstance(row["cells"][i]["value"], (int, float))]
        if column["better"] and len(set(present)) > 1:
            best = min(present) if column["better"] == "low" else max(present)
            for row in rows:
                row["cells"][i]["best"] = row["cells"][i]["value"] == best
    groups: list[list] = []  # consecutive columns of one task share a header cell
    for column in columns:
        if groups and groups[-1][0] == column["task"]:
            groups[-1][1] += 1
        else:
            groups.append([column["task"], 1])
    return {"columns": columns, "groups": groups, "rows": rows}


def _metrics(detail: dict) -> list[tuple[str, str | None, object]]:
    """(metric, which way is better, value) of one task result."""
    kind = detail.get("type")
    if kind == "bpc":
        return [
            ("bits/char", "low", detail.get("bits_per_char")),
            ("tokens/char", None, detail.get("tokens_per_char")),
        ]
    if kind == "choice":
        return [("accuracy", "high", detail.get("accuracy"))]
    if kind == "speed":
        return [
            ("chars/s", "high", detail.get("chars_per_s")),
            ("tokens/s", None, detail.get("tokens_per_s")),
        ]
    if kind == "judge":
        language = detail.get("language_consistency") or {}
        return [
            ("judge mean", "high", detail.get("mean")),
            ("failed judgments", "low", detail.get("failures")),
            ("language consistency", "high", language.get("rate")),
        ]
    return [(key, None, value) for key, value in _numbers(detail)][:8]  # a task type this page does not know


def _numbers(data: dict, prefix: str = "", depth: int = 0) -> list[tuple[str, float]]:
    found = []
    for key, value in data.items():
        if key in SKIPPED_KEYS:
            continue
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            found.append((prefix + str(key), value))
        elif isinstance(value, dict) and depth < 2:
            found += _numbers(value, f"{prefix}{key}.", depth + 1)
    return found


def _questions(folder: Path, models: list[str], answers: dict, judgments: dict) -> list[dict]:
    bench = read_jsonl(folder / QUESTIONS_FILE)
    known = {q.get("question_id") for q in bench}
    for (_, question_id), answer in answers.items():  # an output written before questions.jsonl existed
        if question_id not in known:
            known.add(question_id)
            turns = answer.get("turns") or []
            bench.append({"question_id": question_id, "category": answer.get("category"), "turns": [""] * len(turns)})
    questions = []
    for q in bench:
        turns = [t or "" for t in q.get("turns") or []]
        expected = q.get("answer_language") or (expected_language(turns[0]) if turns and turns[0] else "unknown")
        shown = []
        for turn, text in enumerate(turns, 1):
            cells = []
            for model in models:
                answer = answers.get((model, q.get("question_id")))
                if answer is None:
                    continue
                got = (answer.get("turns") or [])[turn - 1 : turn]
                reply = got[0] if got else ""
                judgment = judgments.get((model, q.get("question_id"), turn), {})
                cells.append(
                    {
                        "model": model,
                        "answer": reply,
                        "rating": judgment.get("rating"),
                        "status": judgment.get("status"),
                        "judge_reply": judgment.get("judge_reply") or judgment.get("reason") or "",
                        "language": detect_script(reply),
                        "consistent": is_consistent(text, reply, expected) if text else None,
                    }
                )
            shown.append({"number": turn, "question": text, "cells": cells})
        if any(turn["cells"] for turn in shown):
            reference = q.get("reference")
            questions.append(
                {
                    "id": str(q.get("question_id")),
                    "category": q.get("category") or "general",
                    "language": expected,
                    "task": q.get("task"),
                    "reference": [r for r in reference if r] if isinstance(reference, list) else None,
                    "turns": shown,
                    "missed_language": any(c["consistent"] is False for t in shown for c in t["cells"]),
                }
            )
    return questions


def _number(value, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool) or isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}f}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)
