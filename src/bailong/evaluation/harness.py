"""The `lm-eval` task: EleutherAI's lm-evaluation-harness run on the model bailong loaded (base, extended, a run
folder with its adapter, merged), so standard benchmarks sit in the same report as bailong's own tasks.

The harness gets the model and tokenizer objects, so it fetches neither; a benchmark's data comes from wherever its
task YAML says (a hub dataset, or local files through `include_path`).
"""

from __future__ import annotations

import functools
import inspect

from bailong.config import LmEvalTask
from bailong.errors import BailongError


def _task_manager(task: LmEvalTask):
    return _manager(task.include_path, tuple(task.tasks))


@functools.cache
def _manager(include_path: str | None, tasks: tuple[str, ...]):
    """The harness's task index (indexing its thousands of built-in YAMLs takes half a minute, so it is built once per
    run); only include_path's own YAMLs where they hold every task asked for."""
    from lm_eval.tasks import TaskManager

    if include_path is None:
        return TaskManager()
    if "include_defaults" in inspect.signature(TaskManager).parameters:
        local = TaskManager(include_path=include_path, include_defaults=False)
        if set(tasks) <= set(local.all_tasks):
            return local
    return TaskManager(include_path=include_path)


def check_tasks(task: LmEvalTask) -> None:
    """Every task name must be one the harness knows (with include_path's YAMLs): checked before any model loads."""
    known = set(_task_manager(task).all_tasks)
    unknown = [name for name in task.tasks if name not in known]
    if unknown:
        where = f" or in include_path {task.include_path}" if task.include_path else ""
        raise BailongError(
            f"lm-eval task(s) {', '.join(unknown)} not found among lm-evaluation-harness's tasks{where}; "
            "list them with `lm-eval ls tasks`, or add a task YAML folder as include_path"
        )


def run_lm_eval(task: LmEvalTask, model, tokenizer) -> dict:
    """The harness's metrics for each task (and group) run, e.g. {"metrics": {"tmmlu": {"acc": 0.3, ...}}}."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM

    was_training = model.training
    model.eval()
    try:
        output = lm_eval.simple_evaluate(
            model=HFLM(pretrained=model, tokenizer=tokenizer, batch_size=task.batch_size),
            tasks=list(task.tasks),
            num_fewshot=task.num_fewshot,
            limit=task.limit,
            task_manager=_task_manager(task),
            log_samples=False,
        )
    finally:
        model.train(was_training)
    metrics = {name: _metrics(values) for name, values in output["results"].items()}
    samples = {name: counts.get("effective") for name, counts in output.get("n-samples", {}).items()}
    return {
        "metrics": metrics,
        "headline": {name: _headline(metrics[name]) for name in task.tasks if name in metrics},
        "samples": samples,
        "num_fewshot": task.num_fewshot,
    }


def _metrics(values: dict) -> dict:
    """{"acc,none": 0.3, "acc_stderr,none": 0.1, "alias": ...} as {"acc": 0.3, "acc_stderr": 0.1}: the filter
    suffix kept only where it is not the default one."""
    out = {}
    for key, value in values.items():
        if "," not in key or not isinstance(value, int | float):
            continue
        metric, kept = key.split(",", 1)
        out[metric if kept == "none" else f"{metric},{kept}"] = value
    return out


def _headline(metrics: dict) -> dict | None:
    """A task's figure for the comparison table: its first metric that is not a standard error."""
    return next(({"metric": k, "value": v} for k, v in metrics.items() if "_stderr" not in k), None)
