"""The README's main command, as a user runs it: the console script on the shipped demo config."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import ROOT


def test_demo_extend_vocab_console_script(tmp_path):
    exe = Path(sys.executable).with_name("bailong")
    command = [str(exe) if exe.exists() else shutil.which("bailong"), "extend-vocab", "configs/demo/extend_vocab.yaml"]
    proc = subprocess.run(
        command + ["--set", f"output_dir={tmp_path / 'out'}"], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "out" / "extend_vocab_report.json").read_text(encoding="utf-8"))
    assert report["tokens_added"] == 2000
    assert report["tokens_per_char_after"] < 0.6 * report["tokens_per_char_before"]
    assert "tokens_per_char_after" in proc.stdout
