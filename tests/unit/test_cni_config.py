"""The win-overlay CNI config and the HNS JSON the network activities read (pure)."""

from __future__ import annotations

import json

import pytest
from windows_lines import script_of

from activities.errors import RemoteCommandFailed
from activities.windows import hns
from activities.windows.cni import cni_config


def test_cni_config_is_win_overlay_on_the_node_subnet_with_service_exceptions() -> None:
    assert json.loads(cni_config("10.132.1.0/24", "172.30.0.0/16")) == {
        "cniVersion": "0.2.0",
        "name": "OVNKubernetesHybridOverlayNetwork",
        "type": "win-overlay",
        "capabilities": {"portMappings": True},
        "ipam": {"type": "host-local", "subnet": "10.132.1.0/24"},
        "Policies": [
            {
                "Name": "EndpointPolicy",
                "Value": {"Type": "OutBoundNAT", "ExceptionList": ["172.30.0.0/16"]},
            },
            {
                "Name": "EndpointPolicy",
                "Value": {"Type": "ROUTE", "DestinationPrefix": "172.30.0.0/16", "NeedEncap": True},
            },
        ],
    }


def test_cni_config_is_byte_for_byte_deterministic() -> None:
    assert cni_config("10.132.1.0/24", "172.30.0.0/16") == cni_config(
        "10.132.1.0/24", "172.30.0.0/16"
    )
    assert cni_config("10.132.1.0/24", "172.30.0.0/16") != cni_config(
        "10.132.2.0/24", "172.30.0.0/16"
    )


@pytest.mark.parametrize(
    ("subnet", "services"),
    [
        ("10.132.1.1/24", "172.30.0.0/16"),
        ("10.132.1.0/24", "172.30.0.0"),
        ("", "172.30.0.0/16"),
        ('10.132.1.0/24"', "172.30.0.0/16"),
    ],
)
def test_cni_config_refuses_anything_but_networks(subnet: str, services: str) -> None:
    with pytest.raises(ValueError):
        cni_config(subnet, services)


# --- HNS -------------------------------------------------------------------------------------
NETWORK = {
    "Name": "OVNKubernetesHybridOverlayNetwork",
    "Id": "A1",
    "Type": "Overlay",
    "Subnets": [{"AddressPrefix": "10.132.1.0/24", "GatewayAddress": "10.132.1.1"}],
}
BASE = {"Name": "BaseOVNKubernetesHybridOverlayNetwork", "Id": "B2", "Type": "Overlay"}


@pytest.mark.parametrize(
    ("stdout", "names"),
    [
        ("", []),  # no network: ConvertTo-Json prints nothing
        (json.dumps(NETWORK), ["OVNKubernetesHybridOverlayNetwork"]),  # one: not in a list
        (json.dumps([BASE, NETWORK]), ["BaseOVNKubernetesHybridOverlayNetwork", NETWORK["Name"]]),
    ],
)
def test_get_hns_network_output_parses_whether_empty_single_or_many(
    stdout: str, names: list[str]
) -> None:
    assert [n.name for n in hns.parse_networks(stdout)] == names


def test_the_overlay_network_is_found_with_its_subnet() -> None:
    found = hns.find_network(
        hns.parse_networks(json.dumps([BASE, NETWORK])), "OVNKubernetesHybridOverlayNetwork"
    )
    assert found == hns.HnsNetwork(
        "OVNKubernetesHybridOverlayNetwork", "A1", "Overlay", ("10.132.1.0/24",)
    )


def test_endpoints_carry_their_ip_and_network() -> None:
    stdout = json.dumps(
        {
            "Name": "VIPEndpoint",
            "Id": "E1",
            "IPAddress": "10.132.1.2",
            "VirtualNetwork": "A1",
            "VirtualNetworkName": "OVNKubernetesHybridOverlayNetwork",
        }
    )
    assert hns.parse_endpoints(stdout) == (
        hns.HnsEndpoint(
            "VIPEndpoint", "E1", "10.132.1.2", "A1", "OVNKubernetesHybridOverlayNetwork"
        ),
    )


@pytest.mark.parametrize("stdout", ["not json", "[1, 2]", '{"Id": "no name"}'])
def test_unexpected_hns_output_is_a_remote_command_failure(stdout: str) -> None:
    with pytest.raises(RemoteCommandFailed):
        hns.parse_networks(stdout)


def test_hns_scripts_import_the_module_first() -> None:
    line = script_of(hns.create_endpoint_command("A1").line)
    assert line.index(r"Import-Module 'C:\k\hns.psm1'") < line.index("New-HnsEndpoint")
    assert "-NetworkId 'A1' -Name 'VIPEndpoint'" in line
    removal = script_of(hns.remove_network_command("OVNKubernetesHybridOverlayNetwork").line)
    assert "Where-Object -Property Name -EQ -Value 'OVNKubernetesHybridOverlayNetwork'" in removal
