"""Custom resources against their CRD's schema, as kube-apiserver serves them (SIMULATED cluster).

The real WindowsMachinePool CRD (deploy/crds/) is applied with kubectl; pools are then written
with kubectl and the `kubernetes` client's CustomObjectsApi, the way admins and the worker will.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from sim.k8s.server import KubeTwin

CRD_FILE = (
    Path(__file__).resolve().parents[2] / "deploy" / "crds" / "winfleet.io_windowsmachinepools.yaml"
)
GROUP, VERSION, PLURAL, NS = "winfleet.io", "v1alpha1", "windowsmachinepools", "winfleet"
ARGS = (GROUP, VERSION, NS, PLURAL)


def kubectl(
    twin: KubeTwin, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(twin.kubeconfig_path), "HOME": str(twin.state_dir)}
    return subprocess.run(
        ["/usr/bin/kubectl", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def pools(twin: KubeTwin, api_client: client.ApiClient) -> Iterator[client.CustomObjectsApi]:
    """The CRD applied with kubectl; the CustomObjectsApi to talk to pools."""
    ok(kubectl(twin, "apply", "-f", str(CRD_FILE)))
    yield client.CustomObjectsApi(api_client)


def pool(name: str = "web", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "WindowsMachinePool",
        "metadata": {"name": name},
        "spec": {"platform": "aws", **spec},
    }


def refusal(call: Callable[[], Any]) -> tuple[int, dict[str, Any]]:
    with pytest.raises(ApiException) as caught:
        call()
    return caught.value.status, json.loads(caught.value.body)


# -- schema validation ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"replicas": -1},
            "spec.replicas: Invalid value: -1: spec.replicas in body should be greater than "
            "or equal to 0",
        ),
        (
            {"platform": "gcp"},
            'spec.platform: Unsupported value: "gcp": supported values: "aws", "azure", "byoh"',
        ),
        (
            {"maxUnhealthy": "half"},
            'spec.maxUnhealthy: Invalid value: "half": spec.maxUnhealthy in body should match '
            "'^\\d{1,3}%$'",
        ),
        (
            {"maxUnhealthy": True},
            'spec.maxUnhealthy: Invalid value: "boolean": spec.maxUnhealthy in body must be of '
            'type integer,string: "boolean"',
        ),
        (
            {"upgrade": {"strategy": "Recreate"}},
            'spec.upgrade.strategy: Unsupported value: "Recreate": supported values: "Replace", '
            '"InPlace"',
        ),
        (
            {"replicas": "three"},
            'spec.replicas: Invalid value: "string": spec.replicas in body must be of type '
            'integer: "string"',
        ),
        ({"version": "v" * 64}, "spec.version: Too long: may not be longer than 63"),
        (
            {"upgrade": {"maintenanceWindow": {"days": ["Mon"], "start": "25:00"}}},
            "spec.upgrade.maintenanceWindow.duration: Required value",
        ),
    ],
)
def test_nonsense_pools_are_refused_with_the_apiservers_message(
    pools: client.CustomObjectsApi, spec: dict[str, Any], message: str
):
    code, status = refusal(lambda: pools.create_namespaced_custom_object(*ARGS, pool(**spec)))
    assert code == 422 and status["reason"] == "Invalid"
    assert message in status["message"]
    assert status["message"].startswith('WindowsMachinePool.winfleet.io "web" is invalid: ')
    assert pools.list_namespaced_custom_object(*ARGS)["items"] == []


def test_every_violation_is_listed_in_one_refusal(pools: client.CustomObjectsApi):
    body = pool(replicas=-2, upgrade={"maxSurge": -1, "onDrainTimeout": "Later"})
    _, status = refusal(lambda: pools.create_namespaced_custom_object(*ARGS, body))
    fields = sorted(c["field"] for c in status["details"]["causes"])
    assert fields == ["spec.replicas", "spec.upgrade.maxSurge", "spec.upgrade.onDrainTimeout"]
    assert status["message"].count(", spec.") == 2 and "is invalid: [" in status["message"]


def test_a_pool_without_platform_or_spec_is_refused(pools: client.CustomObjectsApi):
    body = pool()
    del body["spec"]["platform"]
    _, status = refusal(lambda: pools.create_namespaced_custom_object(*ARGS, body))
    assert status["details"]["causes"] == [
        {"field": "spec.platform", "reason": "FieldValueRequired", "message": "Required value"}
    ]
    del body["spec"]
    _, status = refusal(lambda: pools.create_namespaced_custom_object(*ARGS, body))
    assert status["message"].endswith("spec: Required value")


def test_a_pool_name_too_long_for_windows_node_names_is_refused(pools: client.CustomObjectsApi):
    _, status = refusal(lambda: pools.create_namespaced_custom_object(*ARGS, pool("webfarm-01")))
    assert "metadata.name: Too long: may not be longer than 9" in status["message"]
    _, status = refusal(lambda: pools.create_namespaced_custom_object(*ARGS, pool("9lives")))
    assert "metadata.name in body should match" in status["message"]


def test_duplicate_condition_types_are_refused_on_status_writes(pools: client.CustomObjectsApi):
    pools.create_namespaced_custom_object(*ARGS, pool())
    cond = {"type": "Available", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}
    code, status = refusal(
        lambda: pools.patch_namespaced_custom_object_status(
            *ARGS, "web", {"status": {"conditions": [cond, cond]}}
        )
    )
    assert code == 422
    assert (
        'status.conditions[1]: Duplicate value: map[string]interface {}{"type":"Available"}'
        in status["message"]
    )
    bad_time = {**cond, "lastTransitionTime": "yesterday"}
    _, status = refusal(
        lambda: pools.patch_namespaced_custom_object_status(
            *ARGS, "web", {"status": {"conditions": [bad_time]}}
        )
    )
    assert 'must be of type date-time: "yesterday"' in status["message"]


# -- defaulting and pruning -------------------------------------------------------------------
def test_defaults_are_filled_on_create(pools: client.CustomObjectsApi):
    created = pools.create_namespaced_custom_object(*ARGS, pool(aws={}))
    spec = created["spec"]
    assert spec["replicas"] == 0 and spec["maxUnhealthy"] == 1
    assert spec["privateKeySecret"] == "cloud-private-key"
    assert spec["aws"] == {"instanceType": "m5a.large"}
    assert spec["upgrade"] == {
        "strategy": "Replace",
        "maxSurge": 0,
        "canary": False,
        "nodeStartupTimeout": "10m",
        "drainTimeout": "15m",
        "onDrainTimeout": "Fail",
    }
    assert spec["reconcile"] == {"interval": "5m", "unhealthyTimeout": "10m"}
    assert "azure" not in spec and "byoh" not in spec  # no object, no nested defaults


def test_defaults_fill_a_field_a_patch_set_to_null(pools: client.CustomObjectsApi):
    pools.create_namespaced_custom_object(*ARGS, pool(maxUnhealthy="25%"))
    patched = pools.patch_namespaced_custom_object(*ARGS, "web", {"spec": {"maxUnhealthy": None}})
    assert patched["spec"]["maxUnhealthy"] == 1


def test_unknown_fields_are_pruned_with_a_warning_by_default(
    pools: client.CustomObjectsApi, twin: KubeTwin
):
    body = pool(replicass=3, aws={"instanceTyp": "x"})
    body["extra"] = True
    created = pools.create_namespaced_custom_object(*ARGS, body)
    assert "replicass" not in created["spec"] and "extra" not in created
    assert created["spec"]["aws"] == {"instanceType": "m5a.large"}
    stored = twin.store.get(PLURAL, "web", NS, GROUP)
    assert stored is not None and "replicass" not in stored["spec"]
    # kubectl --validate=false (fieldValidation=Ignore) drops them silently too
    manifest = json.dumps(pool("api", replicass=2))
    done = kubectl(twin, "create", "--validate=false", "-f", "-", stdin=manifest)
    assert done.returncode == 0 and "Warning" not in done.stderr
    # kubectl --validate=warn shows the apiserver's warning
    manifest = json.dumps(pool("db", replicass=2))
    done = kubectl(twin, "create", "--validate=warn", "-f", "-", stdin=manifest)
    assert done.returncode == 0, done.stderr
    assert 'Warning: unknown field "spec.replicass"' in done.stderr


def test_kubectl_with_strict_validation_refuses_unknown_fields(
    pools: client.CustomObjectsApi, twin: KubeTwin
):
    done = kubectl(twin, "create", "-f", "-", stdin=json.dumps(pool(replicass=2)))
    assert done.returncode != 0
    assert (
        'WindowsMachinePool in version "v1alpha1" cannot be handled as a WindowsMachinePool: '
        'strict decoding error: unknown field "spec.replicass"'
    ) in done.stderr
    assert pools.list_namespaced_custom_object(*ARGS)["items"] == []


def test_fields_kept_by_preserve_unknown_fields_survive(api_client: client.ApiClient):
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "bags.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "bags", "singular": "bag", "kind": "Bag"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "x-kubernetes-preserve-unknown-fields": True,
                                    "properties": {"size": {"type": "integer", "default": 1}},
                                },
                                "data": {
                                    "type": "object",
                                    "additionalProperties": {"type": "string"},
                                },
                            },
                        }
                    },
                }
            ],
        },
    }
    client.ApiextensionsV1Api(api_client).create_custom_resource_definition(crd)
    custom = client.CustomObjectsApi(api_client)
    created = custom.create_namespaced_custom_object(
        "example.com",
        "v1",
        NS,
        "bags",
        {
            "apiVersion": "example.com/v1",
            "kind": "Bag",
            "metadata": {"name": "b"},
            "spec": {"anything": {"goes": [1, 2]}},
            "data": {"a": "x", "b": "y"},
            "junk": 1,
        },
    )
    assert created["spec"] == {"anything": {"goes": [1, 2]}, "size": 1}
    assert created["data"] == {"a": "x", "b": "y"} and "junk" not in created


def test_a_crd_update_adds_its_new_defaults_to_stored_objects(
    pools: client.CustomObjectsApi, api_client: client.ApiClient, twin: KubeTwin
):
    pools.create_namespaced_custom_object(*ARGS, pool())
    before = pools.get_namespaced_custom_object(*ARGS, "web")
    ext = client.ApiextensionsV1Api(api_client)
    crd = ext.read_custom_resource_definition(f"{PLURAL}.{GROUP}")
    props = crd.spec.versions[0].schema.open_apiv3_schema.properties["spec"].properties
    props["zone"] = client.V1JSONSchemaProps(type="string", default="eu-1")
    ext.replace_custom_resource_definition(crd.metadata.name, crd)
    after = pools.get_namespaced_custom_object(*ARGS, "web")
    assert after["spec"]["zone"] == "eu-1"
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


# -- status subresource -----------------------------------------------------------------------
def test_status_is_written_only_through_the_status_subresource(pools: client.CustomObjectsApi):
    body = pool(replicas=2)
    body["status"] = {"replicas": 9}
    created = pools.create_namespaced_custom_object(*ARGS, body)
    assert "status" not in created and created["metadata"]["generation"] == 1

    with_status = pools.patch_namespaced_custom_object_status(
        *ARGS, "web", {"spec": {"replicas": 7}, "status": {"replicas": 2, "phase": "Ready"}}
    )
    assert with_status["spec"]["replicas"] == 2  # /status ignores spec
    assert with_status["status"] == {"replicas": 2, "phase": "Ready"}
    assert with_status["metadata"]["generation"] == 1  # no spec change, no new generation

    main = pools.patch_namespaced_custom_object(
        *ARGS, "web", {"spec": {"replicas": 3}, "status": {"phase": "Broken"}}
    )
    assert main["status"]["phase"] == "Ready"  # the main resource ignores status
    assert main["spec"]["replicas"] == 3 and main["metadata"]["generation"] == 2

    labelled = pools.patch_namespaced_custom_object(
        *ARGS, "web", {"metadata": {"labels": {"team": "a"}}}
    )
    assert labelled["metadata"]["generation"] == 2  # metadata is not spec


# -- scale subresource ------------------------------------------------------------------------
def test_kubectl_scale_sets_the_replicas_and_get_subresource_scale_shows_them(
    pools: client.CustomObjectsApi, twin: KubeTwin
):
    pools.create_namespaced_custom_object(*ARGS, pool(replicas=2))
    pools.patch_namespaced_custom_object_status(
        *ARGS, "web", {"status": {"replicas": 2, "selector": "winfleet.io/pool=web"}}
    )
    assert "scaled" in ok(kubectl(twin, "-n", NS, "scale", "wmp/web", "--replicas=5"))
    got = pools.get_namespaced_custom_object(*ARGS, "web")
    assert got["spec"]["replicas"] == 5 and got["metadata"]["generation"] == 2

    scale = pools.get_namespaced_custom_object_scale(*ARGS, "web")
    assert scale["kind"] == "Scale" and scale["apiVersion"] == "autoscaling/v1"
    assert scale["spec"] == {"replicas": 5}
    assert scale["status"] == {"replicas": 2, "selector": "winfleet.io/pool=web"}

    table = ok(kubectl(twin, "-n", NS, "get", "wmp/web", "--subresource=scale"))
    header, row = table.splitlines()
    assert header.split() == ["NAME", "DESIREDREPLICAS", "AVAILABLEREPLICAS"]
    assert row.split() == ["web", "5", "2"]


def test_negative_scale_is_refused_and_a_stale_scale_conflicts(pools: client.CustomObjectsApi):
    pools.create_namespaced_custom_object(*ARGS, pool(replicas=1))
    code, status = refusal(
        lambda: pools.patch_namespaced_custom_object_scale(*ARGS, "web", {"spec": {"replicas": -1}})
    )
    assert code == 422
    assert status["message"] == (
        'Scale.autoscaling "web" is invalid: spec.replicas: Invalid value: -1: '
        "must be greater than or equal to 0"
    )
    scale = pools.get_namespaced_custom_object_scale(*ARGS, "web")
    pools.patch_namespaced_custom_object(*ARGS, "web", {"spec": {"version": "1.1.0"}})
    scale["spec"]["replicas"] = 4
    code, _ = refusal(lambda: pools.replace_namespaced_custom_object_scale(*ARGS, "web", scale))
    assert code == 409
    assert pools.get_namespaced_custom_object(*ARGS, "web")["spec"]["replicas"] == 1


# -- kubectl get / describe -------------------------------------------------------------------
def test_kubectl_get_wmp_shows_the_printer_columns(pools: client.CustomObjectsApi, twin: KubeTwin):
    pools.create_namespaced_custom_object(*ARGS, pool(replicas=3, version="1.1.0"))
    pools.patch_namespaced_custom_object_status(
        *ARGS,
        "web",
        {"status": {"replicas": 3, "readyReplicas": 2, "updatedReplicas": 1, "phase": "Upgrading"}},
    )
    out = ok(kubectl(twin, "-n", NS, "get", "wmp"))
    header, row = out.splitlines()
    assert header.split() == [
        "NAME",
        "PLATFORM",
        "REPLICAS",
        "READY",
        "UPDATED",
        "VERSION",
        "PHASE",
        "AGE",
    ]
    cells = row.split()
    assert cells[:7] == ["web", "aws", "3", "2", "1", "1.1.0", "Upgrading"]
    assert cells[7].endswith("s")  # an age in seconds, from creationTimestamp


def test_kubectl_describe_wmp_shows_spec_and_status(pools: client.CustomObjectsApi, twin: KubeTwin):
    pools.create_namespaced_custom_object(*ARGS, pool(replicas=3, version="1.1.0"))
    pools.patch_namespaced_custom_object_status(
        *ARGS,
        "web",
        {
            "status": {
                "phase": "Upgrading",
                "conditions": [
                    {
                        "type": "Progressing",
                        "status": "True",
                        "reason": "RollingUpdate",
                        "message": "2 of 3 nodes on 1.1.0",
                        "lastTransitionTime": "2026-01-01T00:00:00Z",
                    }
                ],
            }
        },
    )
    out = ok(kubectl(twin, "-n", NS, "describe", "wmp", "web"))
    for text in (
        "Name:         web",
        "Kind:         WindowsMachinePool",
        "Platform:",
        "Max Unhealthy:",
        "Strategy:",
        "Replace",
        "Phase:",
        "Upgrading",
        "2 of 3 nodes on 1.1.0",
    ):
        assert text in out, out
