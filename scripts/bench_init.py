"""Times the new-row initialization at the paper's scale: 27,241 new rows on a 32,000 x 4,096 embedding and LM head
(Llama 2 7B, untied), and the tied case; reports the extra peak memory over the resized matrices themselves.

    python scripts/bench_init.py
    python scripts/bench_init.py --base-rows 32000 --new-rows 27241 --dim 4096
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import time

import torch

from bailong.config import NewRowsConfig
from bailong.console import format_table
from bailong.vocab.init import initialize_new_rows


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


METHODS = {
    "zip-tie, untied (embedding + LM head)": ({"init": "zip-tie"}, False),
    "zip-tie, tied (one matrix)": ({"init": "zip-tie"}, True),
    "subword-mean, untied": ({"init": "subword-mean"}, False),
    "mean of all rows, untied": ({"init": "mean"}, False),
    "random, untied": ({"init": "random"}, False),
}


def run_one(args, name: str) -> None:
    """One method in this process: prints seconds and the peak memory over the resized matrices themselves."""
    rng = random.Random(0)
    # Piece counts like a TC extension of Llama 2: characters are 3 byte tokens, words 2-6 pieces.
    pieces = [
        [rng.randrange(args.base_rows) for _ in range(rng.choice([1, 2, 2, 3, 3, 3, 4, 6]))]
        for _ in range(args.new_rows)
    ]
    new_ids = list(range(args.base_rows, args.base_rows + args.new_rows))
    rows = args.base_rows + args.new_rows
    settings, tied = METHODS[name]
    embed = torch.randn(rows, args.dim)
    head = None if tied else torch.randn(rows, args.dim)
    before = peak_rss_mib()
    start = time.perf_counter()
    initialize_new_rows(embed, head, new_ids, pieces, NewRowsConfig(**settings))
    print(json.dumps({"seconds": time.perf_counter() - start, "extra_mib": max(0.0, peak_rss_mib() - before)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-rows", type=int, default=32000)
    parser.add_argument("--new-rows", type=int, default=27241)
    parser.add_argument("--dim", type=int, default=4096)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        run_one(args, args.one)
        return
    table = []
    size = ["--base-rows", str(args.base_rows), "--new-rows", str(args.new_rows), "--dim", str(args.dim)]
    for name in METHODS:  # each in a fresh process, so that every peak is its own
        proc = subprocess.run(
            [sys.executable, __file__, *size, "--one", name], capture_output=True, text=True, check=True
        )
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        table.append([name, f"{result['seconds']:.2f}", f"{result['extra_mib']:.0f}"])
    matrix_mib = (args.base_rows + args.new_rows) * args.dim * 4 / 2**20
    print(
        f"{args.new_rows} new rows on {args.base_rows} x {args.dim} float32 matrices "
        f"({matrix_mib:.0f} MiB each after resizing), {torch.get_num_threads()} threads"
    )
    print(format_table(["initialization", "seconds", "extra peak MiB"], table))


if __name__ == "__main__":
    main()
