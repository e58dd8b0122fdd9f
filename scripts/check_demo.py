"""Checks what the README claims of the demo against the demo's own eval (`runs/demo/eval/results.json`), as CI does
after `make demo`: the pre-trained model reads the held-out demo text in fewer bits per character than its base, and
the extended models generate TC faster than the base (characters per second). Prints one line per claim; exits 1 when
one fails.

    python scripts/check_demo.py runs/demo/eval/results.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def claims(results: dict) -> list[tuple[bool, str]]:
    base, pretrained = results["base"], results["pretrained"]
    checks = [
        (
            pretrained["bpc"] < base["bpc"],
            f"held-out bits per character: pretrained {pretrained['bpc']:.3f}, base {base['bpc']:.3f}",
        )
    ]
    for name in ("pretrained", "sft"):
        if name in results and "chars_per_s" in results[name]:
            faster = results[name]["chars_per_s"] > base["chars_per_s"]
            line = f"characters per second: {name} {results[name]['chars_per_s']:.2f}, base {base['chars_per_s']:.2f}"
            checks.append((faster, line))
    return checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="the demo eval's results.json")
    args = parser.parse_args(argv)
    try:
        results = json.loads(args.results.read_text(encoding="utf-8"))
        checks = claims(results)
    except (OSError, ValueError, KeyError) as exc:
        print(f"{args.results}: not a demo eval's results.json ({exc}); run `make demo` first", file=sys.stderr)
        return 2
    for ok, line in checks:
        print(("ok    " if ok else "FAILED") + " " + line)
    return 0 if all(ok for ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
