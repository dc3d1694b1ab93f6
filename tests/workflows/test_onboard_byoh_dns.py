"""A BYOH host listed by DNS name onboards: the name is resolved once, at vm-create.

The admin lists the host in `windows-instances` by its DNS name; winfleet keeps the name for SSH
and the host-key pin, and gives kubelet the resolved IPv4 address as --node-ip, which the serving
CSR's IP SAN must then match. The name resolves through the system resolver: the test adds an
/etc/hosts entry for the duration of the test (tests run as root) and removes exactly that line.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from cryptography import x509
from onboarding import World, is_ready, node, start

from activities import kube
from activities.config import settings
from activities.contracts import ByohHostSpec, OnboardNodeInput, Platform

pytestmark = pytest.mark.asyncio(loop_scope="session")

HOSTS = Path("/etc/hosts")
INSTANCES = "windows-instances"


@contextlib.contextmanager
def hosts_entry(ip: str, name: str) -> Iterator[None]:
    """`ip name` in /etc/hosts while the block runs; then exactly that line is removed."""
    line = f"{ip} {name}\n"
    with HOSTS.open("a") as f:  # in place: /etc/hosts may be a bind mount
        f.write(line)
    try:
        yield
    finally:
        kept = [entry for entry in HOSTS.read_text().splitlines(True) if entry != line]
        with HOSTS.open("w") as f:
            f.write("".join(kept))


@pytest_asyncio.fixture(loop_scope="session")
async def resolvable_name(world: World) -> AsyncIterator[tuple[str, str]]:
    """(DNS name, IPv4) of a twin BYOH host, resolvable by the system resolver while it lasts,
    and listed in `windows-instances` by that name (as an admin would, with a merge patch)."""
    ip = world.twin.byoh_addresses[1]
    name = f"byoh-{secrets.token_hex(4)}.winfleet.test"
    await kube.call(
        f"list {name} in {INSTANCES}",
        kube.core().patch_namespaced_config_map,
        INSTANCES,
        settings().namespace,
        {"data": {name: "username=Administrator"}},
        _content_type="application/merge-patch+json",
    )
    with hosts_entry(ip, name):
        yield name, ip


async def test_a_byoh_host_listed_by_dns_name_becomes_a_ready_node_at_its_address(
    world: World, resolvable_name: tuple[str, str]
) -> None:
    name, ip = resolvable_name
    inp = OnboardNodeInput(
        pool="dns", node_name="byoh-dns", platform=Platform.BYOH, byoh=ByohHostSpec(address=name)
    )

    result = await (await start(world, inp)).result()

    assert (result.host.address, result.host.ip) == (name, ip)
    obj = node(world, "byoh-dns")
    assert obj is not None and is_ready(obj)
    internal = [a["address"] for a in obj["status"]["addresses"] if a["type"] == "InternalIP"]
    assert internal == [ip]
    serving = [
        csr
        for csr in world.twin.kube.store.list("certificatesigningrequests")
        if csr["spec"]["signerName"] == "kubernetes.io/kubelet-serving"
        and csr["spec"]["username"] == "system:node:byoh-dns"
        and csr.get("status", {}).get("certificate")
    ]
    assert serving, "the serving CSR naming the resolved address was approved"
    request = x509.load_pem_x509_csr(base64.b64decode(serving[-1]["spec"]["request"]))
    sans = request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address(ip)]
