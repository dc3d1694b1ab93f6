"""`icacls.exe` of a SIMULATED Windows host: list and change a file's ACL (see `acl.py`).

`icacls <path>` lists the ACL as Windows prints it (principal names, `(I)(OI)(CI)(IO)(NP)`
flags, `F/M/RX/R/W` or the specific rights); changes: `/inheritance:e|d|r`,
`/grant[:r] <principal>:<perm>` (principal by name or `*SID`; perm with optional inheritance
flags: `F`, `(OI)(CI)F`, `(OI)(CI)(RX)`, `(RD,WD)`), `/deny`, `/remove[:g|:d]`, `/setowner`,
`/reset`, `/T` (recurse), `/C`, `/L`, `/Q`. Options apply in the order given. Output and exit
codes as Windows: `processed file: <path>` and the `Successfully processed N files; Failed
processing M files` summary; errors (`The system cannot find the file specified.` exit 2,
`No mapping between account names and security IDs was done.` exit 1332, `Invalid parameter`
exit 87). Wildcards in the path are not modelled. Called from cmd.exe (`exec.py`) and from
PowerShell scripts (`pwsh.NATIVE`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sim.windows import acl, paths
from sim.windows.acl import Ace, Descriptor

SUMMARY = "Successfully processed {0} files; Failed processing {1} files\r\n"
_SIMPLE = {name: mask for name, mask in acl.SIMPLE} | {"D": acl.DE | acl.S}
_SPECIFIC = {name.upper(): bit for name, bit in acl.SPECIFIC} | {"D": acl.DE}
_FLAG = re.compile(r"\((OI|CI|IO|NP)\)", re.I)
_NO_MAPPING = "No mapping between account names and security IDs was done."


class _Invalid(Exception):
    """A malformed command line: `Invalid parameter "<arg>"`, exit 87."""


class _Failed(Exception):
    """Processing one file failed: `<path>: <message>`, exit `code`."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def principals(host: Any) -> dict[str, str]:
    """Lowercase account name (every form Windows accepts) -> SID, for this host."""
    table: dict[str, str] = {}
    for sid, full in acl.WELL_KNOWN.items():
        table[full.lower()] = sid
        table[full.rsplit("\\", 1)[-1].lower()] = sid
    admin = admin_sid(host)
    table[host.username.lower()] = admin
    table[f"{host.hostname}\\{host.username}".lower()] = admin
    table[f".\\{host.username}".lower()] = admin
    return table


def admin_sid(host: Any) -> str:
    """The SID of the host's administrator account (the built-in RID 500 one)."""
    return f"{acl.MACHINE_SID}-{acl.ADMIN_RID}"


def account_name(host: Any, sid: str) -> str:
    """`BUILTIN\\Administrators`, `NT AUTHORITY\\SYSTEM`, `<COMPUTER>\\<user>`, or the SID."""
    if sid in acl.WELL_KNOWN:
        return acl.WELL_KNOWN[sid]
    if sid == admin_sid(host):
        return f"{host.hostname.upper()}\\{host.username}"
    return sid


def _sid(host: Any, name: str) -> str:
    if name.startswith("*"):
        if re.fullmatch(r"S-1(-\d+)+", name[1:], re.I):
            return name[1:].upper()
        raise _Failed(_NO_MAPPING, 1332)
    sid = principals(host).get(name.lower())
    if sid is None:
        raise _Failed(_NO_MAPPING, 1332)
    return sid


def _perm(text: str, original: str) -> tuple[frozenset[str], int]:
    """`(OI)(CI)F` -> ({OI, CI}, FULL)."""
    flags: set[str] = set()
    rest = text
    while (m := _FLAG.match(rest)) is not None:
        flags.add(m.group(1).upper())
        rest = rest[m.end() :]
    if rest.startswith("(") and rest.endswith(")"):
        inner = rest[1:-1]
        if inner.upper() in _SIMPLE:
            return frozenset(flags), _SIMPLE[inner.upper()]
        mask = 0
        for name in inner.split(","):
            bit = _SPECIFIC.get(name.strip().upper())
            if bit is None:
                raise _Invalid(original)
            mask |= bit
        return frozenset(flags), mask
    if rest.upper() in _SIMPLE:
        return frozenset(flags), _SIMPLE[rest.upper()]
    raise _Invalid(original)


def _grant(host: Any, desc: Descriptor, spec: str, allow: bool, replace_all: bool) -> None:
    name, sep, perm = spec.rpartition(":")
    if not sep or not name:
        raise _Invalid(spec)
    flags, mask = _perm(perm, spec)
    sid = _sid(host, name)
    if replace_all:
        desc.explicit = [a for a in desc.explicit if not (a.sid == sid and a.allow == allow)]
    for i, ace in enumerate(desc.explicit):
        if ace.sid == sid and ace.allow == allow and ace.flags == flags:
            desc.explicit[i] = Ace(sid, ace.mask | mask, allow, flags)
            return
    desc.explicit.append(Ace(sid, mask, allow, flags))


