"""The README's main command, as a user runs it: the console script on the shipped demo config."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT

pytestmark = pytest.mark.slow  # end to end


def test_demo_extend_vocab_console_script(tmp_path):
    exe = Path(sys.executable).with_name("bailong")
    command = [str(exe) if exe.exists() else shutil.which("bailong"), "extend-vocab", "configs/demo/extend_vocab.yaml"]
    proc = subprocess.run(
        command + ["--set", f"output_dir={tmp_path / 'out'}"], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "out" / "extend_vocab_report.json").read_text(encoding="utf-8"))
    assert report["tokens_added"] == 4000
    assert report["tokens_per_char_after"] < 0.6 * report["tokens_per_char_before"]
    assert "tokens_per_char_after" in proc.stdout
    assert (tmp_path / "out" / "bailong_extension.json").exists()
    assert report["checkpoint"]["tied_embeddings"] is True

    # The extended SmolLM2 loads with plain transformers, keeps the base's logits on English, and generates.
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from bailong.loading.sources import embedded_checkpoint

    model = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    base = AutoModelForCausalLM.from_pretrained(embedded_checkpoint())
    tok = AutoTokenizer.from_pretrained(tmp_path / "out")
    english = tok("The weather in the harbour town was mild.", return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.allclose(model(english).logits[..., :49152], base(english).logits, atol=1e-4)
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "台灣的首都是哪裡？"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    out = model.generate(**prompt, max_new_tokens=8, do_sample=False)
    assert out.shape[1] > prompt["input_ids"].shape[1]
