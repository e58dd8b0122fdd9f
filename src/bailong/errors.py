"""Errors the user can fix. The CLI prints them as one line and exits with `exit_code`."""


class BailongError(Exception):
    """Bad input: a config, a file or a model that the user must fix. Printed without a traceback."""

    exit_code = 2