def _apply(session: Any, target: str, ops: list[tuple[str, str]]) -> None:
    host = session.host
    store = host.acls
    desc = store.explicit(target)
    for op, arg in ops:
        kind, _, mode = op.partition(":")
        if kind == "/inheritance":
            if mode == "e":
                desc.protected = False
            elif mode == "d":
                inherited = [a for a in store.acl(target).aces if a.inherited]
                desc.explicit += inherited
                desc.protected = True
            else:  # r
                desc.protected = True
        elif kind == "/grant":
            for spec in arg.split("\0"):
                _grant(host, desc, spec, True, mode == "r")
        elif kind == "/deny":
            for spec in arg.split("\0"):
                _grant(host, desc, spec, False, False)
        elif kind == "/remove":
            for name in arg.split("\0"):
                sid = _sid(host, name)
                desc.explicit = [
                    a
                    for a in desc.explicit
                    if not (a.sid == sid and (mode == "" or (mode == "g") == a.allow))
                ]
        elif kind == "/setowner":
            desc.owner = _sid(host, arg)
        elif kind == "/reset":
            desc = Descriptor(desc.owner)
    store.update(target, desc)


def _listing(session: Any, shown: str, target: str) -> str:
    host = session.host
    current = host.acls.acl(target)
    lines = [f"{account_name(host, a.sid)}:{acl.ace_text(a)}" for a in current.aces]
    if paths.same_path(target, "C:\\"):
        lines.append("Mandatory Label\\High Mandatory Level:(OI)(NP)(IO)(NW)")
    pad = " " * (len(shown) + 1)
    body = "".join((f"{shown} " if i == 0 else pad) + line + "\r\n" for i, line in enumerate(lines))
    return body + "\r\n"


_TAKES_ONE = ("/inheritance", "/setowner")
_TAKES_MANY = ("/grant", "/deny", "/remove")
_SWITCHES = ("/t", "/c", "/l", "/q", "/reset")


def _parse(args: list[str]) -> tuple[str, list[tuple[str, str]], set[str]]:
    if not args or args[0].startswith("/"):
        raise _Invalid(args[0] if args else "")
    target, ops, switches = args[0], [], set()
    i = 1
    while i < len(args):
        arg = args[i]
        kind, _, mode = arg.lower().partition(":")
        if kind == "/inheritance" and mode in ("e", "d", "r"):
            ops.append((f"/inheritance:{mode}", ""))
            i += 1
        elif kind in _TAKES_MANY and mode in ({"", "r"} if kind == "/grant" else {"", "g", "d"}):
            if kind == "/deny" and mode:
                raise _Invalid(arg)
            values = []
            i += 1
            while i < len(args) and not args[i].startswith("/"):
                values.append(args[i])
                i += 1
            if not values:
                raise _Invalid(arg)
            if kind != "/remove":
                for spec in values:
                    name, sep, perm = spec.rpartition(":")
                    if not sep or not name:
                        raise _Invalid(spec)
                    _perm(perm, spec)
            ops.append((f"{kind}:{mode}" if mode else kind, "\0".join(values)))
        elif kind == "/setowner" and not mode and i + 1 < len(args):
            ops.append(("/setowner", args[i + 1]))
            i += 2
        elif arg.lower() in _SWITCHES:
            if arg.lower() == "/reset":
                ops.append(("/reset", ""))
            switches.add(arg.lower())
            i += 1
        else:
            raise _Invalid(arg)
    return target, ops, switches


def _targets(local: Path, recurse: bool) -> list[Path]:
    if not recurse or not local.is_dir():
        return [local]
    return [local, *sorted(local.rglob("*"))]


def run_icacls(session: Any, args: list[str], depth: int = 0) -> tuple[str, str, int]:
    """Run `icacls` with `args`; returns (stdout, stderr, exit code)."""
    host = session.host
    try:
        shown, ops, switches = _parse(args)
    except _Invalid as exc:
        return f'Invalid parameter "{exc}"\r\n', "", 87
    try:
        local = paths.to_local(host.root, shown)
        win = paths.to_windows(host.root, local)
    except paths.PathError:
        local, win = None, shown
    if local is None or not local.exists():
        err = f"{shown}: The system cannot find the file specified.\r\n"
        return SUMMARY.format(0, 1), err, 2
    if not ops:
        return _listing(session, shown, win) + SUMMARY.format(1, 0), "", 0
    out: list[str] = []
    errors: list[str] = []
    done = failed = code = 0
    for item in _targets(local, "/t" in switches):
        item_win = paths.to_windows(host.root, item)
        name = shown if item == local else item_win
        try:
            _apply(session, item_win, ops)
        except _Failed as exc:
            failed, code = failed + 1, exc.code
            errors.append(f"{name}: {exc}\r\n")
            if "/c" not in switches:
                break
            continue
        done += 1
        if "/q" not in switches:
            out.append(f"processed file: {name}\r\n")
    return "".join(out) + SUMMARY.format(done, failed), "".join(errors), code
