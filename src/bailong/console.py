"""What a run prints: status lines (from the main process only in a distributed run) and plain-text tables."""

from __future__ import annotations

import os
import sys


def is_main_process() -> bool:
    """False on every process but the first of a distributed run (torchrun and accelerate set RANK)."""
    return int(os.environ.get("RANK", "0")) == 0


def say(message: str = "", *, err: bool = False) -> None:
    """Prints a status line once per run, not once per process."""
    if is_main_process():
        print(message, file=sys.stderr if err else sys.stdout, flush=True)


def format_table(headers: list[str], rows: list[list]) -> str:
    cells = [[str(h) for h in headers]] + [[_fmt(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def print_table(title: str, pairs: list[tuple[str, object]]) -> None:
    say(format_table([title, "value"], [[k, v] for k, v in pairs]))


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
