"""The exec channel of a SIMULATED Windows host: what cmd.exe does with an SSH command line.

Expands `%NAME%` from the session's environment (as cmd.exe does), splits the line
MSVCRT-style and dispatches on the first word (case-insensitive, `.exe` optional): `powershell`
(`-Command`, `-EncodedCommand` or `-File <script.ps1>`), `icacls` (both also callable from a
PowerShell script, see `pwsh.NATIVE`), `sc`, `tar`, `hostname` and `C:\\k\\wmcb.exe` (only when
that file is on the host's disk). Anything else fails like cmd.exe does. Applies the
host's command faults (`fail_command`, `slow`). Used by the host's SSH session handler
(`host.py`) and the tests.
"""

from __future__ import annotations

import asyncio
import base64
import tarfile
from typing import Any

from sim.windows import cmdline, environment, icacls, paths, pwsh, sc, wmcb

NOT_RECOGNIZED = (
    "'{0}' is not recognized as an internal or external command,\r\n"
    "operable program or batch file.\r\n"
)
_PS_SWITCHES = {"-nologo", "-noprofile", "-noninteractive", "-noexit", "-mta", "-sta"}
_PS_VALUED = {"-inputformat", "-outputformat", "-windowstyle"}
_EXECUTION_POLICIES = {"unrestricted", "bypass"}  # accepted, no effect: the twin signs nothing


def _program(word: str) -> str:
    base = word.replace("/", "\\").rsplit("\\", 1)[-1].lower()
    return base[:-4] if base.endswith(".exe") else base


def _powershell(session: pwsh.Context, args: list[str], depth: int = 0) -> tuple[str, str, int]:
    host = session.host
    if depth > pwsh.MAX_NESTING:
        return "", "sim: powershell.exe nested too deeply (simulated host)\r\n", 1
    i = 0
    while i < len(args):
        arg = args[i].lower()
        if arg in _PS_SWITCHES:
            i += 1
        elif arg in _PS_VALUED and i + 1 < len(args):
            i += 2
        elif arg == "-executionpolicy" and i + 1 < len(args):
            if args[i + 1].lower() not in _EXECUTION_POLICIES:
                return (
                    "",
                    f"sim: -ExecutionPolicy {args[i + 1]} is not modelled "
                    "(Unrestricted|Bypass)\r\n",
                    1,
                )
            i += 2
        elif arg == "-file" and i + 1 < len(args):
            if i + 2 < len(args):
                return "", "sim: arguments after -File <script> are not modelled\r\n", 1
            return _script_file(session, args[i + 1], depth)
        elif arg in ("-command", "-c"):
            script = " ".join(args[i + 1 :])
            break
        elif arg in ("-encodedcommand", "-e", "-ec") and i + 1 < len(args):
            try:
                script = base64.b64decode(args[i + 1]).decode("utf-16-le")
            except ValueError:
                return (
                    "",
                    "Cannot process the command because the value specified with "
                    "-EncodedCommand is not properly encoded.\r\n",
                    1,
                )
            break
        else:
            return "", f"Unsupported powershell.exe argument '{args[i]}' (simulated host)\r\n", 1
    else:
        return "", "powershell.exe without -Command is interactive; not supported.\r\n", 1
    result = pwsh.run_script(host, script, depth, session.user, session.env)
    return result.stdout, result.stderr, result.exit_code


def _script_file(session: pwsh.Context, path: str, depth: int) -> tuple[str, str, int]:
    """`powershell.exe -File <path>`: the script must be an existing `.ps1` file."""
    if not path.lower().endswith(".ps1"):
        return (
            "",
            f"Processing -File '{path}' failed because the file does not have a '.ps1' "
            "extension. Specify a valid Windows PowerShell script file name, and then try "
            "again.\r\n",
            1,
        )
    try:
        local = paths.to_local(session.host.root, path)
    except paths.PathError:
        local = None
    if local is None or not local.is_file():
        return (
            "",
            f"The argument '{path}' to the -File parameter does not exist. Provide the path to "
            "an existing '.ps1' file as an argument to the -File parameter.\r\n",
            1,
        )
    script = local.read_bytes().decode("utf-8", errors="replace").lstrip("\ufeff")
    result = pwsh.run_script(session.host, script, depth, session.user, session.env)
    return result.stdout, result.stderr, result.exit_code


pwsh.NATIVE["powershell"] = _powershell
pwsh.NATIVE["icacls"] = icacls.run_icacls


def _tar(host: Any, args: list[str]) -> tuple[str, str, int]:
    archive = dest = None
    i = 0
    mode = ""
    while i < len(args):
        arg = args[i]
        if arg == "-C" and i + 1 < len(args):
            dest, i = args[i + 1], i + 2
        elif (
            arg.startswith("-") and set(arg[1:]) <= set("xzvf") and "f" in arg and i + 1 < len(args)
        ):
            mode, archive, i = arg, args[i + 1], i + 2
        else:
            return "", f"tar.exe: Unsupported option: {arg}\r\n", 1
    if "x" not in mode or archive is None:
        return "", "tar.exe: Must specify one of -c, -r, -t, -u, -x\r\n", 1
    try:
        src = paths.to_local(host.root, archive)
        target = (
            paths.to_local(host.root, dest)
            if dest
            else paths.to_local(host.root, f"C:\\Users\\{host.username}")
        )
    except paths.PathError as exc:
        return "", f"tar.exe: {exc}\r\n", 1
    if not src.is_file():
        return "", f"tar.exe: Error opening archive: Failed to open '{archive}'\r\n", 1
    if not target.is_dir():
        return "", f"tar.exe: could not chdir to '{dest}'\r\n", 1
    try:
        with tarfile.open(src, "r:*") as tf:
            tf.extractall(target, filter="data")
    except (tarfile.TarError, OSError) as exc:
        return "", f"tar.exe: {exc}\r\n", 1
    return "", "", 0


def _dispatch(session: pwsh.Context, line: str) -> tuple[str, str, int]:
    host = session.host
    line = environment.expand_percent(line, session.env)
    op = cmdline.unquoted_operator(line)
    if op is not None:
        return "", f"sim: cmd.exe operator '{op}' is not modelled by the simulated host\r\n", 1
    argv = cmdline.split(line)
    if not argv:
        return "", "", 0
    first, args = argv[0], argv[1:]
    prog = _program(first)
    if prog == "powershell":
        return _powershell(session, args)
    if prog == "icacls":
        return icacls.run_icacls(session, args)
    if prog == "sc":
        out, code = sc.run_sc(host.scm, args)
        return out, "", code
    if prog == "tar":
        return _tar(host, args)
    if prog == "hostname" and not args:
        return f"{host.hostname}\r\n", "", 0
    if prog == "wmcb":
        wmcb_path = first if "\\" in first or "/" in first else "C:\\k\\wmcb.exe"
        try:
            present = paths.to_local(host.root, wmcb_path).is_file()
        except paths.PathError:
            present = False
        if present:
            return wmcb.run_wmcb(host, args)
    return "", NOT_RECOGNIZED.format(first), 1


async def run_command(host: Any, line: str, user: str | None = None) -> tuple[str, str, int]:
    """Run one exec request on `host` as `user` (default: its admin account); returns
    (stdout, stderr, exit status)."""
    faults = host.faults
    if faults.slow_seconds:
        await asyncio.sleep(faults.slow_seconds)
    injected = faults.take_command_failure(line)
    if injected is not None:
        return "", injected[1], injected[0]
    return _dispatch(pwsh.new_context(host, user=user), line)
