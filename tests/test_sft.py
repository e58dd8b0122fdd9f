"""bailong sft: chat records, templates and loss masks on both tokenizer families, length cuts, packing, training
from a pretrain run (continue / merge), SIGKILL resume, and `bailong chat` through a pipe."""

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bailong.config import SftDataConfig
from bailong.data.chat_template import IGNORE, encode, render, set_template
from bailong.data.conversations import ChatReader
from bailong.data.sft_data import build_sft_data
from bailong.errors import BailongError
from bailong.loading import load_tokenizer
from helpers import (
    DEMO_DATA,
    MISTRAL_V1,
    kill_when_created,
    logged_losses,
    run_cli,
    shared_file,
    tiny_llama,
    write_config,
)

FAMILIES = {"sentencepiece": str(MISTRAL_V1), "byte-level": "smollm2-135m-instruct"}


@pytest.fixture(scope="module")
def tokenizers():
    return {name: load_tokenizer(source) for name, source in FAMILIES.items()}


def demo_conversations(n: int = 30) -> list[list[dict]]:
    data = SftDataConfig(files=[str(DEMO_DATA / "sft_chat.jsonl")])
    return list(ChatReader(data, data.files))[:n]


def drcd_conversations(n: int = 10) -> list[list[dict]]:
    """Traditional Chinese instruction data from DRCD: paragraph + question -> answer, two questions a paragraph."""
    conversations = []
    with open(shared_file("tc/drcd_dev_qa.jsonl"), encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            if len(record["qas"]) < 2 or len(record["context"]) > 300:
                continue
            first, second = record["qas"][:2]
            conversations.append(
                [
                    {"role": "user", "content": f"{record['context']}\n\n根據上文回答：{first['question']}"},
                    {"role": "assistant", "content": first["answer"]},
                    {"role": "user", "content": second["question"]},
                    {"role": "assistant", "content": second["answer"]},
                ]
            )
            if len(conversations) == n:
                break
    return conversations


def write_jsonl(path, rows):
    path.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows), encoding="utf-8"
    )
    return path


# --- records ---------------------------------------------------------------------------------------------------


def test_three_forms_with_field_mapping_read_as_the_same_conversation(tmp_path):
    expected = [
        {"role": "system", "content": "簡短回答。"},
        {"role": "user", "content": "台北在哪裡？"},
        {"role": "assistant", "content": "在臺灣北部。"},
    ]
    messages = write_jsonl(
        tmp_path / "m.jsonl", [{"dialog": [{"who": m["role"], "text": m["content"]} for m in expected]}]
    )
    sharegpt = write_jsonl(
        tmp_path / "s.jsonl",
        [
            {
                "conversations": [
                    {"from": "system", "value": "簡短回答。"},
                    {"from": "human", "value": "台北在哪裡？"},
                    {"from": "gpt", "value": "在臺灣北部。"},
                ]
            }
        ],
    )
    alpaca = write_jsonl(
        tmp_path / "a.jsonl",
        [{"system": "簡短回答。", "instruction": "台北在哪裡？", "input": "", "output": "在臺灣北部。"}],
    )
    mapped = SftDataConfig(files=[str(messages)], fields={"messages": "dialog", "role": "who", "content": "text"})
    assert list(ChatReader(mapped, mapped.files)) == [expected]
    for path in (sharegpt, alpaca):
        data = SftDataConfig(files=[str(path)])
        assert list(ChatReader(data, data.files)) == [expected]


BAD = [
    ('{"messages": [{"role": "user", "content": "hi"}', "malformed JSON"),
    ({"messages": [{"role": "narrator", "content": "hi"}, {"role": "assistant", "content": "yo"}]}, "unknown role"),
    ({"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}, "alternate"),
    ({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "  "}]}, "empty"),
]


