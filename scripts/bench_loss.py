"""The LM-head loss alone: transformers' plain path (full logits, then its cross-entropy) against bailong's chunked
loss, forward + backward, at the paper's shape: vocabulary 59,241, hidden 4,096, 2 × 2,048 tokens, a frozen LM head
with LoRA r=128 on it (the paper's setting; the gradients go to the hidden states and the LoRA matrices).

Each (path, dtype) runs alone in its own process; "extra peak" is the process's peak resident memory (or CUDA's peak
allocation) during forward + backward above what it held once the head and the hidden states were made.

    python scripts/bench_loss.py                    # bf16 and fp32 on this machine's device
    python scripts/bench_loss.py --dtype bfloat16 --tokens 2048
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch


def peak_mib() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one(path: str, dtype: str, vocab: int, hidden: int, batch: int, tokens: int, r: int) -> dict:
    from peft import LoraConfig, get_peft_model
    from transformers.loss.loss_utils import ForCausalLMLoss

    from bailong.training.chunked_loss import chunk_tokens_for, chunked_head_loss

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)

    class Head(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lm_head = torch.nn.Linear(hidden, vocab, bias=False)

    model = Head().to(device=device, dtype=getattr(torch, dtype))
    lora = LoraConfig(r=r, lora_alpha=2 * r, target_modules=["lm_head"], init_lora_weights=False)
    model = get_peft_model(model, lora)
    head = model.base_model.model.lm_head
    states = torch.randn(batch, tokens, hidden, device=device, dtype=getattr(torch, dtype), requires_grad=True)
    labels = torch.randint(0, vocab, (batch, tokens), device=device)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    before = peak_mib()
    start = time.perf_counter()
    if path == "plain":
        loss = ForCausalLMLoss(head(states), labels, vocab_size=vocab)
    else:
        loss = chunked_head_loss(states, labels, head, chunk_tokens=chunk_tokens_for(vocab))
    loss.backward()
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {"loss": loss.item(), "seconds": seconds, "extra_peak_mib": peak_mib() - before, "held_mib": before}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dtype", choices=["bfloat16", "float32"], action="append")
    parser.add_argument("--vocab", type=int, default=59241)
    parser.add_argument("--hidden", type=int, default=4096)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=2048)
    parser.add_argument("--r", type=int, default=128)
    parser.add_argument("--only", choices=["plain", "chunked"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    shape = (args.vocab, args.hidden, args.batch, args.tokens, args.r)
    if args.only:
        print(json.dumps(one(args.only, args.dtype[0], *shape)))
        return

    from bailong.console import format_table

    rows, results = [], {}
    for dtype in args.dtype or ["bfloat16", "float32"]:
        for path in ("plain", "chunked"):
            command = [sys.executable, __file__, "--only", path, "--dtype", dtype, "--vocab", str(args.vocab)]
            command += ["--hidden", str(args.hidden), "--batch", str(args.batch), "--tokens", str(args.tokens)]
            command += ["--r", str(args.r)]
            proc = subprocess.run(command, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                sys.exit(f"{path} {dtype} failed:\n{proc.stderr[-3000:]}")
            result = results[dtype, path] = json.loads(proc.stdout.strip().splitlines()[-1])
            rows.append(
                [dtype, path, f"{result['loss']:.4f}", f"{result['extra_peak_mib']:.0f}", f"{result['seconds']:.2f}"]
            )
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU, {torch.get_num_threads()} threads"
    print(
        f"LM-head loss, forward + backward: vocab {args.vocab}, hidden {args.hidden}, {args.batch} x {args.tokens} "
        f"tokens, LoRA r={args.r} on the head; {device}"
    )
    print(format_table(["dtype", "path", "loss", "extra peak MiB", "seconds"], rows))
    for dtype in args.dtype or ["bfloat16", "float32"]:
        plain, chunked = results[dtype, "plain"], results[dtype, "chunked"]
        ratio = plain["extra_peak_mib"] / max(chunked["extra_peak_mib"], 1.0)
        print(f"{dtype}: the chunked loss's extra peak is {ratio:.1f}x smaller than plain's")


if __name__ == "__main__":
    main()
