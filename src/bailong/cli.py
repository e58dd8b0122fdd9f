"""The `bailong` command, generated from the stage registry `bailong.stages.STAGES` (one command per stage)."""

from __future__ import annotations

import importlib
import inspect
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from bailong import __version__
from bailong.errors import INTERRUPTED_EXIT, BailongError, was_interrupted
from bailong.stages import STAGES, Stage

ConfigArg = Annotated[Path, typer.Argument(help="the stage's YAML config", show_default=False, metavar="CONFIG")]
# A key each stage's config has, for the example in its --help.
SET_EXAMPLES = {
    "extend-vocab": "vocab.new_tokens=500",
    "pretrain": "train.max_steps=100",
    "sft": "train.max_steps=100",
    "eval": "output_dir=runs/eval2",
}
PrintOpt = Annotated[bool, typer.Option("--print-config", help="print the resolved, validated config and exit")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="show full tracebacks and library logs")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="replace a non-empty output_dir")]


def _version(value: bool) -> None:
    if value:
        print(f"bailong {__version__}")
        raise typer.Exit()


def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="print the version")
    ] = False,
) -> None:
    """bailong: teach an English-centric LLM Traditional Chinese (the Bailong method, arXiv 2404.00862)."""


def guarded(debug: bool, body: Callable[[], object]) -> None:
    """Runs `body`; bad input becomes one line on stderr and its exit code (a traceback only with --debug)."""
    _quiet_libraries(debug)
    try:
        body()
    except BailongError as exc:
        if was_interrupted(exc):  # e.g. a load that failed because Ctrl-C stopped it
            _interrupted()
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(exc.exit_code) from None
    except Exception as exc:  # noqa: BLE001 - one line instead of a traceback; --debug shows it
        if was_interrupted(exc):  # a library that wrapped the KeyboardInterrupt (an import, a schema)
            _interrupted()
        if debug:
            raise
        print(f"error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)", file=sys.stderr)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        _interrupted()
    if was_interrupted():  # a library swallowed it; the output was not committed (see stop_if_interrupted)
        _interrupted()


_announced = False


def _interrupted() -> None:
    global _announced
    _announced = True
    print("\ninterrupted", file=sys.stderr)  # after a progress bar's unfinished line
    raise typer.Exit(INTERRUPTED_EXIT) from None


def _quiet_libraries(debug: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO, format="%(message)s")
    # e.g. bitsandbytes' "Failed to load CPU gemm_4bit_forward ... pip install kernels" on every start
    # and kernels' "Skipping publisher trust check for 'kernels-community/...'" whenever bitsandbytes loads offline
    libraries = (
        "transformers",
        "datasets",
        "huggingface_hub",
        "urllib3",
        "filelock",
        "bitsandbytes",
        "peft",
        "kernels",
        "gguf",
        "httpx",  # the judge client logs every request at INFO
    )
    for name in libraries:
        logging.getLogger(name).setLevel(logging.INFO if debug else logging.ERROR)
    if not debug:
        import warnings

        warnings.filterwarnings("ignore")


def _stage_module(stage: Stage):
    return importlib.import_module(f"bailong.stages.{stage.module}")


def config_command(name: str, stage: Stage) -> Callable:
    """`bailong NAME CONFIG.yaml`: load and validate the config, then run the stage."""

    example = SET_EXAMPLES.get(name, "output_dir=runs/other")
    SetOpt = Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            "-s",
            metavar="KEY=VALUE",
            help=f"override a key (a YAML value; repeat for more), e.g. --set {example}",
        ),
    ]

    def command(
        ctx: typer.Context,
        config: ConfigArg,
        set_: list[str] | None = None,
        print_config: PrintOpt = False,
        overwrite: OverwriteOpt = False,
        debug: DebugOpt = False,
    ) -> None:
        def body() -> None:
            from bailong.config import dump_config, load_config

            if ctx.args:  # e.g. `--set key value`: the value is left over
                raise BailongError(
                    f"unexpected argument {ctx.args[0]!r}: --set takes one KEY=VALUE (no spaces around =), "
                    f"e.g. --set {example}"
                )

            cfg = load_config(name, config, set_ or [])
            if print_config:
                print(dump_config(cfg), end="")
            else:
                _stage_module(stage).run(cfg, overwrite=overwrite)

        guarded(debug, body)

    command.__annotations__["set_"] = SetOpt  # a local name, which the postponed annotations cannot resolve
    command.__doc__ = stage.summary
    return command


def signature_command(stage: Stage) -> Callable:
    """A command whose arguments are the stage's `run` signature, plus --debug."""
    run = _stage_module(stage).run
    signature = inspect.signature(run, eval_str=True)

    def command(**kwargs) -> None:
        debug = kwargs.pop("debug", False)
        guarded(debug, lambda: run(**kwargs))

    debug = inspect.Parameter("debug", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=DebugOpt)
    params = [_readable(p.replace(kind=inspect.Parameter.KEYWORD_ONLY)) for p in signature.parameters.values()]
    params.append(debug)
    command.__signature__ = signature.replace(parameters=params, return_annotation=None)
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__doc__ = stage.summary
    return command


_METAVARS = {int: "N", float: "X", str: "TEXT", Path: "PATH"}


class PlainHelpCommand(typer.core.TyperCommand):
    """Shows arguments as `CONFIG` and `DIR...` in --help, without typer's `{config}` and type names (`<path>`)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for param in self.params:
            if isinstance(param, typer.core.TyperArgument):
                shown = param.display_name_raw + ("..." if param.nargs != 1 else "")
                param._usage_display_name = lambda shown=shown: shown
                param._rich_display_name = lambda shown=shown: shown
                param.display_type_rich = lambda ctx: None


def _readable(param: inspect.Parameter) -> inspect.Parameter:
    """Gives an option or argument without a metavar a plain one (N, X, TEXT, PATH, or its NAME) instead of typer's
    type names (`<int range>`, `{model}`)."""
    meta = getattr(param.annotation, "__metadata__", ())
    for info in meta:
        if isinstance(info, typer.models.ParameterInfo) and info.metavar is None:
            kind = param.annotation.__origin__
            inner = [a for a in getattr(kind, "__args__", (kind,)) if a is not type(None)]
            if isinstance(info, typer.models.ArgumentInfo):
                info.metavar = param.name.upper()
            elif inner and inner[0] is not bool:
                info.metavar = _METAVARS.get(inner[0], "VALUE")
    return param


def build_app() -> typer.Typer:
    app = typer.Typer(
        help="bailong: teach an English-centric LLM Traditional Chinese (the Bailong method, arXiv 2404.00862).",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
    )
    app.callback()(_root)
    for name, stage in STAGES.items():
        if stage.config:
            settings = {"allow_extra_args": True, "ignore_unknown_options": False}
            command = app.command(name, help=stage.summary, context_settings=settings, cls=PlainHelpCommand)
            command(config_command(name, stage))
        else:
            app.command(name, help=stage.summary, cls=PlainHelpCommand)(signature_command(stage))
    return app


app = build_app()


def main() -> None:
    """The `bailong` command. Typer ends Ctrl-C outside a command's body (parsing the command line) with exit 130
    and no message; it gets the same line as inside."""
    try:
        app()
    except SystemExit as exc:
        if exc.code == INTERRUPTED_EXIT and not _announced:
            print("\ninterrupted", file=sys.stderr)  # after a progress bar's unfinished line
        raise