@pytest.mark.parametrize("record, reason", BAD)
def test_bad_record_stops_with_file_and_line(tmp_path, record, reason):
    good = {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}
    path = write_jsonl(tmp_path / "chat.jsonl", [good, record, good])
    data = SftDataConfig(files=[str(path)])
    with pytest.raises(BailongError, match=rf"chat.jsonl:2: .*{reason}.*on_bad_record: skip"):
        list(ChatReader(data, data.files))


def test_bad_records_skipped_and_counted(tmp_path):
    good = {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}
    path = write_jsonl(tmp_path / "chat.jsonl", [good] + [r for r, _ in BAD] + [good])
    data = SftDataConfig(files=[str(path)], on_bad_record="skip")
    reader = ChatReader(data, data.files)
    assert len(list(reader)) == 2
    assert sum(reader.skipped.values()) == 4
    assert "skipped 4 bad record(s)" in reader.report() and "chat.jsonl:2" in reader.report()


# --- templates and masks -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("template", ["auto", "llama-2", "speaker-labels"])
def test_labels_cover_exactly_the_assistant_turns(tokenizers, tmp_path, family, template):
    from transformers import AutoTokenizer

    tok = copy.deepcopy(tokenizers[family])
    set_template(tok, template)
    tok.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)  # what any other tool sees
    conversations = demo_conversations() + drcd_conversations()
    assert any(len(c) >= 4 for c in conversations)
    for messages in conversations:
        sample = encode(tok, messages, "assistant")
        ids, labels = sample["input_ids"], sample["labels"]
        assert ids == list(reloaded.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"])
        expected = [IGNORE] * len(ids)
        for i, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            start = len(tok(render(tok, messages[:i], True), add_special_tokens=False)["input_ids"])
            end = len(tok(render(tok, messages[: i + 1]), add_special_tokens=False)["input_ids"])
            expected[start:end] = ids[start:end]
            assert message["content"].strip()[:3] in tok.decode(ids[start:end])
            assert ids[end - 1] == tok.eos_token_id or tok.eos_token_id in ids[start:end]  # the turn learns to stop
        assert labels == expected


def test_train_on_last_and_all(tokenizers):
    tok = copy.deepcopy(tokenizers["byte-level"])
    set_template(tok, "auto")
    messages = drcd_conversations(1)[0]
    every = encode(tok, messages, "assistant")["labels"]
    last = encode(tok, messages, "last")["labels"]
    everything = encode(tok, messages, "all")
    kept = [i for i, t in enumerate(every) if t != IGNORE]
    kept_last = [i for i, t in enumerate(last) if t != IGNORE]
    assert kept_last and set(kept_last) < set(kept) and min(kept_last) > max(set(kept) - set(kept_last))
    assert everything["labels"] == everything["input_ids"]


def test_long_conversations_split_at_turns_or_dropped(tokenizers, tmp_path):
    tok = copy.deepcopy(tokenizers["sentencepiece"])
    set_template(tok, "llama-2")
    conversations = drcd_conversations(6)
    path = write_jsonl(tmp_path / "qa.jsonl", [{"messages": m} for m in conversations])
    lengths = [len(encode(tok, m, "assistant")["input_ids"]) for m in conversations]
    first_turns = [len(encode(tok, m[:2], "assistant")["input_ids"]) for m in conversations]
    limit = max(first_turns) + 2
    assert any(n > limit for n in lengths)
    split, counts = build_sft_data(SftDataConfig(files=[str(path)], max_length=limit), tok, "assistant", None, 0)
    assert all(len(ids) <= limit for ids in split.train["input_ids"])
    assert counts.split == sum(n > limit for n in lengths) and counts.samples > len(conversations) - 1
    dropped, counts = build_sft_data(
        SftDataConfig(files=[str(path)], max_length=limit, overlong="drop"), tok, "assistant", None, 0
    )
    assert counts.dropped_long == sum(n > limit for n in lengths) and len(dropped.train) == sum(
        n <= limit for n in lengths
    )


def test_packed_samples_do_not_attend_across_borders(tmp_path, tokenizers):
    from transformers import AutoModelForCausalLM, DataCollatorWithFlattening

    model = AutoModelForCausalLM.from_pretrained(tiny_llama(tmp_path / "m", str(MISTRAL_V1))).eval()
    tok = copy.deepcopy(tokenizers["sentencepiece"])
    set_template(tok, "speaker-labels")
    samples = [encode(tok, m, "assistant") for m in demo_conversations(3)]
    batch = DataCollatorWithFlattening(return_position_ids=True, separator_id=-100)(samples)
    with torch.no_grad():
        crossing = model(input_ids=batch["input_ids"]).logits[0]
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits[0]
        alone = [model(input_ids=torch.tensor([s["input_ids"]])).logits[0] for s in samples]
    assert not torch.allclose(crossing, torch.cat(alone), atol=1e-2)  # one plain row would attend across
    torch.testing.assert_close(packed, torch.cat(alone), atol=1e-4, rtol=1e-4)


def test_training_runs_without_a_kv_cache(tmp_path, tokenizers):
    """A KV cache would switch off the packed-sequence masks (they follow position ids only without one)."""
    import datasets
    from transformers import AutoModelForCausalLM, DataCollatorWithFlattening, TrainerCallback

    from bailong.config import TrainConfig
    from bailong.data import TrainingData
    from bailong.training.arguments import training_arguments
    from bailong.training.trainer import train_model

    seen = []

    class Probe(TrainerCallback):
        def on_step_begin(self, args, state, control, model=None, **kwargs):
            seen.append(model.config.use_cache)

    model = AutoModelForCausalLM.from_pretrained(tiny_llama(tmp_path / "m", str(MISTRAL_V1)))
    model.config.use_cache = True  # as most checkpoints ship
    tok = copy.deepcopy(tokenizers["sentencepiece"])
    set_template(tok, "speaker-labels")
    rows = [encode(tok, m, "assistant") for m in demo_conversations(4)]
    train = TrainConfig(max_steps=2, batch_size=2, save_steps=10, gradient_checkpointing=False, resume="never")
    args = training_arguments(train, tmp_path, has_validation=False)
    train_model(
        model,
        tok,
        TrainingData(datasets.Dataset.from_list(rows), None, 4, None),
        train,
        args,
        tmp_path,
        collator=DataCollatorWithFlattening(return_position_ids=True, separator_id=-100),
        callbacks=[Probe()],
    )
    assert seen == [False, False]


# --- training runs -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pretrain_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pre")
    base = tiny_llama(tmp / "base", str(MISTRAL_V1))
    cfg = {
        "model": {"name_or_path": str(base)},
        "quantization": {"mode": "none"},
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
        "data": {"files": [str(DEMO_DATA / "tc_corpus.txt")], "validation": 0, "block_size": 64},
        "train": {"max_steps": 2, "batch_size": 2, "save_steps": 2, "gradient_checkpointing": False},
        "output_dir": str(tmp / "run"),
    }
    result = run_cli("pretrain", write_config(tmp / "p.yaml", cfg))
    assert result.code == 0, result.stderr
    return tmp / "run"


def sft_config(model, out, **overrides) -> dict:
    cfg = {
        "model": {"name_or_path": str(model)},
        "quantization": {"mode": "none"},
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
        "chat": {"template": "llama-2"},
        "data": {"files": [str(DEMO_DATA / "sft_chat.jsonl")], "validation": 0.1, "max_length": 128},
        "train": {
            "max_steps": 4,
            "batch_size": 2,
            "save_steps": 2,
            "logging_steps": 1,
            "learning_rate": 5e-3,
            "gradient_checkpointing": False,
        },
        "output_dir": str(out),
    }
    for key, value in overrides.items():
        section, _, name = key.partition(".")
        if name:
            cfg.setdefault(section, {})[name] = value
        else:
            cfg[section] = value
    return cfg


@pytest.mark.slow
def test_sft_continues_the_pretrain_adapter_and_chats_through_a_pipe(pretrain_run, tmp_path):
    from transformers import AutoTokenizer

    out = tmp_path / "sft"
    config = write_config(tmp_path / "s.yaml", sft_config(pretrain_run, out))
    result = run_cli("sft", config)
    assert result.code == 0, result.stderr
    assert "continuing the adapter" in result.stdout and "conversations ->" in result.stdout
    run = json.loads((out / "bailong_run.json").read_text())
    pre = json.loads((pretrain_run / "bailong_run.json").read_text())
    assert run["stage"] == "sft" and run["steps"] == 4 and run["base_model"] == pre["base_model"]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3, 4]
    assert any("eval_loss" in r for r in rows) and rows[-1]["tokens_seen"] > 0
    assert "[INST]" in AutoTokenizer.from_pretrained(out).chat_template
    # the stage's config stands for its output_dir (`bailong chat RUN_DIR` is what `make demo` runs)
    chat = subprocess.run(
        [sys.executable, "-m", "bailong", "chat", str(config), "--max-new-tokens", "8"],
        input="你好\n/reset\nHello\n/exit\nnever read\n",
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert chat.returncode == 0, chat.stderr
    assert "(new conversation)" in chat.stdout and len(chat.stdout.strip().splitlines()) >= 3


@pytest.mark.slow
def test_sft_merge_writes_the_merged_base_and_trains_a_fresh_adapter(pretrain_run, tmp_path):
    out = tmp_path / "sft"
    cfg = sft_config(pretrain_run, out, pretrain_adapter="merge", **{"train.max_steps": 2, "data.packing": True})
    result = run_cli("sft", write_config(tmp_path / "s.yaml", cfg))
    assert result.code == 0, result.stderr
    run = json.loads((out / "bailong_run.json").read_text())
    assert run["base_model"] == str(out / "base") and (out / "base" / "config.json").is_file()
    adapter = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert adapter["r"] == 4 and run["steps"] == 2


@pytest.mark.slow
def test_sft_sigkill_resumes_to_the_same_steps_and_losses(pretrain_run, tmp_path):
    def config(name):
        cfg = sft_config(pretrain_run, tmp_path / name, **{"train.max_steps": 6, "data.validation": 0})
        return write_config(tmp_path / f"{name}.yaml", cfg)

    command = [sys.executable, "-m", "bailong", "sft"]
    straight = subprocess.run(command + [str(config("straight"))], capture_output=True, text=True)
    assert straight.returncode == 0, straight.stderr
    killed = config("killed")
    kill_when_created(command + [str(killed)], tmp_path / "killed" / "checkpoints" / "checkpoint-4")
    assert not (tmp_path / "killed" / "bailong_run.json").exists()
    resumed = subprocess.run(command + [str(killed)], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from" in resumed.stdout

    expected, got = logged_losses(tmp_path / "straight"), logged_losses(tmp_path / "killed")
    assert sorted(got) == list(range(1, 7))
    for step in range(1, 7):
        assert got[step] == pytest.approx(expected[step], rel=1e-2), step


def test_sft_bad_input(pretrain_run, tmp_path):
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"messages": [{"role": "user", "content": "only a question"}]}])
    cases = [
        (sft_config(pretrain_run, tmp_path / "a", **{"data.files": [str(bad)]}), "bad.jsonl:1: the conversation ends"),
        (sft_config(pretrain_run, tmp_path / "b", **{"data.max_length": 100000}), "above the model's context"),
        (sft_config(pretrain_run, tmp_path / "c", **{"data.max_length": 8}), "no usable conversation"),
        (sft_config(pretrain_run, tmp_path / "d", chat={"template": "base"}), "has no chat template"),
    ]
    for cfg, message in cases:
        result = run_cli("sft", write_config(tmp_path / "bad.yaml", cfg))
        assert result.code == 2 and message in result.stderr, (message, result.stderr)
        assert "Traceback" not in result.stderr
        assert not Path(cfg["output_dir"]).exists(), message  # a run that failed before training leaves no folder
