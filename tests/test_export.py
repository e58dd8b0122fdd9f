"""bailong export: the export equals the run it came from (base + adapter, as `bailong eval` loads it) for every
embeddings.train mode, on tied and untied bases, trained on a full-precision or a 4-bit base; the GGUF export's files,
types and bad input. (llama.cpp itself reads the GGUF in test_gguf_llama_cpp.py.)"""

import json
import resource
import signal
import subprocess
import sys

import pytest
import torch
from transformers import AutoModelForCausalLM

from helpers import DEMO_DATA, ROOT, extended_tiny_llama, run_cli, train_tiny

MODES = ["lora", "new-rows", "full", "frozen"]


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    return extended_tiny_llama(tmp_path_factory.mktemp("bases"))


@pytest.fixture(scope="module")
def tied_lora_run(bases, tmp_path_factory):
    """The demo's case: LoRA on a tied base's embedding and head, which the export must write untied."""
    return train_tiny(bases["tied"], tmp_path_factory.mktemp("tied_lora") / "run")


def held_out_ids(tokenizer) -> torch.Tensor:
    text = (DEMO_DATA / "tc_heldout.txt").read_text(encoding="utf-8")[:400]
    ids = tokenizer(text, return_tensors="pt")["input_ids"][:, :96]
    assert (ids >= 32000).any()  # the new rows are read
    return ids


@pytest.mark.parametrize("quantized", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["fp32", "nf4"])
@pytest.mark.parametrize("tie", ["tied", "untied"])
@pytest.mark.parametrize("mode", MODES)
def test_export_equals_the_run(bases, tmp_path, mode, tie, quantized):
    from bailong.config import ModelConfig
    from bailong.loading import load_model, load_tokenizer

    run = train_tiny(bases[tie], tmp_path / "run", mode, quantized)
    result = run_cli("export", run, "--out", tmp_path / "merged")
    assert result.code == 0, result.stderr
    exported = AutoModelForCausalLM.from_pretrained(tmp_path / "merged").eval()
    on_base = load_model(ModelConfig(name_or_path=str(run))).eval()  # what `bailong eval` loads for a run folder
    ids = held_out_ids(load_tokenizer(str(tmp_path / "merged")))
    with torch.no_grad():
        want, got = on_base(input_ids=ids).logits, exported(input_ids=ids).logits
    assert torch.allclose(got, want, atol=1e-4), (got - want).abs().max()
    config = json.loads((tmp_path / "merged" / "config.json").read_text())
    heads_differ = tie == "tied" and mode in ("lora", "full")  # trained apart; new-rows shares its deltas when tied
    assert config["tie_word_embeddings"] is (tie == "tied" and not heads_differ)
    assert ("tie_word_embeddings: false" in result.stdout) is heads_differ
    assert (tmp_path / "merged" / "tokenizer.model").is_file()  # the SentencePiece model travels with the export


def test_gguf_f32_reads_back_as_the_hf_export(tied_lora_run, tmp_path):
    """transformers' own GGUF reader (a second reader besides llama.cpp) gets the merged model's logits back."""
    import gguf

    assert run_cli("export", tied_lora_run, "--out", tmp_path / "hf").code == 0
    result = run_cli("export", tied_lora_run, "--out", tmp_path / "gguf", "--format", "gguf", "--outtype", "f32")
    assert result.code == 0, result.stderr
    assert [p.name for p in (tmp_path / "gguf").iterdir()] == ["run-f32.gguf"]
    assert "tie_word_embeddings: false" in result.stdout
    reader = gguf.GGUFReader(tmp_path / "gguf" / "run-f32.gguf")
    names = {t.name for t in reader.tensors}
    assert {"token_embd.weight", "output.weight"} <= names  # untied: the head is its own matrix
    rows = next(t for t in reader.tensors if t.name == "token_embd.weight").shape[-1]
    assert len(reader.fields["tokenizer.ggml.tokens"].data) == rows == 32200
    assert reader.fields["tokenizer.ggml.model"].contents() == "llama"
    hf = AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    back = AutoModelForCausalLM.from_pretrained(tmp_path / "gguf", gguf_file="run-f32.gguf").eval()
    ids = torch.randint(0, 32200, (1, 48))
    with torch.no_grad():
        assert torch.allclose(back(input_ids=ids).logits, hf(input_ids=ids).logits, atol=1e-4)


