"""The README and docs/ stay true: every command in their code blocks is run by a named test or CI step, every
`bailong` and `python scripts/...` command in them parses, the README's own configs run, and the configuration
reference matches the config models."""

import importlib.util
import re
import shlex

import pytest

from helpers import DEMO_DATA, ROOT, run_cli

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# Every shell command in a code block of the README or docs/, and what runs it: `FILE::TEST` (a test function) or
# `FILE` (a CI file that holds the command). A command added to a page must be added here with what runs it.
EXERCISED = {
    "make install": ".ci/run",  # make lint (the first step) depends on it
    "make demo": ".ci/run",
    "make test": ".ci/run",
    "make lint": ".ci/run",
    "bailong extend-vocab my/extend_vocab.yaml": "tests/test_docs.py::test_the_readmes_own_corpus_path_runs",
    "bailong pretrain my/pretrain.yaml": "tests/test_docs.py::test_the_readmes_own_corpus_path_runs",
    "bailong sft my/sft.yaml": "tests/test_docs.py::test_the_readmes_own_corpus_path_runs",
    "bailong eval my/eval.yaml": "tests/test_docs.py::test_the_readmes_own_corpus_path_runs",
    "bailong report runs/my": "tests/test_docs.py::test_the_readmes_own_corpus_path_runs",
    "bailong chat runs/my/sft": "tests/test_docs.py::test_the_readmes_own_corpus_path_runs",
    "bailong export runs/my/sft": "tests/test_docs.py::test_the_readmes_own_corpus_path_runs",
    "echo 你好 | bailong chat runs/demo/sft": (
        "tests/test_sft.py::test_sft_continues_the_pretrain_adapter_and_chats_through_a_pipe"
    ),
}


def code_blocks(text: str, languages=("bash", "sh", "shell", "console")) -> list[str]:
    return [m.group(2) for m in re.finditer(r"```(\w*)\n(.*?)```", text, re.S) if m.group(1) in languages]


def shell_commands() -> dict[str, str]:
    """{command: page} for every line of a shell code block (comments dropped)."""
    found = {}
    for page in PAGES:
        for block in code_blocks(page.read_text(encoding="utf-8")):
            for line in block.splitlines():
                command = line.split("  #")[0].strip()
                if command and not command.startswith("#"):
                    found.setdefault(command, page.name)
    return found


def inline_commands(prefix: str) -> list[tuple[str, str]]:
    """(command, page) for every `prefix ...` in inline code or a shell block, without placeholders ([...], |)."""
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        spans = re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.S))
        spans += [line.split("  #")[0].strip() for block in code_blocks(text) for line in block.splitlines()]
        for span in spans:
            span = span.split("| ")[-1].strip()  # the command after a pipe
            if span.startswith(prefix) and not re.search(r"\[|\.\.\.|<|[A-Z]{3,}\.yaml|\bCONFIG\b", span):
                found.append((span, page.name))
    return found


def test_every_command_in_a_code_block_is_run_by_a_test_or_ci():
    commands = shell_commands()
    unlisted = sorted(set(commands) - set(EXERCISED))
    assert not unlisted, f"add these to EXERCISED with the test or CI step that runs them: {unlisted}"
    for command, where in EXERCISED.items():
        assert command in commands, f"{command!r} is no longer in the docs; drop it from EXERCISED"
        path, _, test = where.partition("::")
        source = (ROOT / path).read_text(encoding="utf-8")
        if test:
            assert f"def {test}(" in source, where
        else:
            assert command in source, f"{where} does not run {command!r}"


def test_every_bailong_command_in_the_docs_parses_with_the_cli():
    """Inline and in code blocks: the command exists, its options exist and take what they are given."""
    import typer
    from typer._click.exceptions import MissingParameter, UsageError  # typer's own copy of click

    from bailong.cli import app

    group = typer.main.get_command(app)
    commands = inline_commands("bailong ")
    assert len(commands) > 20
    for command, page in commands:
        argv = shlex.split(command)[1:]
        if argv[0].startswith("-"):
            continue  # bailong --help, bailong --version
        assert argv[0] in group.commands, f"{page}: {command}"
        try:
            group.commands[argv[0]].make_context(argv[0], argv[1:], resilient_parsing=False)
        except (typer.Exit, MissingParameter):
            pass  # --help; a fragment that shows an option without the model or config it goes with
        except UsageError as err:
            pytest.fail(f"{page}: {command}: {err}")


