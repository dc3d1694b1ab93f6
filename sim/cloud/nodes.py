"""The node controllers of cloud-controller-manager (AWS and Azure), SIMULATED.

`CloudNodeLifecycle` watches the Nodes of the cluster twin and asks the cloud twins about their
machines, as the external cloud providers of OpenShift do:
- Node initialisation (the cloud node controller): a Node without `spec.providerID` whose
  InternalIP is the private IP of an EC2 instance or an Azure VM gets
  `aws:///<availability zone>/<instance id>` or
  `azure:///subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.Compute/virtualMachines/<vm>`
  and the labels `node.kubernetes.io/instance-type`, `topology.kubernetes.io/region` and
  `topology.kubernetes.io/zone`. A Node no cloud knows (BYOH) is left alone for good.
- Node lifecycle (the cloud node lifecycle controller, every `period` seconds): a Node whose
  Ready condition is not True and whose machine no longer exists (EC2 instance terminated, or
  gone; Azure VM deleted) is deleted; one whose machine is stopped gets the taint
  `node.cloudprovider.kubernetes.io/shutdown:NoSchedule`, which goes again once the Node is
  Ready. A Ready Node is never deleted; a Node without a providerID of these clouds is never
  looked at.

Started and stopped by `sim.twin.Twin`, which holds the cluster and cloud twins in one process.
"""

from __future__ import annotations

import copy
from typing import Any

from sim.cloud.aws import AwsTwin
from sim.cloud.azure import AzureTwin
from sim.k8s.api import Api
from sim.k8s.errors import ApiError
from sim.k8s.loop import ControlLoop
from sim.k8s.nodelifecycle import internal_ip, ready_status
from sim.k8s.pods import now_iso
from sim.k8s.store import Event, Obj

NODES = ("", "nodes")
SHUTDOWN_TAINT = "node.cloudprovider.kubernetes.io/shutdown"
_AWS_GONE = {"terminated"}
_AWS_SHUTDOWN = {"stopped", "stopping"}


class CloudNodeLifecycle:
    def __init__(self, api: Api, aws: AwsTwin, azure: AzureTwin, period: float = 5.0) -> None:
        self._api = api
        self._aws = aws
        self._azure = azure
        self._loop = ControlLoop("cloud-node-lifecycle", self.step, period)
        self._nodes_rt = api.registry.get("", "v1", "nodes")

    def start(self) -> None:
        self._api.store.subscribe(self._on_event)
        self._loop.start()

    async def stop(self) -> None:
        self._api.store.unsubscribe(self._on_event)
        await self._loop.stop()

    def _on_event(self, event: Event) -> None:
        if event.gp == NODES and event.type != "DELETED":
            self._loop.kick()

    # -- what the clouds say --------------------------------------------------------------
    def _machines(self) -> dict[str, dict[str, Any]]:
        """providerID -> {ip, state (running/shutdown/gone), labels} of every machine."""
        out: dict[str, dict[str, Any]] = {}
        for iid, inst in self._aws.instances().items():
            zone = inst["Placement"]["AvailabilityZone"]
            name = inst["State"]["Name"]
            state = (
                "gone" if name in _AWS_GONE else "shutdown" if name in _AWS_SHUTDOWN else "running"
            )
            out[f"aws:///{zone}/{iid}"] = {
                "ip": inst.get("PrivateIpAddress"),
                "state": state,
                "labels": {
                    "node.kubernetes.io/instance-type": inst["InstanceType"],
                    "topology.kubernetes.io/region": self._aws.region,
                    "topology.kubernetes.io/zone": zone,
                },
            }
        for vm in self._azure.compute.list(None):
            props = vm["properties"]
            out[f"azure://{vm['id']}"] = {
                "ip": self._azure.compute.primary_ip(vm),
                "state": "shutdown" if props.get("provisioningState") == "Deleting" else "running",
                "labels": {
                    "node.kubernetes.io/instance-type": (props.get("hardwareProfile") or {}).get(
                        "vmSize", ""
                    ),
                    "topology.kubernetes.io/region": vm.get("location", ""),
                    "topology.kubernetes.io/zone": (vm.get("zones") or ["0"])[0],
                },
            }
        return out

    # -- one pass -------------------------------------------------------------------------
    def step(self) -> float | None:
        machines = self._machines()
        by_ip = {m["ip"]: pid for pid, m in machines.items() if m["ip"] and m["state"] != "gone"}
        for entry in self._api.store.entries(NODES):
            node = entry.obj
            provider_id = (node.get("spec") or {}).get("providerID")
            if not provider_id:
                pid = by_ip.get(internal_ip(node))
                if pid is not None:
                    self._initialise(node, pid, machines[pid]["labels"])
                continue
            if not provider_id.startswith(("aws://", "azure://")):
                continue
            machine = machines.get(provider_id)
            if ready_status(node) == "True":
                self._set_shutdown_taint(node, False)
            elif machine is None or machine["state"] == "gone":
                self._delete(node)
            else:
                self._set_shutdown_taint(node, machine["state"] == "shutdown")
        return None

    def _update(self, node: Obj, out: Obj) -> None:
        assert self._nodes_rt is not None
        try:
            self._api.update(self._nodes_rt, "", node["metadata"]["name"], out)
        except ApiError:
            pass  # changed or gone meanwhile: the next pass sees it again

    def _initialise(self, node: Obj, provider_id: str, labels: dict[str, str]) -> None:
        out = copy.deepcopy(node)
        out.setdefault("spec", {})["providerID"] = provider_id
        out["metadata"].setdefault("labels", {}).update(labels)
        self._update(node, out)

    def _set_shutdown_taint(self, node: Obj, wanted: bool) -> None:
        taints = (node.get("spec") or {}).get("taints") or []
        has = any(t.get("key") == SHUTDOWN_TAINT for t in taints)
        if has == wanted:
            return
        out = copy.deepcopy(node)
        if wanted:
            taint = {"key": SHUTDOWN_TAINT, "effect": "NoSchedule", "timeAdded": now_iso()}
            out.setdefault("spec", {})["taints"] = [*taints, taint]
        else:
            out["spec"]["taints"] = [t for t in taints if t.get("key") != SHUTDOWN_TAINT]
        self._update(node, out)

    def _delete(self, node: Obj) -> None:
        assert self._nodes_rt is not None
        try:
            self._api.delete(self._nodes_rt, "", node["metadata"]["name"])
        except ApiError:
            pass
