"""Object semantics of the SIMULATED Kubernetes API server: create, update, patch, apply, delete.

Everything that makes the twin behave like kube-apiserver beyond storage is reached from here:
defaulting (uid, creationTimestamp, generation, generateName), optimistic concurrency (409 on a
stale resourceVersion), status/approval subresources that change only their part, finalizers and
deletionTimestamp, per-kind rules (CSRs `sim.k8s.csr`, Secrets and ConfigMaps
`sim.k8s.configdata`), validating admission that needs the caller (`Api.admission`, set by the
twin to `sim.k8s.authz.Authorizer.admit`), field ownership (`sim.k8s.managedfields`, server-side
apply `sim.k8s.apply`) and CRD registration (eviction is in `sim.k8s.disruption`; pod
defaulting, graceful deletion and binding in `sim.k8s.pods`). Called by
`sim.k8s.handlers` (HTTP) and by the stand-in controllers on the twin's event loop; those write
as `INTERNAL` with the field manager `kube-controller-manager` unless they say otherwise.
"""

from __future__ import annotations

import copy
import random
import uuid
from collections.abc import Callable
from typing import Any

from sim.k8s import admission, admission_policy, configdata, csr, custom, pods
from sim.k8s import apply as applying
from sim.k8s import patch as patching
from sim.k8s.auth import INTERNAL, Identity
from sim.k8s.errors import ApiError, already_exists, conflict, invalid, not_found
from sim.k8s.managedfields import base_entries, now_iso, track_update
from sim.k8s.resources import Registry, ResourceType, crd_types
from sim.k8s.store import Obj, Store
from sim.k8s.validation import check_type_meta, validate

__all__ = ["Api", "now_iso"]

INTERNAL_MANAGER = "kube-controller-manager"
Admission = Callable[[Identity, str, str, str, str, Obj | None, Obj | None], None]
_GEN_CHARS = "bcdfghjklmnpqrstvwxz2456789"
_SERVER_META = (
    "uid",
    "resourceVersion",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
    "creationTimestamp",
    "generation",
)
_IMMUTABLE_META = (
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
    "namespace",
    "name",
)


def _spec_part(obj: Obj) -> Obj:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def _kind_causes(
    rt: ResourceType, obj: Obj, old: Obj | None, sub: str
) -> list[tuple[str, str, str]]:
    if rt.kind == "CertificateSigningRequest":
        return csr.validate(obj) if old is None else csr.validate_update(sub, old, obj)
    if rt.kind == "ValidatingAdmissionPolicy" and sub == "":
        return admission_policy.validate_policy(obj)
    if rt.kind == "ValidatingAdmissionPolicyBinding":
        return admission_policy.validate_binding(obj)
    causes = configdata.validate(rt.kind, obj)
    if old is not None:
        causes += configdata.validate_update(rt.kind, old, obj)
    return causes


def _check_name(body: Obj, name: str) -> None:
    if body["metadata"].get("name", name) != name:
        raise ApiError(
            400,
            f"the name of the object ({body['metadata'].get('name')}) does "
            f"not match the name on the URL ({name})",
        )


