"""CLI surface and config validation: one clear line, exit code 2, no traceback unless --debug."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from bailong.config import STAGE_CONFIGS, load_config
from helpers import DEMO_DATA, ROOT, run_cli, write_config


@pytest.fixture()
def corpus(tmp_path) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text("台灣的天氣很好。\n", encoding="utf-8")
    return path


def base_config(corpus: Path) -> dict:
    return {"model": {"tokenizer": "tok.model"}, "data": {"files": [corpus.name]}, "output_dir": "out"}


def test_help_lists_every_stage_and_version():
    result = run_cli("--help")
    assert result.code == 0
    for stage in ("extend-vocab", "pretrain", "sft", "eval"):
        assert stage in result.stdout
    version = run_cli("--version")
    assert version.code == 0 and version.stdout.startswith("bailong 0.")


def test_help_of_every_stage_has_its_example_plain_metavars_and_describes_every_option():
    import typer

    from bailong.cli import SET_EXAMPLES, app

    group = typer.main.get_command(app)
    for name, command in group.commands.items():
        text = run_cli(name, "--help").stdout
        assert not re.search(r"<[\w\[\]]+>|\{\w+\}", text), text  # no typer type names (<list[str]>, {config})
        for param in command.params:
            if getattr(param, "param_type_name", "") == "option" and not param.hidden and param.name != "help":
                assert param.help, f"{name} {param.opts} has no description"
        if name in STAGE_CONFIGS:  # the --set example is a key this stage's config has
            assert f"--set {SET_EXAMPLES[name]}" in text.replace("\n", " ").replace("  ", " ")
            key, _, value = SET_EXAMPLES[name].partition("=")
            assert key.split(".")[0] in STAGE_CONFIGS[name].model_fields
    shipped = {
        "pretrain": "configs/demo/pretrain.yaml",
        "sft": "configs/demo/sft.yaml",
        "eval": "configs/demo/eval.yaml",
    }
    for name, config in shipped.items():
        assert load_config(name, ROOT / config, [SET_EXAMPLES[name]])  # the example is accepted, not refused
    split = run_cli("pretrain", ROOT / "configs/demo/pretrain.yaml", "--set", "train.max_steps", "10")
    assert split.code == 2 and "--set takes one KEY=VALUE (no spaces around =), e.g. --set train.max_steps=100" in (
        split.stderr
    )


def test_python_dash_m_works():
    proc = subprocess.run([sys.executable, "-m", "bailong", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and "bailong" in proc.stdout


def test_unknown_key_names_path_and_suggests(tmp_path, corpus):
    cfg = base_config(corpus)
    cfg["vocab"] = {"new_tokenz": 10}
    result = run_cli("extend-vocab", write_config(tmp_path / "c.yaml", cfg))
    assert result.code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "vocab.new_tokenz: unknown key; did you mean 'new_tokens'?" in lines[0]
    assert "Traceback" not in result.stderr


def test_wrong_type_names_key_and_type(tmp_path, corpus):
    cfg = base_config(corpus)
    cfg["vocab"] = {"new_tokens": "many"}
    result = run_cli("extend-vocab", write_config(tmp_path / "c.yaml", cfg))
    assert result.code == 2
    assert "vocab.new_tokens: expected an integer, got 'many'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_corpus_file(tmp_path, corpus):
    cfg = base_config(corpus)
    cfg["data"]["files"] = ["nope.txt"]
    result = run_cli("extend-vocab", write_config(tmp_path / "c.yaml", cfg))
    assert result.code == 2
    assert "data.files: file not found" in result.stderr and str(tmp_path / "nope.txt") in result.stderr


def test_missing_config_file(tmp_path):
    result = run_cli("extend-vocab", tmp_path / "absent.yaml")
    assert result.code == 2 and "config file not found" in result.stderr


def test_relative_paths_resolve_against_config_folder_and_set_against_cwd(tmp_path, corpus, monkeypatch):
    cfg_path = write_config(tmp_path / "c.yaml", base_config(corpus))
    monkeypatch.chdir(ROOT)
    cfg = load_config("extend-vocab", cfg_path, ["output_dir=runs/x", "vocab.user_words=[台灣, 天氣]"])
    assert cfg.data.files == [str(corpus)]
    assert cfg.model.tokenizer == str(tmp_path / "tok.model")
    assert cfg.output_dir == str(ROOT / "runs" / "x")
    assert cfg.vocab.user_words == ["台灣", "天氣"]


def test_hub_id_and_embedded_name_stay_as_given(tmp_path, corpus):
    cfg = base_config(corpus)
    cfg["model"] = {"name_or_path": "meta-llama/Llama-2-7b-hf", "tokenizer": "smollm2-135m-instruct"}
    loaded = load_config("extend-vocab", write_config(tmp_path / "c.yaml", cfg))
    assert loaded.model.name_or_path == "meta-llama/Llama-2-7b-hf"
    assert loaded.model.tokenizer == "smollm2-135m-instruct"


def test_set_bad_syntax_and_print_config(tmp_path, corpus):
    cfg_path = write_config(tmp_path / "c.yaml", base_config(corpus))
    bad = run_cli("extend-vocab", cfg_path, "--set", "vocab.new_tokens")
    assert bad.code == 2 and "expected KEY=VALUE" in bad.stderr
    shown = run_cli("extend-vocab", cfg_path, "--set", "vocab.new_tokens=123", "--print-config")
    assert shown.code == 0
    assert "new_tokens: 123" in shown.stdout and str(corpus) in shown.stdout


def test_debug_shows_traceback(tmp_path, corpus):
    cfg = base_config(corpus)
    cfg["vocab"] = {"new_tokenz": 10}
    from bailong.errors import BailongError

    with pytest.raises(BailongError):
        run_cli("extend-vocab", write_config(tmp_path / "c.yaml", cfg), "--debug")


def test_eval_task_without_its_input_is_named(tmp_path):
    cfg = {
        "models": [{"name": "base", "name_or_path": "smollm2-135m-instruct"}],
        "tasks": [{"type": "bpc"}],
        "output_dir": "o",
    }
    result = run_cli("eval", write_config(tmp_path / "e.yaml", cfg))
    assert result.code == 2 and "tasks.0.files: required key is missing" in result.stderr


def test_every_shipped_config_validates():
    configs = sorted(p for p in (ROOT / "configs").rglob("*.yaml") if p.parent.name != "accelerate")
    assert len(configs) >= 4
    for path in configs:
        stage = path.stem.replace("_", "-")
        assert stage in STAGE_CONFIGS, f"{path}: name a config after its stage"
        load_config(stage, path)


def test_demo_corpus_is_shipped_as_package_data():
    from importlib import resources

    text = resources.files("bailong.demo_data").joinpath("tc_corpus.txt").read_text(encoding="utf-8")
    assert len(text.splitlines()) >= 200
    assert (DEMO_DATA / "tc_heldout.txt").exists()


def test_accelerate_configs_parse():
    import yaml

    for path in (ROOT / "configs" / "accelerate").glob("*.yaml"):
        config = yaml.safe_load(path.read_text())
        assert config["distributed_type"] in ("FSDP", "DEEPSPEED") and config["num_processes"] >= 2


def test_old_key_names_still_load_with_one_notice_each(tmp_path, corpus):
    """Renamed keys keep working for this release: each old name gives one line naming the new key."""
    old = base_config(corpus)
    old["vocab"] = {"new_tokens": 10, "held_out": 0.2}
    old["data"]["on_decode_error"] = "skip"
    old["embeddings"] = {"init": "mean", "decay": 0.5}
    new = base_config(corpus)
    new["vocab"] = {"new_tokens": 10}
    new["data"].update(validation=0.2, on_bad_record="skip")
    new["new_rows"] = {"init": "mean", "decay": 0.5}
    old_path, new_path = write_config(tmp_path / "old.yaml", old), write_config(tmp_path / "new.yaml", new)
    assert load_config("extend-vocab", old_path) == load_config("extend-vocab", new_path)
    result = run_cli("extend-vocab", old_path, "--print-config")
    assert result.code == 0, result.stderr
    notices = [line for line in result.stderr.splitlines() if line.startswith("deprecated:")]
    assert len(notices) == 3
    for old_key, new_key in (
        ("vocab.held_out", "data.validation"),
        ("data.on_decode_error", "data.on_bad_record"),
        ("embeddings", "new_rows"),
    ):
        assert any(f"`{old_key}` is deprecated; use `{new_key}`" in n for n in notices), notices
    assert "new_rows:\n  init: mean" in result.stdout


def test_old_precision_values_and_both_names_at_once(tmp_path):
    cfg = {
        "model": {"name_or_path": "smollm2-135m-instruct"},
        "data": {"files": [str(DEMO_DATA / "tc_corpus.txt")]},
        "train": {"precision": "bf16"},
        "output_dir": "out",
    }
    result = run_cli("pretrain", write_config(tmp_path / "p.yaml", cfg), "--print-config")
    assert result.code == 0 and "precision: bfloat16" in result.stdout
    assert "`train.precision: bf16` is deprecated; use `train.precision: bfloat16`" in result.stderr
    both = {
        "model": {"tokenizer": "x/y"},
        "data": {"files": [str(DEMO_DATA / "tc_corpus.txt")], "validation": 0.1},
        "vocab": {"held_out": 0.2},
        "output_dir": "out",
    }
    result = run_cli("extend-vocab", write_config(tmp_path / "b.yaml", both))
    assert result.code == 2 and "vocab.held_out and data.validation are the same setting" in result.stderr


def test_shipped_configs_use_current_names(tmp_path):
    for path in sorted((ROOT / "configs").glob("*/*.yaml")):
        if path.parent.name == "accelerate":
            continue
        stage = {"extend_vocab": "extend-vocab"}.get(path.stem, path.stem)
        result = run_cli(stage, path, "--print-config")
        assert "deprecated:" not in result.stderr, (path, result.stderr)


@pytest.mark.parametrize(
    ("preset", "hub_id", "new_tokens"),
    [("llama3.1-8b", "meta-llama/Llama-3.1-8B", 16000), ("qwen2.5-7b", "Qwen/Qwen2.5-7B", 8000),
     ("gemma-3-4b", "google/gemma-3-4b-pt", 8000)],
)  # fmt: skip
def test_family_presets_print_their_config(preset, hub_id, new_tokens):
    import yaml

    folder = ROOT / "configs" / preset
    shown = run_cli("extend-vocab", folder / "extend_vocab.yaml", "--print-config")
    assert shown.code == 0, shown.stderr
    config = yaml.safe_load(shown.stdout)
    assert config["model"]["name_or_path"] == hub_id and config["vocab"]["new_tokens"] == new_tokens
    assert config["new_rows"]["init"] == "zip-tie"
    extended = config["output_dir"]
    shown = run_cli("pretrain", folder / "pretrain.yaml", "--print-config")
    assert shown.code == 0, shown.stderr
    config = yaml.safe_load(shown.stdout)
    assert config["model"]["name_or_path"] == extended  # pretrain starts from extend-vocab's output
    assert config["quantization"]["mode"] == "nf4" and config["embeddings"]["train"] == "lora"


def eval_config(task: dict) -> dict:
    return {"models": [{"name": "m", "name_or_path": "smollm2-135m-instruct"}], "tasks": [task], "output_dir": "out"}


@pytest.mark.parametrize(
    ("task", "message"),
    [
        (
            {"type": "bpc", "files": ["a.txt"], "scoring": "letter"},
            "tasks.0.scoring: unknown key; valid keys here: name, limit, type, files, window, stride",
        ),
        ({"type": "judge", "questions": "q.jsonl", "window": 10}, "tasks.0.window: unknown key"),
        ({"type": "choice"}, "tasks.0.file: required key is missing"),
        ({"type": "mmlu", "file": "x.jsonl"}, "tasks.0.type: got 'mmlu'; expected one of bpc, choice, judge, lm-eval"),
        ({"file": "x.jsonl"}, "tasks.0.type: required: one of bpc, choice, judge, lm-eval"),
    ],
)
def test_eval_task_keys_belong_to_its_type(tmp_path, task, message):
    result = run_cli("eval", write_config(tmp_path / "e.yaml", eval_config(task)))
    assert result.code == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_eval_task_paths_resolve_per_type(tmp_path):
    (tmp_path / "q.jsonl").write_text("", encoding="utf-8")
    cfg = eval_config({"type": "choice", "file": "q.jsonl"})
    loaded = load_config("eval", write_config(tmp_path / "e.yaml", cfg))
    assert loaded.tasks[0].file == str(tmp_path / "q.jsonl")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("judge.http_retries=-1", "judge.http_retries: got -1; input should be greater than or equal to 0"),
        ("judge.http_retries=50", "judge.http_retries: got 50; input should be less than or equal to 20"),
        ("judge.timeout_s=0", "judge.timeout_s: got 0; input should be greater than 0"),
    ],
)
def test_judge_transport_settings_are_checked(tmp_path, override, message):
    cfg = eval_config({"type": "bpc", "files": [str(DEMO_DATA / "tc_corpus.txt")]})
    result = run_cli("eval", write_config(tmp_path / "e.yaml", cfg), "--set", override)
    assert result.code == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_judge_transport_settings_load(tmp_path):
    cfg = eval_config({"type": "bpc", "files": [str(DEMO_DATA / "tc_corpus.txt")]})
    cfg["judge"] = {"http_retries": 0, "timeout_s": 2.5}
    loaded = load_config("eval", write_config(tmp_path / "e.yaml", cfg))
    assert (loaded.judge.http_retries, loaded.judge.timeout_s) == (0, 2.5)
    assert load_config("eval", write_config(tmp_path / "d.yaml", eval_config(cfg["tasks"][0]))).judge.http_retries == 4


def training_config(stage: str) -> dict:
    data = DEMO_DATA / ("tc_corpus.txt" if stage == "pretrain" else "sft_chat.jsonl")
    return {"model": {"name_or_path": "smollm2-135m-instruct"}, "data": {"files": [str(data)]}, "output_dir": "out"}


@pytest.mark.parametrize(
    ("stage", "override", "message"),
    [
        ("pretrain", "train.max_steps=0", "train.max_steps: 0 steps would train nothing"),
        ("pretrain", "train.max_steps=-2", "train.max_steps: got -2; input should be greater than or equal to -1"),
        ("pretrain", "data.block_size=1", "data.block_size: got 1; input should be greater than or equal to 2"),
        ("sft", "data.max_length=1", "data.max_length: got 1; input should be greater than or equal to 2"),
        ("sft", "train.max_steps=0", "train.max_steps: 0 steps would train nothing"),
    ],
)
def test_settings_that_cannot_train_are_refused_with_the_key(tmp_path, stage, override, message):
    result = run_cli(stage, write_config(tmp_path / "c.yaml", training_config(stage)), "--set", override)
    assert result.code == 2, result.stdout + result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "out").exists()
