"""The payload (WMCB, kubelet, hybrid-overlay, kube-proxy, CNI plugins, ignition...) and its copy.

The worker holds one or more payload versions (`settings().payload_dir_for(version)`), each a
directory with the files plus a `sha256sum` manifest listing them with paths relative to
`C:\\k`; every file is checked against it before anything is sent (`PayloadInvalid`
otherwise). The `copy_payload` activity compares each remote file's Get-FileHash with the
manifest and copies only those that differ, resuming interrupted copies, as WMCO's
`EnsureFile` does. A host moving to another version ends with exactly that version's payload:
files that another version's manifest lists and this one does not are removed (WMCO gets the
same by deconfiguring, which deletes `C:\\k`, before it configures a node again); files no
payload lists (kubeconfig, kubelet.conf, CNI config, markers) are left alone. Called by the
onboarding workflow after `wait_for_ssh`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from temporalio import activity

from activities import blocking
from activities.config import settings
from activities.errors import PayloadInvalid, TransferInterrupted, boundary
from activities.ssh import HostSession, session_for
from activities.windows.paths import CNI_DIR, K_DIR, WindowsPath, parent, remote_path_for
from activities.windows.powershell import new_directory, powershell, remove_item

MANIFEST = "sha256sum"
_LINE = re.compile(r"^(?P<hash>[0-9a-fA-F]{64}) [ *](?P<path>.+)$")


@dataclass(frozen=True)
class ManifestEntry:
    path: str  # relative, as written in the manifest (`cni/win-overlay.exe`)
    sha256: str  # lowercase hex
    remote: WindowsPath


@dataclass(frozen=True)
class PayloadFile:
    entry: ManifestEntry
    local: Path
    size: int


@dataclass(frozen=True)
class CopyPayloadInput:
    node_name: str
    address: str
    username: str
    private_key_secret: str  # name of the Secret holding `private-key.pem`, not the key
    version: str = ""  # payload version to copy; "": the worker's default version


@dataclass(frozen=True)
class CopyPayloadResult:
    files_copied: int
    files_skipped: int
    bytes_copied: int
    files_removed: int = 0  # files of another payload version this one does not have


def parse_manifest(text: str) -> tuple[ManifestEntry, ...]:
    """Entries of a `sha256sum` manifest (`<sha256>  <path>` or `<sha256> *<path>` lines)."""
    entries: list[ManifestEntry] = []
    seen: set[str] = set()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        match = _LINE.match(line)
        if match is None:
            raise PayloadInvalid(
                f"payload manifest line {number} is not `<sha256>  <path>`: {line[:120]!r}"
            )
        path = match["path"]
        try:
            remote = remote_path_for(path)
        except ValueError as exc:
            raise PayloadInvalid(f"payload manifest line {number}: {exc}") from exc
        if remote.lower() in seen:
            raise PayloadInvalid(f"payload manifest lists {path} twice")
        seen.add(remote.lower())
        entries.append(ManifestEntry(path=path, sha256=match["hash"].lower(), remote=remote))
    if not entries:
        raise PayloadInvalid("payload manifest is empty")
    return tuple(entries)


# (path, size, mtime_ns) → sha256: the payload is hashed once per worker, not once per node.
_hash_cache: dict[tuple[str, int, int], str] = {}


def _sha256_file(path: Path) -> str:
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _hash_cache:
        digest = hashlib.sha256()
        with path.open("rb") as f:
            while block := f.read(1 << 20):
                digest.update(block)
        _hash_cache[key] = digest.hexdigest()
    return _hash_cache[key]


def _verify(payload_dir: Path) -> tuple[PayloadFile, ...]:
    manifest = payload_dir / MANIFEST
    if not manifest.is_file():
        raise PayloadInvalid(
            f"no {MANIFEST} manifest in payload directory {payload_dir}; "
            "check WINFLEET_PAYLOAD_DIR and generate it with `sha256sum`"
        )
    files: list[PayloadFile] = []
    for entry in parse_manifest(manifest.read_text()):
        local = payload_dir / Path(*entry.path.replace("\\", "/").split("/"))
        if not local.is_file():
            raise PayloadInvalid(f"payload file {entry.path} is listed in {manifest} but missing")
        actual = _sha256_file(local)
        if actual != entry.sha256:
            raise PayloadInvalid(
                f"payload file {local} has SHA256 {actual}, but {manifest} says {entry.sha256}; "
                "rebuild the payload or its manifest"
            )
        files.append(PayloadFile(entry=entry, local=local, size=local.stat().st_size))
    return tuple(files)


async def verified_payload(payload_dir: Path | None = None) -> tuple[PayloadFile, ...]:
    """The payload files, each checked against the manifest (PayloadInvalid if one differs)."""
    return await blocking.run(_verify, payload_dir or settings().payload_dir_for())


def _listed(payload_dir: Path) -> tuple[ManifestEntry, ...]:
    manifest = payload_dir / MANIFEST
    return parse_manifest(manifest.read_text()) if manifest.is_file() else ()


def foreign_paths(version: str, files: tuple[PayloadFile, ...]) -> tuple[WindowsPath, ...]:
    """Remote paths other payload versions install and `version`'s payload does not."""
    s = settings()
    mine = {f.entry.remote.lower() for f in files}
    others: dict[str, WindowsPath] = {}
    for other in s.payload_versions:
        if other != (version or s.version):
            for entry in _listed(s.payload_dir_for(other)):
                if entry.remote.lower() not in mine:
                    others.setdefault(entry.remote.lower(), entry.remote)
    return tuple(sorted(others.values(), key=str.lower))


