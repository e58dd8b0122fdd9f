"""Training throughput: bailong's training step against a plain transformers + peft + bitsandbytes loop.

Both paths train the same randomly initialized model (saved once, loaded by each), the same LoRA settings and
random token blocks of the same shape. Speed is measured with both paths in one process, one plain step beside each
bailong step (before and after it in turn), and tokens/s comes from each path's median step time, so a slow moment of
the machine does not decide the ratio; peak memory comes from each path run alone in its own process. Prints tokens/s,
peak memory and the ratio (bailong / plain; >= 1.0 means bailong is no slower).

    python scripts/bench_pretrain.py                       # a small Llama shape on the CPU, 4-bit NF4
    python scripts/bench_pretrain.py --quantization none
    python scripts/bench_pretrain.py --shape llama2-7b     # GPU: vocab 59,241, seq 2,048, batch 4, the paper preset
    python scripts/bench_pretrain.py --shape llama2-7b --kernels liger   # bailong with Liger's fused kernels
    python scripts/bench_pretrain.py --shape llama2-7b --embeddings full --model-dir runs/llama2-7b-random

bailong's path runs as `bailong pretrain` does: `train.chunked_loss` on (`--full-logits` turns it off) and
`train.kernels` from `--kernels` (default none); the plain loop is the same in every case.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

SHAPES = {
    "cpu": {
        "vocab_size": 32064,
        "hidden_size": 256,
        "intermediate_size": 704,
        "num_hidden_layers": 4,
        "num_attention_heads": 8,
        "num_key_value_heads": 8,
        "seq": 256,
        "batch": 4,
        "r": 16,
    },
    "llama2-7b": {
        "vocab_size": 59241,
        "hidden_size": 4096,
        "intermediate_size": 11008,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
        "seq": 2048,
        "batch": 4,
        "r": 128,
    },
}
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "embed_tokens", "lm_head"]
BASE_VOCAB = {"cpu": 16000, "llama2-7b": 32000}  # rows above these are "new" for --embeddings new-rows


def embedding_options(shape: dict, embeddings: str) -> dict:
    """The plain loop's peft arguments for what trains of the embeddings, as bailong's `embeddings.train` sets them."""
    if embeddings == "lora":
        return {"target_modules": TARGETS}
    if embeddings == "new-rows":
        new = list(range(BASE_VOCAB[shape["name"]], shape["vocab_size"]))
        return {"target_modules": TARGETS[:7], "trainable_token_indices": {"embed_tokens": new, "lm_head": new}}
    return {"target_modules": TARGETS[:7], "modules_to_save": ["embed_tokens", "lm_head"]}


def peak_mib() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def blocks(shape: dict, count: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    for _ in range(count):
        yield torch.randint(0, shape["vocab_size"], (shape["batch"], shape["seq"]), generator=generator)


class PlainLoop:
    """The loop people write by hand: from_pretrained with bitsandbytes, peft, AdamW."""

    def __init__(self, model_dir: str, shape: dict, quantization: str, embeddings: str = "lora"):
        from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
        from transformers import AutoModelForCausalLM, BitsAndBytesConfig

        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        compute = torch.bfloat16 if self.device == "cuda" else torch.float32
        kwargs = {"dtype": compute}
        if quantization == "nf4":
            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=compute,
                llm_int8_skip_modules=["embed_tokens", "lm_head"],
            )
            kwargs["device_map"] = {"": self.device}
        model = AutoModelForCausalLM.from_pretrained(model_dir, **kwargs).to(self.device)
        checkpointing = {"use_reentrant": False}
        if quantization == "nf4":
            model = prepare_model_for_kbit_training(
                model, use_gradient_checkpointing=True, gradient_checkpointing_kwargs=checkpointing
            )
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=checkpointing)
        self.model = get_peft_model(
            model,
            LoraConfig(
                r=shape["r"],
                lora_alpha=2 * shape["r"],
                lora_dropout=0.0,
                task_type="CAUSAL_LM",
                **embedding_options(shape, embeddings),
            ),
        )
        self.optimizer = torch.optim.AdamW([p for p in self.model.parameters() if p.requires_grad], lr=1e-4)
        self.model.train()
        self.data = iter(blocks(shape, 10**6, seed=1))
        self.times: list[float] = []

    def step(self) -> None:
        sync()
        start = time.perf_counter()
        ids = next(self.data).to(self.device)
        loss = self.model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        sync()
        self.times.append(time.perf_counter() - start)


def run_bailong(
    model_dir: str,
    shape: dict,
    quantization: str,
    steps: int,
    between=None,
    options: dict | None = None,
    embeddings: str = "lora",
) -> list[float]:
    """bailong's path: the loading core, pretrain's adapter setup and the one Trainer-based training loop. `between`
    runs after each optimizer step and its time is not counted. Returns the seconds of each step after the first."""
    import datasets
    from transformers import TrainerCallback

    from bailong.config import (
        EmbeddingTrainingConfig,
        LoraConfig,
        ModelConfig,
        PretrainConfig,
        QuantizationConfig,
        TrainConfig,
    )
    from bailong.data import TrainingData
    from bailong.loading.adapters import model_with_fresh_adapter
    from bailong.training.arguments import training_arguments
    from bailong.training.kernels import apply_kernels, resolve_kernels
    from bailong.training.trainer import train_model

    class Clock(TrainerCallback):
        """Times each optimizer step from the end of the one before, so the data loading, clipping and scheduler
        step Trainer does in between are counted, as in the plain loop. `between` runs before even steps and after
        odd ones (which of two steps in a row runs faster depends on the order), and its time is left out."""

        def __init__(self):
            self.times: list[float] = []
            self.last: float | None = None
            self.excluded = 0.0

        def _between(self):
            if between is not None:
                start = time.perf_counter()
                between()
                self.excluded += time.perf_counter() - start

        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step % 2 == 0:
                self._between()

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step % 2 == 1:
                self._between()
            sync()
            now = time.perf_counter()
            if self.last is not None:
                self.times.append(now - self.last - self.excluded)
            self.last, self.excluded = now, 0.0

    train = TrainConfig(
        max_steps=steps + 1,
        batch_size=shape["batch"],
        learning_rate=1e-4,
        warmup_ratio=0.0,
        save_steps=10**9,
        logging_steps=10**9,
        gradient_checkpointing=True,
        resume="never",
        **(options or {}),
    )
    cfg = PretrainConfig.model_construct(
        model=ModelConfig(name_or_path=model_dir),
        quantization=QuantizationConfig(mode=quantization),
        lora=LoraConfig(r=shape["r"], alpha=2 * shape["r"], dropout=0.0, target_modules=TARGETS[:7]),
        embeddings=EmbeddingTrainingConfig(train=embeddings),
        train=train,
    )
    with tempfile.TemporaryDirectory() as tmp:
        args = training_arguments(train, Path(tmp), has_validation=False)
        model = model_with_fresh_adapter(
            cfg.model,
            cfg.quantization,
            cfg.lora,
            cfg.embeddings,
            list(range(BASE_VOCAB[shape["name"]], shape["vocab_size"])),
            cfg.train.gradient_checkpointing,
        )
        apply_kernels(model, resolve_kernels(train.kernels)[0])
        rows = [
            {"input_ids": ids.tolist(), "labels": ids.tolist()} for batch in blocks(shape, steps + 1) for ids in batch
        ]
        data = TrainingData(datasets.Dataset.from_list(rows), None, len(rows), None)
        clock = Clock()
        train_model(model, None, data, train, args, Path(tmp), callbacks=[clock])
    return clock.times


def side_by_side(model_dir: str, shape: dict, quantization: str, steps: int, options: dict, embeddings: str) -> dict:
    """Both paths in one process, a plain step beside each bailong step (before it, then after it, alternately), so
    that any change in the machine's speed hits both alike; tokens/s from each path's median step time."""
    plain = PlainLoop(model_dir, shape, quantization, embeddings)
    plain.step()  # warm-up
    plain.times.clear()
    bailong = run_bailong(
        model_dir, shape, quantization, steps, between=plain.step, options=options, embeddings=embeddings
    )
    tokens = shape["batch"] * shape["seq"]
    return {"plain": tokens / statistics.median(plain.times), "bailong": tokens / statistics.median(bailong)}


def peak_memory(path: str, model_dir: str, shape: dict, quantization: str, options: dict, embeddings: str) -> float:
    """Peak memory of a few steps of one path alone in this process (MiB)."""
    if path == "plain":
        loop = PlainLoop(model_dir, shape, quantization, embeddings)
        for _ in range(3):
            loop.step()
    else:
        run_bailong(model_dir, shape, quantization, 2, options=options, embeddings=embeddings)
    return peak_mib()


def make_random_model(shape: dict, model_dir: Path) -> None:
    """A randomly initialized Llama of the shape, saved to `model_dir` unless one of the same shape is there. Made on
    the GPU in bf16 where there is one (7B in fp32 on a CPU takes minutes and 27 GB), in fp32 on a CPU."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        **{k: v for k, v in shape.items() if k not in ("seq", "batch", "r", "name")},
        max_position_embeddings=max(4096, shape["seq"]),
        tie_word_embeddings=False,
    )
    saved = model_dir / "config.json"
    weights = [model_dir / "model.safetensors", model_dir / "model.safetensors.index.json"]
    if saved.is_file() and any(path.is_file() for path in weights):
        known = json.loads(saved.read_text())
        if all(known.get(key) == value for key, value in config.to_diff_dict().items() if key in shape):
            return
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(config).to(dtype)
    partial = model_dir.with_name(model_dir.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial)
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
    shutil.rmtree(model_dir, ignore_errors=True)
    partial.rename(model_dir)


