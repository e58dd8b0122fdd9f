"""Errors the user can fix, and Ctrl-C. The CLI prints a BailongError as one line and exits with `exit_code`; an
interrupt ends every command with the line `interrupted` and exit 130."""

from __future__ import annotations

import signal
import sys


class BailongError(Exception):
    """Bad input: a config, a file or a model that the user must fix. Printed without a traceback."""

    exit_code = 2


INTERRUPTED_EXIT = 130
_interrupted = False


def _on_sigint(signum, frame) -> None:
    global _interrupted
    _interrupted = True
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not interrupt the way out
    raise KeyboardInterrupt


def _unraisable(unraisable) -> None:
    # Ctrl-C that lands in a __del__ cannot propagate; Python would print "Exception ignored in ..." and a traceback.
    # The interrupt is remembered (_on_sigint), so the run still ends as interrupted: print nothing here.
    if not isinstance(unraisable.exc_value, KeyboardInterrupt):
        sys.__unraisablehook__(unraisable)


def catch_interrupts() -> None:
    """Remembers Ctrl-C even where a library swallows or wraps the KeyboardInterrupt it raises (a failed import,
    a schema built at import time, a __del__), so the run still ends as interrupted and commits no output."""
    signal.signal(signal.SIGINT, _on_sigint)
    sys.unraisablehook = _unraisable


def was_interrupted(exc: BaseException | None = None) -> bool:
    """Whether Ctrl-C was pressed, or `exc` is (or was caused by) a KeyboardInterrupt."""
    while exc is not None:
        if isinstance(exc, KeyboardInterrupt):
            return True
        exc = exc.__cause__ or exc.__context__
    return _interrupted


def stop_if_interrupted() -> None:
    """Called before output is committed: an interrupt that something swallowed still stops the run here."""
    if _interrupted:
        raise KeyboardInterrupt


class WriteFailed(BailongError):
    """An output that could not be written (a full disk): nothing is left under the output's name."""

    exit_code = 1
