"""Whose a cloud VM is: the cluster, pool and node it is tagged for, and which run launched it.

Every VM (and Azure NIC) winfleet creates carries three tags — cluster, pool, node — and
winfleet finds, reuses or deletes only resources whose three values all match, so two clusters
or two pools in one account never take over or delete each other's machines. The cluster's
identity is `WINFLEET_CLUSTER_ID`, else the OpenShift infrastructure name
(`infrastructures.config.openshift.io/cluster` `.status.infrastructureName`), else the API
server's host name (`cluster_id`). Which workflow run launched a VM is recorded too (AWS: the
RunInstances ClientToken; Azure: a `winfleet-run` tag), so compensation deletes only what its
own run created. Used by `activities/cloud/vm.py`, `aws.py` and `azure.py`.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

from activities import kube
from activities.config import on_settings_change, settings
from activities.errors import InvalidRequest

INFRASTRUCTURE = ("config.openshift.io", "v1", "infrastructures", "cluster")


@dataclass(frozen=True)
class Owner:
    """The cluster, pool and node a VM belongs to."""

    cluster: str
    pool: str
    node: str

    def __str__(self) -> str:
        return f"cluster {self.cluster!r}, pool {self.pool!r}, node {self.node!r}"


@dataclass(frozen=True)
class TaggedVm:
    """A VM found by its tags (drift reconciliation lists a pool's VMs)."""

    vm_id: str  # EC2 instance id, Azure VM name
    owner: Owner
    launched: str  # RFC 3339


@dataclass(frozen=True)
class TagNames:
    """How one cloud spells winfleet's tags (ARM tag names may not contain '/')."""

    cluster: str
    pool: str
    node: str

    def tags(self, owner: Owner) -> dict[str, str]:
        return {self.cluster: owner.cluster, self.pool: owner.pool, self.node: owner.node}

    def owner_of(self, tags: Mapping[str, str] | None) -> Owner | None:
        """The owner a resource's tags name, or None when it carries none of winfleet's tags."""
        t = dict(tags or {})
        if not any(name in t for name in (self.cluster, self.pool, self.node)):
            return None
        return Owner(t.get(self.cluster, ""), t.get(self.pool, ""), t.get(self.node, ""))

    def whose(self, tags: Mapping[str, str] | None) -> str:
        """Who a resource belongs to, for messages."""
        owner = self.owner_of(tags)
        return f"tagged for {owner}" if owner else "not tagged by winfleet"


async def cluster_id() -> str:
    """This cluster's identity in cloud tags (cached until the settings change)."""
    configured = settings().cluster_id
    if configured:
        return configured
    if not _cached:
        _cached.append(await _discover())
    return _cached[0]


async def _discover() -> str:
    try:
        infra = await kube.call_json(
            "read infrastructures.config.openshift.io/cluster",
            kube.custom_objects().get_cluster_custom_object,
            *INFRASTRUCTURE,
        )
        name = ((infra or {}).get("status") or {}).get("infrastructureName")
        if isinstance(name, str) and name:
            return name
    except (kube.NotFound, InvalidRequest):
        pass  # not OpenShift, or not readable: the API server's host names the cluster
    host: str | None = urllib.parse.urlsplit(kube.api_client().configuration.host).hostname
    if not host:
        raise InvalidRequest("cannot tell this cluster's identity: set WINFLEET_CLUSTER_ID")
    return host


_cached: list[str] = []
on_settings_change(_cached.clear)
