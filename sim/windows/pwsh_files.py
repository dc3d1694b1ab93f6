"""File-system cmdlets of the SIMULATED PowerShell: Get-FileHash, Test-Path, New-Item,
Remove-Item, Copy-Item (files only), Get-Content, Set-Content, Add-Content, Out-File,
Import-Module. Text cmdlets write the encodings Windows PowerShell 5.1 writes (Set-Content: the
ANSI code page; Out-File: UTF-16LE with a BOM unless `-Encoding`), so a key file written with a
bare `Out-File` is unreadable to sshd, as on Windows. Remove-Item drops the path's own ACL.

Paths are Windows paths on the host's disk (`paths.to_local`). Error messages follow Windows
PowerShell 5.1. Registered into `pwsh.CMDLETS` on import; used by `pwsh.run_script`.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

from sim.windows import paths
from sim.windows.pwsh import CmdletError, Context, cmdlet, format_object


def _local(ctx: Context, path: Any) -> Path:
    if not isinstance(path, str):
        raise CmdletError(f"Cannot bind argument to parameter 'Path' ('{path}').")
    try:
        return paths.to_local(ctx.host.root, path)
    except paths.PathError as exc:
        raise CmdletError(
            f"Cannot find drive. A drive with the name '{path}' does not exist."
        ) from exc


def _win(ctx: Context, local: Path) -> str:
    return paths.to_windows(ctx.host.root, local)


def _item(ctx: Context, local: Path) -> dict[str, Any]:
    return {
        "Name": local.name,
        "FullName": _win(ctx, local),
        "Length": local.stat().st_size if local.is_file() else None,
        "Mode": "d-----" if local.is_dir() else "-a----",
    }


def decode_text(raw: bytes) -> str:
    """File bytes as Windows PowerShell reads them: by BOM, else UTF-8."""
    for bom, codec in ((b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be")):
        if raw.startswith(bom):
            return raw[len(bom) :].decode(codec, errors="replace")
    return raw.decode("utf-8", errors="replace").lstrip("\ufeff")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return "".join(f"{_text(v)}\r\n" for v in value)
    if isinstance(value, bool):
        return "True\r\n" if value else "False\r\n"
    return f"{value}\r\n"


@cmdlet("Get-FileHash", values=("Path", "Algorithm"), positional=("Path",), required=("Path",))
def get_file_hash(ctx: Context, p: dict[str, Any], _in: list[Any] | None) -> list[Any]:
    algorithm = str(p.get("Algorithm", "SHA256")).upper()
    if algorithm != "SHA256":
        raise CmdletError(f"Cannot validate argument on parameter 'Algorithm'. '{algorithm}'.")
    out = []
    for path in p["Path"] if isinstance(p["Path"], list) else [p["Path"]]:  # -Path is string[]
        local = _local(ctx, path)
        if not local.is_file():
            raise CmdletError(f"Cannot find path '{path}' because it does not exist.")
        digest = hashlib.sha256()
        with local.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        out.append(
            {"Algorithm": "SHA256", "Hash": digest.hexdigest().upper(), "Path": _win(ctx, local)}
        )
    return out


@cmdlet("Test-Path", values=("Path",), positional=("Path",), required=("Path",))
def test_path(ctx: Context, p: dict[str, Any], _in: list[Any] | None) -> list[Any]:
    try:
        return [paths.to_local(ctx.host.root, str(p["Path"])).exists()]
    except paths.PathError:
        return [False]


@cmdlet(
    "New-Item",
    values=("ItemType", "Path", "Value", "Name"),
    switches=("Force",),
    positional=("Path",),
    required=("Path",),
)
def new_item(ctx: Context, p: dict[str, Any], _in: list[Any] | None) -> list[Any]:
    local = _local(ctx, p["Path"])
    kind = str(p.get("ItemType", "File")).lower()
    force = p.get("Force", False)
    if kind not in ("directory", "file"):
        raise CmdletError(f"The type '{p.get('ItemType')}' is not a valid item type.")
    if local.exists() and not force:
        raise CmdletError(f"An item with the specified name {p['Path']} already exists.")
    if kind == "directory":
        if local.is_file():
            raise CmdletError(f"An item with the specified name {p['Path']} already exists.")
        local.mkdir(parents=True, exist_ok=True)
    else:
        if not local.parent.is_dir():
            if not force:
                raise CmdletError(f"Could not find a part of the path '{p['Path']}'.")
            local.parent.mkdir(parents=True, exist_ok=True)
        local.write_text(str(p.get("Value") or ""), newline="")
    return [_item(ctx, local)]


@cmdlet(
    "Remove-Item",
    values=("Path",),
    switches=("Recurse", "Force"),
    positional=("Path",),
    required=("Path",),
)
def remove_item(ctx: Context, p: dict[str, Any], _in: list[Any] | None) -> list[Any]:
    local = _local(ctx, p["Path"])
    if not local.exists():
        raise CmdletError(f"Cannot find path '{p['Path']}' because it does not exist.")
    if local.is_dir():
        if any(local.iterdir()) and not p.get("Recurse"):
            raise CmdletError(
                f"The item at {p['Path']} has children and the Recurse parameter was not specified."
            )
        if local == ctx.host.root / "C":
            raise CmdletError("Access to the path 'C:\\' is denied.")
        shutil.rmtree(local)
    else:
        local.unlink()
    ctx.host.acls.forget(_win(ctx, local))
    return []


@cmdlet(
    "Copy-Item",
    values=("Path", "Destination"),
    switches=("Force",),
    positional=("Path", "Destination"),
    required=("Path", "Destination"),
)
def copy_item(ctx: Context, p: dict[str, Any], _in: list[Any] | None) -> list[Any]:
    """Copy one file (over an existing one; into a directory keeps its name)."""
    src, dest = _local(ctx, p["Path"]), _local(ctx, p["Destination"])
    if not src.exists():
        raise CmdletError(f"Cannot find path '{p['Path']}' because it does not exist.")
    if src.is_dir():
        raise CmdletError("sim: copying directories is not modelled by the simulated host")
    if dest.is_dir():
        dest = dest / src.name
    if not dest.parent.is_dir():
        raise CmdletError(f"Could not find a part of the path '{p['Destination']}'.")
    shutil.copyfile(src, dest)
    return []


@cmdlet(
    "Get-Content", values=("Path",), switches=("Raw",), positional=("Path",), required=("Path",)
)
def get_content(ctx: Context, p: dict[str, Any], _in: list[Any] | None) -> list[Any]:
    local = _local(ctx, p["Path"])
    if not local.is_file():
        raise CmdletError(f"Cannot find path '{p['Path']}' because it does not exist.")
    text = decode_text(local.read_bytes())
    if p.get("Raw"):
        return [text]
    return text.splitlines()


# Windows PowerShell 5.1 encodings; Set-Content defaults to "Default" (the ANSI code page),
# Out-File to "Unicode" (UTF-16LE with a byte-order mark).
_ENCODINGS = {
    "default": ("cp1252", b""),
    "ascii": ("ascii", b""),
    "utf8": ("utf-8", b"\xef\xbb\xbf"),
    "unicode": ("utf-16-le", b"\xff\xfe"),
    "string": ("utf-16-le", b"\xff\xfe"),
    "bigendianunicode": ("utf-16-be", b"\xfe\xff"),
    "utf32": ("utf-32-le", b"\xff\xfe\x00\x00"),
    "oem": ("cp437", b""),
}


def _write(
    ctx: Context,
    path: Any,
    text: str,
    append: bool,
    encoding: Any,
    default: str,
) -> list[Any]:
    local = _local(ctx, path)
    name = str(encoding or default).lower()
    if name not in _ENCODINGS:
        raise CmdletError(
            f"Cannot bind parameter 'Encoding'. Cannot convert value \"{encoding}\" to type "
            '"Microsoft.PowerShell.Commands.FileSystemCmdletProviderEncoding".'
        )
    if not local.parent.is_dir():
        raise CmdletError(f"Could not find a part of the path '{path}'.")
    if local.is_dir():
        raise CmdletError(f"Access to the path '{path}' is denied.")
    codec, bom = _ENCODINGS[name]
    data = text.encode(codec, errors="replace")
    existed = local.is_file() and local.stat().st_size > 0
    with local.open("ab" if append else "wb") as fh:
        fh.write((b"" if append and existed else bom) + data)
    return []


@cmdlet(
    "Set-Content",
    values=("Path", "Value", "Encoding"),
    switches=("Force", "NoNewline"),
    positional=("Path", "Value"),
    required=("Path",),
)
def set_content(ctx: Context, p: dict[str, Any], data: list[Any] | None) -> list[Any]:
    text = _text(p.get("Value", data))
    return _write(ctx, p["Path"], text, False, p.get("Encoding"), "default")


@cmdlet(
    "Add-Content",
    values=("Path", "Value", "Encoding"),
    switches=("Force", "NoNewline"),
    positional=("Path", "Value"),
    required=("Path",),
)
def add_content(ctx: Context, p: dict[str, Any], data: list[Any] | None) -> list[Any]:
    text = _text(p.get("Value", data))
    return _write(ctx, p["Path"], text, True, p.get("Encoding"), "default")


@cmdlet(
    "Out-File",
    values=("FilePath", "InputObject", "Encoding", "Width"),
    switches=("Append", "Force", "NoClobber", "NoNewline"),
    positional=("FilePath", "Encoding"),
    required=("FilePath",),
)
def out_file(ctx: Context, p: dict[str, Any], data: list[Any] | None) -> list[Any]:
    """Writes objects as the console shows them; Unicode (UTF-16LE) unless -Encoding says."""
    items = data if "InputObject" not in p else [p["InputObject"]]
    if p.get("NoClobber") and _local(ctx, p["FilePath"]).exists():
        raise CmdletError(f"The file '{p['FilePath']}' already exists.")
    text = "".join(f"{format_object(o)}\r\n" for o in (items or []))
    return _write(ctx, p["FilePath"], text, bool(p.get("Append")), p.get("Encoding"), "unicode")


@cmdlet(
    "Import-Module", values=("Name",), switches=("Force",), positional=("Name",), required=("Name",)
)
def import_module(ctx: Context, p: dict[str, Any], _in: list[Any] | None) -> list[Any]:
    name = str(p["Name"])
    try:
        exists = paths.to_local(ctx.host.root, name).is_file()
    except paths.PathError:
        exists = False
    if not exists:
        raise CmdletError(
            f"The specified module '{name}' was not loaded because no valid module file was "
            "found in any module directory."
        )
    stem = name.replace("/", "\\").rsplit("\\", 1)[-1].lower()
    if stem.endswith(".psm1"):
        ctx.modules.add(stem[: -len(".psm1")])
    return []
