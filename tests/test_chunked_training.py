"""pretrain and sft with `train.chunked_loss` true and false log the same losses (gradient accumulation, padded sft
batches), and `train.kernels` resolves to none on CPU and refuses liger there."""

import pytest

from helpers import DEMO_DATA, MISTRAL_V1, logged_losses, run_cli, tiny_llama, write_config


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return tiny_llama(tmp_path_factory.mktemp("chunked") / "base", str(MISTRAL_V1))


def config(stage, base, out, chunked) -> dict:
    cfg = {
        "model": {"name_or_path": str(base)},
        "quantization": {"mode": "none"},
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
        "embeddings": {"train": "lora"},
        "train": {
            "max_steps": 3,
            "batch_size": 2,
            "grad_accum": 2,
            "save_steps": 3,
            "logging_steps": 1,
            "learning_rate": 5e-3,
            "gradient_checkpointing": False,
            "chunked_loss": chunked,
        },
        "output_dir": str(out),
    }
    if stage == "pretrain":
        cfg["data"] = {"files": [str(DEMO_DATA / "tc_corpus.txt")], "block_size": 64, "validation": 0.0}
    else:  # padded batches of conversations of different lengths, loss on assistant turns only
        cfg["data"] = {"files": [str(DEMO_DATA / "sft_chat.jsonl")], "validation": 0.0, "max_length": 96}
        cfg["chat"] = {"template": "llama-2"}
    return cfg


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["pretrain", "sft"])
def test_chunked_and_full_logits_runs_log_the_same_losses(base, tmp_path, stage):
    losses = {}
    for chunked in (True, False):
        out = tmp_path / f"run-{chunked}"
        result = run_cli(stage, write_config(tmp_path / f"{chunked}.yaml", config(stage, base, out, chunked)))
        assert result.code == 0, result.stderr
        assert f"loss: {'chunked' if chunked else 'full logits'}" in result.stdout
        losses[chunked] = logged_losses(out)
    assert list(losses[True]) == [1, 2, 3]
    for step, loss in losses[False].items():
        assert losses[True][step] == pytest.approx(loss, rel=1e-5), step


def test_kernels_auto_is_none_on_cpu_and_liger_is_a_clear_error(base, tmp_path):
    cfg = config("pretrain", base, tmp_path / "run", True)
    cfg["train"]["kernels"] = "liger"
    result = run_cli("pretrain", write_config(tmp_path / "liger.yaml", cfg))
    assert result.code == 2
    assert "train.kernels: liger needs a CUDA GPU and none is available; set train.kernels: auto" in result.stderr
    assert not (tmp_path / "run").exists()  # refused before anything is written
    cfg["train"].update(kernels="auto", max_steps=1)
    result = run_cli("pretrain", write_config(tmp_path / "auto.yaml", cfg))
    assert result.code == 0, result.stderr
    assert "kernels: none (auto: no CUDA GPU)" in result.stdout
