"""The LM-head loss alone: transformers' plain path (full logits, then its cross-entropy) against bailong's chunked
loss, forward + backward, at the paper's shape: vocabulary 59,241, hidden 4,096, 2 × 2,048 tokens, a frozen LM head
with LoRA r=128 on it (the paper's setting; the gradients go to the hidden states and the LoRA matrices).

Each (path, dtype) runs alone in its own process. Two "extra peak" figures, both above what the process held once
the head and the hidden states were made: the peak of the bytes of live tensors (counted op by op, as CUDA's caching
allocator counts `max_memory_allocated`; on a GPU it is that counter) and, on a CPU, the peak resident memory.

A CPU without bf16 matrix instructions (avx512_bf16/AMX) multiplies bf16 matrices through a slow generic path (one
bf16 product of this shape's backward would take hours on 2 cores), so there bf16 products are computed in fp32 and
rounded to bf16: the live-tensor peak is exact (every tensor the step keeps is the bf16 tensor it would be), the
seconds and the resident peak are not bf16's and are not reported.

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
import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map

MATMULS = {torch.ops.aten.mm.default, torch.ops.aten.addmm.default, torch.ops.aten.bmm.default}


def fast_bf16_matmul() -> bool:
    if torch.cuda.is_available():
        return True
    flags = open("/proc/cpuinfo").read() if sys.platform == "linux" else ""
    return "avx512_bf16" in flags or "amx_bf16" in flags


class LiveTensorBytes(TorchDispatchMode):
    """Counts the bytes of live tensor storages op by op and keeps the peak; optionally computes bf16 matrix products
    in fp32 (rounded back to bf16, so every tensor the step holds keeps its dtype and size)."""

    def __init__(self, emulate_bf16_matmul: bool):
        super().__init__()
        self.emulate = emulate_bf16_matmul
        self.live = self.peak = 0
        self.seen: set[int] = set()

    def _forget(self, key: int, size: int) -> None:
        self.seen.discard(key)
        self.live -= size

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        bf16 = [a for a in tree_flatten(args)[0] if isinstance(a, torch.Tensor) and a.dtype == torch.bfloat16]
        if self.emulate and func in MATMULS and bf16:
            widen = lambda a: a.float() if isinstance(a, torch.Tensor) and a.dtype == torch.bfloat16 else a  # noqa: E731
            out = func(*tree_map(widen, args), **tree_map(widen, kwargs)).to(torch.bfloat16)
        else:
            out = func(*args, **kwargs)
        inputs = {
            a.untyped_storage().data_ptr() for a in tree_flatten((args, kwargs))[0] if isinstance(a, torch.Tensor)
        }
        for tensor in tree_flatten(out)[0]:
            if isinstance(tensor, torch.Tensor) and tensor.device.type != "meta":
                storage = tensor.untyped_storage()
                key = storage.data_ptr()
                if key and key not in self.seen and key not in inputs:  # not a view of, or in place on, an input
                    self.seen.add(key)
                    self.live += storage.nbytes()
                    self.peak = max(self.peak, self.live)
                    weakref.finalize(storage, self._forget, key, storage.nbytes())
        return out


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
    emulated = dtype == "bfloat16" and not fast_bf16_matmul()
    before = peak_mib()
    start = time.perf_counter()
    with LiveTensorBytes(emulate_bf16_matmul=emulated) as counter:
        if path == "plain":
            loss = ForCausalLMLoss(head(states), labels, vocab_size=vocab)
        else:
            loss = chunked_head_loss(states, labels, head, chunk_tokens=chunk_tokens_for(vocab))
        loss.backward()
    if device == "cuda":
        torch.cuda.synchronize()
        tensors_mib = (torch.cuda.max_memory_allocated() - torch.cuda.memory_allocated()) / 2**20
    else:
        tensors_mib = counter.peak / 2**20
    seconds = time.perf_counter() - start
    resident = None if emulated or device == "cuda" else peak_mib() - before
    return {
        "loss": loss.item(),
        "seconds": None if emulated else seconds,
        "extra_peak_tensors_mib": tensors_mib,
        "extra_peak_resident_mib": resident,
        "emulated_bf16_matmul": emulated,
    }


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
            resident, seconds = result["extra_peak_resident_mib"], result["seconds"]
            rows.append(
                [
                    dtype,
                    path,
                    f"{result['loss']:.4f}",
                    f"{result['extra_peak_tensors_mib']:,.0f}",
                    "-" if resident is None else f"{resident:,.0f}",
                    "-" if seconds is None else f"{seconds:.2f}",
                ]
            )
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU, {torch.get_num_threads()} threads"
    print(
        f"LM-head loss, forward + backward: vocab {args.vocab}, hidden {args.hidden}, {args.batch} x {args.tokens} "
        f"tokens, LoRA r={args.r} on the head; {device}"
    )
    print(format_table(["dtype", "path", "loss", "extra peak MiB (tensors)", "(resident)", "seconds"], rows))
    for dtype in args.dtype or ["bfloat16", "float32"]:
        plain, chunked = results[dtype, "plain"], results[dtype, "chunked"]
        ratio = plain["extra_peak_tensors_mib"] / max(chunked["extra_peak_tensors_mib"], 1.0)
        note = " (bf16 products computed in fp32 on this CPU: no seconds)" if plain["emulated_bf16_matmul"] else ""
        print(f"{dtype}: the chunked loss's extra peak is {ratio:.1f}x smaller than plain's{note}")


if __name__ == "__main__":
    main()
