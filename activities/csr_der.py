"""Read the subject CN of a PKCS#10 request from its raw DER, tolerating what cryptography refuses.

The API server (Go's x509) accepts requests that `cryptography` cannot parse: a T61String
subject with non-ASCII bytes, x400Address or ediPartyName SANs, undecodable extensions. Such a
CSR must still be recognised as claiming a node, so that winfleet refuses and records it rather
than fail on it. This walker reads only CertificationRequest → CertificationRequestInfo →
subject → CN, and returns None for anything it cannot follow. Pure; used by `csr_rules`.
"""

from __future__ import annotations

_SEQUENCE, _SET, _INTEGER, _OID = 0x30, 0x31, 0x02, 0x06
_CN_OID = bytes.fromhex("550403")  # 2.5.4.3
# DirectoryString choices and how to read them (T61String: its ASCII subset, as Go does)
_STRINGS = {
    0x0C: "utf-8",  # UTF8String
    0x13: "ascii",  # PrintableString
    0x14: "latin-1",  # T61String
    0x16: "ascii",  # IA5String
    0x1C: "utf-32-be",  # UniversalString
    0x1E: "utf-16-be",  # BMPString
}


def _tlv(data: bytes, pos: int) -> tuple[int, bytes, int] | None:
    """(tag, value, next position) of the element at `pos`, or None if it is malformed."""
    if pos + 2 > len(data):
        return None
    tag, first = data[pos], data[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or pos + count > len(data):
            return None
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    if pos + length > len(data):
        return None
    return tag, data[pos : pos + length], pos + length


def _children(data: bytes) -> list[tuple[int, bytes]] | None:
    out, pos = [], 0
    while pos < len(data):
        element = _tlv(data, pos)
        if element is None:
            return None
        out.append(element[:2])
        pos = element[2]
    return out


def subject_common_names(der: bytes) -> list[str] | None:
    """Every CN in the request's subject (decoded), or None if the structure cannot be read."""
    outer = _tlv(der, 0)
    if outer is None or outer[0] != _SEQUENCE:
        return None
    parts = _children(outer[1])
    if not parts or parts[0][0] != _SEQUENCE:
        return None
    info = _children(parts[0][1])
    if info is None or len(info) < 2 or info[0][0] != _INTEGER or info[1][0] != _SEQUENCE:
        return None
    rdns = _children(info[1][1])
    if rdns is None:
        return None
    names: list[str] = []
    for tag, rdn in rdns:
        attributes = _children(rdn) if tag == _SET else None
        if attributes is None:
            return None
        for attr_tag, attr in attributes:
            pair = _children(attr) if attr_tag == _SEQUENCE else None
            if pair is None or len(pair) != 2 or pair[0][0] != _OID:
                return None
            if pair[0][1] != _CN_OID:
                continue
            encoding = _STRINGS.get(pair[1][0])
            if encoding is None:
                return None
            try:
                names.append(pair[1][1].decode(encoding))
            except UnicodeDecodeError:
                return None
    return names
