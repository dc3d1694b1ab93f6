"""The PowerShell interpreter of a SIMULATED Windows host.

Runs scripts parsed by `pwsh_parser` against the cmdlet table (`pwsh_files`, `pwsh_system`,
`pwsh_network`, `pwsh_capability`, `pwsh_pipeline`): binds named/positional/switch parameters
strictly per cmdlet, evaluates values (variables, `$env:` from the session's environment,
expandable strings, `$( )` subexpressions, `( )` pipelines, member access, `+`), runs
pipelines, formats the output as powershell.exe would print it (CRLF lines; objects as
`Name : value` lists unless the script ends in `ConvertTo-Json`), and stops at the first error,
printing `<Cmdlet> : <message>` to stderr with exit code 1. A session runs as an account (the SSH
user, or SYSTEM for what a VM agent runs) with that account's environment (`environment.py`).
A native program (`powershell.exe`, `icacls`; registered by `exec.py` in `NATIVE`) may be a
statement of its own or a value: its output passes through, its exit code lands in
`$LASTEXITCODE` and, as in Windows PowerShell 5.1, a failing one does not stop the script
(`-Command` then exits 1 if it was the last statement; `exit $LASTEXITCODE` keeps the code).
Used by the exec dispatcher (`exec.py`) and for instance user data at boot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sim.windows import environment
from sim.windows.pwsh_parser import (
    Assignment,
    Command,
    Exit,
    Expandable,
    Member,
    Param,
    ParenExpr,
    ParseError,
    SubExpr,
    Sum,
    VarRef,
    parse,
)

Obj = Any
CmdletFn = Callable[["Context", dict[str, Any], "list[Obj] | None"], "list[Obj]"]
# program (lowercase, no `.exe`) -> fn(session, argv, depth) -> (stdout, stderr, exit code);
# the session is the calling `Context` (host, account, environment).
NativeFn = Callable[["Context", list[str], int], tuple[str, str, int]]
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
# The built-in aliases scripts in the wild use for cmdlets the twin has.
ALIASES = {
    "echo": "write-output",
    "write": "write-output",
    "cat": "get-content",
    "type": "get-content",
    "cp": "copy-item",
    "copy": "copy-item",
    "rm": "remove-item",
    "del": "remove-item",
}


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
    user: str = "Administrator"  # who runs it: an account name, or "SYSTEM"
    env: dict[str, str] = field(default_factory=dict)  # lowercase name -> value
    errors: list[str] = field(default_factory=list)  # what native programs wrote to stderr
    last_ok: bool = True


@dataclass(frozen=True)
class _NativeOutput:
    """What a native program printed (passes through unformatted)."""

    text: str


class _ExitScript(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


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


def _variable(name: str, ctx: Context) -> Any:
    scope, sep, rest = name.partition(":")
    if sep and scope.lower() == "env":
        return ctx.env.get(rest.lower())
    key = (rest if sep else name).lower()
    if key == "home":
        return environment.profile_dir(ctx.user)
    return ctx.variables.get(key)


def _assign(name: str, value: Any, ctx: Context) -> None:
    scope, sep, rest = name.partition(":")
    if sep and scope.lower() == "env":
        if value is None or value == "":
            ctx.env.pop(rest.lower(), None)
        else:
            ctx.env[rest.lower()] = to_text(value)
        return
    ctx.variables[(rest if sep else name).lower()] = value


def _member(obj: Any, name: str) -> Any:
    if isinstance(obj, list):
        values = [_member(o, name) for o in obj]
        values = [v for v in values if v is not None]
        return values[0] if len(values) == 1 else (values or None)
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key.lower() == name.lower():
                return value
        return None
    if isinstance(obj, str) and name.lower() == "length":
        return len(obj)
    return None


def to_text(value: Any) -> str:
    """A value as PowerShell converts it to a string (arrays joined by spaces)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, list):
        return " ".join(to_text(v) for v in value)
    if isinstance(value, dict):
        return _short(value)
    return str(value)


def _collect(objects: list[Any]) -> Any:
    flat: list[Any] = []
    for obj in objects:
        if isinstance(obj, _NativeOutput):
            flat.extend(obj.text.splitlines())
        else:
            flat.append(obj)
    return flat[0] if len(flat) == 1 else (flat or None)


