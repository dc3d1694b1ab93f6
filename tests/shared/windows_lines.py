"""Read a built command line the way the simulated host reads it (for assertions on text)."""

from __future__ import annotations

import base64

from sim.windows import cmdline


def script_of(line: str) -> str:
    """The PowerShell script a `powershell.exe ... -EncodedCommand <base64>` line runs."""
    argv = cmdline.split(line)
    flag = [a.lower() for a in argv].index("-encodedcommand")
    return base64.b64decode(argv[flag + 1], validate=True).decode("utf-16-le")
