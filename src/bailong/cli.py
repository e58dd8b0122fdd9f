"""The `bailong` command: one subcommand per stage, each `bailong STAGE CONFIG.yaml [--set k=v ...]`."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Optional

import typer

from bailong import __version__
from bailong.errors import BailongError

app = typer.Typer(
    help="bailong: teach an English-centric LLM Traditional Chinese (the Bailong method, arXiv 2404.00862).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

ConfigArg = Annotated[Path, typer.Argument(help="the stage's YAML config", show_default=False)]
SetOpt = Annotated[
    Optional[list[str]], typer.Option("--set", "-s", help="override a key, e.g. --set vocab.new_tokens=500 (YAML value)")
]
PrintOpt = Annotated[bool, typer.Option("--print-config", help="print the resolved, validated config and exit")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="show full tracebacks")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="replace a non-empty output_dir")]


def _version(value: bool) -> None:
    if value:
        print(f"bailong {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="print the version")] = False,
) -> None:
    """bailong: teach an English-centric LLM Traditional Chinese."""


def _guarded(debug: bool, body: Callable[[], None]) -> None:
    """Runs `body`; bad input becomes one line on stderr and its exit code (a traceback only with --debug)."""
    _quiet_libraries(debug)
    try:
        body()
    except BailongError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise typer.Exit(130) from None
    except Exception as exc:  # noqa: BLE001 - one line instead of a traceback; --debug shows it
        if debug:
            raise
        print(f"error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)", file=sys.stderr)
        raise typer.Exit(1) from None


def _run(stage: str, config: Path, overrides: list[str] | None, print_config: bool, debug: bool, body: Callable) -> None:
    from bailong.config_file import dump_config, load_config

    def run_stage() -> None:
        cfg = load_config(stage, config, overrides or [])
        if print_config:
            print(dump_config(cfg), end="")
        else:
            body(cfg)

    _guarded(debug, run_stage)


def _quiet_libraries(debug: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO, format="%(message)s")
    for name in ("transformers", "datasets", "huggingface_hub", "urllib3", "filelock"):
        logging.getLogger(name).setLevel(logging.INFO if debug else logging.ERROR)
    if not debug:
        import warnings

        warnings.filterwarnings("ignore")


@app.command("extend-vocab")
def extend_vocab_command(
    config: ConfigArg, set_: SetOpt = None, print_config: PrintOpt = False, overwrite: OverwriteOpt = False, debug: DebugOpt = False
) -> None:
    """Train a TC tokenizer on a corpus and merge it into the base tokenizer."""
    from bailong.extend_vocab import extend_vocab

    _run("extend-vocab", config, set_, print_config, debug, lambda cfg: extend_vocab(cfg, overwrite=overwrite))


@app.command("pretrain")
def pretrain_command(
    config: ConfigArg, set_: SetOpt = None, print_config: PrintOpt = False, overwrite: OverwriteOpt = False,
    debug: DebugOpt = False,
) -> None:
    """QLoRA continual pre-training on a TC-heavy corpus."""
    from bailong.pretrain import pretrain

    _run("pretrain", config, set_, print_config, debug, lambda cfg: pretrain(cfg, overwrite=overwrite))


@app.command("export")
def export_command(
    run_dir: Annotated[Path, typer.Argument(help="the output_dir of a pretrain or sft run", show_default=False)],
    to: Annotated[Optional[Path], typer.Option("--to", help="where to write; default RUN_DIR/merged")] = None,
    overwrite: OverwriteOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Merge a run's adapter into a full-precision copy of its base and write a plain HF checkpoint."""
    from bailong.export import export

    _guarded(debug, lambda: export(run_dir, to, overwrite))


@app.command("sft")
def sft_command(
    config: ConfigArg, set_: SetOpt = None, print_config: PrintOpt = False, overwrite: OverwriteOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Supervised fine-tuning on multi-turn chat data, loss on assistant turns."""
    from bailong.sft import sft

    _run("sft", config, set_, print_config, debug, lambda cfg: sft(cfg, overwrite=overwrite))


@app.command("chat")
def chat_command(
    model: Annotated[str, typer.Argument(help="a run folder, model, or a stage's YAML config (its output_dir)",
                                         show_default=False)],
    system: Annotated[Optional[str], typer.Option("--system", help="a system prompt for every conversation")] = None,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", min=1, help="reply length limit")] = 256,
    temperature: Annotated[float, typer.Option("--temperature", min=0.0, help="0 for greedy decoding")] = 0.7,
    top_p: Annotated[float, typer.Option("--top-p", min=0.0, max=1.0)] = 0.9,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:1, ...")] = "auto",
    debug: DebugOpt = False,
) -> None:
    """Chat with a model in the terminal (one user turn per line; also reads a pipe); /reset, /exit."""
    from bailong.chat import GenerationSettings, chat

    settings = GenerationSettings(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p)
    _guarded(debug, lambda: chat(model, system, settings, device))


@app.command("eval")
def eval_command(config: ConfigArg, set_: SetOpt = None, print_config: PrintOpt = False, debug: DebugOpt = False) -> None:
    """Bits per character, multiple choice and an LLM-as-judge bench over several models; one report."""
    from bailong.evaluate import evaluate

    _run("eval", config, set_, print_config, debug, evaluate)


@app.command("serve")
def serve_command(
    model: Annotated[str, typer.Argument(help="a run folder, model, or the embedded default", show_default=False)],
    host: Annotated[str, typer.Option("--host", help="address to bind; 0.0.0.0 exposes it to the network")] = (
        "127.0.0.1"),
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8000,
    name: Annotated[Optional[str], typer.Option("--name", help="the model id clients see; default: its name")] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:1, ...")] = "auto",
    debug: DebugOpt = False,
) -> None:
    """Serve a model through an OpenAI-compatible API (GET /v1/models, POST /v1/chat/completions)."""
    from bailong.serve import serve

    _guarded(debug, lambda: serve(model, host=host, port=port, name=name, device=device))


def main() -> None:
    app()
