"""The entry point of `bailong` and `python -m bailong`: Ctrl-C is caught from the first import on."""

import os
import sys

from bailong.errors import INTERRUPTED_EXIT, catch_interrupts


def main() -> None:
    catch_interrupts()
    try:
        from bailong.cli import main as cli_main

        cli_main()
    except KeyboardInterrupt:  # while importing the CLI, before it handles Ctrl-C itself
        print("\ninterrupted", file=sys.stderr)  # after a progress bar's unfinished line
        _exit_interrupted()
    except SystemExit as exc:
        if exc.code == INTERRUPTED_EXIT:
            _exit_interrupted()
        raise


def _exit_interrupted() -> None:
    # Python ends with a SIGINT of its own instead of our exit status once a KeyboardInterrupt has passed through
    # code a C extension ran (an import), so leave directly with the exit status a shell reports for Ctrl-C.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(INTERRUPTED_EXIT)


if __name__ == "__main__":
    main()