class Api:
    """The API's verbs over a `Store` and a `Registry`."""

    def __init__(self, store: Store, registry: Registry) -> None:
        self.store = store
        self.registry = registry
        self.admission: Admission | None = None
        # ValidatingAdmissionPolicies, after the built-in validating plugins (set by the twin)
        self.policies: admission_policy.AdmissionPolicies | None = None

    # -- helpers ---------------------------------------------------------------------------
    def _current(self, rt: ResourceType, ns: str, name: str) -> Obj:
        entry = self.store.entry((rt.group, rt.plural), ns, name)
        if entry is None:
            raise not_found(rt.group, rt.plural, name)
        return entry.obj

    def _check_namespace(self, rt: ResourceType, ns: str) -> None:
        if rt.namespaced and self.store.entry(("", "namespaces"), "", ns) is None:
            raise not_found("", "namespaces", ns)

    def _validate(self, rt: ResourceType, obj: Obj, old: Obj | None, sub: str) -> None:
        validate(rt, obj, self._schema_causes(rt, obj))
        causes = _kind_causes(rt, obj, old, sub)
        if causes:
            raise invalid(rt.kind, rt.group, obj["metadata"].get("name", ""), causes)

    def _admit(
        self, who: Identity, op: str, rt: ResourceType, sub: str, old: Obj | None, new: Obj | None
    ) -> None:
        if self.admission is not None:
            self.admission(who, op, rt.group, rt.plural, sub, old, new)
        self.admit_policies(who, op, rt, sub, old, new)

    def admit_policies(
        self, who: Identity, op: str, rt: ResourceType, sub: str, old: Obj | None, new: Obj | None
    ) -> None:
        """The ValidatingAdmissionPolicy plugin (`sim.k8s.admission_policy`) for one request."""
        if self.policies is None:
            return
        meta = (new or old or {}).get("metadata") or {}
        request = admission_policy.Request(
            who=who,
            operation=op,
            group=rt.group,
            version=rt.version,
            resource=rt.plural,
            subresource=sub,
            kind=rt.kind,
            namespace=str(meta.get("namespace", "")) if rt.namespaced else "",
            name=str(meta.get("name", "")),
            namespaced=rt.namespaced,
            dry_run=self.store.dry_run,
        )
        self.policies.admit(request, old, new)

    # -- create ----------------------------------------------------------------------------
    def create(
        self,
        rt: ResourceType,
        ns: str,
        body: Any,
        who: Identity,
        *,
        manager: str | None = None,
        managed: list[Obj] | None = None,
        field_validation: str = "",
        warnings: list[str] | None = None,
    ) -> Obj:
        check_type_meta(rt, body)
        obj = copy.deepcopy(body)
        self._decode(rt, obj, field_validation, warnings)
        entries = base_entries(None, obj)
        configdata.decode(rt.kind, obj)
        meta = obj["metadata"]
        for k in _SERVER_META:
            meta.pop(k, None)
        if rt.namespaced:
            if meta.get("namespace", ns) != ns:
                raise ApiError(
                    400,
                    "the namespace of the provided object does not match the "
                    "namespace sent on the request",
                )
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + "".join(random.choices(_GEN_CHARS, k=5))
        self._default_on_create(rt, obj, who)
        self._validate(rt, obj, None, "")
        if self.store.entry((rt.group, rt.plural), ns if rt.namespaced else "", meta["name"]):
            raise already_exists(rt.group, rt.plural, meta["name"])
        self._check_namespace(rt, ns)
        self._admit(who, "CREATE", rt, "", None, obj)
        if managed is None:
            managed = track_update(rt, "", None, obj, manager or INTERNAL_MANAGER, entries)
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=now_iso(), generation=1)
        if managed:
            meta["managedFields"] = managed
        if rt.kind == "CustomResourceDefinition":
            self._register_crd(obj)
        return self.store.put((rt.group, rt.plural), obj, "ADDED")

    def _default_on_create(self, rt: ResourceType, obj: Obj, who: Identity) -> None:
        if rt.kind == "Pod":
            pods.default_pod(obj)
        elif rt.kind == "Node":
            admission.taint_new_node(obj)
        elif rt.kind == "Namespace":
            obj["status"] = {"phase": "Active"}
            obj.setdefault("spec", {"finalizers": ["kubernetes"]})
            obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj[
                "metadata"
            ].get("name", "")
        elif rt.kind == "CertificateSigningRequest":
            csr.prepare_for_create(obj, who)
        elif rt.has_status and rt.custom:
            obj.pop("status", None)

    def _register_crd(self, crd: Obj) -> None:
        if not self.store.dry_run:
            for rt in crd_types(crd):
                self.registry.add(rt)
        crd["status"] = {
            "acceptedNames": crd["spec"]["names"],
            "storedVersions": [v["name"] for v in crd["spec"]["versions"] if v.get("storage")],
            "conditions": [
                {
                    "type": t,
                    "status": "True",
                    "reason": r,
                    "message": m,
                    "lastTransitionTime": now_iso(),
                }
                for t, r, m in (
                    ("NamesAccepted", "NoConflicts", "no conflicts found"),
                    ("Established", "InitialNamesAccepted", "the initial names have been accepted"),
                )
            ],
        }

    # -- custom resources (schemas and scale: sim.k8s.custom) -------------------------------
    @staticmethod
    def _decode(
        rt: ResourceType, obj: Obj, field_validation: str, warnings: list[str] | None
    ) -> None:
        if rt.custom_version is not None:
            out = warnings if warnings is not None else []
            custom.decode(rt.custom_version, obj, field_validation, out)

    @staticmethod
    def _schema_causes(rt: ResourceType, obj: Obj) -> list[tuple[str, str, str]]:
        cv = rt.custom_version
        return custom.schema_causes(cv, obj) if cv is not None else []

    def _scale_version(self, rt: ResourceType) -> custom.CustomVersion:
        if rt.custom_version is None or rt.custom_version.scale is None:
            raise ApiError(404, "the server could not find the requested resource")
        return rt.custom_version

    def read_scale(self, rt: ResourceType, ns: str, name: str) -> Obj:
        """GET .../<name>/scale: the autoscaling/v1 Scale of a custom resource."""
        return custom.scale_of(self._scale_version(rt), self._current(rt, ns, name))

    def _write_scale(
        self, rt: ResourceType, ns: str, name: str, scale: Any, who: Identity, manager: str | None
    ) -> Obj:
        cv = self._scale_version(rt)
        new = custom.apply_scale(cv, self._current(rt, ns, name), scale)
        return custom.scale_of(cv, self._write(rt, ns, name, new, "", who, manager))

    def _reread_all(self, crd: Obj) -> None:
        """After a CRD change, stored objects read back pruned and defaulted by the new schema."""
        spec = crd.get("spec") or {}
        gp = (spec.get("group", ""), (spec.get("names") or {}).get("plural", ""))
        for entry in self.store.entries(gp):
            version = entry.obj.get("apiVersion", "").rpartition("/")[2]
            rt = self.registry.get(gp[0], version, gp[1])
            if rt is not None and rt.custom_version is not None:
                obj = copy.deepcopy(entry.obj)
                custom.reread(rt.custom_version, obj)
                self.store.rewrite(gp, obj)

    # -- update / patch / apply --------------------------------------------------------------
    def update(
        self,
        rt: ResourceType,
        ns: str,
        name: str,
        body: Any,
        sub: str = "",
        *,
        who: Identity = INTERNAL,
        manager: str | None = None,
        field_validation: str = "",
        warnings: list[str] | None = None,
    ) -> Obj:
        if sub == "scale":
            return self._write_scale(rt, ns, name, body, who, manager)
        check_type_meta(rt, body)
        _check_name(body, name)
        new = copy.deepcopy(body)
        self._decode(rt, new, field_validation, warnings)
        return self._write(rt, ns, name, new, sub, who, manager)

    def patch(
        self,
        rt: ResourceType,
        ns: str,
        name: str,
        content_type: str,
        body: Any,
        sub: str = "",
        *,
        who: Identity = INTERNAL,
        manager: str | None = None,
        force: bool = False,
        field_validation: str = "",
        warnings: list[str] | None = None,
    ) -> Obj:
        if content_type.split(";")[0].strip().lower() == patching.APPLY:
            return self.apply(rt, ns, name, body, sub, who=who, manager=manager, force=force)
        if sub == "scale":
            current_scale = self.read_scale(rt, ns, name)
            patched = patching.apply(content_type, current_scale, body, custom=False, merge_keys={})
            return self._write_scale(rt, ns, name, patched, who, manager)
        current = copy.deepcopy(self._current(rt, ns, name))
        result = patching.apply(
            content_type, current, body, custom=rt.custom, merge_keys=rt.merge_keys
        )
        check_type_meta(rt, result)
        self._decode(rt, result, field_validation, warnings)
        return self._write(rt, ns, name, result, sub, who, manager)

    def apply(
        self,
        rt: ResourceType,
        ns: str,
        name: str,
        body: Any,
        sub: str = "",
        *,
        who: Identity = INTERNAL,
        manager: str | None = None,
        force: bool = False,
    ) -> Obj:
        """Server-side apply of the configuration `body` as `manager` (creates if missing)."""
        if not isinstance(body, dict) or not body.get("apiVersion") or not body.get("kind"):
            raise ApiError(400, "apiVersion and kind must be set in an applied configuration")
        check_type_meta(rt, body)
        _check_name(body, name)
        meta = body["metadata"]
        if meta.get("managedFields") is not None:
            raise ApiError(400, "metadata.managedFields must be nil")
        config = copy.deepcopy(body)
        configdata.decode(rt.kind, config)
        config.get("metadata", {}).pop("resourceVersion", None)
        entry = self.store.entry((rt.group, rt.plural), ns if rt.namespaced else "", name)
        live = entry.obj if entry is not None else None
        if live is None and sub:
            raise not_found(rt.group, rt.plural, name)
        entries = base_entries(live, live or {})
        merged, managed = applying.apply(
            rt, live, config, entries, manager or INTERNAL_MANAGER, force, sub
        )
        if live is None:
            merged["metadata"]["name"] = name
            return self.create(rt, ns, merged, who, manager=manager, managed=managed)
        rv = meta.get("resourceVersion")
        if rv and str(rv) != live["metadata"]["resourceVersion"]:
            raise conflict(rt.group, rt.plural, name)
        self._decode(rt, merged, "", None)  # a custom resource's schema prunes and defaults
        return self._write(rt, ns, name, merged, sub, who, manager, managed=managed)

    def _prepare(self, rt: ResourceType, old: Obj, new: Obj, sub: str) -> Obj:
        """The object a write through `sub` stores, from the old one and the request's."""
        if rt.kind == "CertificateSigningRequest":
            obj = csr.prepare_for_update(sub, old, new)
        elif sub == "status":
            obj = copy.deepcopy(old)
            if "status" in new:
                obj["status"] = new["status"]
            else:
                obj.pop("status", None)
            return obj
        else:
            obj = new
            if rt.has_status:
                if "status" in old:
                    obj["status"] = copy.deepcopy(old["status"])
                else:
                    obj.pop("status", None)
        meta = obj.setdefault("metadata", {})
        for k in _IMMUTABLE_META:
            if k in old["metadata"]:
                meta[k] = old["metadata"][k]
            else:
                meta.pop(k, None)
        if sub == "" and _spec_part(obj) != _spec_part(old):
            meta["generation"] = old["metadata"].get("generation", 1) + 1
        return obj

    def _write(
        self,
        rt: ResourceType,
        ns: str,
        name: str,
        new: Obj,
        sub: str,
        who: Identity,
        manager: str | None,
        managed: list[Obj] | None = None,
    ) -> Obj:
        old = self._current(rt, ns, name)
        rv = (new.get("metadata") or {}).get("resourceVersion")
        if rv and str(rv) != old["metadata"]["resourceVersion"]:
            raise conflict(rt.group, rt.plural, name)
        entries = base_entries(old, new) if managed is None else []
        configdata.decode(rt.kind, new)
        obj = self._prepare(rt, old, new, sub)
        self._validate(rt, obj, old, sub)
        self._admit(who, "UPDATE", rt, sub, old, obj)
        if managed is None:
            managed = track_update(rt, sub, old, obj, manager or INTERNAL_MANAGER, entries)
        if managed:
            obj["metadata"]["managedFields"] = managed
        else:
            obj["metadata"].pop("managedFields", None)
        obj["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        if obj == old:
            return old  # a no-op write does not bump the resourceVersion
        if (
            obj["metadata"].get("deletionTimestamp")
            and not obj["metadata"].get("finalizers")
            and not old["metadata"].get("deletionGracePeriodSeconds")  # a pod in its grace time
        ):
            self.store.put((rt.group, rt.plural), obj, "MODIFIED", old=old)
            return self.store.remove((rt.group, rt.plural), ns, name) or obj
        stored = self.store.put((rt.group, rt.plural), obj, "MODIFIED", old=old)
        if rt.kind == "CustomResourceDefinition" and sub == "" and not self.store.dry_run:
            spec = old.get("spec") or {}
            self.registry.remove(spec.get("group", ""), (spec.get("names") or {}).get("plural", ""))
            for served in crd_types(stored):
                self.registry.add(served)
            self._reread_all(stored)
        return stored

    def bind(self, ns: str, name: str, body: Any) -> Obj:
        """POST pods/<name>/binding: assign the pod to `body.target.name` (`sim.k8s.pods`)."""
        old = self.store.entry(("", "pods"), ns, name)
        if old is None:
            raise not_found("", "pods", name)
        return self.store.put(("", "pods"), pods.bind(old.obj, body), "MODIFIED", old=old.obj)

    # -- delete ----------------------------------------------------------------------------
    def delete(
        self, rt: ResourceType, ns: str, name: str, options: Any = None, who: Identity = INTERNAL
    ) -> Obj:
        old = self._current(rt, ns, name)
        pre = (options or {}).get("preconditions") or {} if isinstance(options, dict) else {}
        if pre.get("uid") and pre["uid"] != old["metadata"]["uid"]:
            raise ApiError(
                409,
                f"Precondition failed: UID in precondition: {pre['uid']}, UID in "
                f"object meta: {old['metadata']['uid']}",
                "Conflict",
            )
        if (
            pre.get("resourceVersion")
            and pre["resourceVersion"] != old["metadata"]["resourceVersion"]
        ):
            raise conflict(rt.group, rt.plural, name)
        self._admit(who, "DELETE", rt, "", old, None)
        gp = (rt.group, rt.plural)
        if rt.kind == "Pod":
            terminating = pods.graceful_delete(old, options)
            if terminating is old:
                return old
            if terminating is not None:
                return self.store.put(gp, terminating, "MODIFIED", old=old)
        if old["metadata"].get("finalizers"):
            if old["metadata"].get("deletionTimestamp"):
                return old
            obj = copy.deepcopy(old)
            obj["metadata"]["deletionTimestamp"] = now_iso()
            obj["metadata"]["deletionGracePeriodSeconds"] = 0
            return self.store.put(gp, obj, "MODIFIED", old=old)
        gone = self.store.remove(gp, ns, name)
        assert gone is not None
        if rt.kind == "Namespace" and not self.store.dry_run:
            for other in list(self.store.groups()):
                for entry in self.store.entries(other, name):
                    self.store.remove(other, name, entry.obj["metadata"]["name"])
        if rt.kind == "CustomResourceDefinition" and not self.store.dry_run:
            spec = old.get("spec") or {}
            group, plural = spec.get("group", ""), (spec.get("names") or {}).get("plural", "")
            self.registry.remove(group, plural)
            self.store.drop_all((group, plural))
        return gone
