"""`bailong eval`: every task of the config on every model, one comparison report.

Models load one at a time through the loading core (any stage's output). With `judge.serve`, a model is served on
loopback as the judge for the run (demos and tests; point `judge.base_url` at a stronger model for real scores).
Answers and judgments are kept between runs so an interrupted eval resumes, reused only for the same model (its files)
and generation settings; `--overwrite` starts afresh. The judge is checked before any model loads.
"""

from __future__ import annotations

import contextlib
import gc
import shutil
import time
from pathlib import Path

from bailong.artifacts import CHART_FILE, QUESTIONS_FILE, REPORT_HTML_FILE, RESULTS_FILE, TABLE_FILE, write_jsonl
from bailong.config import EvalConfig
from bailong.console import say
from bailong.errors import BailongError


@contextlib.contextmanager
def judge_endpoint(cfg: EvalConfig):
    """The judge's base URL: judge.base_url, or a model served on loopback for the duration of the run."""
    if not cfg.judge.serve:
        yield cfg.judge.base_url
        return
    from bailong.inference import ChatModel
    from bailong.inference.openai_api import create_app, start_in_thread, stop

    server, thread, base_url = start_in_thread(
        create_app(ChatModel(cfg.judge.serve, device=cfg.device), cfg.judge.model)
    )
    say(f"judge: {cfg.judge.serve} served on {base_url}")
    try:
        yield base_url
    finally:
        stop(server, thread)


def run(cfg: EvalConfig, overwrite: bool = False) -> dict:
    from bailong.evaluation.bpc import run_bpc
    from bailong.evaluation.choice import run_choice
    from bailong.evaluation.harness import check_tasks, run_lm_eval
    from bailong.evaluation.judge import load_bench, model_identity, run_judge
    from bailong.evaluation.judge_client import JudgeClient, JudgeSettings
    from bailong.evaluation.judge_prompts import load_templates
    from bailong.evaluation.report import headline, write_report
    from bailong.evaluation.speed import run_speed
    from bailong.inference import ChatModel

    out = Path(cfg.output_dir)
    _check_output_dir(out, overwrite)
    needs_judge = any(t.type == "judge" for t in cfg.tasks)
    templates = load_templates(cfg.judge.templates) if needs_judge else None
    benches = {i: load_bench(t.questions, t.limit, t.references) for i, t in enumerate(cfg.tasks) if t.type == "judge"}
    for task in cfg.tasks:
        if task.type == "lm-eval":
            check_tasks(task)
    results = {}
    with judge_endpoint(cfg) if needs_judge else contextlib.nullcontext(None) as base_url:
        client = (
            JudgeClient(
                JudgeSettings(
                    base_url=base_url,
                    model=cfg.judge.model,
                    api_key_env=cfg.judge.api_key_env,
                    concurrency=cfg.judge.concurrency,
                    max_retries=cfg.judge.max_retries,
                    http_retries=cfg.judge.http_retries,
                    timeout_s=cfg.judge.timeout_s,
                    max_tokens=cfg.judge.max_tokens,
                    key_required="api_key_env" in cfg.judge.model_fields_set and not cfg.judge.serve,
                )
            )
            if needs_judge
            else None
        )
        if client is not None:
            client.check()
        if overwrite and out.is_dir():
            shutil.rmtree(out)
        out.mkdir(parents=True, exist_ok=True)
        for spec in cfg.models:
            say(f"evaluating {spec.name} ({spec.name_or_path})")
            bot = ChatModel(spec.name_or_path, device=cfg.device)
            identity = model_identity(spec.name_or_path) if needs_judge else None
            details = {}
            for i, task in enumerate(cfg.tasks):
                name = task.name or task.type
                started = time.perf_counter()
                if task.type == "bpc":
                    result = run_bpc(task, bot.model, bot.tokenizer)
                elif task.type == "choice":
                    result = run_choice(task, bot.model, bot.tokenizer)
                elif task.type == "lm-eval":
                    result = run_lm_eval(task, bot.model, bot.tokenizer)
                elif task.type == "speed":
                    result = run_speed(task, bot.model, bot.tokenizer)
                else:
                    result = run_judge(task, benches[i], bot, (spec.name, identity), client, templates, out)
                details[name] = {"type": task.type, **result, "seconds": round(time.perf_counter() - started, 1)}
                figures = {**details[name], **_harness_headline(details[name])}
                say(
                    f"  {name}: "
                    + ", ".join(
                        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                        for k, v in figures.items()
                        if not isinstance(v, dict)
                    )
                )
            results[spec.name] = {**headline(details), "name_or_path": spec.name_or_path, "details": details}
            del bot
            gc.collect()
    table = write_report(out, results)
    write_html_report(out, cfg, benches)
    say(table)
    say(f"wrote {out / RESULTS_FILE}, {out / TABLE_FILE}, {out / CHART_FILE} and {out / REPORT_HTML_FILE}")
    _check_failed_share(cfg, results, out)
    return results


