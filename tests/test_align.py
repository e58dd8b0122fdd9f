"""align: the new rows learn against the base model; every other weight stays bit for bit; both tokenizer families,
tied and untied bases; the aligned checkpoint reloads with transformers alone; bad settings are clear errors."""

import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from bailong.config import AlignConfig
from bailong.evaluation.bpc import bits_per_character
from bailong.loading import load_tokenizer
from bailong.vocab.align import held_out_losses, matched_positions, text_blocks, token_ends
from helpers import DEMO_DATA, MISTRAL_V1, ROOT, run_cli, tiny_llama, write_config

ALIGN = {"steps": 12, "batch_size": 4, "block_size": 48, "learning_rate": 0.2, "layers": "all", "hidden_weight": 1}
HELD_OUT = [line.strip() for line in open(DEMO_DATA / "tc_heldout.txt", encoding="utf-8") if line.strip()][:6]


def extend(tmp, base, name, new_tokens, align):
    cfg = {
        "model": {"name_or_path": str(base)},
        "data": {"files": [str(DEMO_DATA / "tc_corpus.txt")], "validation": 0},
        "vocab": {"new_tokens": new_tokens},
        "align": align,
        "output_dir": str(tmp / name),
    }
    result = run_cli("extend-vocab", write_config(tmp / f"{name}.yaml", cfg))
    assert result.code == 0, result.stderr
    return tmp / name


@pytest.fixture(scope="module", params=["tied-byte-level", "untied-sentencepiece"])
def pair(request, tmp_path_factory):
    """The same base extended twice: zip-tie only, and zip-tie then align."""
    tmp = tmp_path_factory.mktemp(request.param)
    tied = request.param.startswith("tied")
    base = tiny_llama(tmp / "base", "smollm2-135m-instruct" if tied else str(MISTRAL_V1), tied=tied)
    plain = extend(tmp, base, "zip-tie", 120, {"steps": 0})
    aligned = extend(tmp, base, "aligned", 120, ALIGN)
    return base, plain, aligned, tied


def test_only_the_new_rows_change(pair):
    base, plain, aligned, tied = pair
    before, zip_tie, after = (load_file(str(p / "model.safetensors")) for p in (base, plain, aligned))
    assert before.keys() == after.keys()
    meta = json.loads((aligned / "bailong_extension.json").read_text(encoding="utf-8"))
    new_ids = meta["new_token_ids"]
    matrices = ["model.embed_tokens.weight"] + ([] if tied else ["lm_head.weight"])
    for name, tensor in after.items():
        if name in matrices:
            old = before[name].shape[0]
            assert torch.equal(tensor[:old], before[name])  # every old row, bit for bit
            assert not torch.equal(tensor[new_ids], zip_tie[name][new_ids])  # the new rows moved from zip-tie
            assert tensor.shape[0] == old + len(new_ids)
        else:
            assert torch.equal(tensor, before[name]), name


def test_aligned_checkpoint_reloads_and_records_the_run(pair):
    _, _, aligned, tied = pair
    model = AutoModelForCausalLM.from_pretrained(aligned)
    tok = AutoTokenizer.from_pretrained(aligned)
    assert model.get_input_embeddings().weight.shape[0] == len(tok)
    assert (model.get_output_embeddings().weight is model.get_input_embeddings().weight) == tied
    meta = json.loads((aligned / "bailong_extension.json").read_text(encoding="utf-8"))
    record = meta["align"]
    assert record["steps"] == 12 and record["layers"] == "all" and record["layers_matched"] == [1, 2]
    assert [p["step"] for p in record["loss_curve"]] == list(range(1, 13))
    assert record["new_token_occurrences"] > 100
    report = json.loads((aligned / "extend_vocab_report.json").read_text(encoding="utf-8"))
    assert report["checkpoint"]["align"]["loss_last"] == record["loss_curve"][-1]["loss"]
    plain_meta = json.loads((pair[1] / "bailong_extension.json").read_text(encoding="utf-8"))
    assert plain_meta["align"] is None