def test_every_script_command_in_the_docs_names_a_script_and_its_flags():
    commands = inline_commands("python scripts/") + inline_commands("scripts/")
    assert len(commands) > 10
    for command, page in commands:
        argv = shlex.split(command)
        if argv[-1] == "scripts/":
            continue  # the folder
        script = ROOT / next(a for a in argv if a.startswith("scripts/"))
        assert script.is_file(), f"{page}: {command}"
        source = script.read_text(encoding="utf-8")
        for flag in (a.split("=")[0] for a in argv if a.startswith("--")):
            assert f'"{flag}"' in source or f"{flag})" in source or f"{flag} " in source, f"{page}: {command}: {flag}"


def test_the_configuration_reference_is_up_to_date():
    spec = importlib.util.spec_from_file_location("config_reference", ROOT / "scripts" / "config_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = module.render()
    assert (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8") == text, (
        "docs/configuration.md is out of date: run python scripts/config_reference.py"
    )
    for key in ("`train.max_steps`", "`vocab.new_tokens`", "`judge.base_url`", "`tasks[].files` (bpc)"):
        assert key in text
    undescribed = [line for line in text.splitlines() if line.startswith("| `") and line.endswith("|  |")]
    assert not undescribed, f"keys without a description (a Field description or an attribute docstring): {undescribed}"


def test_the_readme_stays_short_and_links_every_docs_page():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.encode()) <= 12_500
    index = (ROOT / "docs" / "README.md").read_text(encoding="utf-8")
    for page in (ROOT / "docs").glob("*.md"):
        if page.name != "README.md":
            assert f"]({page.name}" in index, f"docs/README.md does not link {page.name}"
    for page in PAGES:  # relative links between the pages point at files that exist (export and families: coming)
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            if target.endswith(("export.md", "families.md")):
                continue
            assert (page.parent / target).exists(), f"{page.name} links {target}"


@pytest.mark.slow
def test_the_readmes_own_corpus_path_runs(tmp_path, monkeypatch):
    """The README's four configs and commands as written, on the demo data, with --set overrides for time: a tiny
    random Llama with SmolLM2's tokenizer as the base, fewer tokens and steps."""
    from typer.testing import CliRunner

    from bailong.cli import app
    from helpers import tiny_llama

    tiny = tiny_llama(tmp_path / "tiny", "smollm2-135m-instruct", context=2048)  # SmolLM2 has 8192

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    (tmp_path / "my").mkdir()
    for block in code_blocks(readme, ("yaml",)):
        name = re.match(r"# (my/\w+\.yaml)", block).group(1)
        (tmp_path / name).write_text(block, encoding="utf-8")
    (tmp_path / "my" / "corpus.txt").write_bytes((DEMO_DATA / "tc_corpus.txt").read_bytes())
    (tmp_path / "my" / "chat.jsonl").write_bytes((DEMO_DATA / "sft_chat.jsonl").read_bytes())
    held_out = (DEMO_DATA / "tc_heldout.txt").read_text(encoding="utf-8").splitlines()[:3]
    (tmp_path / "my" / "heldout.txt").write_text("\n".join(held_out) + "\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    faster = {
        "extend-vocab": ["--set", "vocab.new_tokens=300", "--set", f"model.name_or_path={tiny}"],
        "pretrain": ["--set", "train.max_steps=2", "--set", "data.block_size=128", "--set", "train.batch_size=2"],
        "sft": ["--set", "train.max_steps=2", "--set", "train.batch_size=2"],
        "chat": ["--max-new-tokens", "4"],
    }
    commands = [c for c in shell_commands() if EXERCISED.get(c, "").endswith("::test_the_readmes_own_corpus_path_runs")]
    assert len(commands) == 7
    for command in commands:
        argv = shlex.split(command)[1:]
        result = CliRunner().invoke(app, argv + faster.get(argv[0], []), input="你好\n")
        assert result.exit_code == 0, (command, result.stdout, result.stderr)
    assert (tmp_path / "runs" / "my" / "extend_vocab" / "bailong_extension.json").is_file()
    assert (tmp_path / "runs" / "my" / "eval" / "results.json").is_file()
    assert (tmp_path / "runs" / "my" / "report.html").is_file()
    assert (tmp_path / "runs" / "my" / "sft" / "sft-merged" / "model.safetensors").is_file()
    again = run_cli("pretrain", "my/pretrain.yaml", *faster["pretrain"])  # as the README says: complete, nothing to do
    assert again.code == 0 and "is complete at step 2; nothing to do" in again.stdout, again.stderr
