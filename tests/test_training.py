"""The shared training components: optimizer groups, main-process status lines, a run without held-out text."""

import json

from transformers import LlamaConfig, LlamaForCausalLM, TrainingArguments

from bailong.console import say
from bailong.data import TrainingData
from bailong.training.trainer import BailongTrainer
from helpers import DEMO_DATA, MISTRAL_V1, run_cli, tiny_llama, write_config


def test_embedding_lr_keeps_weight_decay_and_the_no_decay_split(tmp_path):
    """With embeddings.learning_rate, groups still carry train.weight_decay except on norms and biases."""
    config = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        attention_bias=True,
    )
    model = LlamaForCausalLM(config)
    args = TrainingArguments(
        output_dir=str(tmp_path), weight_decay=0.1, learning_rate=1e-4, use_cpu=True, report_to="none"
    )
    trainer = BailongTrainer(model=model, args=args, data=TrainingData([], None, 0, None), embedding_lr=1e-2)
    optimizer = trainer.create_optimizer()
    names = {id(p): n for n, p in model.named_parameters()}
    seen = 0
    for group in optimizer.param_groups:
        for param in group["params"]:
            name, seen = names[id(param)], seen + 1
            no_decay = "norm" in name or name.endswith(".bias")
            assert group["weight_decay"] == (0.0 if no_decay else 0.1), name
            is_embedding = "embed_tokens" in name or "lm_head" in name
            assert group["lr"] == (1e-2 if is_embedding else 1e-4), name
    assert seen == sum(1 for p in model.parameters() if p.requires_grad)
    assert any("bias" in names[id(p)] for g in optimizer.param_groups for p in g["params"])


def test_status_lines_only_on_the_main_process(capsys, monkeypatch):
    say("from rank 0")
    monkeypatch.setenv("RANK", "1")
    say("from rank 1")
    assert capsys.readouterr().out == "from rank 0\n"


def test_held_out_share_too_short_for_a_block_trains_without_evaluation(tmp_path):
    """A small corpus with the default validation share: one note, no evaluation, exit 0 (was a raw ValueError)."""
    corpus = tmp_path / "small.txt"
    lines = (DEMO_DATA / "tc_corpus.txt").read_text(encoding="utf-8").splitlines()[:60]
    corpus.write_text("\n".join(line[:20] for line in lines) + "\n", encoding="utf-8")
    base = tiny_llama(tmp_path / "base", str(MISTRAL_V1))
    out = tmp_path / "run"
    cfg = {
        "model": {"name_or_path": str(base)},
        "quantization": {"mode": "none"},
        "lora": {"r": 4, "alpha": 8},
        "data": {"files": [str(corpus)], "block_size": 64, "validation": 0.01},
        "train": {"max_steps": 2, "save_steps": 2, "logging_steps": 1, "gradient_checkpointing": False},
        "output_dir": str(out),
    }
    result = run_cli("pretrain", write_config(tmp_path / "p.yaml", cfg))
    assert result.code == 0, result.stderr
    assert "this run has no held-out evaluation; raise data.validation or set data.validation_files" in result.stdout
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows and not any("eval_loss" in r for r in rows)
    assert (out / "adapter" / "adapter_config.json").is_file()


def test_a_loss_chart_with_one_logged_point_shows_the_point(tmp_path):
    import json

    import matplotlib.pyplot as plt
    import numpy as np

    from bailong.training.curves import plot_metrics

    (tmp_path / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 7.1}) + "\n", encoding="utf-8")
    assert plot_metrics(tmp_path, tmp_path / "loss.png")
    pixels = plt.imread(tmp_path / "loss.png")[..., :3]
    blue = np.all(np.abs(pixels - np.array([0x1F, 0x77, 0xB4]) / 255) < 0.05, axis=-1)  # matplotlib's first color
    assert blue.sum() > 100  # the marker (about 100 pixels) besides the legend's swatch (about 60)
