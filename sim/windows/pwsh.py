"""The PowerShell interpreter of a SIMULATED Windows host.

Runs scripts parsed by `pwsh_parser` against the cmdlet table (`pwsh_files`, `pwsh_system`):
binds named/positional/switch parameters strictly per cmdlet, runs pipelines, formats the
output as powershell.exe would print it (CRLF lines; objects as `Name : value` lists unless the
script ends in `ConvertTo-Json`), and stops at the first error, printing
`<Cmdlet> : <message>` to stderr with exit code 1. A native program (only `powershell.exe`,
registered by `exec.py` in `NATIVE`) may be a statement of its own: its output passes through,
its exit code lands in `$LASTEXITCODE` and, as in Windows PowerShell 5.1, a failing one does not
stop the script (`-Command` then exits 1 if it was the last statement; `exit $LASTEXITCODE`
keeps the code). Used by the exec dispatcher (`exec.py`) and for instance user data at first
boot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sim.windows.pwsh_parser import Assignment, Command, Exit, Param, ParseError, VarRef, parse

Obj = Any
CmdletFn = Callable[["Context", dict[str, Any], "list[Obj] | None"], "list[Obj]"]
# program (lowercase, no `.exe`) -> fn(host, argv, depth) -> (stdout, stderr, exit code)
NativeFn = Callable[[Any, list[str], int], tuple[str, str, int]]
NATIVE: dict[str, NativeFn] = {}
MAX_NESTING = 8  # powershell.exe started from a script started from ...: refuse runaway nesting

NOT_RECOGNIZED = (
    "The term '{0}' is not recognized as the name of a cmdlet, function, script file, or "
    "operable program. Check the spelling of the name, or if a path was included, verify that "
    "the path is correct and try again."
)


class CmdletError(Exception):
    """A terminating error raised by a cmdlet (message as Windows prints it)."""


@dataclass(frozen=True)
class CmdletSpec:
    name: str
    fn: CmdletFn
    values: tuple[str, ...] = ()
    switches: tuple[str, ...] = ()
    positional: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    module: str | None = None  # e.g. "hns": needs `Import-Module ...hns.psm1` first


CMDLETS: dict[str, CmdletSpec] = {}


def cmdlet(
    name: str,
    values: tuple[str, ...] = (),
    switches: tuple[str, ...] = (),
    positional: tuple[str, ...] = (),
    required: tuple[str, ...] = (),
    module: str | None = None,
) -> Callable[[CmdletFn], CmdletFn]:
    """Register a cmdlet implementation."""

    def register(fn: CmdletFn) -> CmdletFn:
        CMDLETS[name.lower()] = CmdletSpec(name, fn, values, switches, positional, required, module)
        return fn

    return register


@dataclass
class Context:
    host: Any  # SimulatedWindowsHost (duck-typed to keep this module free of the host)
    modules: set[str] = field(default_factory=set)
    variables: dict[str, Any] = field(default_factory=dict)
    depth: int = 0  # how many powershell.exe levels this script runs under


@dataclass
class Result:
    stdout: str
    stderr: str
    exit_code: int


def _bind(spec: CmdletSpec, cmd: Command, ctx: Context) -> dict[str, Any]:
    by_lower = {p.lower(): p for p in (*spec.values, *spec.switches)}
    bound: dict[str, Any] = {}
    positional: list[Any] = []
    args = list(cmd.args)
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if isinstance(arg, Param):
            canon = by_lower.get(arg.name.lower())
            if canon is None:
                raise CmdletError(
                    f"A parameter cannot be found that matches parameter name '{arg.name}'."
                )
            if canon in spec.switches:
                bound[canon] = bool(_resolve(arg.value, ctx)) if arg.has_value else True
            elif arg.has_value:
                bound[canon] = _resolve(arg.value, ctx)
            elif i < len(args) and not isinstance(args[i], Param):
                bound[canon] = _resolve(args[i], ctx)
                i += 1
            else:
                raise CmdletError(
                    f"Missing an argument for parameter '{canon}'. Specify a parameter of type "
                    "'System.String' and try again."
                )
        else:
            positional.append(_resolve(arg, ctx))
    free = [p for p in spec.positional if p not in bound]
    for value in positional:
        if not free:
            raise CmdletError(
                f"A positional parameter cannot be found that accepts argument '{value}'."
            )
        bound[free.pop(0)] = value
    for req in spec.required:
        if req not in bound:
            raise CmdletError(
                f"Cannot process command because of one or more missing mandatory parameters: "
                f"{req}."
            )
    return bound


def _resolve(value: Any, ctx: Context) -> Any:
    if isinstance(value, VarRef):
        return ctx.variables.get(value.name.lower())
    if isinstance(value, list):
        return [_resolve(v, ctx) for v in value]
    return value


def _run_pipeline(pipeline: list[Command], ctx: Context) -> list[Obj]:
    data: list[Obj] | None = None
    for cmd in pipeline:
        if cmd.name is None:
            value = _resolve(cmd.args[0], ctx)
            data = list(value) if isinstance(value, list) else [value]
            continue
        spec = CMDLETS.get(cmd.name.lower())
        if spec is None or (spec.module is not None and spec.module not in ctx.modules):
            raise CmdletError(f"{cmd.name} : {NOT_RECOGNIZED.format(cmd.name)}")
        try:
            params = _bind(spec, cmd, ctx)
            data = spec.fn(ctx, params, data)
        except CmdletError as exc:
            raise CmdletError(f"{spec.name} : {exc}") from exc
    return data or []


def format_object(obj: Obj) -> str:
    """How the console shows an object (bools as True/False, objects as a list view)."""
    if obj is None:
        return ""
    if isinstance(obj, bool):
        return "True" if obj else "False"
    if isinstance(obj, dict):
        width = max((len(k) for k in obj), default=0)
        lines = [f"{k.ljust(width)} : {_short(v)}" for k, v in obj.items()]
        return "\r\n" + "\r\n".join(lines) + "\r\n"  # list view: blank line before/after
    return str(obj)


def _short(value: Obj) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, list):
        return "{" + ", ".join(_short(v) for v in value) + "}"
    if isinstance(value, dict):
        return "@{" + "; ".join(f"{k}={_short(v)}" for k, v in value.items()) + "}"
    return "" if value is None else str(value)


def _native(stmt: object) -> NativeFn | None:
    """The native program a statement runs (`powershell.exe ...` alone), if it is one."""
    if not isinstance(stmt, list) or not stmt or stmt[0].name is None:
        return None
    name = stmt[0].name.replace("/", "\\").rsplit("\\", 1)[-1].lower()
    fn = NATIVE.get(name[:-4] if name.endswith(".exe") else name)
    if fn is not None and len(stmt) > 1:
        raise CmdletError(f"{stmt[0].name} : piping into or out of native programs is not modelled")
    return fn


def _native_arg(value: Any, ctx: Context) -> str:
    if isinstance(value, Param):
        return f"-{value.name}" + (f":{_native_arg(value.value, ctx)}" if value.has_value else "")
    value = _resolve(value, ctx)
    if isinstance(value, list):
        return ",".join(_native_arg(v, ctx) for v in value)
    return format_object(value)


def run_script(host: Any, script: str, depth: int = 0) -> Result:
    """Run a script on `host`; stops at the first error (exit 1), as with -ErrorAction Stop."""
    import sim.windows.exec
    import sim.windows.pwsh_files
    import sim.windows.pwsh_pipeline
    import sim.windows.pwsh_system  # noqa: F401

    ctx = Context(host, depth=depth)
    out: list[str] = []
    err: list[str] = []
    last_ok = True
    try:
        statements = parse(script)
    except ParseError as exc:
        return Result("", f"At line:1 char:1\r\n{exc}\r\n", 1)
    for stmt in statements:
        try:
            if isinstance(stmt, Assignment):
                values = _run_pipeline(stmt.pipeline, ctx)
                ctx.variables[stmt.var.lower()] = values[0] if len(values) == 1 else values
                last_ok = True
                continue
            if isinstance(stmt, Exit):
                code = _resolve(stmt.code, ctx)
                return Result(_join(out), "".join(err), int(code) if code is not None else 0)
            native = _native(stmt)
            if native is not None:
                argv = [_native_arg(a, ctx) for a in stmt[0].args]  # type: ignore[index]
                stdout, stderr, code = native(host, argv, depth + 1)
                if stdout:
                    out.append(stdout.removesuffix("\r\n"))
                err.append(stderr)
                ctx.variables["lastexitcode"] = code
                last_ok = code == 0
                continue
            for obj in _run_pipeline(stmt, ctx):  # type: ignore[arg-type]
                text = format_object(obj)
                if text:
                    out.append(text)
            last_ok = True
        except CmdletError as exc:
            return Result(_join(out), "".join(err) + f"{exc}\r\n", 1)
    return Result(_join(out), "".join(err), 0 if last_ok else 1)


def _join(lines: list[str]) -> str:
    return "".join(line + "\r\n" for line in lines)
