"""`bailong eval`: every task of the config on every model, one comparison report.

Models load one at a time through the loading core (any stage's output). With `judge.serve`, a model is served on
loopback as the judge for the run (demos and tests; point `judge.base_url` at a stronger model for real scores).
"""

from __future__ import annotations

import contextlib
import gc
import time
from pathlib import Path

from bailong.config import EvalConfig
from bailong.evaluation.report import CHART_FILE, TABLE_FILE, headline, write_report


@contextlib.contextmanager
def judge_endpoint(cfg: EvalConfig):
    """The judge's base URL: judge.base_url, or a model served on loopback for the duration of the run."""
    if not cfg.judge.serve:
        yield cfg.judge.base_url
        return
    from bailong.chat import ChatModel
    from bailong.serve import create_app, start_in_thread, stop

    server, thread, base_url = start_in_thread(create_app(ChatModel(cfg.judge.serve, device=cfg.device),
                                                          cfg.judge.model))
    print(f"judge: {cfg.judge.serve} served on {base_url}")
    try:
        yield base_url
    finally:
        stop(server, thread)


def evaluate(cfg: EvalConfig) -> dict:
    from bailong.chat import ChatModel
    from bailong.evaluation.bpc import run_bpc
    from bailong.evaluation.choice import run_choice
    from bailong.evaluation.judge import run_judge
    from bailong.evaluation.judge_client import JudgeClient, JudgeSettings
    from bailong.evaluation.judge_prompts import load_templates

    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    needs_judge = any(t.type == "judge" for t in cfg.tasks)
    templates = load_templates(cfg.judge.templates) if needs_judge else None
    results = {}
    with judge_endpoint(cfg) if needs_judge else contextlib.nullcontext(None) as base_url:
        client = JudgeClient(JudgeSettings(
            base_url=base_url, model=cfg.judge.model, api_key_env=cfg.judge.api_key_env,
            concurrency=cfg.judge.concurrency, max_retries=cfg.judge.max_retries, timeout_s=cfg.judge.timeout_s,
            max_tokens=cfg.judge.max_tokens,
        )) if needs_judge else None
        for spec in cfg.models:
            print(f"evaluating {spec.name} ({spec.name_or_path})")
            bot = ChatModel(spec.name_or_path, device=cfg.device)
            details = {}
            for task in cfg.tasks:
                name = task.name or task.type
                started = time.perf_counter()
                if task.type == "bpc":
                    result = run_bpc(task, bot.model, bot.tokenizer)
                elif task.type == "choice":
                    result = run_choice(task, bot.model, bot.tokenizer)
                else:
                    result = run_judge(task, bot, spec.name, client, templates, out)
                details[name] = {"type": task.type, **result, "seconds": round(time.perf_counter() - started, 1)}
                print(f"  {name}: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                                for k, v in details[name].items() if not isinstance(v, dict)))
            results[spec.name] = {**headline(details), "name_or_path": spec.name_or_path, "details": details}
            del bot
            gc.collect()
    table = write_report(out, results)
    print(table)
    print(f"wrote {out / 'results.json'}, {out / TABLE_FILE} and {out / CHART_FILE}")
    return results
