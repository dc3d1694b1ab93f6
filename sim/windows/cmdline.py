"""cmd.exe / MSVCRT command-line splitting for the SIMULATED Windows hosts.

Windows OpenSSH hands an `exec` request to cmd.exe; programs then split their own command line
with the MSVCRT rules (spaces separate, `"..."` groups, `\\"` is a literal quote, backslashes
are literal unless they precede a quote). Used by the exec dispatcher, sc.exe, WMCB and the
simulated services (which parse their binPath).
"""

from __future__ import annotations

from subprocess import list2cmdline

__all__ = ["CmdLineError", "join", "split", "unquoted_operator"]


class CmdLineError(ValueError):
    """A command line the simulation cannot run (unbalanced quotes, cmd.exe operators)."""


def split(line: str) -> list[str]:
    """Split a command line into argv the way MSVCRT does."""
    args: list[str] = []
    current: list[str] = []
    in_arg = False
    in_quotes = False
    i, n = 0, len(line)
    while i < n:
        c = line[i]
        if c == "\\":
            j = i
            while j < n and line[j] == "\\":
                j += 1
            count = j - i
            if j < n and line[j] == '"':
                current.append("\\" * (count // 2))
                if count % 2:
                    current.append('"')
                    i = j + 1
                else:
                    i = j
            else:
                current.append("\\" * count)
                i = j
            in_arg = True
            continue
        if c == '"':
            if in_quotes and i + 1 < n and line[i + 1] == '"':
                current.append('"')
                i += 2
                continue
            in_quotes = not in_quotes
            in_arg = True
            i += 1
            continue
        if c in " \t" and not in_quotes:
            if in_arg:
                args.append("".join(current))
                current, in_arg = [], False
            i += 1
            continue
        current.append(c)
        in_arg = True
        i += 1
    if in_arg:
        args.append("".join(current))
    return args


def unquoted_operator(line: str) -> str | None:
    """The first cmd.exe operator (`&`, `|`, `<`, `>`) outside double quotes, if any."""
    in_quotes = False
    prev_backslashes = 0
    for c in line:
        if c == '"' and prev_backslashes % 2 == 0:
            in_quotes = not in_quotes
        elif c in "&|<>" and not in_quotes:
            return c
        prev_backslashes = prev_backslashes + 1 if c == "\\" else 0
    return None


def join(argv: list[str]) -> str:
    """Quote argv into one command line (inverse of `split`)."""
    return list2cmdline(argv)
