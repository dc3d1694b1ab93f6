"""Certificate requests the way an impostor (or a buggy client) writes them, byte by byte.

`cryptography` refuses to build requests it could not parse itself, so these are assembled
from raw DER: a T61String subject with non-ASCII bytes, x400Address / ediPartyName SANs, an
undecodable extension, a SAN extension given twice. Go's x509 (the API server) accepts all of
them. Every request is really signed with `key`, so only the odd part is odd.
"""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

COMMON_NAME, ORGANIZATION = "2.5.4.3", "2.5.4.10"
SAN, KEY_USAGE = "2.5.29.17", "2.5.29.15"
_EXTENSION_REQUEST = "1.2.840.113549.1.9.14"
_ECDSA_SHA256 = "1.2.840.10045.4.3.2"


def tlv(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        length = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + length + body


def seq(*parts: bytes) -> bytes:
    return tlv(0x30, b"".join(parts))


def set_of(*parts: bytes) -> bytes:
    return tlv(0x31, b"".join(parts))


def oid(dotted: str) -> bytes:
    nums = [int(x) for x in dotted.split(".")]
    out = bytes([40 * nums[0] + nums[1]])
    for n in nums[2:]:
        chunk = [n & 0x7F]
        n >>= 7
        while n:
            chunk.append(0x80 | (n & 0x7F))
            n >>= 7
        out += bytes(reversed(chunk))
    return tlv(0x06, out)


def utf8(s: str) -> bytes:
    return tlv(0x0C, s.encode())


def t61(raw: bytes) -> bytes:
    return tlv(0x14, raw)


def attribute(attr_oid: str, value: bytes) -> bytes:
    return set_of(seq(oid(attr_oid), value))


def node_subject(node: str, org: bytes | None = None) -> bytes:
    """O system:nodes (or `org`, an encoded string), CN system:node:<node>."""
    return seq(
        attribute(ORGANIZATION, org or utf8("system:nodes")),
        attribute(COMMON_NAME, utf8(f"system:node:{node}")),
    )


def extension(ext_oid: str, value: bytes) -> bytes:
    return seq(oid(ext_oid), tlv(0x04, value))


def dns_name(name: str) -> bytes:
    return tlv(0x82, name.encode())


def x400_address() -> bytes:
    return tlv(0xA3, seq())


def edi_party_name() -> bytes:
    return tlv(0xA5, seq(tlv(0xA1, utf8("edi"))))


def request_pem(
    key: ec.EllipticCurvePrivateKey, subject: bytes, extensions: tuple[bytes, ...] = ()
) -> bytes:
    """A PKCS#10 request (PEM) for `subject` with `extensions`, signed with `key`."""
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    attributes = seq(oid(_EXTENSION_REQUEST), set_of(seq(*extensions))) if extensions else b""
    info = seq(tlv(0x02, b"\x00"), subject, spki, tlv(0xA0, attributes))
    signature = key.sign(info, ec.ECDSA(hashes.SHA256()))
    der = seq(info, seq(oid(_ECDSA_SHA256)), tlv(0x03, b"\x00" + signature))
    body = base64.encodebytes(der)
    return b"-----BEGIN CERTIFICATE REQUEST-----\n" + body + b"-----END CERTIFICATE REQUEST-----\n"
