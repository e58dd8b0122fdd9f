import json
import os
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
DEMO_DATA = ROOT / "src" / "bailong" / "demo_data"
MISTRAL_V1 = Path(find_spec("mistral_common").submodule_search_locations[0]) / "data" / "tokenizer.model.v1"


def shared_file(relative: str) -> Path:
    path = SHARED / relative
    if not path.exists():
        pytest.skip(f"shared test data not found: {path}")
    return path


class CliResult:
    def __init__(self, code: int, stdout: str, stderr: str):
        self.code, self.stdout, self.stderr = code, stdout, stderr


def run_cli(*args: str) -> CliResult:
    """Runs `bailong ARGS` in this process (the real Typer app, no mocks)."""
    from bailong.cli import app

    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return CliResult(result.exit_code, result.stdout, result.stderr)


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


def read_report(out: Path) -> dict:
    return json.loads((out / "extend_vocab_report.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def mistral_model() -> Path:
    return MISTRAL_V1