@pytest.mark.parametrize("outtype,weights", [("f16", "F16"), ("bf16", "BF16"), ("q8_0", "Q8_0")])
def test_gguf_outtypes(tied_lora_run, tmp_path, outtype, weights):
    import gguf

    result = run_cli("export", tied_lora_run, "--out", tmp_path, "--format", "gguf", "--outtype", outtype)
    assert result.code == 0, result.stderr
    assert [p.name for p in tmp_path.iterdir()] == [f"run-{outtype}.gguf"]  # one file, no partial left
    types = {t.name: t.tensor_type.name for t in gguf.GGUFReader(tmp_path / f"run-{outtype}.gguf").tensors}
    assert types["token_embd.weight"] == types["blk.0.attn_q.weight"] == weights
    assert types["blk.0.attn_norm.weight"] == types["output_norm.weight"] == "F32"
    again = run_cli("export", tied_lora_run, "--out", tmp_path, "--format", "gguf", "--outtype", outtype)
    assert again.code == 2 and "--overwrite" in again.stderr


def error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def test_gguf_bad_input(tied_lora_run, tmp_path):
    bad_type = run_cli("export", tied_lora_run, "--format", "gguf", "--outtype", "q4_k")
    assert bad_type.code == 2 and "'q4_k' is not one of 'f32', 'f16', 'bf16', 'q8_0'" in bad_type.stderr
    not_a_run = run_cli("export", DEMO_DATA, "--format", "gguf")
    assert not_a_run.code == 2 and len(error_lines(not_a_run)) == 1
    assert "not a finished bailong training run" in not_a_run.stderr and "pretrain or sft run" in not_a_run.stderr
    # a run whose base is a Phi-3 model: refused from the base's config, before any merge
    base = tmp_path / "phi3"
    base.mkdir()
    (base / "config.json").write_text(json.dumps({"model_type": "phi3", "architectures": ["Phi3ForCausalLM"]}))
    run = tmp_path / "run"
    run.mkdir()
    (run / "bailong_run.json").write_text(json.dumps({"base_model": str(base), "adapter": "adapter"}))
    other = run_cli("export", run, "--format", "gguf", "--out", tmp_path / "out")
    assert other.code == 2 and len(error_lines(other)) == 1, other.stderr
    assert "does not support the architecture Phi3ForCausalLM" in other.stderr
    for supported in ("LlamaForCausalLM", "MistralForCausalLM", "Gemma3ForCausalLM", "Qwen2ForCausalLM"):
        assert supported in other.stderr
    # a supported architecture with a rope the GGUF cannot express (Qwen2.5's YaRN for long context)
    yarn = {"rope_type": "yarn", "factor": 4.0, "rope_theta": 1e6, "original_max_position_embeddings": 32768}
    config = {"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], "rope_parameters": yarn}
    (base / "config.json").write_text(json.dumps(config))
    long_context = run_cli("export", run, "--format", "gguf", "--out", tmp_path / "out")
    assert long_context.code == 2 and len(error_lines(long_context)) == 1, long_context.stderr
    assert "does not support rope_type 'yarn' for Qwen2" in long_context.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # a second process
def test_gguf_full_disk_leaves_nothing_under_the_final_name(tied_lora_run, tmp_path):
    """A file-size limit makes the write fail as a full disk does (EFBIG instead of ENOSPC) once 4 MB are written."""

    def limit_writes():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (4 << 20, 4 << 20))

    command = [
        sys.executable,
        "-m",
        "bailong",
        "export",
        str(tied_lora_run),
        "--format",
        "gguf",
        "--out",
        str(tmp_path),
    ]
    proc = subprocess.run(command, capture_output=True, text=True, preexec_fn=limit_writes, cwd=ROOT, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert "cannot write" in proc.stderr and "free some space" in proc.stderr
    assert list(tmp_path.iterdir()) == []  # neither run-f16.gguf nor its partial
