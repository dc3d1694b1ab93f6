"""Network cmdlets of the SIMULATED PowerShell: New-/Get-NetFirewallRule, Get-NetIPAddress.

New-NetFirewallRule validates its enumerations as Windows does (`-Enabled True|False`,
`-Direction Inbound|Outbound`, `-Action Allow|Block|NotConfigured`, `-EdgeTraversalPolicy`,
`-Profile`), allows ports only with TCP/UDP and prints the rule object PowerShell prints.
Get-NetIPAddress shows the host's `Ethernet` adapter (its address and subnet prefix, from DHCP)
and the loopback pseudo-interface, filtered by `-AddressFamily`, `-InterfaceAlias` (wildcards)
and `-IPAddress`. Enumerations are strings in JSON (5.1 would print their numbers). Registered
into `pwsh.CMDLETS`; used by `pwsh.run_script`.
"""

from __future__ import annotations

import fnmatch
import uuid
from typing import Any

from sim.windows.firewall import FirewallError
from sim.windows.pwsh import CmdletError, Context, cmdlet

_ENUMS = {
    "Enabled": ("True", "False"),
    "Direction": ("Inbound", "Outbound"),
    "Action": ("NotConfigured", "Allow", "Block"),
    "EdgeTraversalPolicy": ("Block", "Allow", "DeferToUser", "DeferToApp"),
    "Profile": ("Any", "Domain", "Private", "Public", "NotApplicable"),
}
_PROTOCOLS = ("TCP", "UDP", "ICMPv4", "ICMPv6", "Any")


def _enum(param: str, value: Any) -> str:
    text = ("True" if value else "False") if isinstance(value, bool) else str(value)
    for allowed in _ENUMS[param]:
        if text.lower() == allowed.lower():
            return allowed
    raise CmdletError(
        f"Cannot process argument transformation on parameter '{param}'. Cannot convert value "
        f'"{text}" to type "{param}". Error: "Unable to match the identifier name {text} to a '
        "valid enumerator name. Specify one of the following enumerator names and try again: "
        f'{", ".join(_ENUMS[param])}"'
    )


def _ports(value: Any) -> list[str]:
    out = []
    for item in value if isinstance(value, list) else [value]:
        for part in str(item).split(","):
            low, _, high = part.strip().partition("-")
            ok = low.isdigit() and (not high or high.isdigit())
            if not ok or not all(0 < int(x) < 65536 for x in (low, high or low)):
                raise CmdletError(f"The port '{part.strip()}' is not valid.")
            out.append(part.strip())
    return out


def rule_object(rule: dict[str, Any]) -> dict[str, Any]:
    """A stored rule as `New-NetFirewallRule` / `Get-NetFirewallRule` print it."""
    return {
        "Name": rule["Name"],
        "DisplayName": rule["DisplayName"],
        "Description": rule.get("Description", ""),
        "DisplayGroup": None,
        "Group": None,
        "Enabled": rule.get("Enabled", "True"),
        "Profile": rule.get("Profile", "Any"),
        "Platform": [],
        "Direction": rule.get("Direction", "Inbound"),
        "Action": rule.get("Action", "Allow"),
        "EdgeTraversalPolicy": rule.get("EdgeTraversalPolicy", "Block"),
        "LooseSourceMapping": False,
        "LocalOnlyMapping": False,
        "Owner": None,
        "PrimaryStatus": "OK",
        "Status": "The rule was parsed successfully from the store. (65536)",
        "EnforcementStatus": "NotApplicable",
        "PolicyStoreSource": "PersistentStore",
        "PolicyStoreSourceType": "Local",
    }


@cmdlet(
    "New-NetFirewallRule",
    values=(
        "DisplayName",
        "Name",
        "Description",
        "Enabled",
        "Direction",
        "Action",
        "Protocol",
        "LocalPort",
        "RemotePort",
        "EdgeTraversalPolicy",
        "Profile",
        "Program",
        "Group",
    ),
    required=("DisplayName",),
)
def new_net_firewall_rule(ctx: Context, p: dict[str, Any], _in: list[Any] | None) -> list[Any]:
    rule: dict[str, Any] = {
        "Name": str(p.get("Name") or "{" + str(uuid.uuid4()) + "}"),
        "DisplayName": str(p["DisplayName"]),
    }
    for param in _ENUMS:
        if param in p:
            values = p[param] if isinstance(p[param], list) else [p[param]]
            rule[param] = ", ".join(_enum(param, v) for v in values)
    if "Description" in p:
        rule["Description"] = str(p["Description"])
    protocol = str(p.get("Protocol", "Any"))
    known = {x.lower(): x for x in _PROTOCOLS}
    if not protocol.isdigit() and protocol.lower() not in known:
        raise CmdletError(f"The protocol '{protocol}' is not valid.")
    rule["Protocol"] = known.get(protocol.lower(), protocol)
    for port_param in ("LocalPort", "RemotePort"):
        if port_param in p:
            if rule["Protocol"] not in ("TCP", "UDP"):
                raise CmdletError(
                    f"The {port_param} parameter can only be used with the TCP or UDP protocol."
                )
            rule[port_param] = ",".join(_ports(p[port_param]))
    try:
        ctx.host.firewall.add(rule)
    except FirewallError as exc:
        raise CmdletError(str(exc)) from exc
    return [rule_object(rule)]


