"""How a pool's settings become the inputs of the node workflows it runs (pure).

Shared by `WindowsPool` (scale up and down), `UpgradeWindowsPool` (replacements) and
`ReconcileWindowsPool` (drift): the onboarding input of a new or re-configured node, the host a
decommission reaches, the pool VM it deletes, the decommission itself.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.contracts import (
        ByohHostSpec,
        DecommissionInput,
        HostAddress,
        HostRef,
        OnboardNodeInput,
        Platform,
        PoolVm,
    )
    from activities.pool_contracts import NodeView, PoolSpec

# The SSH user of each cloud's Windows images (WMCO's); BYOH hosts name theirs.
USERNAMES = {Platform.AWS: "Administrator", Platform.AZURE: "capi"}


def username(spec: PoolSpec, address: str, hosts: tuple[ByohHostSpec, ...] = ()) -> str:
    if spec.platform == Platform.BYOH:
        for h in (*hosts, *spec.byoh_hosts):
            if h.address == address:
                return h.username
        return ByohHostSpec().username
    return USERNAMES[spec.platform]


def onboard_input(
    spec: PoolSpec, name: str, version: str, host: ByohHostSpec | None = None
) -> OnboardNodeInput:
    """The onboarding of node `name` for the pool (BYOH: on `host`)."""
    return OnboardNodeInput(
        pool=spec.name,
        node_name=name,
        platform=spec.platform,
        aws=spec.aws if spec.platform == Platform.AWS else None,
        azure=spec.azure if spec.platform == Platform.AZURE else None,
        byoh=host if spec.platform == Platform.BYOH else None,
        private_key_secret=spec.private_key_secret,
        version=version,
    )


def host_of(spec: PoolSpec, node: NodeView, hosts: tuple[ByohHostSpec, ...] = ()) -> HostRef:
    """Where a member node runs, for a decommission (deconfigure, pin)."""
    return HostRef(
        platform=spec.platform,
        address=HostAddress(node.address),
        username=username(spec, node.address, hosts),
        pool=spec.name,
        node_name=node.name,
    )


def pool_vm(spec: PoolSpec, node_name: str) -> PoolVm:
    """The pool's VM of `node_name`, found by its tags when it is deleted."""
    return PoolVm(
        pool=spec.name,
        node_name=node_name,
        platform=spec.platform,
        region=spec.aws.region if spec.aws else "",
        resource_group=spec.azure.resource_group if spec.azure else "",
    )


def decommission_input(
    spec: PoolSpec,
    host: HostRef,
    reason: str,
    *,
    drain: bool = True,
    in_place: bool = False,
    forget_pin: bool = False,
) -> DecommissionInput:
    """Taking node `host.node_name` out of the pool: drained within the pool's drain timeout,
    its Node deleted; its cloud VM deleted, or a BYOH host (or one upgraded in place)
    deconfigured."""
    keep_machine = in_place or spec.platform == Platform.BYOH
    return DecommissionInput(
        node_name=host.node_name,
        pool=spec.name,
        reason=reason,
        host=host,
        private_key_secret=spec.private_key_secret,
        drain=drain,
        drain_timeout_s=float(spec.upgrade.drain_timeout_s),
        force_drain=spec.upgrade.on_drain_timeout.value == "Force",
        deconfigure=keep_machine,
        delete_node=True,
        retire_vm=None if keep_machine else pool_vm(spec, host.node_name),
        forget_pin=forget_pin,
    )
