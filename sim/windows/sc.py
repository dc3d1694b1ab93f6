"""`sc.exe` of a SIMULATED Windows host.

create / config / failure / description / query / start / stop / delete, with Windows' own
`option= value` syntax (the space after `=` is required; `binPath="x"` prints the usage and
fails with 1639, as on Windows). Like the real sc.exe, messages go to stdout and the exit code
is the Win32 error. Used by the exec dispatcher (`exec.py`).
"""

from __future__ import annotations

from typing import Any

from sim.windows.services import ServiceError, ServiceManager

_START = {
    "auto": "Automatic",
    "delayed-auto": "Automatic",
    "demand": "Manual",
    "disabled": "Disabled",
}
_OPTIONS = {
    "binpath=",
    "start=",
    "depend=",
    "displayname=",
    "type=",
    "error=",
    "obj=",
    "password=",
    "reset=",
    "actions=",
    "group=",
    "tag=",
}
_USAGE = (
    "DESCRIPTION:\r\n        Modifies a service entry in the registry and Service Database.\r\n"
    "USAGE:\r\n        sc <server> {cmd} [service name] <option1> <option2>...\r\n\r\n"
    "OPTIONS:\r\nNOTE: The option name includes the equal sign.\r\n"
    "      A space is required between the equal sign and the value.\r\n"
)


class _Usage(Exception):
    pass


def _options(args: list[str]) -> dict[str, str]:
    opts: dict[str, str] = {}
    i = 0
    while i < len(args):
        key = args[i].lower()
        if key not in _OPTIONS or i + 1 >= len(args):
            raise _Usage(args[i])
        opts[key[:-1]] = args[i + 1]
        i += 2
    return opts


def _fail(op: str, exc: ServiceError) -> tuple[str, int]:
    return f"[SC] {op} FAILED {exc.code}:\r\n\r\n{exc}\r\n\r\n", exc.code


def _state_block(name: str, status: str, pending: str | None = None) -> str:
    state = pending or ("4  RUNNING" if status == "Running" else "1  STOPPED")
    return (
        f"\r\nSERVICE_NAME: {name}\r\n"
        f"        TYPE               : 10  WIN32_OWN_PROCESS\r\n"
        f"        STATE              : {state}\r\n"
        f"        WIN32_EXIT_CODE    : 0  (0x0)\r\n"
        f"        SERVICE_EXIT_CODE  : 0  (0x0)\r\n"
        f"        CHECKPOINT         : 0x0\r\n"
        f"        WAIT_HINT          : 0x0\r\n"
    )


def _fields(opts: dict[str, str]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if "binpath" in opts:
        fields["bin_path"] = opts["binpath"]
    if "start" in opts:
        if opts["start"].lower() not in _START:
            raise _Usage("start= " + opts["start"])
        fields["start_type"] = _START[opts["start"].lower()]
    if "depend" in opts:
        fields["depends_on"] = [d for d in opts["depend"].split("/") if d]
    if "displayname" in opts:
        fields["display_name"] = opts["displayname"]
    return fields


def run_sc(manager: ServiceManager, argv: list[str]) -> tuple[str, int]:
    """Run `sc.exe <argv>`; returns (stdout, exit code)."""
    if len(argv) < 2:
        return _USAGE.format(cmd="<command>"), 1639
    cmd, name, rest = argv[0].lower(), argv[1], argv[2:]
    try:
        if cmd == "create":
            opts = _options(rest)
            if "binpath" not in opts:
                raise _Usage("binPath=")
            fields = _fields(opts)
            fields.setdefault("start_type", "Manual")
            try:
                manager.create(name, fields.pop("bin_path"), **fields)
            except ServiceError as exc:
                return _fail("CreateService", exc)
            return "[SC] CreateService SUCCESS\r\n", 0
        if cmd == "config":
            fields = _fields(_options(rest))
            try:
                manager.configure(name, **fields)
            except ServiceError as exc:
                return _fail("ChangeServiceConfig", exc)
            return "[SC] ChangeServiceConfig SUCCESS\r\n", 0
        if cmd == "failure":
            opts = _options(rest)
            parts = opts.get("actions", "").split("/")
            if len(parts) % 2 or not opts.get("actions"):
                raise _Usage("actions=")
            actions = [(parts[i].lower(), int(parts[i + 1])) for i in range(0, len(parts), 2)]
            try:
                manager.configure(
                    name, failure_actions=actions, failure_reset_seconds=int(opts.get("reset", "0"))
                )
            except ServiceError as exc:
                return _fail("ChangeServiceConfig2", exc)
            return "[SC] ChangeServiceConfig2 SUCCESS\r\n", 0
        if cmd == "description":
            if len(rest) != 1:
                raise _Usage(" ".join(rest))
            try:
                manager.configure(name, description=rest[0])
            except ServiceError as exc:
                return _fail("ChangeServiceConfig2", exc)
            return "[SC] ChangeServiceConfig2 SUCCESS\r\n", 0
        if rest:
            raise _Usage(rest[0])
        if cmd == "query":
            svc = manager.find(name)
            if svc is None:
                return _fail("EnumQueryServicesStatus:OpenService", ServiceError(1060, name))
            return _state_block(svc.name, svc.status), 0
        if cmd == "start":
            try:
                manager.start(name)
            except ServiceError as exc:
                return _fail("StartService" if exc.code != 1060 else "OpenService", exc)
            return _state_block(manager.get(name).name, "", "2  START_PENDING"), 0
        if cmd == "stop":
            try:
                manager.stop(name)
            except ServiceError as exc:
                return _fail("ControlService" if exc.code != 1060 else "OpenService", exc)
            return _state_block(
                manager.get(name).name if manager.find(name) else name, "", "3  STOP_PENDING"
            ), 0
        if cmd == "delete":
            try:
                manager.delete(name)
            except ServiceError as exc:
                return _fail("DeleteService" if exc.code != 1060 else "OpenService", exc)
            return "[SC] DeleteService SUCCESS\r\n", 0
    except _Usage:
        return _USAGE.format(cmd=cmd), 1639
    except ValueError:
        return _USAGE.format(cmd=cmd), 1639
    return _USAGE.format(cmd=cmd), 1639
