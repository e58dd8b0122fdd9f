"""Times the new-row initialization at the paper's scale: 27,241 new rows on a 32,000 x 4,096 embedding and LM head
(Llama 2 7B, untied), and the tied case; reports the extra peak memory over the resized matrices themselves.

    python scripts/bench_init.py
    python scripts/bench_init.py --base-rows 32000 --new-rows 27241 --dim 4096
"""

from __future__ import annotations

import argparse
import random
import resource
import time

import torch

from bailong.config import EmbeddingsConfig
from bailong.embeddings import initialize_new_rows
from bailong.table import format_table


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-rows", type=int, default=32000)
    parser.add_argument("--new-rows", type=int, default=27241)
    parser.add_argument("--dim", type=int, default=4096)
    args = parser.parse_args()

    rng = random.Random(0)
    # Piece counts like a TC extension of Llama 2: characters are 3 byte tokens, words 2-6 pieces.
    pieces = [[rng.randrange(args.base_rows) for _ in range(rng.choice([1, 2, 2, 3, 3, 3, 4, 6]))]
              for _ in range(args.new_rows)]
    new_ids = list(range(args.base_rows, args.base_rows + args.new_rows))
    rows = args.base_rows + args.new_rows
    matrix_mib = rows * args.dim * 4 / 2**20
    embed = torch.randn(rows, args.dim)
    head = torch.randn(rows, args.dim)
    table = []
    for name, cfg, tied in [
        ("zip-tie, untied (embedding + LM head)", EmbeddingsConfig(init="zip-tie"), False),
        ("zip-tie, tied (one matrix)", EmbeddingsConfig(init="zip-tie"), True),
        ("subword-mean, untied", EmbeddingsConfig(init="subword-mean"), False),
        ("mean of all rows, untied", EmbeddingsConfig(init="mean"), False),
        ("random, untied", EmbeddingsConfig(init="random"), False),
    ]:
        before = peak_rss_mib()
        start = time.perf_counter()
        initialize_new_rows(embed, None if tied else head, new_ids, pieces, cfg)
        seconds = time.perf_counter() - start
        table.append([name, f"{seconds:.2f}", f"{max(0.0, peak_rss_mib() - before):.0f}"])
    print(f"{args.new_rows} new rows on {args.base_rows} x {args.dim} float32 matrices "
          f"({matrix_mib:.0f} MiB each after resizing), {torch.get_num_threads()} threads")
    print(format_table(["initialization", "seconds", "extra peak MiB"], table))


if __name__ == "__main__":
    main()