def measure(model_dir: str, shape: dict, args, options: dict) -> tuple[dict, dict]:
    """Each path's peak memory alone in its own process, then both side by side in this one for tokens/s."""
    peak = {}
    for path in ("plain", "bailong"):
        command = [sys.executable, __file__, "--shape", args.shape, "--quantization", args.quantization]
        command += ["--memory-of", path, "--model-dir", model_dir, "--kernels", args.kernels]
        command += ["--embeddings", args.embeddings] + (["--full-logits"] if args.full_logits else [])
        proc = subprocess.run(command, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            sys.exit(f"{path} failed:\n{proc.stderr[-3000:]}")
        peak[path] = json.loads(proc.stdout.strip().splitlines()[-1])
    return peak, side_by_side(model_dir, shape, args.quantization, args.steps, options, args.embeddings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="cpu")
    parser.add_argument("--quantization", choices=["nf4", "none"], default="nf4")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per path (after one warm-up step)")
    parser.add_argument("--kernels", choices=["auto", "liger", "none"], default="none", help="bailong's train.kernels")
    parser.add_argument(
        "--embeddings",
        choices=["lora", "new-rows", "full"],
        default="lora",
        help="what trains of embed_tokens and lm_head, in both paths (bailong's embeddings.train; new rows: those "
        "above the base's 32,000 for llama2-7b, 16,000 for cpu)",
    )
    parser.add_argument("--full-logits", action="store_true", help="bailong with train.chunked_loss: false")
    parser.add_argument("--memory-of", choices=["plain", "bailong"], help=argparse.SUPPRESS)
    parser.add_argument(
        "--model-dir",
        help="keep the random model of the shape here and reuse it on the next run (default: a temporary folder); "
        "the llama2-7b one is 13 GB in bf16 and takes a minute to make",
    )
    args = parser.parse_args()
    shape = {**SHAPES[args.shape], "name": args.shape}
    options = {"kernels": args.kernels, "chunked_loss": not args.full_logits}
    if args.memory_of:
        peak = peak_memory(args.memory_of, args.model_dir, shape, args.quantization, options, args.embeddings)
        print(json.dumps(peak))
        return

    from bailong.console import format_table

    if args.model_dir:
        model_dir = Path(args.model_dir)
        make_random_model(shape, model_dir)
        peak, speed = measure(str(model_dir), shape, args, options)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            make_random_model(shape, Path(tmp) / "model")
            peak, speed = measure(str(Path(tmp) / "model"), shape, args, options)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU, {torch.get_num_threads()} threads"
    print(
        f"shape {args.shape} ({shape['num_hidden_layers']} layers, hidden {shape['hidden_size']}, vocab "
        f"{shape['vocab_size']}, batch {shape['batch']} x seq {shape['seq']}), LoRA r={shape['r']} on the seven "
        f"projections, embeddings.train {args.embeddings}, quantization {args.quantization}, gradient checkpointing; "
        f"bailong kernels {args.kernels}, {'full-logits' if args.full_logits else 'chunked'} loss; {device}; "
        f"{args.steps} interleaved steps per path, tokens/s from the median step time"
    )
    print(
        format_table(
            ["path", "tokens/s", "peak MiB"],
            [
                ["plain transformers + peft + bitsandbytes", f"{speed['plain']:.1f}", f"{peak['plain']:.0f}"],
                ["bailong", f"{speed['bailong']:.1f}", f"{peak['bailong']:.0f}"],
            ],
        )
    )
    print(f"ratio bailong / plain: {speed['bailong'] / speed['plain']:.2f}")


if __name__ == "__main__":
    main()
