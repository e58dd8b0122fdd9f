"""The `lm-eval` task: lm-evaluation-harness on the models bailong loads, offline, with a local task over real TMMLU
items whose prompt mirrors bailong's `choice` task with letter scoring, so the two accuracies must be equal."""

import json
import sys

import pytest

from helpers import run_cli, shared_file, tiny_llama, write_config

# bailong's lettered prompt (evaluation/choice.py: `prompt` and `continuations`) as a harness task: the same context,
# and " A".." D" as the continuations (target_delimiter " " before the letter).
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
TASK_YAML = """\
task: {name}
dataset_path: json
dataset_kwargs:
  data_files: {data}
test_split: train
output_type: multiple_choice
doc_to_text: "問題：{{{{question.strip()}}}}\\n{{% for c in choices %}}{{{{'{letters}'[loop.index0]}}}}. \
{{{{c.strip()}}}}\\n{{% endfor %}}答案："
doc_to_choice: "{{{{'{letters}'[:choices|length]|list}}}}"
doc_to_target: "{{{{'{letters}'.index(answer)}}}}"
target_delimiter: " "
metric_list:
  - metric: acc
"""


def write_task(folder, name: str, data) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(TASK_YAML.format(name=name, data=data, letters=LETTERS), encoding="utf-8")
    return str(folder)


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """Nothing may come from the hub: the harness gets the model and tokenizer objects and a local task."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


def eval_config(tmp_path, models: list[dict], items: str, limit: int) -> dict:
    return {
        "models": models,
        "tasks": [
            {"type": "choice", "file": items, "scoring": "letter", "limit": limit},
            {
                "type": "lm-eval",
                "tasks": ["bailong_letter"],
                "limit": limit,
                "include_path": write_task(tmp_path / "tasks", "bailong_letter", items),
            },
        ],
        "output_dir": str(tmp_path / "out"),
    }


def run_eval(tmp_path, config: dict) -> dict:
    result = run_cli("eval", write_config(tmp_path / "eval.yaml", config))
    assert result.code == 0, result.stderr
    return json.loads((tmp_path / "out" / "results.json").read_text(encoding="utf-8"))


@pytest.mark.slow
def test_lm_eval_agrees_with_choice_letter_scoring_on_real_tmmlu_with_smollm2(tmp_path):
    tmmlu = str(shared_file("bench/tmmlu_mc.jsonl"))
    results = run_eval(
        tmp_path, eval_config(tmp_path, [{"name": "base", "name_or_path": "smollm2-135m-instruct"}], tmmlu, 24)
    )
    details = results["base"]["details"]
    harness = details["lm-eval"]
    assert harness["samples"] == {"bailong_letter": 24} and details["choice"]["questions"] == 24
    assert harness["metrics"]["bailong_letter"]["acc"] == pytest.approx(details["choice"]["accuracy"], abs=1e-9)
    assert harness["headline"]["bailong_letter"] == {"metric": "acc", "value": details["choice"]["accuracy"]}
    table = (tmp_path / "out" / "results.md").read_text(encoding="utf-8")
    assert "choice acc" in table and "bailong_letter acc" in table


def test_lm_eval_runs_on_a_run_folder_with_its_adapter_and_on_its_base(tmp_path):
    """Each model as bailong loads it: an HF folder, and a training run (its base plus its LoRA adapter)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = tiny_llama(tmp_path / "base", "smollm2-135m-instruct")
    run = tmp_path / "run"
    lora = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)  # not a no-op adapter
    get_peft_model(AutoModelForCausalLM.from_pretrained(base), lora).save_pretrained(run / "adapter")
    (run / "bailong_run.json").write_text(json.dumps({"base_model": str(base)}), encoding="utf-8")
    for file in ("tokenizer.json", "tokenizer_config.json"):
        (run / file).write_bytes((base / file).read_bytes())
    items = tmp_path / "items.jsonl"
    items.write_text(
        "".join(
            json.dumps(
                {"question": f"第{n}題：{n}+{n}=?", "choices": [str(n + k) for k in range(4)], "answer": "ABCD"[n % 4]}
            )
            + "\n"
            for n in range(12)
        ),
        encoding="utf-8",
    )
    models = [{"name": "base", "name_or_path": str(base)}, {"name": "run", "name_or_path": str(run)}]
    results = run_eval(tmp_path, eval_config(tmp_path, models, str(items), 12))
    for name in ("base", "run"):
        details = results[name]["details"]
        assert details["lm-eval"]["metrics"]["bailong_letter"]["acc"] == pytest.approx(details["choice"]["accuracy"])
    table = (tmp_path / "out" / "results.md").read_text(encoding="utf-8")
    assert "bailong_letter acc" in table and len(table.splitlines()) == 4


def test_every_choice_task_gets_its_own_column(tmp_path):
    base = tiny_llama(tmp_path / "base", "smollm2-135m-instruct")
    items = shared_file("bench/tmmlu_mc.jsonl")
    config = {
        "models": [{"name": "tiny", "name_or_path": str(base)}],
        "tasks": [
            {"type": "choice", "file": str(items), "limit": 4, "name": "tmmlu text"},
            {"type": "choice", "file": str(items), "limit": 4, "name": "tmmlu letter", "scoring": "letter"},
        ],
        "output_dir": str(tmp_path / "out"),
    }
    result = run_cli("eval", write_config(tmp_path / "eval.yaml", config))
    assert result.code == 0, result.stderr
    results = json.loads((tmp_path / "out" / "results.json").read_text(encoding="utf-8"))
    header = (tmp_path / "out" / "results.md").read_text(encoding="utf-8").splitlines()[0]
    assert "tmmlu text acc" in header and "tmmlu letter acc" in header
    assert "judge" not in header and "bits/char" not in header  # only the columns of the tasks that ran
    assert result.stderr.count("multiple choice") >= 2  # a progress bar per task
    assert set(results["tiny"]["details"]) == {"tmmlu text", "tmmlu letter"}


def test_without_the_harness_the_config_is_refused_naming_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "lm_eval", None)  # as if not installed: import and find_spec both fail
    config = {
        "models": [{"name": "m", "name_or_path": "smollm2-135m-instruct"}],
        "tasks": [{"type": "lm-eval", "tasks": ["anything"]}],
        "output_dir": str(tmp_path / "out"),
    }
    result = run_cli("eval", write_config(tmp_path / "eval.yaml", config))
    assert result.code == 2 and "pip install 'bailong[lm-eval]'" in result.stderr and "tasks.0" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "task, expected",
    [
        ({"tasks": ["bailong_letter"], "include_path": "absent"}, "folder not found"),
        ({"tasks": []}, "tasks.0.tasks"),
        pytest.param(  # a name not in include_path is looked for among the harness's own (indexing them is slow)
            {"tasks": ["no_such_benchmark"], "include_path": "tasks"},
            "lm-eval task(s) no_such_benchmark not found",
            marks=pytest.mark.slow,
        ),
    ],
)
def test_bad_lm_eval_tasks_are_refused_before_any_model_loads(tmp_path, task, expected):
    write_task(tmp_path / "tasks", "bailong_letter", tmp_path / "items.jsonl")
    config = {
        "models": [{"name": "m", "name_or_path": str(tmp_path / "never_loaded")}],
        "tasks": [{"type": "lm-eval", **task}],
        "output_dir": str(tmp_path / "out"),
    }
    result = run_cli("eval", write_config(tmp_path / "eval.yaml", config))
    assert result.code == 2 and expected in result.stderr and "Traceback" not in result.stderr
