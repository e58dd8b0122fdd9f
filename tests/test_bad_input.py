"""Bad input found when the config loads: one line naming the file or key and the fix, exit 2, and nothing written
(no model loads, no tokenizer trains)."""

import os

import pytest

from helpers import DEMO_DATA, run_cli, write_config

CORPUS = str(DEMO_DATA / "tc_corpus.txt")
CHAT = str(DEMO_DATA / "sft_chat.jsonl")


def stage_config(stage: str, out: str = "out") -> dict:
    if stage == "eval":
        task = {"type": "bpc", "files": [str(DEMO_DATA / "tc_heldout.txt")]}
        return {"models": [{"name": "m", "name_or_path": "smollm2-135m-instruct"}], "tasks": [task], "output_dir": out}
    files = [CHAT if stage == "sft" else CORPUS]
    return {"model": {"name_or_path": "smollm2-135m-instruct"}, "data": {"files": files}, "output_dir": out}


def assert_one_line(result, message: str):
    assert result.code == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr and "<unicode string>" not in result.stderr


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model:\n  name_or_path: x\n\tdata: 1\n", "c.yaml:3:1: not valid YAML: found character '\\t'"),
        ("model: [a, b\noutput_dir: o\n", "c.yaml:2:11: not valid YAML: expected ',' or ']'"),
    ],
)
def test_yaml_mistakes_give_file_line_column_and_fix(tmp_path, text, message):
    (tmp_path / "c.yaml").write_text(text, encoding="utf-8")
    result = run_cli("pretrain", tmp_path / "c.yaml")
    assert_one_line(result, str(tmp_path / message))
    fix = "indent with spaces" if "\t" in text else "parsing a flow sequence that starts at 1:8"
    assert fix in result.stderr


def test_a_config_saved_as_utf16_is_named(tmp_path):
    (tmp_path / "c.yaml").write_text("output_dir: out\n", encoding="utf-16")
    assert_one_line(run_cli("pretrain", tmp_path / "c.yaml"), "the file is UTF-16, not UTF-8; save it as UTF-8")


@pytest.mark.parametrize("stage", ["extend-vocab", "pretrain", "sft", "eval"])
def test_output_dir_that_is_a_file(tmp_path, stage):
    (tmp_path / "taken").write_text("x")
    cfg = stage_config(stage, "taken")
    if stage == "extend-vocab":
        cfg["model"] = {"tokenizer": "smollm2-135m-instruct"}
    result = run_cli(stage, write_config(tmp_path / "c.yaml", cfg))
    assert_one_line(result, f"output_dir: {tmp_path / 'taken'} is a file; choose a folder")


@pytest.mark.parametrize(
    ("stage", "key", "value", "message"),
    [
        ("pretrain", "data.files", "[corpora]", "data.files: {tmp}/corpora is a folder; list the data files in it"),
        ("sft", "data.files", "[chat.csv]", "data.files: {tmp}/chat.csv: this format is not read; convert it to"),
        ("pretrain", "train.report_to", "[wandb]", "train.report_to: wandb is not installed; pip install wandb"),
        ("pretrain", "train.report_to", "[tensorbord]", "train.report_to: 'tensorbord' is not a reporting integration"),
        ("pretrain", "train.resume", "./old/checkpoint-5", "train.resume: {tmp}/old/checkpoint-5 does not exist"),
        ("sft", "train.resume", "./corpora", "train.resume: {tmp}/corpora is not a complete bailong checkpoint"),
        ("eval", "tasks", "[{type: bpc, files: [absent.txt]}]", "tasks.0.files.0: file not found: {tmp}/absent.txt"),
        ("eval", "tasks", "[{type: choice, file: absent.jsonl}]", "tasks.0.file: file not found: {tmp}/absent.jsonl"),
        ("eval", "tasks", "[{type: judge, questions: q.jsonl}]", "tasks.0.questions: file not found: {tmp}/q.jsonl"),
        ("eval", "judge.templates", "./corpora", "judge.templates: {tmp}/corpora is a folder, not a file"),
        (
            "eval",
            "judge.templates",
            "./half.yaml",
            "judge.templates: {tmp}/half.yaml: judge templates miss the key 'reference'",
        ),
    ],
)
def test_paths_and_integrations_are_checked_when_the_config_loads(tmp_path, monkeypatch, stage, key, value, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "corpora").mkdir()
    (tmp_path / "corpora" / "a.txt").write_text("台灣\n", encoding="utf-8")
    (tmp_path / "chat.csv").write_text("user,assistant\n", encoding="utf-8")
    (tmp_path / "half.yaml").write_text("single: {system: s, user: '{question} {answer}'}\n", encoding="utf-8")
    result = run_cli(stage, write_config(tmp_path / "c.yaml", stage_config(stage)), "--set", f"{key}={value}")
    assert_one_line(result, message.format(tmp=tmp_path))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("debug", [False, True])
