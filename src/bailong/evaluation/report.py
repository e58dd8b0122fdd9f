"""One comparison of the evaluated models: results.json, a markdown table and charts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bailong.artifacts import CATEGORY_CHART_FILE, CHART_FILE, RESULTS_FILE, TABLE_FILE, write_json
from bailong.console import format_table


def headline(details: dict) -> dict:
    """The per-model figures scripts rely on, from the first task of each type."""
    first = {}
    for result in details.values():
        first.setdefault(result["type"], result)
    judge = first.get("judge")
    return {
        "bpc": first["bpc"]["bits_per_char"] if "bpc" in first else None,
        "choice": first["choice"]["accuracy"] if "choice" in first else None,
        "judge": {"mean": judge["mean"], "failures": judge["failures"]} if judge else None,
        "language_consistency": judge["language_consistency"]["rate"] if judge else None,
        "chars_per_s": first["speed"]["chars_per_s"] if "speed" in first else None,
        "tokens_per_s": first["speed"]["tokens_per_s"] if "speed" in first else None,
    }


def task_columns(results: dict) -> dict[str, Callable[[dict], float | None]]:
    """One column per choice task (its accuracy), per benchmark of each lm-eval task (its headline metric) and two per
    speed task (characters and tokens per second), in the order the tasks ran; a model without that task shows '-'."""
    columns = {}
    for r in results.values():
        for name, d in r["details"].items():
            if d["type"] == "choice":
                columns.setdefault(f"{name} acc", lambda r, name=name: r["details"].get(name, {}).get("accuracy"))
            elif d["type"] == "speed":
                for key, label in (("chars_per_s", "chars/s"), ("tokens_per_s", "tokens/s")):
                    columns.setdefault(
                        f"{name} {label}" if name != "speed" else label,
                        lambda r, name=name, key=key: r["details"].get(name, {}).get(key),
                    )
            elif d["type"] == "lm-eval":
                for bench, h in d["headline"].items():
                    if h:
                        columns.setdefault(f"{bench} {h['metric']}", lambda r, n=name, b=bench: _headline(r, n, b))
    return columns


def _headline(result: dict, task: str, bench: str) -> float | None:
    return ((result["details"].get(task, {}).get("headline") or {}).get(bench) or {}).get("value")


def write_report(out: Path, results: dict) -> str:
    write_json(out / RESULTS_FILE, results)
    fmt = lambda x, p=3: "-" if x is None else f"{x:.{p}f}"  # noqa: E731
    columns = task_columns(results)
    ran = {d["type"] for r in results.values() for d in r["details"].values()}  # columns of the tasks that ran only
    bpc_headers = ["bits/char", "tokens/char"] if "bpc" in ran else []
    judge_headers = ["judge mean", "judge failures", "language consistency"] if "judge" in ran else []
    rows = []
    for name, r in results.items():
        tpc = next((d["tokens_per_char"] for d in r["details"].values() if d["type"] == "bpc"), None)
        judge = r["judge"] or {}
        bpc_cells = [fmt(r["bpc"]), fmt(tpc)] if bpc_headers else []
        judge_cells = [fmt(judge.get("mean"), 2), str(judge.get("failures", "-")), fmt(r["language_consistency"], 2)]
        rows.append([name, *bpc_cells, *(fmt(get(r)) for get in columns.values()), *judge_cells[: len(judge_headers)]])
    table = format_table(["model", *bpc_headers, *columns, *judge_headers], rows)
    (out / TABLE_FILE).write_text(table + "\n", encoding="utf-8")
    _charts(out, results)
    return table


def _charts(out: Path, results: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    metrics = [
        ("bits per char (lower is better)", lambda r: r["bpc"]),
        ("choice accuracy", lambda r: r["choice"]),
        ("judge mean (1-10)", lambda r: (r["judge"] or {}).get("mean")),
        ("language consistency", lambda r: r["language_consistency"]),
        ("characters/s, greedy generation", lambda r: r.get("chars_per_s")),
    ]
    metrics = [(label, get) for label, get in metrics if any(get(results[n]) is not None for n in names)]
    if metrics:
        fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.5), squeeze=False)
        for ax, (label, get) in zip(axes[0], metrics):
            ax.bar(names, [get(results[n]) or 0 for n in names], color=[f"C{i}" for i in range(len(names))])
            ax.set_title(label)
            ax.tick_params(axis="x", rotation=30)
        fig.tight_layout()
        fig.savefig(out / CHART_FILE, dpi=100)
        plt.close(fig)
    categories = sorted(
        {c for r in results.values() for d in r["details"].values() if d["type"] == "judge" for c in d["per_category"]}
    )
    if categories:
        fig, ax = plt.subplots(figsize=(max(6, len(categories) * 0.9), 4))
        width = 0.8 / len(names)
        for i, n in enumerate(names):
            judge = next((d for d in results[n]["details"].values() if d["type"] == "judge"), {"per_category": {}})
            ax.bar(
                [x + i * width for x in range(len(categories))],
                [judge["per_category"].get(c) or 0 for c in categories],
                width,
                label=n,
            )
        ax.set_xticks([x + width * (len(names) - 1) / 2 for x in range(len(categories))], categories, rotation=30)
        ax.set_ylabel("judge mean (1-10)")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / CATEGORY_CHART_FILE, dpi=100)
        plt.close(fig)