def remote_directories(files: tuple[PayloadFile, ...]) -> tuple[WindowsPath, ...]:
    """Every directory the payload needs on the host, parents first."""
    dirs = {K_DIR, CNI_DIR} | {parent(f.entry.remote) for f in files}
    return tuple(sorted(dirs, key=lambda d: (d.count("\\"), d.lower())))


@activity.defn(name="copy_payload")
@boundary
async def copy_payload(inp: CopyPayloadInput) -> CopyPayloadResult:
    """Make C:\\k on the host match a payload version, copying only differing files."""
    s = settings()
    files = await verified_payload(s.payload_dir_for(inp.version))
    foreign = await blocking.run(foreign_paths, inp.version, files)
    skipped = sent_total = 0
    async with session_for(inp) as session:
        dirs = remote_directories(files)
        await session.run(
            powershell(*(new_directory(d) for d in dirs), display="ensure payload directories")
        )
        # One stat each and one Get-FileHash for all (not one remote process per file).
        before = await session.remote_sha256s([f.entry.remote for f in files])
        sent_files: list[PayloadFile] = []
        for f in files:
            if before.get(f.entry.remote.lower()) == f.entry.sha256:
                skipped += 1
                continue
            activity.heartbeat(f.entry.path)

            def progress(sent: int, path: str = f.entry.path, size: int = f.size) -> None:
                activity.heartbeat(f"{path}: {sent}/{size} bytes")

            sent_total += await session.put_file(f.local, f.entry.remote, on_progress=progress)
            sent_files.append(f)
        if sent_files:
            await _check_copied(session, sent_files)
        present = await session.existing(foreign)
        if present:
            activity.heartbeat(f"removing {len(present)} files of other payload versions")
            await session.run(
                powershell(
                    *(remove_item(p) for p in present),
                    display=f"remove {len(present)} files of other payload versions",
                )
            )
    activity.logger.info(
        "payload %s on %s: %d copied (%d bytes), %d already current, %d removed",
        inp.version or s.version,
        inp.node_name,
        len(sent_files),
        sent_total,
        skipped,
        len(present),
    )
    return CopyPayloadResult(
        files_copied=len(sent_files),
        files_skipped=skipped,
        bytes_copied=sent_total,
        files_removed=len(present),
    )


async def _check_copied(session: HostSession, sent: list[PayloadFile]) -> None:
    """Every file sent now has the manifest's hash on the host (one Get-FileHash for all);
    TransferInterrupted names those that do not (the next attempt copies them again)."""
    after = await session.remote_sha256s([f.entry.remote for f in sent])
    wrong = [f for f in sent if after.get(f.entry.remote.lower()) != f.entry.sha256]
    if wrong:
        detail = ", ".join(
            f"{f.entry.remote} has {after.get(f.entry.remote.lower()) or 'nothing'}, "
            f"expected {f.entry.sha256}"
            for f in wrong
        )
        raise TransferInterrupted(
            f"payload copy to {session.address} ended with different files: {detail}; "
            "the next attempt copies them again"
        )
