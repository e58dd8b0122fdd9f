"""Opens a report.html from disk in headless Chromium (kept off the network), as `make demo`'s CI check does: the DOM
after the page's script ran must hold every --expect string, and the screenshot must not be blank.

    python scripts/open_report.py runs/demo/report.html --expect base --expect sft --screenshot runs/demo/report.png
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def chromium(page: Path, *args: str) -> str:
    exe = shutil.which("chromium")
    if exe is None:
        sys.exit("chromium is not installed (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as profile:
        command = [exe, *FLAGS, f"--user-data-dir={profile}", *args, page.resolve().as_uri()]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=180)
    if proc.returncode != 0:
        sys.exit(f"chromium failed on {page}:\n{proc.stderr[-2000:]}")
    return proc.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("report", type=Path)
    parser.add_argument("--expect", action="append", default=[], help="a string the page must show (repeatable)")
    parser.add_argument("--screenshot", type=Path, help="where to keep the 1280x2000 screenshot")
    args = parser.parse_args()
    if not args.report.is_file():
        sys.exit(f"{args.report} does not exist: run `make demo` (or `bailong report DIR`) first")
    dom = chromium(args.report, "--dump-dom")
    missing = [text for text in args.expect if text not in dom]
    if "http://" in dom or "https://" in dom:
        missing.append("(no http(s) address: the page must not fetch anything)")
    shot = args.screenshot or Path(tempfile.mkdtemp()) / "report.png"
    chromium(args.report, f"--screenshot={shot}", "--window-size=1280,2000")
    from PIL import Image

    with Image.open(shot) as image:
        colors = len(image.convert("RGB").getcolors(maxcolors=2**24))
    print(f"{args.report}: {len(dom):,} characters of DOM, screenshot {shot} with {colors} colors")
    if missing or colors < 200:
        sys.exit(f"report check failed: missing {missing}, {colors} colors in the screenshot")


if __name__ == "__main__":
    main()
