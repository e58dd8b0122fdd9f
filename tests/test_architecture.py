"""The tree's architecture: the CLI is generated from the stage registry, the import contract holds, the CLI starts
without the heavy libraries, and every benchmark script still starts."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from bailong.stages import STAGES
from helpers import ROOT, run_cli

SCRIPTS = sorted((ROOT / "scripts").glob("*.py"))


def listed_commands(help_text: str) -> list[str]:
    section = help_text.split("Commands:", 1)[1]
    return [m.group(1) for m in re.finditer(r"^  (\S+)", section, re.MULTILINE)]


def test_help_lists_exactly_the_registry():
    result = run_cli("--help")
    assert result.code == 0
    assert listed_commands(result.stdout) == list(STAGES)


@pytest.mark.parametrize("name", list(STAGES))
def test_every_command_has_help_from_its_stage(name):
    result = run_cli(name, "--help")
    assert result.code == 0 and "--debug" in result.stdout
    first_words = STAGES[name].summary.split()[:4]
    assert " ".join(first_words) in " ".join(result.stdout.split())
    if STAGES[name].config:
        assert "--print-config" in result.stdout and "--overwrite" in result.stdout


def test_import_contract_holds():
    """No stage imports another, no component imports a stage, no import cycle (pyproject's [tool.importlinter])."""
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports"))], capture_output=True, text=True, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "3 kept, 0 broken" in proc.stdout


def test_cli_starts_without_torch():
    code = "import sys, bailong.cli; print(sorted(m for m in ('torch', 'transformers', 'peft') if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_script_help(script):
    """Each benchmark script still parses its arguments after a refactor."""
    proc = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "usage:" in proc.stdout


def test_gpu_check_keeps_to_its_budget():
    """scripts/gpu_check.sh gives each step what is left of its budget at most, so the run cannot outlast it: with
    no budget every step is skipped, the summary says so and the run fails."""
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "gpu_check.sh"), "--dry-run"],
        env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable, "GPU_CHECK_BUDGET_S": "0"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    skipped = [line.split()[0] for line in proc.stdout.splitlines() if " SKIPPED " in line]
    assert skipped == ["gpu-tests", "bench-none", "extend-vocab", "pretrain", "sft", "eval"], proc.stdout
    assert "the 0s budget is spent" in proc.stdout
