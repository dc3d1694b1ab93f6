"""The operator key: loading from a Secret in the formats users have, and its published hash."""

from __future__ import annotations

import base64
import hashlib

import asyncssh
from host_lab import NAMESPACE, Lab
from kubernetes import client

from activities import kube
from activities.keys import load_private_key, pub_key_hash, public_key_openssh
from activities.ssh import open_session


def test_the_public_key_is_type_and_blob_without_comment() -> None:
    key = asyncssh.generate_private_key("ssh-ed25519", comment="admin@laptop")
    algorithm, blob, comment = key.export_public_key("openssh").decode().split()
    assert comment == "admin@laptop"
    assert public_key_openssh(key) == f"{algorithm} {blob}"


def test_the_pub_key_hash_is_sha256_hex_of_the_authorized_keys_line() -> None:
    line = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBR5ruRfsx1Sofi1+filFU7p8BimT8P4OGU1/G3Q748y"
    assert pub_key_hash(line) == hashlib.sha256(line.encode()).hexdigest()
    assert pub_key_hash(line + "\n") == pub_key_hash(line)


async def test_an_rsa_pem_key_as_wmco_users_store_it_logs_in(lab: Lab) -> None:
    rsa = asyncssh.generate_private_key("ssh-rsa", key_size=2048)
    body = client.V1Secret(
        metadata=client.V1ObjectMeta(name="rsa-key", namespace=NAMESPACE),
        data={"private-key.pem": base64.b64encode(rsa.export_private_key("pkcs1-pem")).decode()},
    )
    await kube.call("create secret", kube.core().create_namespaced_secret, NAMESPACE, body)
    loaded = await load_private_key("rsa-key")
    assert public_key_openssh(loaded) == public_key_openssh(rsa)
    host = await lab.add_host(authorized_keys=(public_key_openssh(rsa),))
    async with open_session(
        host.address, "Administrator", private_key_secret="rsa-key", node_name=None
    ) as s:
        assert s.presented_host_key == host.host_key_public