def write_html_report(out: Path, cfg: EvalConfig, benches: dict[int, list[dict]]) -> None:
    """report.html, with the judge benches' questions (questions.jsonl) so that `bailong report` can show them."""
    from bailong.evaluation.html_report import eval_section, write_html

    questions = [{**q, "task": cfg.tasks[i].name or cfg.tasks[i].type} for i, bench in benches.items() for q in bench]
    if questions:
        write_jsonl(out / QUESTIONS_FILE, questions)
    else:  # answers an earlier run left for resuming are not this run's
        (out / QUESTIONS_FILE).unlink(missing_ok=True)
    write_html(out / REPORT_HTML_FILE, [eval_section(out)], title=f"bailong eval: {out.name}")


def _harness_headline(result: dict) -> dict:
    """An lm-eval task's headline metrics, e.g. {"tmmlu acc": 0.3}, for the progress line."""
    return {f"{task} {h['metric']}": h["value"] for task, h in result.get("headline", {}).items() if h}


def _check_output_dir(out: Path, overwrite: bool) -> None:
    """Like every stage, eval refuses a non-empty folder, except one holding only its own files (it resumes)."""
    from bailong.artifacts import (
        ANSWERS_FILE,
        CATEGORY_CHART_FILE,
        CHART_FILE,
        JUDGMENTS_FILE,
        QUESTIONS_FILE,
        REPORT_HTML_FILE,
        RESULTS_FILE,
        TABLE_FILE,
    )

    own = {
        ANSWERS_FILE,
        JUDGMENTS_FILE,
        RESULTS_FILE,
        TABLE_FILE,
        CHART_FILE,
        CATEGORY_CHART_FILE,
        QUESTIONS_FILE,
        REPORT_HTML_FILE,
    }
    foreign = (
        sorted(p.name for p in out.iterdir() if p.name not in own and not p.name.startswith("."))
        if out.is_dir() and not overwrite
        else []
    )
    if foreign:
        raise BailongError(
            f"output_dir {out} holds files eval does not write (e.g. {foreign[0]}); choose another folder or pass "
            "--overwrite to replace it"
        )


def _check_failed_share(cfg: EvalConfig, results: dict, out: Path) -> None:
    from bailong.artifacts import JUDGMENTS_FILE

    judge = [d for r in results.values() for d in r["details"].values() if d["type"] == "judge"]
    failed, total = sum(d["failures"] for d in judge), sum(d["failures"] + d["judged"] for d in judge)
    if total and failed / total > cfg.judge.max_failed_share:
        raise BailongError(
            f"judge: {failed} of {total} judgments failed ({failed / total:.0%}, above judge.max_failed_share "
            f"{cfg.judge.max_failed_share:.0%}); the report is written, the reasons are in {out / JUDGMENTS_FILE}; "
            "a rerun asks the judge again where the request failed"
        )
