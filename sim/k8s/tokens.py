"""ServiceAccount tokens of the SIMULATED Kubernetes API server (TokenRequest API).

`POST /api/v1/namespaces/<ns>/serviceaccounts/<name>/token` (what `kubectl create token` sends)
returns an authentication.k8s.io/v1 TokenRequest whose `status.token` is a signed JWT (ES256,
issuer `https://kubernetes.default.svc`, the requested audiences or the API server's,
`expirationSeconds` default 3600, at least 600), as a real cluster's bound service account
tokens are. The same module verifies such tokens for the authenticator: signature, issuer,
audience, expiry, and that the ServiceAccount still exists with the same uid (a deleted and
re-created account invalidates its old tokens). Used by `sim.k8s.handlers` and `sim.k8s.auth`.
"""

from __future__ import annotations

import base64
import datetime
import json
import time
import uuid
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from sim.k8s.auth import Identity, service_account_identity
from sim.k8s.errors import invalid, not_found
from sim.k8s.store import Obj, Store

ISSUER = "https://kubernetes.default.svc"
API_AUDIENCES = (ISSUER,)
DEFAULT_SECONDS = 3600
MIN_SECONDS = 600
MAX_SECONDS = 1 << 32


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _iso(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ServiceAccountTokens:
    """Mints and verifies bound ServiceAccount tokens with one signing key."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._key = ec.generate_private_key(ec.SECP256R1())
        public = self._key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        digest = hashes.Hash(hashes.SHA256())
        digest.update(public)
        self._kid = _b64(digest.finalize())

    def _sign(self, claims: dict[str, Any]) -> str:
        header = {"alg": "ES256", "kid": self._kid}
        signing_input = ".".join(
            _b64(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
        )
        der = self._key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return f"{signing_input}.{_b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def request(self, ns: str, name: str, body: Any) -> Obj:
        """Answer a TokenRequest for ServiceAccount `ns/name` (201 body)."""
        entry = self.store.entry(("", "serviceaccounts"), ns, name)
        if entry is None:
            raise not_found("", "serviceaccounts", name)
        spec = dict((body or {}).get("spec") or {}) if isinstance(body, dict) else {}
        seconds = spec.get("expirationSeconds") or DEFAULT_SECONDS
        audiences = list(spec.get("audiences") or API_AUDIENCES)
        if not isinstance(seconds, int) or seconds < MIN_SECONDS or seconds > MAX_SECONDS:
            bound = "less than 10 minutes" if seconds < MIN_SECONDS else "larger than 2^32 seconds"
            raise invalid(
                "TokenRequest",
                "authentication.k8s.io",
                name,
                [
                    (
                        "spec.expirationSeconds",
                        "FieldValueInvalid",
                        f"Invalid value: {seconds}: may not specify a duration {bound}",
                    )
                ],
            )
        now = int(time.time())
        claims = {
            "aud": audiences,
            "exp": now + seconds,
            "iat": now,
            "iss": ISSUER,
            "jti": str(uuid.uuid4()),
            "nbf": now,
            "sub": f"system:serviceaccount:{ns}:{name}",
            "kubernetes.io": {
                "namespace": ns,
                "serviceaccount": {"name": name, "uid": entry.obj["metadata"]["uid"]},
            },
        }
        spec.update(audiences=audiences, expirationSeconds=seconds)
        spec.setdefault("boundObjectRef", None)
        return {
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": name, "namespace": ns, "creationTimestamp": None},
            "spec": spec,
            "status": {"token": self._sign(claims), "expirationTimestamp": _iso(now + seconds)},
        }

    def verify(self, token: str, audiences: tuple[str, ...] = API_AUDIENCES) -> Identity | None:
        """The identity of a valid token meant for `audiences`, else None."""
        try:
            head, payload, sig = token.split(".")
            header, claims = json.loads(_unb64(head)), json.loads(_unb64(payload))
            raw = _unb64(sig)
            if header.get("alg") != "ES256" or len(raw) != 64:
                return None
            der = encode_dss_signature(
                int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
            )
            self._key.public_key().verify(
                der, f"{head}.{payload}".encode(), ec.ECDSA(hashes.SHA256())
            )
        except (ValueError, InvalidSignature, UnicodeDecodeError):
            return None
        now = time.time()
        aud = claims.get("aud") or []
        if (
            claims.get("iss") != ISSUER
            or not set(aud) & set(audiences)
            or claims.get("exp", 0) < now
            or claims.get("nbf", 0) > now + 60
        ):
            return None
        k8s = claims.get("kubernetes.io") or {}
        ns, sa = k8s.get("namespace", ""), (k8s.get("serviceaccount") or {})
        entry = self.store.entry(("", "serviceaccounts"), ns, sa.get("name", ""))
        if entry is None or entry.obj["metadata"].get("uid") != sa.get("uid"):
            return None
        return service_account_identity(ns, sa["name"], sa["uid"])
