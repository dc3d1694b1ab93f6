"""A skeletal OpenAPI v3 document for the SIMULATED Kubernetes API server.

kubectl (`create -f`, `apply -f`, default `--validate=strict`) downloads /openapi/v3 to learn
that the server validates fields itself (the `fieldValidation` query parameter). The twin serves
just enough: per group-version, the collection paths with post/put/patch operations carrying
`x-kubernetes-group-version-kind` and a `fieldValidation` parameter, and permissive schemas.
The twin accepts and ignores `fieldValidation`. Used by `sim.k8s.handlers`.
"""

from __future__ import annotations

from typing import Any

from sim.k8s.resources import Registry, ResourceType

_PARAM = {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}


def _gv_path(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def root(registry: Registry) -> dict[str, Any]:
    gvs = {(rt.group, rt.version) for rt in registry.all()}
    return {
        "paths": {
            _gv_path(g, v): {"serverRelativeURL": f"/openapi/v3/{_gv_path(g, v)}?hash=sim"}
            for g, v in sorted(gvs)
        }
    }


def _operation(rt: ResourceType, action: str) -> dict[str, Any]:
    gvk = {"group": rt.group, "version": rt.version, "kind": rt.kind}
    return {
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk,
        "parameters": [_PARAM],
        "responses": {"200": {"description": "OK"}},
    }


def group_version(registry: Registry, path: str) -> dict[str, Any] | None:
    """The document for `api/v1` or `apis/<group>/<version>`, or None if not served."""
    parts = path.strip("/").split("/")
    if parts[:1] == ["api"] and len(parts) == 2:
        group, version = "", parts[1]
    elif parts[:1] == ["apis"] and len(parts) == 3:
        group, version = parts[1], parts[2]
    else:
        return None
    types = [rt for rt in registry.all() if rt.group == group and rt.version == version]
    if not types:
        return None
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for rt in types:
        prefix = f"/{_gv_path(group, version)}/" + (
            "namespaces/{namespace}/" if rt.namespaced else ""
        )
        paths[prefix + rt.plural] = {"post": _operation(rt, "post")}
        paths[prefix + rt.plural + "/{name}"] = {
            "put": _operation(rt, "put"),
            "patch": _operation(rt, "patch"),
        }
        name = f"{rt.group or 'io.k8s.api.core'}.{rt.version}.{rt.kind}"
        schemas[name] = {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
            "x-kubernetes-group-version-kind": [
                {"group": rt.group, "version": rt.version, "kind": rt.kind}
            ],
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes (winfleet sim)", "version": "v1.29.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }
