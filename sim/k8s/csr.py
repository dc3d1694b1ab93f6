"""CertificateSigningRequest rules of the SIMULATED Kubernetes API server.

As kube-apiserver's `pkg/registry/certificates/certificates/strategy.go` and
`pkg/apis/certificates/validation`:
- create: the requester (username, uid, groups, extra) comes from the caller, status is emptied
  (no pre-approved requests); the PEM request must parse and its signature verify; usages known
  and unique; expirationSeconds at least 600;
- main resource updates keep the old spec and status (changes to them are silently dropped);
- `/status` keeps the spec and the existing Approved/Denied conditions; adding one, or removing
  Approved/Denied/Failed, is 422 Forbidden; `status.certificate` may be set once, must be PEM
  CERTIFICATE blocks, and may not change afterwards;
- `/approval` changes only the conditions (spec and certificate kept); Approved and Denied are
  mutually exclusive and an existing one cannot be removed (so an approved request cannot be
  denied); Approved/Denied/Failed status must be True, types may not repeat;
- conditions get lastUpdateTime (now) and lastTransitionTime (kept from an old condition of the
  same type and status, else now) when the writer leaves them empty.
Used by `sim.k8s.api`.
"""

from __future__ import annotations

import base64
import binascii
import copy

from cryptography import x509

from sim.k8s.auth import Identity
from sim.k8s.managedfields import now_iso
from sim.k8s.store import Obj

Cause = tuple[str, str, str]
_TRUE_ONLY = ("Approved", "Denied", "Failed")
_USAGES = {
    "signing", "digital signature", "content commitment", "key encipherment", "key agreement",
    "data encipherment", "cert sign", "crl sign", "encipher only", "decipher only", "any",
    "server auth", "client auth", "code signing", "email protection", "s/mime",
    "ipsec end system", "ipsec tunnel", "ipsec user", "timestamping", "ocsp signing",
    "microsoft sgc", "netscape sgc",
}  # fmt: skip


def _conditions(obj: Obj) -> list[Obj]:
    return list((obj.get("status") or {}).get("conditions") or [])


def _of_type(obj: Obj, kind: str) -> list[Obj]:
    return [c for c in _conditions(obj) if c.get("type") == kind]


def prepare_for_create(obj: Obj, who: Identity) -> None:
    spec = obj.setdefault("spec", {})
    spec["username"], spec["groups"], spec["uid"] = who.user, list(who.groups), who.uid
    if who.extra:
        spec["extra"] = who.extra
    else:
        spec.pop("extra", None)
    obj["status"] = {}


def _populate_timestamps(new: Obj, old: Obj) -> None:
    now = now_iso()
    for c in _conditions(new):
        c.setdefault("status", "True")  # v1 defaulting
        if not c.get("lastUpdateTime"):
            c["lastUpdateTime"] = now
        if not c.get("lastTransitionTime"):
            same = next(
                (
                    o
                    for o in _conditions(old)
                    if o.get("type") == c.get("type")
                    and o.get("status") == c.get("status")
                    and o.get("lastTransitionTime")
                ),
                None,
            )
            c["lastTransitionTime"] = same["lastTransitionTime"] if same else now


def prepare_for_update(sub: str, old: Obj, new: Obj) -> Obj:
    """The object a write through `sub` ("", "status", "approval") would store."""
    out = copy.deepcopy(new)
    out["spec"] = copy.deepcopy(old.get("spec"))
    if sub == "":
        if "status" in old:
            out["status"] = copy.deepcopy(old["status"])
        else:
            out.pop("status", None)
        return out
    status: Obj = out["status"] if isinstance(out.get("status"), dict) else {}
    out["status"] = status
    status["conditions"] = [dict(c) for c in status.get("conditions") or [] if isinstance(c, dict)]
    if sub == "status":
        for kind in ("Approved", "Denied"):  # preserveConditionInstances
            old_items, new_idx = (
                _of_type(old, kind),
                [i for i, c in enumerate(status["conditions"]) if c.get("type") == kind],
            )
            if len(old_items) == len(new_idx):
                for i, item in zip(new_idx, old_items, strict=True):
                    status["conditions"][i] = copy.deepcopy(item)
        _populate_timestamps(out, old)
        return out
    _populate_timestamps(out, old)  # approval: only the conditions change
    kept = copy.deepcopy(old.get("status") or {})
    kept["conditions"] = status["conditions"]
    out["status"] = kept
    return out


def _certificate_error(pem_b64: str) -> str:
    try:
        data = base64.b64decode(pem_b64, validate=True)
    except (binascii.Error, ValueError):
        return "illegal base64 data"
    blocks = [b for b in data.split(b"-----BEGIN ")[1:]]
    if not blocks:
        return "must contain at least one CERTIFICATE PEM block"
    for block in blocks:
        kind = block.split(b"-----", 1)[0].decode(errors="replace")
        if kind != "CERTIFICATE":
            return f'only CERTIFICATE PEM blocks are allowed, found "{kind}"'
        try:
            x509.load_pem_x509_certificate(b"-----BEGIN " + block)
        except ValueError as exc:
            return str(exc)
    return ""


def validate(obj: Obj) -> list[Cause]:
    spec = obj.get("spec") or {}
    causes: list[Cause] = []
    try:
        pem = base64.b64decode(spec.get("request") or "", validate=True)
        csr = x509.load_pem_x509_csr(pem)
        if not csr.is_signature_valid:
            raise ValueError("x509: ECDSA verification failure")
    except (ValueError, binascii.Error) as exc:
        why = (
            str(exc) if "verification" in str(exc) else "PEM block type must be CERTIFICATE REQUEST"
        )
        causes.append(("spec.request", "FieldValueInvalid", f"Invalid value: []byte{{...}}: {why}"))
    usages = spec.get("usages") or []
    if not usages:
        causes.append(("spec.usages", "FieldValueRequired", "Required value"))
    for i, usage in enumerate(usages):
        if usage not in _USAGES:
            msg = f'Unsupported value: "{usage}": supported values: ' + ", ".join(
                f'"{u}"' for u in sorted(_USAGES)
            )
            causes.append((f"spec.usages[{i}]", "FieldValueNotSupported", msg))
        elif usage in usages[:i]:
            causes.append(
                (f"spec.usages[{i}]", "FieldValueDuplicate", f'Duplicate value: "{usage}"')
            )
    signer = spec.get("signerName") or ""
    if not signer:
        causes.append(("spec.signerName", "FieldValueRequired", "Required value"))
    elif signer == "kubernetes.io/legacy-unknown":
        msg = (
            f'Invalid value: "{signer}": the legacy signerName is not allowed via this API version'
        )
        causes.append(("spec.signerName", "FieldValueInvalid", msg))
    elif "/" not in signer:
        msg = (
            f'Invalid value: "{signer}": must be a fully qualified domain and path of the form '
            "'example.com/signer-name'"
        )
        causes.append(("spec.signerName", "FieldValueInvalid", msg))
    seconds = spec.get("expirationSeconds")
    if seconds is not None and seconds < 600:
        msg = (
            f"Invalid value: {seconds}: may not specify a duration less than 600 seconds "
            "(10 minutes)"
        )
        causes.append(("spec.expirationSeconds", "FieldValueInvalid", msg))
    seen: set[str] = set()
    has: set[str] = set()
    for i, c in enumerate(_conditions(obj)):
        kind, status = c.get("type") or "", c.get("status") or ""
        allowed = ("True",) if kind in _TRUE_ONLY else ("False", "True", "Unknown")
        if not kind:
            causes.append((f"status.conditions[{i}].type", "FieldValueRequired", "Required value"))
        if status not in allowed:
            msg = f'Unsupported value: "{status}": supported values: ' + ", ".join(
                f'"{a}"' for a in allowed
            )
            causes.append((f"status.conditions[{i}].status", "FieldValueNotSupported", msg))
        if kind in ("Approved", "Denied"):
            if ({"Approved", "Denied"} - {kind}) & has:
                msg = (
                    f'Invalid value: "{kind}": Approved and Denied conditions are mutually '
                    "exclusive"
                )
                causes.append((f"status.conditions[{i}].type", "FieldValueInvalid", msg))
            has.add(kind)
        if kind in seen:
            causes.append(
                (
                    f"status.conditions[{i}].type",
                    "FieldValueDuplicate",
                    f'Duplicate value: "{kind}"',
                )
            )
        seen.add(kind)
    cert = (obj.get("status") or {}).get("certificate")
    if cert and (err := _certificate_error(cert)):
        causes.append(
            (
                "status.certificate",
                "FieldValueInvalid",
                f'Invalid value: "<certificate data>": {err}',
            )
        )
    return causes


def validate_update(sub: str, old: Obj, new: Obj) -> list[Cause]:
    causes = validate(new)
    for kind in _TRUE_ONLY:
        if len(_of_type(new, kind)) < len(_of_type(old, kind)):
            msg = f'Forbidden: updates may not remove a condition of type "{kind}"'
            causes.append(("status.conditions", "FieldValueForbidden", msg))
    if sub != "approval":
        for kind in ("Approved", "Denied"):
            before, after = _of_type(old, kind), _of_type(new, kind)
            if len(after) > len(before):
                msg = f'Forbidden: updates may not add a condition of type "{kind}"'
                causes.append(("status.conditions", "FieldValueForbidden", msg))
            elif len(after) == len(before) and after != before:
                msg = f'Forbidden: updates may not modify a condition of type "{kind}"'
                causes.append(("status.conditions", "FieldValueForbidden", msg))
    old_cert = (old.get("status") or {}).get("certificate")
    new_cert = (new.get("status") or {}).get("certificate")
    if old_cert != new_cert:
        if sub != "status":
            causes.append(
                (
                    "status.certificate",
                    "FieldValueForbidden",
                    "Forbidden: updates may not set certificate content",
                )
            )
        elif old_cert:
            msg = "Forbidden: updates may not modify existing certificate content"
            causes.append(("status.certificate", "FieldValueForbidden", msg))
    return causes