def test_library_noise_only_with_debug(debug):
    import subprocess
    import sys

    noise = "Failed to load CPU gemm_4bit_forward from kernels-community: No module named 'kernels'"
    trust = "Skipping publisher trust check for 'kernels-community/quantization-bitsandbytes'"
    code = (
        "import logging; from bailong.cli import guarded; "
        f"guarded({debug}, lambda: logging.getLogger('bitsandbytes.backends.cpu.ops').warning({noise!r})); "
        f"guarded({debug}, lambda: logging.getLogger('kernels._internals.hf_hub').warning({trust!r}))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (noise in proc.stderr) is debug and (trust in proc.stderr) is debug, proc.stderr


def test_serve_on_a_taken_port_says_so_before_loading_the_model():
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("serve", "smollm2-135m-instruct", "--port", str(port))
    assert_one_line(result, f"cannot serve on 127.0.0.1:{port}: Address already in use")
    assert "serving" not in result.stdout


def test_serve_beyond_loopback_needs_a_key_or_insecure(monkeypatch):
    result = run_cli("serve", "smollm2-135m-instruct", "--host", "0.0.0.0")
    assert_one_line(
        result, "--host 0.0.0.0 is reachable from other machines and no key is required: pass --api-key-env"
    )
    assert "--insecure" in result.stderr and "serving" not in result.stdout
    monkeypatch.delenv("BAILONG_NO_SUCH_KEY", raising=False)
    unset = run_cli("serve", "smollm2-135m-instruct", "--api-key-env", "BAILONG_NO_SUCH_KEY")
    assert_one_line(unset, "--api-key-env BAILONG_NO_SUCH_KEY: the environment variable is not set or empty")


def test_export_refuses_a_taken_target_before_merging(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    # a finished run whose base is gone: the merge would fail on it, so only a check before the merge passes here
    (run / "bailong_run.json").write_text('{"base_model": "%s", "adapter": "adapter"}' % (tmp_path / "gone"))
    (tmp_path / "to").mkdir()
    (tmp_path / "to" / "keep.txt").write_text("x")
    result = run_cli("export", run, "--out", tmp_path / "to")
    assert_one_line(result, f"export folder {tmp_path / 'to'} exists and is not empty; pass --overwrite")
    deprecated = run_cli("export", run, "--to", tmp_path / "to")
    assert "--to is deprecated; use --out" in deprecated.stderr and deprecated.code == 2
    assert (tmp_path / "to" / "keep.txt").exists()


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from helpers import MISTRAL_V1, tiny_llama

    return tiny_llama(tmp_path_factory.mktemp("tiny") / "model", str(MISTRAL_V1))


def damage(kind: str, model, tmp_path):
    import shutil

    folder = tmp_path / kind
    shutil.copytree(model, folder)
    if kind == "cut-safetensors":
        weights = folder / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
        return folder, f"{weights} is damaged (", "it may be cut short); download or copy it again"
    if kind == "config-json":
        (folder / "config.json").write_text('{"model_type": "llama", "hidd')
        return folder, f"{folder / 'config.json'} is damaged (not valid JSON", "download or copy it again"
    if kind == "tokenizer-json":
        (folder / "tokenizer.json").write_text('{"version": "1.0", "trunc')
        return folder, f"{folder / 'tokenizer.json'} is damaged (not valid JSON", "download or copy it again"
    if kind == "tokenizer-only":
        for name in ("model.safetensors", "config.json", "generation_config.json"):
            (folder / name).unlink()
        return folder, f"{folder} holds no model (no config.json or no weights), only a tokenizer", "model.tokenizer"
    from bailong.loading.sources import embedded_gguf

    data = embedded_gguf().read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(data[: len(data) // 3])
    return cut, f"{cut} is damaged (the GGUF file cannot be read", "download or copy it again"


@pytest.mark.parametrize("kind", ["cut-safetensors", "config-json", "tokenizer-json", "tokenizer-only", "cut-gguf"])
def test_damaged_model_files_are_named_with_how_to_get_them_again(tiny_model, tmp_path, kind):
    source, message, fix = damage(kind, tiny_model, tmp_path)
    result = run_cli("chat", source)
    assert_one_line(result, message)
    assert fix in result.stderr


@pytest.mark.skipif(os.access("/proc/sys", os.W_OK), reason="needs a folder this user cannot write to")
def test_output_dir_in_a_folder_that_cannot_be_written(tmp_path):
    """Refused when the config loads: before the tokenizer trains or a model loads (root can write almost anywhere,
    so the test uses /proc/sys, which nobody can)."""
    cfg = stage_config("extend-vocab", "/proc/sys/bailong-out")
    cfg["model"] = {"tokenizer": "smollm2-135m-instruct"}
    result = run_cli("extend-vocab", write_config(tmp_path / "c.yaml", cfg))
    assert_one_line(result, "output_dir: /proc/sys is not writable; choose a folder you can write to")
