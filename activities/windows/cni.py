"""The CNI configuration of a Windows node: a `win-overlay` network on the hybrid overlay.

Modelled on WMCO's 4.6-era `cni.template`: host-local IPAM on the node's hybrid-overlay subnet,
outbound NAT for everything except the service network, and a route that encapsulates service
traffic. Pure; `activities/network.py` writes the result to `C:\\k\\cni\\config\\cni.conf`.
"""

from __future__ import annotations

import ipaddress
import json

OVERLAY_NETWORK = "OVNKubernetesHybridOverlayNetwork"
"""The HNS network hybrid-overlay-node creates and the CNI plugin attaches pods to."""

BASE_OVERLAY_NETWORK = "BaseOVNKubernetesHybridOverlayNetwork"
"""The persistent HNS network hybrid-overlay-node creates first."""

CNI_VERSION = "0.2.0"


def network_cidr(cidr: str, what: str) -> str:
    """`cidr` normalised if it is a network in `address/prefix` form; ValueError otherwise."""
    try:
        if "/" not in cidr:
            raise ValueError("no prefix length")
        return str(ipaddress.ip_network(cidr, strict=True))
    except ValueError as exc:
        raise ValueError(f"{what} is not a network in CIDR form: {cidr!r}") from exc


def cni_config(node_subnet: str, service_cidr: str) -> str:
    """The `cni.conf` text for a node whose overlay subnet is `node_subnet`.

    Deterministic (same inputs, same bytes) so a hash comparison tells whether the host's copy
    is current. Raises ValueError for anything that is not a CIDR network.
    """
    subnet = network_cidr(node_subnet, "node subnet")
    services = network_cidr(service_cidr, "service CIDR")
    config = {
        "cniVersion": CNI_VERSION,
        "name": OVERLAY_NETWORK,
        "type": "win-overlay",
        "capabilities": {"portMappings": True},
        "ipam": {"type": "host-local", "subnet": subnet},
        "Policies": [
            {
                "Name": "EndpointPolicy",
                "Value": {"Type": "OutBoundNAT", "ExceptionList": [services]},
            },
            {
                "Name": "EndpointPolicy",
                "Value": {"Type": "ROUTE", "DestinationPrefix": services, "NeedEncap": True},
            },
        ],
    }
    return json.dumps(config, indent=2) + "\n"