def test_align_lowers_the_held_out_hidden_state_loss(pair):
    base, plain, aligned, _ = pair
    base_tok, new_tok = load_tokenizer(str(base)), load_tokenizer(str(aligned))
    new_ids = list(range(len(base_tok), len(new_tok)))
    cfg = AlignConfig(**ALIGN)
    results = {}
    for name, path in (("zip-tie", plain), ("aligned", aligned)):
        model = AutoModelForCausalLM.from_pretrained(path)
        results[name] = held_out_losses(model, base_tok, new_tok, new_ids, HELD_OUT, cfg)
    assert results["aligned"]["hidden"] < 0.85 * results["zip-tie"]["hidden"], results


@pytest.mark.parametrize("pair", ["untied-sentencepiece"], indirect=True)
def test_default_losses_on_an_untied_base_move_only_the_lm_head_rows(pair, tmp_path):
    """hidden_weight 0 (the default): next-token loss alone, the teacher never runs, the input rows stay zip-tie's."""
    base, plain, _, _ = pair
    aligned = extend(tmp_path, base, "next-token", 120, {"steps": 4, "batch_size": 4, "block_size": 48})
    zip_tie, after = (load_file(str(p / "model.safetensors")) for p in (plain, aligned))
    new_ids = json.loads((aligned / "bailong_extension.json").read_text(encoding="utf-8"))["new_token_ids"]
    assert torch.equal(after["model.embed_tokens.weight"], zip_tie["model.embed_tokens.weight"])
    assert not torch.equal(after["lm_head.weight"][new_ids], zip_tie["lm_head.weight"][new_ids])
    record = json.loads((aligned / "bailong_extension.json").read_text(encoding="utf-8"))["align"]
    assert record["teacher_tokens"] == 0 and record["hidden_weight"] == 0


@pytest.mark.slow
def test_align_lowers_held_out_bits_per_char_of_smollm2(tmp_path):
    """A random tiny model predicts nothing, so bits per character needs a real one: SmolLM2-135M, a few steps."""
    align = {"steps": 10, "batch_size": 8, "block_size": 64}  # the default losses: next-token only, no teacher
    plain = extend(tmp_path, "smollm2-135m-instruct", "zip-tie", 2000, {"steps": 0})
    aligned = extend(tmp_path, "smollm2-135m-instruct", "aligned", 2000, align)
    base_tok, new_tok = load_tokenizer("smollm2-135m-instruct"), load_tokenizer(str(aligned))
    new_ids = list(range(len(base_tok), len(new_tok)))
    results = {}
    for name, path in (("zip-tie", plain), ("aligned", aligned)):
        model = AutoModelForCausalLM.from_pretrained(path)
        results[name] = {
            **held_out_losses(model, base_tok, new_tok, new_ids, HELD_OUT, AlignConfig(**align)),
            "bpc": bits_per_character(model, new_tok, HELD_OUT)["bits_per_char"],
        }
    assert results["aligned"]["bpc"] < results["zip-tie"]["bpc"], results
    record = json.loads((aligned / "bailong_extension.json").read_text(encoding="utf-8"))["align"]
    assert record["teacher_tokens"] == 0 and record["student_tokens"] > 0  # hidden_weight 0: the teacher never ran


@pytest.mark.parametrize("source", ["smollm2-135m-instruct", str(MISTRAL_V1)])
def test_positions_match_where_both_tokenizations_end_a_token_at_the_same_character(source):
    tok = load_tokenizer(source)
    text = "龘龘 tea 台灣"  # a character neither base has: bytes (byte-level BPE, byte fallback)
    ids, ends = token_ends(tok, text)
    assert len(ids) == len(ends) and ends[-1] == len(text)
    assert 1 not in ends or ends.index(1) == ends.index(1)  # a split character ends only at its last byte
    complete = [e for e in ends if e >= 0]
    assert complete == sorted(set(complete))
    assert 1 in complete and 2 in complete  # each 龘 ends a prefix once, after its last byte
    assert sum(1 for e in ends if e == -1) >= 2  # its first bytes end nothing
    teacher, student = matched_positions([-1, -1, 1, 3, 5], [1, 2, 3, -1, 5])
    assert teacher == [2, 3, 4] and student == [0, 2, 4]
    blocks = list(text_blocks([text * 20], tok, 16))
    assert "".join(blocks) == text * 20 and len(blocks) > 2


