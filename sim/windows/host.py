"""One SIMULATED Windows Server host: disk, SSH/SFTP server, services, HNS, power and boot.

The host keeps its `C:\\` drive under `<state_dir>/hosts/<address>/root/C`, its SSH host key
(ed25519), service registry, ACLs, firewall rules and HNS state beside it, so a process restart
or a VM stop/start keeps them. SSH (asyncssh) listens on (address, ssh_port) only while the host
is up and its `sshd` service runs (`openssh.py`: cloud images lack the OpenSSH Server until a
script installs it; BYOH hosts have it running). It accepts public-key auth for the spec's user
with the keys in `C:\\ProgramData\\ssh\\administrators_authorized_keys` (if sshd's ACL check
passes) plus `spec.authorized_keys`. At first boot the instance user data runs as SYSTEM through
the PowerShell interpreter (EC2Launch; at every boot with `<persist>true</persist>`); Azure
custom data is written to `C:\\AzureData\\CustomData.bin` and never run (a VM extension runs
it). `power_off()` / `power_on()` are a VM stop and start. Created by
`fleet.HostFleet.add_host`; used by tests through `.faults`, `.reboot()`, `.services`,
`.hns_networks`, `.root` (and `.scm`, the service registry, `.run(cmd)`, `.acls`, `.firewall`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncssh

from sim.windows import components, openssh, pwsh
from sim.windows import exec as win_exec
from sim.windows.acl import ADMINISTRATORS, FULL, SYSTEM, Ace, AclStore, Descriptor
from sim.windows.environment import SYSTEM_ACCOUNT
from sim.windows.faults import HostFaults
from sim.windows.firewall import Firewall
from sim.windows.hns import HnsState
from sim.windows.icacls import admin_sid
from sim.windows.services import ServiceManager
from sim.windows.sftp import HostSFTPServer

if TYPE_CHECKING:
    from sim.windows.fleet import HostSpec

log = logging.getLogger(__name__)
CUSTOM_DATA = "C/AzureData/CustomData.bin"
COMMAND_LOG_LIMIT = 2000
DEFAULT_TICK_SECONDS = 1.0
STOP_WAIT_SECONDS = 5.0  # how long a power-off waits for the host's tasks to end
_PS_WRAPPER = re.compile(r"<powershell>(.*?)</powershell>", re.S | re.I)
_PERSIST = re.compile(r"<persist>\s*true\s*</persist>", re.I)


class _SshServer(asyncssh.SSHServer):
    def __init__(self, host: SimulatedWindowsHost) -> None:
        self._host = host

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._host._conns.add(conn)

    def connection_lost(self, exc: Exception | None) -> None:
        self._host._conns = {c for c in self._host._conns if not c.is_closed()}

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return False

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        if username.lower() != self._host.username.lower():
            return False
        return key.public_data in self._host.authorized_key_blobs()


class SimulatedWindowsHost:
    def __init__(self, spec: HostSpec, state_dir: Path, kube_ca_pem: bytes | None, port: int):
        self.spec = spec
        self.command_log: list[str] = []
        # How often the simulated kubelet, hybrid-overlay and kube-proxy look at the world: a
        # simulated delay like boot time (the fleet sets it; near zero for overhead benchmarks).
        self.tick_seconds = DEFAULT_TICK_SECONDS
        self.address = spec.address
        self.username = spec.username
        self.port = port
        self.kube_ca_pem = kube_ca_pem
        self.dir = state_dir / "hosts" / spec.address
        self.root = self.dir / "root"
        self._state_file = self.dir / "state.json"
        state = json.loads(self._state_file.read_text()) if self._state_file.exists() else {}
        self.hostname: str = state.get("hostname", spec.hostname)
        self.pending_hostname: str | None = None
        self._first_boot_done: bool = state.get("first_boot_done", False)
        self.faults = HostFaults(self, spec.os_build)
        new_disk = not (self.dir / "registry.json").exists()
        self.scm = ServiceManager(self.root, self.dir / "registry.json", self._spawn)
        self.hns = HnsState(self.dir / "hns.json")
        self.acls = AclStore(self.root, self.dir / "acl.json")
        self.firewall = Firewall(self.dir / "firewall.json")
        self.sshd_log: list[str] = []  # the OpenSSH/Operational event log
        self.prefix_length = spec.prefix_length
        self._key_file = self.dir / "ssh_host_ed25519_key"
        self._host_key = self._load_host_key()
        self._acceptor: asyncssh.SSHAcceptor | None = None
        self._conns: set[asyncssh.SSHServerConnection] = set()
        self._up = False
        self._refuse_until = 0.0
        self._timers: set[asyncio.TimerHandle] = set()
        self._bg: set[asyncio.Future[Any]] = set()
        self._boot_task: asyncio.Task[None] | None = None
        self._listen_lock = asyncio.Lock()
        self._stopping = False
        self._powered = False
        self._prepare_disk(new_disk)

    # ---- identity ------------------------------------------------------------------------
    @property
    def os_build(self) -> str:
        return self.faults.os_build

    @property
    def services(self) -> dict[str, str]:
        """Service name -> "Running" / "Stopped" (the full registry is `.scm`)."""
        return self.scm.states()

    @property
    def hns_networks(self) -> dict[str, dict[str, Any]]:
        """Network name -> `Get-HnsNetwork` object."""
        return {n.name: n.as_object() for n in self.hns.networks.values()}

    @property
    def host_key_public(self) -> str:
        """The SSH host public key in OpenSSH format (`ssh-ed25519 AAAA...`)."""
        return self._host_key.export_public_key().decode().strip()

    @property
    def is_up(self) -> bool:
        """True once booted and (unless a refuse_ssh fault holds it) listening for SSH."""
        return self._up

    async def wait_up(self) -> None:
        """Wait for the current boot to finish (tests; add_host with no boot delay)."""
        while self._boot_task is not None and not self._boot_task.done():
            await asyncio.wait([self._boot_task])

    def _load_host_key(self) -> asyncssh.SSHKey:
        if self._key_file.exists():
            return asyncssh.read_private_key(str(self._key_file))
        return self._new_host_key()

    def _new_host_key(self) -> asyncssh.SSHKey:
        key = asyncssh.generate_private_key("ssh-ed25519")
        self.dir.mkdir(parents=True, exist_ok=True)
        key.write_private_key(str(self._key_file))
        return key

    def rotate_host_key(self) -> None:
        """A new SSH host key, as a re-imaged machine at this address has: the re-install
        restarted it, so the SSH sessions to the old system are gone too."""
        self._host_key = self._new_host_key()
        if self._acceptor is not None:
            self._acceptor.update(server_host_keys=[self._host_key])
        for conn in list(self._conns):
            conn.abort()
        self._conns.clear()

    @property
    def firewall_rules(self) -> list[dict[str, Any]]:
        return self.firewall.rules

    def authorized_key_blobs(self) -> set[bytes]:
        """The keys sshd accepts for the admin user right now (spec keys + the checked file)."""
        blobs = openssh.parse_keys(list(self.spec.authorized_keys))
        return blobs | openssh.admin_key_blobs(self)

    def _prepare_disk(self, new_disk: bool) -> None:
        """The image: a fresh disk gets the Windows layout, the OpenSSH client and (BYOH) the
        server an admin installed and set to start automatically."""
        for d in ("Windows/System32", "ProgramData", "Program Files", f"Users/{self.username}"):
            (self.root / "C" / d).mkdir(parents=True, exist_ok=True)
        profile = f"C:\\Users\\{self.username}"
        oici = frozenset({"OI", "CI"})
        self.acls.add_default(
            profile,
            Descriptor(
                SYSTEM,
                True,
                [
                    Ace(SYSTEM, FULL, flags=oici),
                    Ace(ADMINISTRATORS, FULL, flags=oici),
                    Ace(admin_sid(self), FULL, flags=oici),
                ],
            ),
        )
        if not new_disk:
            return
        openssh.install_client(self)
        if self.spec.openssh_server:
            openssh.install_server(self)
            self.scm.configure(openssh.SSHD_SERVICE, start_type="Automatic")

    def _save_state(self) -> None:
        self._state_file.write_text(
            json.dumps({"hostname": self.hostname, "first_boot_done": self._first_boot_done})
        )

    # ---- lifecycle -----------------------------------------------------------------------
    @property
    def powered_on(self) -> bool:
        """False while the VM is stopped (`power_off`), True from `start`/`power_on` on."""
        return self._powered

    def start(self) -> None:
        """Power on: boot after `spec.boot_seconds`."""
        self._powered = True
        self._boot_task = asyncio.create_task(self._boot(self.spec.boot_seconds))

    def power_on(self) -> None:
        """Start a stopped VM: the same disk boots again (Automatic services start)."""
        if not self._powered:
            self.start()

    async def _boot(self, delay: float) -> None:
        if delay > 0:
            await asyncio.sleep(delay)
        self._up = True
        self.scm.boot()
        if not self._first_boot_done:
            self._write_custom_data()
            self._run_user_data()
            self._first_boot_done = True
            self._save_state()
        elif self.spec.user_data and _PERSIST.search(self.spec.user_data):
            self._run_user_data()
        await self._listen()

    def _write_custom_data(self) -> None:
        if self.spec.custom_data is None:
            return
        path = self.root / CUSTOM_DATA
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.spec.custom_data)

    def _run_user_data(self) -> None:
        """EC2Launch: the `<powershell>` block runs as SYSTEM, once (or every boot, persisted)."""
        data = self.spec.user_data
        if not data:
            return
        m = _PS_WRAPPER.search(data)
        script = m.group(1) if m else data
        result = pwsh.run_script(self, script, user=SYSTEM_ACCOUNT)
        if result.exit_code != 0:
            log.warning("user data failed on %s: %s", self.address, result.stderr[:300])

    @property
    def sshd_running(self) -> bool:
        svc = self.scm.find(openssh.SSHD_SERVICE)
        return svc is not None and svc.status == "Running"

    async def open_ssh(self) -> None:
        """sshd started: listen on port 22 (once the host is up and no fault holds it)."""
        await self._listen()

    def ssh_service_stopped(self) -> None:
        """sshd stopped: the port closes; open sessions stay (they are separate processes)."""
        if not self._stopping:
            self._background(self._close_listener(drop_sessions=False))

    async def _listen(self) -> None:
        async with self._listen_lock:  # boot and a refuse_ssh timer may race to open the port
            loop = asyncio.get_running_loop()
            if self._acceptor is not None or not self._up or self._stopping:
                return
            if loop.time() < self._refuse_until or not self.sshd_running:
                return
            self._acceptor = await self._open_listener()

    async def _open_listener(self) -> asyncssh.SSHAcceptor:
        return await asyncssh.listen(
            host=self.address,
            port=self.port,
            server_factory=lambda: _SshServer(self),
            server_host_keys=[self._host_key],
            process_factory=self._handle_process,
            sftp_factory=lambda chan: HostSFTPServer(chan, self),
            allow_scp=False,
            reuse_address=True,
            x11_forwarding=False,
            agent_forwarding=False,
            allow_pty=False,
            keepalive_interval=0,
        )

    async def _close_listener(self, drop_sessions: bool) -> None:
        acceptor, self._acceptor = self._acceptor, None
        if acceptor is not None:
            acceptor.close()
            await acceptor.wait_closed()
        if drop_sessions:
            for conn in list(self._conns):
                conn.abort()
            self._conns.clear()

    def _later(self, delay: float, coro_fn: Any) -> None:
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._timers.discard(handle)
            if not self._stopping:
                self._background(coro_fn())

        handle = loop.call_later(delay, fire)
        self._timers.add(handle)

    def _background(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._bg.add(task)
        task.add_done_callback(self._bg.discard)

    def close_ssh_for(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        self._refuse_until = loop.time() + seconds
        self._background(self._close_listener(drop_sessions=False))
        self._later(seconds, self._listen)

    def request_reboot(self) -> None:
        """Restart-Computer: the reboot begins once the current command has answered."""
        self._later(0.05, self.reboot)

    async def reboot(self) -> None:
        """Drop SSH and services, lose non-persistent HNS state, come back after boot_seconds."""
        await self._shut_down()
        self._boot_task = asyncio.create_task(self._boot(self.spec.boot_seconds))

    async def power_off(self) -> None:
        """VM stop: off the network, services stopped; the disk (files, service definitions,
        ACLs, firewall rules, persistent HNS networks) stays for `power_on`."""
        self._powered = False
        await self._shut_down()

    async def _shut_down(self) -> None:
        self._up = False
        if self._boot_task is not None and not self._boot_task.done():
            self._boot_task.cancel()
            await asyncio.gather(self._boot_task, return_exceptions=True)
        await self._close_listener(drop_sessions=True)
        tasks = self.scm.shutdown()
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        self.hns.reboot()
        if self.pending_hostname:
            self.hostname, self.pending_hostname = self.pending_hostname, None
            self._save_state()

    async def stop(self) -> None:
        """Power off for good (fleet shutdown/removal)."""
        self._stopping = True
        self._up = False
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        pending = set(self._bg)
        if self._boot_task is not None and not self._boot_task.done():
            pending.add(self._boot_task)
        for task in pending:
            task.cancel()
        if pending:  # a power-off does not wait on a task that ignores its cancellation
            _, stuck = await asyncio.wait(pending, timeout=STOP_WAIT_SECONDS)
            for task in stuck:
                log.warning("simulated host %s: %r still running at power-off", self.address, task)
        await self._close_listener(drop_sessions=True)
        tasks = self.scm.shutdown()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)

    # ---- exec ----------------------------------------------------------------------------
    async def run(self, command: str, user: str | None = None) -> tuple[str, str, int]:
        """Run one command line as the SSH exec channel would (also handy for tests), as `user`
        (default: the admin account; "SYSTEM" for what a VM agent runs).

        Every line is kept in `command_log` (the last COMMAND_LOG_LIMIT), so tests can tell how
        often a step really ran on the host.
        """
        self.command_log.append(command)
        del self.command_log[:-COMMAND_LOG_LIMIT]
        return await win_exec.run_command(self, command, user)

    async def _handle_process(self, process: asyncssh.SSHServerProcess[str]) -> None:
        command = process.command
        if command is None:
            process.stderr.write("The simulated host offers no interactive shell.\r\n")
            process.exit(1)
            return
        try:
            out, err, code = await self.run(command)
        except Exception as exc:  # a bug in the twin: say so loudly, keep serving
            log.exception("simulated command failed on %s", self.address)
            out, err, code = "", f"sim internal error: {exc!r}\r\n", 1
        if out:
            process.stdout.write(out)
        if err:
            process.stderr.write(err)
        process.exit(code)

    def _spawn(self, svc: Any) -> asyncio.Task[None] | None:
        return components.spawn(self, svc)
