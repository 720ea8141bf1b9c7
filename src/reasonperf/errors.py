"""User-facing errors.

A ``UsageError`` is bad input: the CLI prints its message on one line and exits with
code 2, never a traceback. The message names the field and the fix.
"""


class UsageError(Exception):
    """Bad input from the user (flag, file, spec). Exit code 2, one line, no traceback."""


class EngineStartError(UsageError):
    """A launched engine died or never became healthy. Carries its log tail."""