def test_steps_without_a_model_is_a_clear_error(tmp_path):
    cfg = {
        "model": {"tokenizer": "smollm2-135m-instruct"},
        "data": {"files": [str(DEMO_DATA / "tc_corpus.txt")]},
        "align": {"steps": 5},
        "output_dir": str(tmp_path / "out"),
    }
    result = run_cli("extend-vocab", write_config(tmp_path / "c.yaml", cfg))
    assert result.code == 2 and "align.steps needs model.name_or_path" in result.stderr
    assert not (tmp_path / "out").exists()


def test_bad_align_settings_are_refused_when_the_config_loads(tmp_path):
    cfg = {
        "model": {"name_or_path": "smollm2-135m-instruct"},
        "data": {"files": [str(DEMO_DATA / "tc_corpus.txt")]},
        "align": {"steps": 5, "layers": [0, 3]},
        "output_dir": str(tmp_path / "out"),
    }
    result = run_cli("extend-vocab", write_config(tmp_path / "c.yaml", cfg))
    assert result.code == 2 and "layers count from 1" in result.stderr
    cfg["align"] = {"steps": 5, "hidden_weight": 0, "output_weight": 0}
    result = run_cli("extend-vocab", write_config(tmp_path / "c.yaml", cfg))
    assert result.code == 2 and "align.hidden_weight and align.output_weight are both 0" in result.stderr


def test_a_layer_the_model_lacks_leaves_no_output(tmp_path):
    base = tiny_llama(tmp_path / "base", "smollm2-135m-instruct", tied=True)
    cfg = {
        "model": {"name_or_path": str(base)},
        "data": {"files": [str(DEMO_DATA / "tc_corpus.txt")], "validation": 0},
        "vocab": {"new_tokens": 50},
        "align": {"steps": 2, "layers": [7]},
        "output_dir": str(tmp_path / "out"),
    }
    result = run_cli("extend-vocab", write_config(tmp_path / "c.yaml", cfg))
    assert result.code == 2 and "align.layers: 7 is not a layer of this model; it has layers 1 to 2" in result.stderr
    assert not (tmp_path / "out").exists()


def test_ctrl_c_during_align_leaves_no_checkpoint(tmp_path):
    import signal
    import sys
    import time

    from helpers import signal_at

    base = tiny_llama(tmp_path / "base", str(MISTRAL_V1))
    cfg = {
        "model": {"name_or_path": str(base)},
        "data": {"files": [str(DEMO_DATA / "tc_corpus.txt")], "validation": 0},
        "vocab": {"new_tokens": 50},
        "align": {"steps": 100000, "batch_size": 2, "block_size": 32},
        "output_dir": str(tmp_path / "out"),
    }
    seen: list[float] = []

    def aligning() -> bool:  # the tokenizer is written, then checked, before the model loads and align starts
        if not seen and any(tmp_path.glob(".out.partial-*/tokenizer.json")):
            seen.append(time.monotonic())
        return bool(seen) and time.monotonic() - seen[0] > 30  # align's 100,000 steps outlast it; a busy CPU too

    command = [sys.executable, "-m", "bailong", "extend-vocab", str(write_config(tmp_path / "c.yaml", cfg))]
    proc = signal_at(command, signal.SIGINT, when=aligning)
    assert proc.returncode == 130 and "align:" in proc.stdout, proc.stderr[-2000:]
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.*"))


@pytest.mark.slow
def test_ablation_script_prints_both_tables_and_writes_json(tmp_path):
    """scripts/ablate_init.py, the README's source of the init figures, at a toy size: both tables, the JSON."""
    out = tmp_path / "ablation.json"
    command = [
        sys.executable, str(ROOT / "scripts" / "ablate_init.py"), "--limit", "2", "--new-tokens", "300",
        "--only", "decay 0.8", "--align-steps", "10", "--align-batch", "2", "--pretrain-steps", "2",
        "--align-after", "1", "--json", str(out),
    ]  # fmt: skip
    proc = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "align, 10 steps (from zip-tie)" in proc.stdout and "English after" in proc.stdout
    results = json.loads(out.read_text())
    step0 = results["step0"]["results"]
    bpc = {name: r["bits_per_char"] for name, r in step0.items()}
    assert bpc["align, 10 steps (from zip-tie)"] < bpc["zip-tie, decay 0.8 (default)"]
    after = results["after_training"]
    assert set(after) == {"zip-tie", "mean", "align (1 steps) + pretrain"}
    assert all(r["tc_after"] > 0 and r["en_after"] > 0 for r in after.values())
