"""Multiple choice, bailong's `choice` task against lm-evaluation-harness on the same items, model and prompts.

Both score letters after a lettered prompt (`letter`) and the choice texts after the question (`text`; the harness's
acc_norm divides by the choice's length in characters as bailong does). The model loads once; each row times the
scoring alone. The harness tasks are written to a temporary folder and mirror bailong's prompt, so the accuracies
must agree.

    python scripts/bench_choice.py                      # 100 TMMLU items from ../shared/data, SmolLM2-135M
    python scripts/bench_choice.py --limit 20 --batch-size 16
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TMMLU = ROOT.parent / "shared" / "data" / "bench" / "tmmlu_mc.jsonl"
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
PROMPT = "問題：{{question.strip()}}\\n"
LETTERED = "{% for c in choices %}{{'" + LETTERS + "'[loop.index0]}}. {{c.strip()}}\\n{% endfor %}"
TASKS = {  # bailong's `prompt` and `continuations` (evaluation/choice.py) as harness tasks
    "letter": (PROMPT + LETTERED + "答案：", "{{'" + LETTERS + "'[:choices|length]|list}}", "acc"),
    "text": (PROMPT + "答案：", "{{choices|map('trim')|list}}", "acc_norm"),
}
TASK_YAML = """\
task: bench_choice_{scoring}
dataset_path: json
dataset_kwargs:
  data_files: {data}
test_split: train
output_type: multiple_choice
doc_to_text: "{text}"
doc_to_choice: "{choices}"
doc_to_target: "{{{{'{letters}'.index(answer)}}}}"
target_delimiter: " "
metric_list:
  - metric: acc
  - metric: acc_norm
"""


def harness(model, tokenizer, data: Path, limit: int, batch_size: int, scoring: str) -> tuple[float, float]:
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    text, choices, metric = TASKS[scoring]
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, f"{scoring}.yaml").write_text(
            TASK_YAML.format(scoring=scoring, data=data, text=text, choices=choices, letters=LETTERS), encoding="utf-8"
        )
        manager = TaskManager(include_path=folder, include_defaults=False)
        lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)
        started = time.perf_counter()
        out = lm_eval.simple_evaluate(
            model=lm, tasks=[f"bench_choice_{scoring}"], limit=limit, task_manager=manager, log_samples=False
        )
        seconds = time.perf_counter() - started
    return seconds, out["results"][f"bench_choice_{scoring}"][f"{metric},none"]


def bailong(model, tokenizer, data: Path, limit: int, batch_size: int, scoring: str) -> tuple[float, float]:
    from bailong.config import ChoiceTask
    from bailong.evaluation.choice import run_choice

    task = ChoiceTask(type="choice", file=str(data), limit=limit, scoring=scoring, batch_size=batch_size)
    started = time.perf_counter()
    result = run_choice(task, model, tokenizer)
    return time.perf_counter() - started, result["accuracy"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=TMMLU, help="JSONL {question, choices, answer}")
    parser.add_argument("--limit", type=int, default=100, help="the first N items")
    parser.add_argument("--model", default="smollm2-135m-instruct", help="any model source bailong loads")
    parser.add_argument("--batch-size", type=int, default=8, help="both scorers' batch size")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

    from bailong.console import format_table
    from bailong.inference import ChatModel

    bot = ChatModel(args.model)
    rows = []
    for scoring in ("letter", "text"):
        for name, scorer in (("bailong choice", bailong), ("lm-evaluation-harness", harness)):
            seconds, accuracy = scorer(bot.model, bot.tokenizer, args.data, args.limit, args.batch_size, scoring)
            rows.append([name, scoring, f"{seconds:.1f}", f"{accuracy:.3f}"])
            print(f"{name} {scoring}: {seconds:.1f} s, accuracy {accuracy:.3f}", flush=True)
    print(f"\n{args.limit} items of {args.data.name}, {args.model}, batch size {args.batch_size}\n")
    print(format_table(["scorer", "scoring", "seconds", "accuracy"], rows))


if __name__ == "__main__":
    main()
