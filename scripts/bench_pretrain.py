"""Training throughput: bailong's training step against a plain transformers + peft + bitsandbytes loop.

Both paths train the same randomly initialized model (saved once, loaded by each), the same LoRA settings and the
same random token blocks; each runs in its own process so that peak memory is its own. Prints tokens/s, peak memory
and the ratio (bailong / plain; >= 1.0 means bailong is no slower).

    python scripts/bench_pretrain.py                       # a small Llama shape on the CPU, 4-bit NF4
    python scripts/bench_pretrain.py --quantization none
    python scripts/bench_pretrain.py --shape llama2-7b     # on a GPU: vocab 59,241, seq 2,048, batch 4, the paper preset
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

SHAPES = {
    "cpu": dict(vocab_size=32064, hidden_size=256, intermediate_size=704, num_hidden_layers=4, num_attention_heads=8,
                num_key_value_heads=8, seq=256, batch=4, r=16),
    "llama2-7b": dict(vocab_size=59241, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                      num_attention_heads=32, num_key_value_heads=32, seq=2048, batch=4, r=128),
}
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "embed_tokens", "lm_head"]


def peak_mib() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def blocks(shape: dict, count: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return [torch.randint(0, shape["vocab_size"], (shape["batch"], shape["seq"]), generator=generator)
            for _ in range(count)]


def run_plain(model_dir: str, shape: dict, quantization: str, steps: int) -> dict:
    """The loop people write by hand: from_pretrained with bitsandbytes, peft, AdamW."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    device = "cuda" if torch.cuda.is_available() else "cpu"
    compute = torch.bfloat16 if device == "cuda" else torch.float32
    kwargs = {"dtype": compute}
    if quantization == "nf4":
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute, llm_int8_skip_modules=["embed_tokens", "lm_head"])
        kwargs["device_map"] = {"": device}
    model = AutoModelForCausalLM.from_pretrained(model_dir, **kwargs).to(device)
    checkpointing = {"use_reentrant": False}
    if quantization == "nf4":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True,
                                                gradient_checkpointing_kwargs=checkpointing)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=checkpointing)
    model = get_peft_model(model, LoraConfig(r=shape["r"], lora_alpha=2 * shape["r"], lora_dropout=0.0,
                                             target_modules=TARGETS, task_type="CAUSAL_LM"))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    model.train()
    data = blocks(shape, steps + 1)
    start = None
    for i, ids in enumerate(data):
        if i == 1:  # the first step warms up
            start = time.perf_counter()
        ids = ids.to(device)
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {"tokens_per_s": steps * shape["batch"] * shape["seq"] / seconds, "peak_mib": peak_mib()}


def run_bailong(model_dir: str, shape: dict, quantization: str, steps: int) -> dict:
    """bailong's path: the loading core, pretrain's adapter setup, and the one Trainer-based training loop."""
    import datasets
    from transformers import TrainerCallback

    from bailong.config import EmbeddingTrainingConfig, LoraConfig, ModelConfig, PretrainConfig, QuantizationConfig
    from bailong.config import TrainConfig
    from bailong.data.packing import TrainingData
    from bailong.pretrain import prepare_model
    from bailong.trainer import train_model, training_arguments

    class Clock(TrainerCallback):
        start = None

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 1:  # the first step warms up
                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                self.start = time.perf_counter()

    train = TrainConfig(max_steps=steps + 1, batch_size=shape["batch"], learning_rate=1e-4, warmup_ratio=0.0,
                        save_steps=10**9, logging_steps=10**9, gradient_checkpointing=True, resume="never")
    cfg = PretrainConfig.model_construct(
        model=ModelConfig(name_or_path=model_dir), quantization=QuantizationConfig(mode=quantization),
        lora=LoraConfig(r=shape["r"], alpha=2 * shape["r"], dropout=0.0, target_modules=TARGETS[:7]),
        embeddings=EmbeddingTrainingConfig(train="lora"), train=train,
    )
    with tempfile.TemporaryDirectory() as tmp:
        args = training_arguments(train, Path(tmp), has_validation=False)
        model = prepare_model(cfg, extension=None)
        rows = [{"input_ids": ids.tolist(), "labels": ids.tolist()} for batch in blocks(shape, steps + 1) for ids in batch]
        data = TrainingData(datasets.Dataset.from_list(rows), None, len(rows), None)
        clock = Clock()
        train_model(model, None, data, train, args, Path(tmp), block_size=shape["seq"], callbacks=[clock])
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        seconds = time.perf_counter() - clock.start
    return {"tokens_per_s": steps * shape["batch"] * shape["seq"] / seconds, "peak_mib": peak_mib()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="cpu")
    parser.add_argument("--quantization", choices=["nf4", "none"], default="nf4")
    parser.add_argument("--steps", type=int, default=20, help="timed steps (after one warm-up step)")
    parser.add_argument("--one", choices=["plain", "bailong"], help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    shape = SHAPES[args.shape]
    if args.one:
        run = run_plain if args.one == "plain" else run_bailong
        print(json.dumps(run(args.model_dir, shape, args.quantization, args.steps)))
        return

    from transformers import LlamaConfig, LlamaForCausalLM

    from bailong.table import format_table

    with tempfile.TemporaryDirectory() as tmp:
        config = LlamaConfig(**{k: v for k, v in shape.items() if k not in ("seq", "batch", "r")},
                             max_position_embeddings=max(4096, shape["seq"]), tie_word_embeddings=False)
        torch.manual_seed(0)
        LlamaForCausalLM(config).save_pretrained(tmp)
        results = {}
        for path in ("plain", "bailong"):
            command = [sys.executable, __file__, "--shape", args.shape, "--quantization", args.quantization,
                       "--steps", str(args.steps), "--one", path, "--model-dir", tmp]
            proc = subprocess.run(command, capture_output=True, text=True)
            if proc.returncode != 0:
                sys.exit(f"{path} failed:\n{proc.stderr[-3000:]}")
            results[path] = json.loads(proc.stdout.strip().splitlines()[-1])
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU, {torch.get_num_threads()} threads"
    print(f"shape {args.shape} ({shape['num_hidden_layers']} layers, hidden {shape['hidden_size']}, vocab "
          f"{shape['vocab_size']}, batch {shape['batch']} x seq {shape['seq']}), LoRA r={shape['r']} on the seven "
          f"projections + embed_tokens + lm_head, quantization {args.quantization}, gradient checkpointing; {device}")
    ratio = results["bailong"]["tokens_per_s"] / results["plain"]["tokens_per_s"]
    print(format_table(["path", "tokens/s", "peak MiB"], [
        ["plain transformers + peft + bitsandbytes", f"{results['plain']['tokens_per_s']:.1f}",
         f"{results['plain']['peak_mib']:.0f}"],
        ["bailong", f"{results['bailong']['tokens_per_s']:.1f}", f"{results['bailong']['peak_mib']:.0f}"],
    ]))
    print(f"ratio bailong / plain: {ratio:.2f}")


if __name__ == "__main__":
    main()
