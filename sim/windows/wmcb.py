"""WMCB stand-in (`C:\\k\\wmcb.exe`, the 4.6-era Windows Machine Config Bootstrapper), SIMULATED.

`initialize-kubelet` reads the worker Ignition v3 file, writes the bootstrap kubeconfig, the
kubelet config and CA into the install dir, creates (or reconfigures) and starts the `kubelet`
service; `configure-cni` validates the CNI config and plugins and restarts kubelet with CNI
flags; `uninstall-kubelet` stops and removes the kubelet service. Errors: exit 1, message on
stderr. Used by the exec dispatcher (`exec.py`) when `C:\\k\\wmcb.exe` exists on the host's disk.
"""

from __future__ import annotations

import base64
import json
import urllib.parse
from typing import Any

import yaml

from sim.windows import cmdline, paths
from sim.windows.services import ServiceError

KUBELET_SERVICE = "kubelet"
_CNI_FLAGS = ("--network-plugin", "--cni-bin-dir", "--cni-conf-dir")
_REQUIRED = {
    "initialize-kubelet": ("ignition-file", "kubelet-path"),
    "configure-cni": ("cni-dir", "cni-config"),
    "uninstall-kubelet": (),
}
_KNOWN = {
    "initialize-kubelet": {"ignition-file", "kubelet-path", "install-dir", "node-ip"},
    "configure-cni": {"cni-dir", "cni-config", "install-dir"},
    "uninstall-kubelet": {"install-dir"},
}


class WmcbError(Exception):
    pass


def decode_data_url(source: str) -> bytes:
    """Ignition `contents.source`: `data:[<mediatype>][;base64],<data>`."""
    if not source.startswith("data:") or "," not in source:
        raise WmcbError(f"unsupported contents.source {source[:40]!r} (only data: URLs)")
    header, _, payload = source[len("data:") :].partition(",")
    if header.endswith(";base64"):
        return base64.b64decode(payload)
    return urllib.parse.unquote_to_bytes(payload)


def _flags(cmd: str, args: list[str]) -> dict[str, str]:
    flags: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("-"):
            raise WmcbError(f'unknown command "{arg}" for "wmcb {cmd}"')
        name, eq, value = arg.lstrip("-").partition("=")
        if name not in _KNOWN[cmd]:
            raise WmcbError(f"unknown flag: --{name}")
        if not eq:
            if i + 1 >= len(args):
                raise WmcbError(f"flag needs an argument: --{name}")
            i += 1
            value = args[i]
        flags[name] = value
        i += 1
    missing = [f'"{f}"' for f in _REQUIRED[cmd] if f not in flags]
    if missing:
        raise WmcbError(f"required flag(s) {', '.join(missing)} not set")
    return flags


def _read(host: Any, path: str) -> bytes:
    try:
        local = paths.to_local(host.root, path)
    except paths.PathError as exc:
        raise WmcbError(str(exc)) from exc
    if not local.is_file():
        raise WmcbError(f"open {path}: The system cannot find the file specified.")
    return local.read_bytes()


def _write(host: Any, path: str, data: bytes) -> None:
    local = paths.to_local(host.root, path)
    local.parent.mkdir(parents=True, exist_ok=True)
    local.write_bytes(data)


def _restart_kubelet(host: Any) -> None:
    svc = host.scm.find(KUBELET_SERVICE)
    if svc.status == "Running":
        host.scm.stop(KUBELET_SERVICE, force=True)
    host.scm.start(KUBELET_SERVICE)


