"""Quoting for the two languages a Windows command line passes through.

`ps_quote` makes a PowerShell single-quoted literal (nothing inside is expanded); `cmd_quote`
makes one argument for a cmd.exe / MSVCRT command line (what Windows OpenSSH's exec request
carries). Used only by the builders in this package.
"""

from __future__ import annotations

# PowerShell treats the typographic single quotes as quote characters too; each is escaped by
# doubling, like the ASCII one.
_PS_SINGLE_QUOTES = ("'", "\u2018", "\u2019", "\u201a", "\u201b")

# Characters that end an unquoted argument (MSVCRT) or that cmd.exe acts on outside quotes.
_CMD_NEEDS_QUOTES = frozenset(' \t\n\v"&|<>^')
# What no quoting carries through cmd.exe: it expands %NAME% even inside quotes, and a line
# break or NUL ends the command. Scripts with these go through `powershell(...)`, encoded.
_CMD_UNCARRIABLE = frozenset("%\r\n\0")


def ps_quote(s: str) -> str:
    """A PowerShell single-quoted string literal whose value is exactly `s`."""
    for q in _PS_SINGLE_QUOTES:
        s = s.replace(q, q + q)
    return f"'{s}'"


def cmd_quote(arg: str) -> str:
    """One argument for a cmd.exe/MSVCRT command line, quoted only when needed.

    Inside quotes a literal `"` is written `""` (MSVCRT's escape inside a quoted argument): cmd.exe,
    which knows no escapes and toggles its own quote state at every `"`, then sees the whole
    argument as quoted, so `&`, `|`, `<`, `>`, `^` in it stay literal. Backslashes are literal
    except before a quote (or the closing quote), where each one is doubled. ValueError for `%`,
    CR, LF and NUL, which no quoting protects from cmd.exe.
    """
    bad = sorted(set(arg) & _CMD_UNCARRIABLE)
    if bad:
        raise ValueError(f"cannot pass {bad!r} through cmd.exe in an argument: {arg[:40]!r}")
    if arg and not any(c in _CMD_NEEDS_QUOTES for c in arg):
        return arg
    out: list[str] = ['"']
    backslashes = 0
    for c in arg:
        if c == "\\":
            backslashes += 1
            continue
        if c == '"':
            out.append("\\" * (2 * backslashes) + '""')
        else:
            out.append("\\" * backslashes + c)
        backslashes = 0
    out.append("\\" * (2 * backslashes) + '"')
    return "".join(out)
