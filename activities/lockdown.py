"""Keep what winfleet puts on a host readable by Administrators and SYSTEM only.

`C:\\k` holds the worker ignition (a bootstrap token, until kubelet has its certificate) and
kubelet's kubeconfig; `C:\\var\\lib\\kubelet` holds kubelet's private keys. Folders created under
`C:\\` inherit `Users` read access, so `restrict` replaces their ACL with full control for the
Administrators and SYSTEM SIDs only, inherited by everything inside (`icacls /inheritance:r`).
Check, then act: the ACL is listed first and changed only when anyone else appears in it, so a
second run changes nothing. Called by `configure_kubelet` (activities/kubelet.py).
"""

from __future__ import annotations

from activities.errors import RemoteCommandFailed
from activities.ssh import HostSession
from activities.windows import paths, powershell

# How icacls names the two principals allowed (English display names; on a host that shows
# other names the ACL is simply written again, which is harmless).
ALLOWED = ("BUILTIN\\Administrators", "NT AUTHORITY\\SYSTEM")


def others_in_acl(listing: str, path: paths.WindowsPath) -> list[str]:
    """Entries of an `icacls <path>` listing that are not a non-inherited ACE of the two
    allowed principals (an inherited `(I)` ACE counts: inheritance must be off)."""
    found = []
    for raw in listing.splitlines():
        line = raw.strip()
        if line.lower().startswith(path.lower()):
            line = line[len(path) :].strip()
        if not line or line.startswith("Successfully processed") or ":" not in line:
            continue
        principal, _, flags = line.rpartition(":(")
        if principal not in ALLOWED or "(I)" in f"({flags}":
            found.append(line)
    return found


async def restrict(host: HostSession, path: paths.WindowsPath) -> bool:
    """Leave `path` to Administrators and SYSTEM; True if its ACL had to change. A path that
    does not exist yet is left alone (False)."""
    listed = await host.run(
        powershell.powershell(powershell.list_acl(path), display=f"icacls {path}"), check=False
    )
    if listed.exit_status != 0:
        if await host.remote_size(path) is None and not await _is_dir(host, path):
            return False
        raise RemoteCommandFailed(
            f"icacls {path} on {host.address} failed (exit {listed.exit_status}): "
            f"{listed.stderr.strip()[:300]}"
        )
    if not others_in_acl(listed.stdout, path):
        return False
    grant = powershell.grant_full_control_only(
        path, powershell.ADMINISTRATORS_SID, powershell.SYSTEM_SID, inherit=True
    )
    await host.run(
        powershell.powershell(
            grant, powershell.exit_with_last_exit_code(), display=f"restrict {path}"
        )
    )
    return True


async def _is_dir(host: HostSession, path: paths.WindowsPath) -> bool:
    cmd = powershell.powershell(powershell.test_path(path), display=f"test {path}")
    return (await host.run(cmd)).stdout.strip() == "True"
