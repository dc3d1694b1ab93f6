"""The SSH key winfleet logs in with: read from a Kubernetes Secret, never passed around.

Workflows carry only the secret's name; `load_private_key` reads `private-key.pem` from that
Secret in winfleet's namespace when an SSH session opens (activities/ssh.py), through the
worker's watch-fed cache (activities/cache.py): a rotated key is seen as soon as its watch event
arrives, and `fresh=True` reads it from the API. The public half
and its hash (WMCO's `pub-key-hash` node annotation) are safe to share. asyncssh's key-parsing
errors are translated here and only here (connection errors: activities/ssh.py).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib

import asyncssh

from activities import cache, kube
from activities.config import settings
from activities.errors import HostKeyMismatch, InvalidRequest

PRIVATE_KEY_FIELD = "private-key.pem"


async def load_private_key(secret_name: str, *, fresh: bool = False) -> asyncssh.SSHKey:
    """The private key in Secret `secret_name` (field `private-key.pem`)."""
    ns = settings().namespace
    create_hint = (
        f"create it with: kubectl -n {ns} create secret generic {secret_name} "
        f"--from-file={PRIVATE_KEY_FIELD}=<path to the SSH private key>"
    )
    try:
        secret = await cache.existing_secret(secret_name, fresh=fresh)
    except kube.NotFound as exc:
        raise InvalidRequest(f"secret {ns}/{secret_name} does not exist; {create_hint}") from exc
    encoded = (secret.get("data") or {}).get(PRIVATE_KEY_FIELD)
    if not encoded:
        raise InvalidRequest(
            f"secret {ns}/{secret_name} has no field {PRIVATE_KEY_FIELD}; {create_hint}"
        )
    try:
        return _parse_private_key(encoded)
    except (binascii.Error, asyncssh.KeyImportError) as exc:
        # The message names the secret only: the key material never reaches a log.
        raise InvalidRequest(
            f"secret {ns}/{secret_name} field {PRIVATE_KEY_FIELD} is not an unencrypted SSH "
            f"private key (OpenSSH or PEM); {create_hint}"
        ) from exc


@functools.lru_cache(maxsize=16)
def _parse_private_key(encoded: str) -> asyncssh.SSHKey:
    """Parse once per distinct secret content: RSA key construction validates the key, which
    costs tens of milliseconds of CPU, and every SSH step needs the key. The secret is still
    looked up every time (in the cache), so a rotated key is picked up at once."""
    return asyncssh.import_private_key(base64.b64decode(encoded, validate=True))


def public_key_openssh(key: asyncssh.SSHKey) -> str:
    """`<type> <base64>` (no comment), as in `administrators_authorized_keys`."""
    algorithm, blob = key.export_public_key("openssh").decode().split()[:2]
    return f"{algorithm} {blob}"


def pub_key_hash(public_key_openssh: str) -> str:
    """SHA-256 hex of the `<type> <base64>` public key: WMCO's `pub-key-hash` annotation value."""
    return hashlib.sha256(public_key_openssh.strip().encode()).hexdigest()


def import_host_key(address: str, openssh: str) -> asyncssh.SSHKey:
    """A pinned host key (`<type> <base64>`); an unreadable pin is refused, never ignored."""
    try:
        return asyncssh.import_public_key(openssh)
    except asyncssh.KeyImportError as exc:
        raise HostKeyMismatch(
            f"the SSH host key pinned for {address} cannot be read ({exc}); repair or remove "
            "the pin (ConfigMap windows-ssh-host-keys, or the node's "
            "windowsmachineconfig.openshift.io/ssh-host-key annotation) before connecting"
        ) from exc