def _resolve(value: Any, ctx: Context) -> Any:
    if isinstance(value, VarRef):
        return _variable(value.name, ctx)
    if isinstance(value, Member):
        return _member(_resolve(value.target, ctx), value.name)
    if isinstance(value, Expandable):
        return "".join(to_text(_resolve(part, ctx)) for part in value.parts)
    if isinstance(value, SubExpr):
        sink: list[Any] = []
        _statements(value.statements, ctx, sink)
        return _collect(sink)
    if isinstance(value, ParenExpr):
        return _collect(_pipeline_or_native(value.pipeline, ctx))
    if isinstance(value, Sum):
        return _sum([_resolve(t, ctx) for t in value.terms])
    if isinstance(value, list):
        return [_resolve(v, ctx) for v in value]
    return value


def _sum(terms: list[Any]) -> Any:
    total = terms[0]
    for term in terms[1:]:
        if isinstance(total, list):
            total = total + (term if isinstance(term, list) else [term])
        elif isinstance(total, int) and not isinstance(total, bool) and isinstance(term, int):
            total = total + term
        elif isinstance(total, str):
            total = total + to_text(term)
        else:
            raise CmdletError(
                f"Method invocation failed because [{type(total).__name__}] does not contain a "
                "method named 'op_Addition'."
            )
    return total


def _run_pipeline(pipeline: list[Command], ctx: Context) -> list[Obj]:
    data: list[Obj] | None = None
    for cmd in pipeline:
        if cmd.name is None:
            value = _resolve(cmd.args[0], ctx)
            data = list(value) if isinstance(value, list) else [value]
            continue
        lowered = cmd.name.lower()
        spec = CMDLETS.get(ALIASES.get(lowered, lowered))
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


def _run_native(fn: NativeFn, cmd: Command, ctx: Context) -> _NativeOutput:
    argv = [_native_arg(a, ctx) for a in cmd.args]
    stdout, stderr, code = fn(ctx, argv, ctx.depth + 1)
    ctx.errors.append(stderr)
    ctx.variables["lastexitcode"] = code
    ctx.last_ok = code == 0
    return _NativeOutput(stdout.removesuffix("\r\n"))


def _pipeline_or_native(pipeline: list[Command], ctx: Context) -> list[Any]:
    native = _native(pipeline)
    if native is not None:
        out = _run_native(native, pipeline[0], ctx)
        return [out] if out.text else []
    ctx.last_ok = True
    return _run_pipeline(pipeline, ctx)


def _statements(statements: list[object], ctx: Context, sink: list[Any]) -> None:
    """Run statements in order, appending their output objects to `sink`."""
    for stmt in statements:
        if isinstance(stmt, Assignment):
            _assign(stmt.var, _collect(_pipeline_or_native(stmt.pipeline, ctx)), ctx)
        elif isinstance(stmt, Exit):
            code = _resolve(stmt.code, ctx)
            raise _ExitScript(int(code) if code is not None else 0)
        else:
            sink.extend(_pipeline_or_native(stmt, ctx))  # type: ignore[arg-type]


def new_context(
    host: Any, depth: int = 0, user: str | None = None, env: dict[str, str] | None = None
) -> Context:
    """A fresh session on `host` for `user` (default: the host's admin account); `env` is the
    parent process's environment when there is one."""
    who = user or host.username
    block = dict(env) if env is not None else environment.variables(host, who)
    return Context(host, depth=depth, user=who, env=block)


def run_script(
    host: Any,
    script: str,
    depth: int = 0,
    user: str | None = None,
    env: dict[str, str] | None = None,
) -> Result:
    """Run a script on `host`; stops at the first error (exit 1), as with -ErrorAction Stop.

    `user` is the account it runs as (the SSH user by default; "SYSTEM" for what EC2Launch and
    the Azure VM agent run); `env` the environment it inherits.
    """
    import sim.windows.exec
    import sim.windows.pwsh_capability
    import sim.windows.pwsh_files
    import sim.windows.pwsh_network
    import sim.windows.pwsh_pipeline
    import sim.windows.pwsh_system  # noqa: F401

    ctx = new_context(host, depth, user, env)
    sink: list[Any] = []
    try:
        statements = parse(script)
    except ParseError as exc:
        return Result("", f"At line:1 char:1\r\n{exc}\r\n", 1)
    try:
        _statements(statements, ctx, sink)
    except _ExitScript as done:
        return Result(_render(sink), "".join(ctx.errors), done.code)
    except CmdletError as exc:
        return Result(_render(sink), "".join(ctx.errors) + f"{exc}\r\n", 1)
    return Result(_render(sink), "".join(ctx.errors), 0 if ctx.last_ok else 1)


def _render(objects: list[Any]) -> str:
    lines: list[str] = []
    for obj in objects:
        text = obj.text if isinstance(obj, _NativeOutput) else format_object(obj)
        if text:
            lines.append(text)
    return "".join(line + "\r\n" for line in lines)
