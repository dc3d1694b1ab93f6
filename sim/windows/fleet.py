"""`HostFleet`: many SIMULATED Windows hosts in one process (the API in sim/README.md).

`HostFleet(state_dir, kube_ca_pem=None, ssh_port=22)`; `await fleet.start()`;
`await fleet.add_host(HostSpec(...))` creates the host (its disk, key and registry persist under
`state_dir/hosts/<address>/`) and powers it on (SSH comes up after `boot_seconds`, once sshd
runs); `remove_host`, `get`, `hosts`, `await fleet.stop()`. A host's `power_off()` /
`power_on()` stop and start its VM (it stays in the fleet). `on_add` callbacks see every new host
before it powers on (tests use them to inject faults into hosts a cloud twin creates).
Used by tests, the bench (`sim/windows/bench.py`), the cloud twins (a running instance gets a
host) and `python -m sim up`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sim.windows.host import SimulatedWindowsHost


@dataclass(frozen=True)
class HostSpec:
    address: str
    hostname: str
    username: str = "Administrator"
    user_data: str | None = None  # run at first boot (EC2Launch runs `<powershell>` user data)
    custom_data: bytes | None = None  # Azure: only written to C:\AzureData\CustomData.bin
    authorized_keys: tuple[str, ...] = ()
    boot_seconds: float = 0.0
    os_build: str = "10.0.17763.1457"
    cloud: str = "byoh"
    # The image has the OpenSSH Server capability, sshd set to Automatic (None: BYOH hosts
    # do, since an admin prepared them; AWS and Azure images do not).
    openssh: bool | None = None
    prefix_length: int = 24  # of the host's subnet (Get-NetIPAddress)

    @property
    def openssh_server(self) -> bool:
        return self.cloud == "byoh" if self.openssh is None else self.openssh


class HostFleet:
    def __init__(
        self,
        state_dir: str | Path,
        kube_ca_pem: bytes | None = None,
        ssh_port: int = 22,
        tick_seconds: float = 1.0,
    ):
        self.state_dir = Path(state_dir)
        self.kube_ca_pem = kube_ca_pem
        self.ssh_port = ssh_port
        self._hosts: dict[str, SimulatedWindowsHost] = {}
        self.tick_seconds = tick_seconds  # the hosts' component poll interval (simulated delay)
        self.on_add: list[Callable[[SimulatedWindowsHost], None]] = []

    async def start(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)

    async def stop(self) -> None:
        hosts, self._hosts = list(self._hosts.values()), {}
        await asyncio.gather(*(h.stop() for h in hosts))

    async def add_host(self, spec: HostSpec) -> SimulatedWindowsHost:
        if spec.address in self._hosts:
            raise ValueError(f"a simulated host already has address {spec.address}")
        host = SimulatedWindowsHost(spec, self.state_dir, self.kube_ca_pem, self.ssh_port)
        host.tick_seconds = self.tick_seconds
        self._hosts[spec.address] = host
        for callback in list(self.on_add):
            callback(host)
        host.start()
        if spec.boot_seconds <= 0:
            await host.wait_up()
        return host

    async def remove_host(self, address: str) -> None:
        host = self._hosts.pop(address, None)
        if host is not None:
            await host.stop()

    def get(self, address: str) -> SimulatedWindowsHost:
        return self._hosts[address]

    @property
    def hosts(self) -> list[SimulatedWindowsHost]:
        return list(self._hosts.values())
