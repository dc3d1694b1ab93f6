"""What the `winfleet` command reports when it cannot do what was asked: a message and an exit
code (1: the work itself failed or there is nothing to act on; 2: the request or the
environment is wrong). Raised by the CLI's helper modules, printed by `worker.cli.main`.
"""

from __future__ import annotations


class CommandFailed(Exception):
    """A message for the user (no traceback) and the exit code to leave with."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
