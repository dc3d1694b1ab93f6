"""SIMULATED stand-in payload: the files WMCO copies to `C:\\k\\`, as labelled fakes.

`build_sample_payload(dest_dir, version) -> {relative name: sha256 hex}` writes deterministic
stand-ins for wmcb.exe, kubelet.exe (~1.5 MB, so interrupted/resumed SFTP transfers can be
tested), hybrid-overlay-node.exe, kube-proxy.exe, hns.psm1, cni/win-overlay.exe,
cni/host-local.exe and windows_exporter.exe, plus a `sha256sum` manifest (`<hex>  <relative/path>`
lines, as WMCO's). `build_sample_payloads(root)` writes every version of `PAYLOAD_VERSIONS` to
`root/<version>/`: they differ in kubelet.exe and kube-proxy.exe (their `version:` line) and
hybrid-overlay-node.exe; the other files are the same, as between two WMCO releases that only
bump Kubernetes. None of these is a real binary; the simulated Windows hosts (sim/windows)
recognise them by name, and read the `version:` line of kubelet.exe / kube-proxy.exe. Used by
tests, the bench and `python -m sim up`; the product treats each directory as an opaque payload.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

# payload version -> the Kubernetes version its kubelet.exe / kube-proxy.exe report (oldest first)
KUBERNETES_VERSIONS = {"1.0.0": "v1.19.0-rc.2+simulated", "1.1.0": "v1.20.0+simulated"}
PAYLOAD_VERSIONS = tuple(KUBERNETES_VERSIONS)
DEFAULT_VERSION = PAYLOAD_VERSIONS[-1]
KUBERNETES_VERSION = KUBERNETES_VERSIONS[DEFAULT_VERSION]

_FILES: dict[str, tuple[str, int]] = {
    # name: (description, padding bytes)
    "wmcb.exe": ("Windows Machine Config Bootstrapper", 4096),
    "kubelet.exe": ("kubelet", 1536 * 1024),
    "hybrid-overlay-node.exe": ("hybrid-overlay-node", 8192),
    "kube-proxy.exe": ("kube-proxy", 8192),
    "cni/win-overlay.exe": ("CNI plugin win-overlay", 2048),
    "cni/host-local.exe": ("CNI plugin host-local", 2048),
    "windows_exporter.exe": ("windows_exporter", 2048),
}
_VERSIONED = {"kubelet.exe", "kube-proxy.exe"}  # carry a `version:` line
_CHANGED = _VERSIONED | {"hybrid-overlay-node.exe"}  # differ from one payload version to the next

HNS_PSM1 = """# SIMULATED STAND-IN for hns.psm1 (Microsoft SDN helper module).
# The simulated host implements Get-HnsNetwork, Get-HnsEndpoint, New-HnsEndpoint,
# Remove-HnsNetwork and Remove-HnsEndpoint once this file is imported with Import-Module.
function Get-HnsNetwork { }
"""


def _padding(seed: str, size: int) -> bytes:
    """Deterministic pseudo-random filler (so the file does not compress to nothing)."""
    out = bytearray()
    block = hashlib.sha256(seed.encode()).digest()
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:size])


def _content(name: str, description: str, size: int, version: str) -> bytes:
    header = f"SIMULATED STAND-IN for {description} ({name}); not a real Windows binary.\n"
    seed = name
    if name in _CHANGED:
        header += f"payload: {version}\n"
        seed = f"{name}@{version}"
    if name in _VERSIONED:
        header += f"version: {KUBERNETES_VERSIONS[version]}\n"
    return header.encode() + b"\n" + _padding(seed, size)


def build_sample_payloads(root: str | Path) -> dict[str, dict[str, str]]:
    """Write every payload version to `root/<version>/`; returns {version: {path: sha256}}."""
    return {v: build_sample_payload(Path(root) / v, v) for v in PAYLOAD_VERSIONS}


def build_sample_payload(dest_dir: str | Path, version: str = DEFAULT_VERSION) -> dict[str, str]:
    """Write one payload version into `dest_dir`; returns {relative path: sha256 hex}."""
    if version not in KUBERNETES_VERSIONS:
        raise ValueError(f"no sample payload {version!r}; there are {', '.join(PAYLOAD_VERSIONS)}")
    dest = Path(dest_dir)
    files: dict[str, bytes] = {n: _content(n, d, s, version) for n, (d, s) in _FILES.items()}
    files["hns.psm1"] = HNS_PSM1.encode()
    hashes: dict[str, str] = {}
    for name, data in sorted(files.items()):
        path = dest / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        hashes[name] = hashlib.sha256(data).hexdigest()
    manifest = "".join(f"{h}  {n}\n" for n, h in sorted(hashes.items()))
    (dest / "sha256sum").write_text(manifest)
    return hashes