def initialize_kubelet(host: Any, flags: dict[str, str]) -> str:
    try:
        ign = json.loads(_read(host, flags["ignition-file"]))
        files = {
            f["path"]: decode_data_url(f["contents"]["source"])
            for f in ign.get("storage", {}).get("files", [])
        }
    except (ValueError, KeyError, TypeError) as exc:
        raise WmcbError(f"could not parse ignition file {flags['ignition-file']}: {exc}") from exc
    if not str(ign.get("ignition", {}).get("version", "")).startswith("3."):
        raise WmcbError("ignition file is not Ignition spec v3")
    for needed in ("/etc/kubernetes/kubeconfig", "/etc/kubernetes/kubelet.conf"):
        if needed not in files:
            raise WmcbError(f"ignition file has no {needed}")
    try:
        yaml.safe_load(files["/etc/kubernetes/kubeconfig"])
        yaml.safe_load(files["/etc/kubernetes/kubelet.conf"])
    except yaml.YAMLError as exc:
        raise WmcbError(f"invalid YAML in ignition file: {exc}") from exc
    _read(host, flags["kubelet-path"])  # must exist
    install = flags.get("install-dir", "C:\\k").rstrip("\\/")
    _write(host, f"{install}\\bootstrap-kubeconfig", files["/etc/kubernetes/kubeconfig"])
    _write(host, f"{install}\\kubelet.conf", files["/etc/kubernetes/kubelet.conf"])
    if "/etc/kubernetes/kubelet-ca.crt" in files:
        _write(host, f"{install}\\kubelet-ca.crt", files["/etc/kubernetes/kubelet-ca.crt"])
    argv = [
        flags["kubelet-path"],
        f"--config={install}\\kubelet.conf",
        f"--bootstrap-kubeconfig={install}\\bootstrap-kubeconfig",
        f"--kubeconfig={install}\\kubeconfig",
        "--pod-infra-container-image=mcr.microsoft.com/oss/kubernetes/pause:1.4.1",
        "--cert-dir=c:\\var\\lib\\kubelet\\pki\\",
        "--windows-service",
        "--logtostderr=false",
        "--log-file=C:\\var\\log\\kubelet\\kubelet.log",
        "--register-with-taints=os=Windows:NoSchedule",
        "--node-labels=node.openshift.io/os_id=Windows",
        "--v=3",
    ]
    if flags.get("node-ip"):
        argv.append(f"--node-ip={flags['node-ip']}")
    bin_path = cmdline.join(argv)
    svc = host.scm.find(KUBELET_SERVICE)
    if svc is None:
        host.scm.create(
            KUBELET_SERVICE, bin_path, start_type="Automatic", display_name=KUBELET_SERVICE
        )
    else:
        if svc.status == "Running":
            host.scm.stop(KUBELET_SERVICE, force=True)
        host.scm.configure(KUBELET_SERVICE, bin_path=bin_path, start_type="Automatic")
    host.scm.start(KUBELET_SERVICE)
    return "Bootstrapping completed successfully"


def configure_cni(host: Any, flags: dict[str, str]) -> str:
    svc = host.scm.find(KUBELET_SERVICE)
    if svc is None:
        raise WmcbError("kubelet service is not present, run initialize-kubelet first")
    try:
        conf = json.loads(_read(host, flags["cni-config"]))
    except ValueError as exc:
        raise WmcbError(f"invalid CNI config {flags['cni-config']}: {exc}") from exc
    kind = conf.get("type") or (conf.get("plugins") or [{}])[0].get("type")
    if kind != "win-overlay":
        raise WmcbError(f"CNI config {flags['cni-config']} is not a win-overlay config")
    cni_dir = flags["cni-dir"].rstrip("\\/")
    for plugin in ("win-overlay.exe", "host-local.exe"):
        _read(host, f"{cni_dir}\\{plugin}")
    conf_dir = flags["cni-config"].replace("/", "\\").rsplit("\\", 1)[0]
    argv = [a for a in cmdline.split(svc.bin_path) if not a.startswith(_CNI_FLAGS)]
    argv += ["--network-plugin=cni", f"--cni-bin-dir={cni_dir}", f"--cni-conf-dir={conf_dir}"]
    host.scm.configure(KUBELET_SERVICE, bin_path=cmdline.join(argv))
    _restart_kubelet(host)
    return "CNI configuration completed successfully"


def uninstall_kubelet(host: Any, flags: dict[str, str]) -> str:
    svc = host.scm.find(KUBELET_SERVICE)
    if svc is not None:
        if svc.status == "Running":
            host.scm.stop(KUBELET_SERVICE, force=True)
        host.scm.delete(KUBELET_SERVICE)
    return "kubelet service uninstalled successfully"


def run_wmcb(host: Any, argv: list[str]) -> tuple[str, str, int]:
    """Run `wmcb.exe <argv>`; returns (stdout, stderr, exit code)."""
    if not argv or argv[0] not in _REQUIRED:
        sub = argv[0] if argv else ""
        return "", f'Error: unknown command "{sub}" for "wmcb"\r\n', 1
    actions = {
        "initialize-kubelet": initialize_kubelet,
        "configure-cni": configure_cni,
        "uninstall-kubelet": uninstall_kubelet,
    }
    try:
        flags = _flags(argv[0], argv[1:])
        line = actions[argv[0]](host, flags)
    except WmcbError as exc:
        return "", f"Error: {exc}\r\n", 1
    except ServiceError as exc:
        return "", f"Error: kubelet service: {exc}\r\n", 1
    return f"{line}\r\n", "", 0
