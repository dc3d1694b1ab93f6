"""BYOH ("bring your own host"): check that an existing Windows host is registered for winfleet.

WMCO's contract: an admin lists each host in ConfigMap `windows-instances` (winfleet's
namespace) as `<IPv4 or DNS name>: "username=<user>"`. `check_byoh_host` finds the address there
and takes the SSH user from it; `resolve_ipv4` turns a DNS name into the IPv4 address kubelet
reports (--node-ip) and its serving certificate names, once, with the system resolver. Nothing
is created and nothing is ever deleted: the returned `HostRef` says `created_by_us=False`.
Called by `activities/cloud/vm.py`.
"""

from __future__ import annotations

import ipaddress
import re
import socket

from activities import blocking, kube
from activities.config import settings
from activities.contracts import ByohHostSpec, HostAddress, HostRef, Platform
from activities.errors import HostUnreachable, InvalidRequest

INSTANCES_CONFIGMAP = "windows-instances"
_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
# ByohHostSpec's default: a username the caller may not have chosen (the ConfigMap decides).
_DEFAULT_USERNAME = ByohHostSpec().username


def address_problem(address: str) -> str | None:
    """Why `address` is not an IPv4 address or DNS name, or None if it is one."""
    if not address:
        return "the BYOH address is empty; give the host's IPv4 address or DNS name"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        ip = None
    if ip is not None:
        if ip.version != 4:
            return f"BYOH address {address!r} is IPv6; WMCO's contract allows IPv4 or DNS names"
        return None
    name = address.rstrip(".").lower()
    labels = name.split(".")
    if (
        len(name) > 253
        or not all(_DNS_LABEL.match(label) for label in labels)
        or labels[-1].isdigit()
    ):
        return f"BYOH address {address!r} is neither an IPv4 address nor a valid DNS name"
    return None


def parse_instance_entry(value: str) -> str | None:
    """The username in a `windows-instances` value `username=<user>`, or None if malformed."""
    key, sep, user = value.strip().partition("=")
    if sep != "=" or key.strip() != "username" or not user.strip():
        return None
    return user.strip()


async def check_byoh_host(spec: ByohHostSpec) -> HostRef:
    """The host as registered in `windows-instances`; InvalidRequest with what to fix otherwise."""
    problem = address_problem(spec.address)
    if problem:
        raise InvalidRequest(problem)
    ns = settings().namespace
    listing = f"kubectl -n {ns} edit configmap {INSTANCES_CONFIGMAP}"
    try:
        cm = await kube.call(
            f"read configmap {ns}/{INSTANCES_CONFIGMAP}",
            kube.core().read_namespaced_config_map,
            INSTANCES_CONFIGMAP,
            ns,
        )
    except kube.NotFound as exc:
        raise InvalidRequest(
            f"BYOH host {spec.address}: ConfigMap {ns}/{INSTANCES_CONFIGMAP} does not exist; "
            f'create it with an entry {spec.address}: "username=<user>"'
        ) from exc
    data: dict[str, str] = dict(cm.data or {})
    if spec.address not in data:
        raise InvalidRequest(
            f"BYOH host {spec.address} is not listed in ConfigMap {ns}/{INSTANCES_CONFIGMAP}; "
            f'add {spec.address}: "username=<user>" ({listing})'
        )
    username = parse_instance_entry(data[spec.address])
    if username is None:
        raise InvalidRequest(
            f"BYOH host {spec.address}: its entry in ConfigMap {ns}/{INSTANCES_CONFIGMAP} must "
            f'read "username=<user>" ({listing})'
        )
    if spec.username and spec.username not in (username, _DEFAULT_USERNAME):
        raise InvalidRequest(
            f"BYOH host {spec.address}: username {spec.username!r} differs from "
            f"{username!r} in ConfigMap {ns}/{INSTANCES_CONFIGMAP}; fix one of them"
        )
    return HostRef(
        platform=Platform.BYOH,
        address=HostAddress(spec.address),
        username=username,
        instance_id=None,
        created_by_us=False,
    )


# getaddrinfo's answers for "this name has no (IPv4) address": permanent, unlike a resolver
# that cannot be reached (EAI_AGAIN and the rest).
_NO_SUCH_NAME = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}


async def resolve_ipv4(address: str) -> str:
    """The IPv4 address of a BYOH host: `address` itself if it is one, else the first IPv4
    address the system resolver gives for the name."""
    try:
        return str(ipaddress.IPv4Address(address))
    except ValueError:
        pass
    try:
        found = await blocking.run(
            socket.getaddrinfo, address, None, family=socket.AF_INET, type=socket.SOCK_STREAM
        )
    except socket.gaierror as exc:
        if exc.errno in _NO_SUCH_NAME:
            raise InvalidRequest(
                f"BYOH host {address}: the name does not resolve to an IPv4 address "
                f"({exc.strerror}); fix DNS or list the host by its IPv4 address"
            ) from exc
        raise HostUnreachable(
            f"BYOH host {address}: DNS lookup failed ({exc.strerror}); retrying"
        ) from exc
    if not found:
        raise InvalidRequest(f"BYOH host {address}: the name has no IPv4 address")
    return str(found[0][4][0])