@cmdlet("Get-NetFirewallRule", values=("Name", "DisplayName"), positional=("Name",))
def get_net_firewall_rule(ctx: Context, p: dict[str, Any], _in: list[Any] | None) -> list[Any]:
    out = []
    for rule in ctx.host.firewall.rules:
        if "Name" in p and not fnmatch.fnmatch(rule["Name"].lower(), str(p["Name"]).lower()):
            continue
        if "DisplayName" in p and not fnmatch.fnmatch(
            rule["DisplayName"].lower(), str(p["DisplayName"]).lower()
        ):
            continue
        out.append(rule_object(rule))
    if not out and ("Name" in p or "DisplayName" in p):
        which = "Name" if "Name" in p else "DisplayName"
        raise CmdletError(
            f"No MSFT_NetFirewallRule objects found with property '{which}' equal to "
            f"'{p[which]}'.  Verify the value of the property and retry."
        )
    return out


def _addresses(ctx: Context) -> list[dict[str, Any]]:
    host = ctx.host
    rows = [
        (host.address, 6, "Ethernet", "IPv4", host.prefix_length, "Dhcp"),
        ("fe80::" + _suffix(host.address) + "%6", 6, "Ethernet", "IPv6", 64, "WellKnown"),
        ("127.0.0.1", 1, "Loopback Pseudo-Interface 1", "IPv4", 8, "WellKnown"),
        ("::1", 1, "Loopback Pseudo-Interface 1", "IPv6", 128, "WellKnown"),
    ]
    return [
        {
            "IPAddress": ip,
            "InterfaceIndex": index,
            "InterfaceAlias": alias,
            "AddressFamily": family,
            "Type": "Unicast",
            "PrefixLength": prefix,
            "PrefixOrigin": origin,
            "SuffixOrigin": "Link" if family == "IPv6" and origin == "WellKnown" else origin,
            "AddressState": "Preferred",
            "ValidLifetime": "Infinite ([TimeSpan]::MaxValue)",
            "PreferredLifetime": "Infinite ([TimeSpan]::MaxValue)",
            "SkipAsSource": False,
            "PolicyStore": "ActiveStore",
        }
        for ip, index, alias, family, prefix, origin in rows
    ]


def _suffix(address: str) -> str:
    a, b, c, d = (int(x) for x in address.split("."))
    return f"215:5dff:fe{a ^ c:02x}:{b:02x}{d:02x}"


@cmdlet(
    "Get-NetIPAddress",
    values=("AddressFamily", "InterfaceAlias", "InterfaceIndex", "IPAddress"),
    positional=("IPAddress",),
)
def get_net_ip_address(ctx: Context, p: dict[str, Any], _in: list[Any] | None) -> list[Any]:
    rows = _addresses(ctx)
    if "AddressFamily" in p:
        family = str(p["AddressFamily"])
        if family.lower() not in ("ipv4", "ipv6"):
            raise CmdletError(
                f"Cannot process argument transformation on parameter 'AddressFamily'. Cannot "
                f'convert value "{family}" to type "AddressFamily".'
            )
        rows = [r for r in rows if r["AddressFamily"].lower() == family.lower()]
    if "InterfaceAlias" in p:
        pattern = str(p["InterfaceAlias"]).lower()
        rows = [r for r in rows if fnmatch.fnmatchcase(r["InterfaceAlias"].lower(), pattern)]
    if "InterfaceIndex" in p:
        rows = [r for r in rows if r["InterfaceIndex"] == int(p["InterfaceIndex"])]
    if "IPAddress" in p:
        rows = [r for r in rows if r["IPAddress"] == str(p["IPAddress"])]
    if not rows:
        raise CmdletError(
            "No matching MSFT_NetIPAddress objects found by CIM query for instances of the "
            "ROOT/StandardCimv2/MSFT_NetIPAddress class on the  CIM server. Verify query "
            "parameters and retry."
        )
    return rows
