"""deploy/: the kustomize overlays render, the worker Deployment is locked down and probed, RBAC
is as narrow as the README's table says, the image definition is non-root and pinned, and the
Grafana dashboard is a valid dashboard whose queries name winfleet's series."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import dashboards
import jsonschema
import pytest
import yaml

from activities import metrics
from worker.metrics import _node_families, _pool_families

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBELET_SIGNERS = {"kubernetes.io/kube-apiserver-client-kubelet", "kubernetes.io/kubelet-serving"}


def render(overlay: str) -> list[dict[str, Any]]:
    done = subprocess.run(
        ["/usr/bin/kubectl", "kustomize", str(DEPLOY / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


@pytest.fixture(scope="module", params=["local", "production"])
def objects(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return render(request.param)


def one(objects: list[dict[str, Any]], kind: str, name: str = "") -> dict[str, Any]:
    found = [
        o for o in objects if o["kind"] == kind and (not name or o["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"{kind} {name}: {len(found)}"
    return found[0]


def test_both_overlays_install_every_piece_into_the_winfleet_namespace(
    objects: list[dict[str, Any]],
) -> None:
    kinds = {o["kind"] for o in objects}
    assert {
        "Namespace",
        "CustomResourceDefinition",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "ConfigMap",
        "Deployment",
        "PodDisruptionBudget",
        "Service",
        "NetworkPolicy",
    } <= kinds
    cluster_scoped = {
        "Namespace",
        "CustomResourceDefinition",
        "ClusterRole",
        "ClusterRoleBinding",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    }
    for o in objects:
        if o["kind"] not in cluster_scoped:
            assert o["metadata"].get("namespace") == "winfleet", o["metadata"]["name"]


def test_the_worker_runs_non_root_on_a_read_only_filesystem_with_probes(
    objects: list[dict[str, Any]],
) -> None:
    deploy = one(objects, "Deployment", "winfleet-worker")
    pod = deploy["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "winfleet"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert "runAsUser" not in sc and "runAsUser" not in pod["securityContext"]  # SCC-friendly
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http-metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http-metrics"}
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    settings = one(objects, "ConfigMap", deploy_config_name(container))["data"]
    assert settings["WINFLEET_HTTP_ADDRESS"].endswith(f":{ports['http-metrics']}")
    assert container["resources"]["requests"]["memory"] and container["resources"]["limits"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]  # the only writable path
    assert volumes[mounts["/etc/winfleet/temporal-tls"]]["secret"]["optional"] is True
    assert {c["topologyKey"] for c in pod["topologySpreadConstraints"]} == {
        "topology.kubernetes.io/zone",
        "kubernetes.io/hostname",
    }
    labels = pod and deploy["spec"]["template"]["metadata"]["labels"]
    pdb = one(objects, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = one(objects, "Service", "winfleet-worker-metrics")
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "http-metrics"
    policy = one(objects, "NetworkPolicy")
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    assert [p["port"] for r in policy["spec"]["ingress"] for p in r["ports"]] == [
        ports["http-metrics"]
    ]


def deploy_config_name(container: dict[str, Any]) -> str:
    (ref,) = [e["configMapRef"]["name"] for e in container["envFrom"] if "configMapRef" in e]
    return str(ref)


def test_production_runs_three_spread_workers_with_mtls_versioning_and_a_service_monitor() -> None:
    objects = render("production")
    deploy = one(objects, "Deployment", "winfleet-worker")
    assert deploy["spec"]["replicas"] == 3
    spread = deploy["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert {c["topologyKey"]: c["whenUnsatisfiable"] for c in spread}["kubernetes.io/hostname"] == (
        "DoNotSchedule"
    )
    settings = one(
        objects,
        "ConfigMap",
        deploy_config_name(deploy["spec"]["template"]["spec"]["containers"][0]),
    )["data"]
    assert settings["TEMPORAL_TLS"] == "true"
    assert settings["TEMPORAL_TLS_CLIENT_CERT_PATH"].startswith("/etc/winfleet/temporal-tls/")
    assert settings["WINFLEET_DEPLOYMENT_NAME"] and settings["WINFLEET_BUILD_ID"]
    assert settings["OTEL_EXPORTER_OTLP_ENDPOINT"].startswith("http")
    monitor = one(objects, "ServiceMonitor")
    service = one(objects, "Service", "winfleet-worker-metrics")
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert one(objects, "ConfigMap", "winfleet-grafana-dashboard")["data"]["winfleet.json"]


def test_rbac_grants_no_wildcards_no_machines_and_names_what_it_can() -> None:
    objects = render("local")
    rules = [
        (o["kind"], r) for o in objects if o["kind"] in ("ClusterRole", "Role") for r in o["rules"]
    ]
    for _, rule in rules:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"], rule
        assert "machine.openshift.io" not in rule["apiGroups"]
        if set(rule["resources"]) & {"secrets", "configmaps"}:
            assert rule.get("resourceNames"), f"unnamed {rule['resources']}"
        if "configmaps" in rule["resources"] and "windows-instances" in rule["resourceNames"]:
            assert rule["verbs"] == ["get"]  # the BYOH list is read-only
    (signers,) = [r for _, r in rules if r["resources"] == ["signers"]]
    assert set(signers["resourceNames"]) == KUBELET_SIGNERS and signers["verbs"] == ["approve"]
    assert all(
        kind == "Role" for kind, r in rules if set(r["resources"]) & {"secrets", "configmaps"}
    )
    binding = one(objects, "ValidatingAdmissionPolicyBinding")
    assert binding["spec"]["validationActions"] == ["Deny"]
    policy = one(objects, "ValidatingAdmissionPolicy")
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert (
        "system:serviceaccount:winfleet:winfleet"
        in policy["spec"]["matchConditions"][0]["expression"]
    )


def dockerfile() -> tuple[dict[str, str], list[list[str]]]:
    """ARG defaults and the instructions of deploy/Dockerfile (continuations joined)."""
    text = (DEPLOY / "Dockerfile").read_text()
    joined = re.sub(r"\\\n", " ", text)
    lines = [line.strip() for line in joined.splitlines()]
    steps = [line.split(None, 1) for line in lines if line and not line.startswith("#")]
    args = {}
    for step in steps:
        if step[0] == "ARG" and "=" in step[1]:
            key, value = step[1].split("=", 1)
            args[key] = value
    return args, steps


def test_the_image_is_pinned_by_digest_non_root_and_read_only_friendly() -> None:
    args, steps = dockerfile()
    froms = [s[1].split()[0] for s in steps if s[0] == "FROM"]
    assert len(froms) == 2
    for image in froms:
        resolved = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)
        assert re.fullmatch(r"[\w./-]+:[\w.-]+@sha256:[0-9a-f]{64}", resolved), resolved
    final = steps[max(i for i, s in enumerate(steps) if s[0] == "FROM") :]
    users = [s[1] for s in final if s[0] == "USER"]
    assert users and re.fullmatch(r"[1-9]\d*(:[1-9]\d*)?", users[-1]), users
    env = " ".join(s[1] for s in final if s[0] == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env  # nothing written next to the code
    assert "HOME=/tmp" in env and "WINFLEET_TRACE_FILE=/tmp/" in env  # the emptyDir
    payload = re.search(r"WINFLEET_PAYLOAD_DIR=(\S+)", env)
    assert payload is not None
    copies = [s[1] for s in final if s[0] == "COPY"]
    assert any(
        "--from=payload" in c and c.split()[-1].rstrip("/") == payload.group(1) for c in copies
    )
    assert not any(s[0] == "COPY" and "sim/" in s[1] for s in steps)  # the twin stays out
    assert [s[1] for s in final if s[0] == "ENTRYPOINT"] == ['["winfleet"]']
    for overlay in ("local", "production"):
        objects = render(overlay)
        container = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]
        settings = one(objects, "ConfigMap", deploy_config_name(container))
        assert settings["data"]["WINFLEET_PAYLOAD_DIR"] == payload.group(1)


DASHBOARD_SCHEMA = {
    "type": "object",
    "required": ["title", "uid", "schemaVersion", "panels"],
    "properties": {
        "uid": {"type": "string", "pattern": "^[a-zA-Z0-9_-]{1,40}$"},
        "schemaVersion": {"type": "integer", "minimum": 30},
        "panels": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["id", "type", "title", "gridPos", "targets", "datasource"],
                "properties": {
                    "id": {"type": "integer"},
                    "type": {"enum": ["timeseries", "stat", "table", "gauge", "bargauge"]},
                    "gridPos": {
                        "type": "object",
                        "required": ["h", "w", "x", "y"],
                        "properties": {"w": {"maximum": 24}, "x": {"maximum": 23}},
                    },
                    "targets": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["refId", "expr"],
                            "properties": {"expr": {"type": "string", "minLength": 1}},
                        },
                    },
                },
            },
        },
    },
}


def test_the_dashboard_is_valid_and_queries_only_series_winfleet_exports() -> None:
    board = dashboards.load()
    jsonschema.validate(board, DASHBOARD_SCHEMA)
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    ours = {f.name for f in metrics.REGISTRY.collect()}
    ours |= {f.name for f in [*_node_families([]), *_pool_families([])]}
    ours.add("winfleet_pool_metrics_up")
    for expr in dashboards.expressions(board):
        named = dashboards.series(expr)
        assert named, expr
        for name in named:
            if name.startswith("winfleet_"):
                assert dashboards.family(name) in ours, f"{name} in {expr}"
            else:
                assert name.startswith("temporal_"), f"{name} is not a worker series"
