"""SSH and SFTP sessions to Windows hosts: the only place that talks asyncssh.

`open_session` logs in with the key from a Kubernetes Secret (activities/keys.py), pins the
host key on first use and refuses a changed one (activities/hostkeys.py). Sessions of all
activities on this worker share one connection per host, login and key (activities/ssh_pool.py):
the host key is checked against the pin when the connection is made, and the pin is compared
with it again at each checkout; a broken connection is dropped and the next session dials anew.
A `HostSession` runs `WindowsCommand`s built by `activities/windows/` (each in a channel of its
own) and copies files, resuming partial copies. Every asyncssh/socket exception of a
connection, command or transfer is translated here, in `_translate`, into a winfleet error (key
parsing errors: activities/keys.py); one that means the connection broke also drops it.
Used by every activity that touches a host (host, payload, kubelet, network, deconfigure).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import asyncssh

from activities import blocking, hostkeys, ssh_pool
from activities.config import settings
from activities.errors import (
    HostKeyMismatch,
    HostUnreachable,
    RemoteCommandFailed,
    SshAuthenticationFailed,
    TransferInterrupted,
    WinfleetError,
)
from activities.keys import import_host_key, load_private_key
from activities.tracing import span
from activities.windows.paths import WindowsPath, sftp_path
from activities.windows.powershell import WindowsCommand, get_file_hash, powershell, to_json
from activities.windows.probe import file_hashes, parse_file_hashes

CHUNK_BYTES = 1 << 20  # per SFTP write call; asyncssh pipelines it in smaller requests
STDERR_EXCERPT = 300
KEEPALIVE_INTERVAL_S = 15.0  # notice a host that went away (reboot) within a minute
# AES-GCM first: AES-NI does it in hardware and asyncssh keeps one cipher object per
# direction, where chacha20-poly1305 (asyncssh's first choice) builds new ciphers for every
# packet, a cost the worker pays on each of the payload's thousands of packets. Windows' OpenSSH
# offers all of these; the rest of asyncssh's defaults follow.
ENCRYPTION_ALGS = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
    "aes256-ctr",
    "aes192-ctr",
    "aes128-ctr",
)


@dataclass(frozen=True)
class CommandResult:
    exit_status: int  # -1 when the command ended without one (connection lost, signal)
    stdout: str
    stderr: str


class _PinningPolicy(asyncssh.SSHClient):
    """Trust on first use: asyncssh asks us only about keys that are not the pinned one."""

    def __init__(self, pinned: asyncssh.SSHKey | None) -> None:
        self.pinned = pinned
        self.refused: asyncssh.SSHKey | None = None

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        if self.pinned is None:
            return True  # first contact: accepted, pinned once login succeeds
        self.refused = key
        return False


def _translate(
    exc: BaseException,
    address: str,
    doing: str,
    *,
    transfer: bool = False,
    policy: _PinningPolicy | None = None,
) -> WinfleetError:
    """The one mapping from asyncssh/socket exceptions to winfleet errors."""
    detail = f"{type(exc).__name__}: {str(exc)[:STDERR_EXCERPT]}"
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        pinned = policy.pinned.get_fingerprint() if policy and policy.pinned else "?"
        seen = policy.refused.get_fingerprint() if policy and policy.refused else "another key"
        return HostKeyMismatch(
            f"{doing}: host {address} presented SSH host key {seen}, but {pinned} is pinned for "
            "it: possible impersonation. If the machine was legitimately re-installed, "
            "deprovision it (which forgets the pin) and onboard it again."
        )
    if (
        isinstance(exc, asyncssh.KeyExchangeFailed)
        and policy is not None
        and policy.pinned is not None
        and "host key" in str(exc)
    ):
        return HostKeyMismatch(
            f"{doing}: host {address} no longer offers a {policy.pinned.algorithm.decode()} host "
            f"key, the type pinned for it ({detail}): possible impersonation. If the machine was "
            "legitimately re-installed, deprovision it (which forgets the pin) and onboard it "
            "again."
        )
    if isinstance(exc, asyncssh.PermissionDenied):
        return SshAuthenticationFailed(
            f"{doing}: host {address} refused our SSH key ({detail}). Put the matching public "
            r"key in C:\ProgramData\ssh\administrators_authorized_keys (re-provision the "
            "machine, or fix it by hand for BYOH) and start again."
        )
    if isinstance(exc, asyncssh.SFTPError) and not isinstance(
        exc, asyncssh.SFTPConnectionLost | asyncssh.SFTPFailure
    ):
        return RemoteCommandFailed(
            f"{doing} on {address}: the host's SFTP server refused ({detail}); check that the "
            "target directory exists and the SSH user may write to it"
        )
    if transfer:
        return TransferInterrupted(
            f"{doing} on {address} broke off ({detail}); the next attempt resumes the copy"
        )
    return HostUnreachable(
        f"{doing}: cannot reach {address} over SSH ({detail}); the host may be booting or "
        "rebooting, or port 22 is blocked; retrying"
    )


_SSH_ERRORS = (asyncssh.Error, OSError)  # OSError covers refused, reset, timeouts, no route


def _refused_by_sftp_server(exc: BaseException) -> bool:
    """An SFTP status answer (no such file, permission denied): the channel is fine."""
    return isinstance(exc, asyncssh.SFTPError) and not isinstance(
        exc, asyncssh.SFTPConnectionLost | asyncssh.SFTPFailure
    )


def _host_key_of(conn: asyncssh.SSHClientConnection) -> asyncssh.SSHKey:
    host_key = conn.get_server_host_key()
    assert host_key is not None  # public-key exchange always has one
    return host_key


def _openssh(key: asyncssh.SSHKey) -> str:
    """`<type> <base64>` of a public key."""
    algorithm, blob = key.export_public_key("openssh").decode().split()[:2]
    return f"{algorithm} {blob}"


class HostSession:
    """An authenticated SSH session to one Windows host (open it with `open_session`), on a
    connection it may share with other sessions to the same host."""

    def __init__(
        self, shared: ssh_pool.SharedConnection, address: str, node_name: str | None
    ) -> None:
        self._shared = shared
        self._conn = shared.conn
        self.address = address
        self.node_name = node_name
        self.pinned_now = False  # this session pinned the host key (first contact)
        self._host_key = _host_key_of(shared.conn)

    @property
    def presented_host_key(self) -> str:
        """The host's SSH key, OpenSSH `<type> <base64>`."""
        return _openssh(self._host_key)

    @property
    def host_key_fingerprint(self) -> str:
        """`SHA256:...`, as `ssh-keygen -l` prints it."""
        return self._host_key.get_fingerprint("sha256")

    def discard(self) -> None:
        """The connection is going away (the host reboots): no later session may use it."""
        self._shared.broken = True

    @contextmanager
    def _translated(self, doing: str, *, transfer: bool = False) -> Iterator[None]:
        try:
            yield
        except _SSH_ERRORS as exc:
            if not _refused_by_sftp_server(exc):
                self.discard()  # the connection (or its SFTP channel) broke: dial anew
            raise _translate(exc, self.address, doing, transfer=transfer) from exc

    # --- commands ----------------------------------------------------------------------------
    async def run(self, cmd: WindowsCommand, *, check: bool = True) -> CommandResult:
        """Run one command line. With `check`, a non-zero exit or a missing success line raises
        RemoteCommandFailed naming the host, the command's display text and stderr's start."""
        with (
            span("ssh run", host=self.address, node=self.node_name, command=cmd.display) as s,
            self._translated(cmd.display),
        ):
            proc = await self._conn.run(cmd.line, check=False, encoding="utf-8", errors="replace")
            result = CommandResult(
                exit_status=-1 if proc.exit_status is None else proc.exit_status,
                stdout=str(proc.stdout or ""),
                stderr=str(proc.stderr or ""),
            )
            s.set_attribute("winfleet.exit_status", result.exit_status)
            if check:
                self._check(cmd, result)
        return result

    def _check(self, cmd: WindowsCommand, result: CommandResult) -> None:
        stderr = result.stderr.strip()[:STDERR_EXCERPT]
        if result.exit_status != 0:
            raise RemoteCommandFailed(
                f"{cmd.display} failed on {self.address} (exit {result.exit_status}): {stderr}"
            )
        if cmd.success_line is not None and cmd.success_line not in result.stdout:
            raise RemoteCommandFailed(
                f"{cmd.display} on {self.address} exited 0 but did not print "
                f"{cmd.success_line!r}: {stderr or result.stdout.strip()[-STDERR_EXCERPT:]}"
            )

    async def run_json(self, cmd: WindowsCommand) -> Any:
        """Run a command whose stdout is JSON (`to_json(...)`); empty output is None."""
        result = await self.run(cmd)
        text = result.stdout.strip()
        if not text:
            return None
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise RemoteCommandFailed(
                f"{cmd.display} on {self.address} printed something other than JSON: "
                f"{text[:STDERR_EXCERPT]!r}"
            ) from exc

    # --- files -------------------------------------------------------------------------------
    async def _sftp_client(self) -> asyncssh.SFTPClient:
        """The connection's SFTP client, started by the first session that needs one."""
        shared = self._shared
        async with shared.sftp_lock:
            if shared.sftp is None:
                with self._translated("starting SFTP", transfer=True):
                    shared.sftp = await self._conn.start_sftp_client()
        return shared.sftp

    async def remote_size(self, path: WindowsPath) -> int | None:
        """Size of a remote file in bytes, or None if it does not exist."""
        sftp = await self._sftp_client()
        with self._translated(f"stat {path}", transfer=True):
            try:
                attrs = await sftp.stat(sftp_path(path))
            except asyncssh.SFTPNoSuchFile:
                return None
        return attrs.size

    async def remote_sha256(self, path: WindowsPath) -> str | None:
        """Lowercase SHA-256 hex of a remote file (Get-FileHash), or None if it is missing."""
        if await self.remote_size(path) is None:
            return None
        found = await self.run_json(
            powershell(to_json(get_file_hash(path)), display=f"hash {path}")
        )
        if not isinstance(found, dict) or not isinstance(found.get("Hash"), str):
            raise RemoteCommandFailed(
                f"hash {path} on {self.address}: unexpected Get-FileHash output {found!r:.200}"
            )
        return str(found["Hash"]).lower()

    async def existing(self, paths: Sequence[WindowsPath]) -> list[WindowsPath]:
        """Those of `paths` that exist, their stats sent together on the SFTP channel (the
        first opens it)."""
        if not paths:
            return []
        first, *rest = paths
        sizes = [await self.remote_size(first), *await asyncio.gather(*map(self.remote_size, rest))]
        return [p for p, size in zip(paths, sizes, strict=True) if size is not None]

    async def remote_sha256s(self, paths: Sequence[WindowsPath]) -> dict[str, str]:
        """Lowercase path -> lowercase SHA-256 hex of those of `paths` that exist: one
        Get-FileHash hashes them all (one remote process, not one per file)."""
        present = await self.existing(paths)
        if not present:
            return {}
        what = f"hash {len(present)} files"
        result = await self.run(powershell(file_hashes(present), display=what))
        return parse_file_hashes(result.stdout, f"{what} on {self.address}")

    async def read_bytes(self, path: WindowsPath, *, limit: int) -> bytes | None:
        """The whole remote file (at most `limit` bytes), or None if it does not exist.

        Read into memory only; the span records the path, never the content.
        """
        sftp = await self._sftp_client()
        with (
            span("sftp get", host=self.address, node=self.node_name, path=path),
            self._translated(f"reading {path}", transfer=True),
        ):
            try:
                async with sftp.open(sftp_path(path), "rb") as f:
                    data = await f.read(limit + 1)
            except asyncssh.SFTPNoSuchFile:
                return None
        raw = data if isinstance(data, bytes) else data.encode()  # "rb": always bytes
        if len(raw) > limit:
            raise RemoteCommandFailed(
                f"{path} on {self.address} is larger than the {limit} bytes expected of it"
            )
        return raw

    async def put_bytes(self, data: bytes, remote: WindowsPath) -> None:
        """Write `data` as the whole remote file (its directory must exist)."""
        sftp = await self._sftp_client()
        with (
            span("sftp put", host=self.address, node=self.node_name, path=remote, size=len(data)),
            self._translated(f"writing {remote}", transfer=True),
        ):
            async with sftp.open(sftp_path(remote), "wb") as f:
                await f.write(data, 0)

    async def put_file(
        self,
        local: Path,
        remote: WindowsPath,
        *,
        expected_sha256: str | None = None,
        on_progress: Callable[[int], None] | None = None,
    ) -> int:
        """Copy `local` to `remote`, returning the bytes sent.

        A shorter remote file whose content is a prefix of `local` (an interrupted copy) is
        completed rather than sent again. With `expected_sha256`, the remote result is checked
        with Get-FileHash; a mismatch raises TransferInterrupted (the next attempt starts over).
        `on_progress` gets the bytes sent so far, after each chunk (e.g. to heartbeat).
        """
        size = (await blocking.run(local.stat)).st_size
        offset = 0
        remote_size = await self.remote_size(remote)
        if remote_size and remote_size <= size:
            prefix = await blocking.run(_sha256_of, local, remote_size)
            if await self.remote_sha256(remote) == prefix:
                offset = remote_size
        sent = await self._upload(local, remote, offset, size, on_progress)
        if expected_sha256 is not None:
            actual = await self.remote_sha256(remote)
            if actual != expected_sha256.lower():
                raise TransferInterrupted(
                    f"copy of {local.name} to {remote} on {self.address} ended with SHA256 "
                    f"{actual}, expected {expected_sha256.lower()}; the next attempt copies it "
                    "again"
                )
        return sent

    async def _upload(
        self,
        local: Path,
        remote: WindowsPath,
        offset: int,
        size: int,
        on_progress: Callable[[int], None] | None,
    ) -> int:
        if offset == size:
            return 0
        sftp = await self._sftp_client()
        with (
            span(
                "sftp put",
                host=self.address,
                node=self.node_name,
                path=remote,
                size=size,
                resume_from=offset,
            ),
            self._translated(f"copying {local.name} to {remote}", transfer=True),
        ):
            async with sftp.open(sftp_path(remote), "r+b" if offset else "wb") as f:
                pos = offset
                while pos < size:
                    chunk = await blocking.run(_read_chunk, local, pos, CHUNK_BYTES)
                    if not chunk:
                        break  # the local file shrank; the hash check will tell
                    await f.write(chunk, pos)
                    pos += len(chunk)
                    if on_progress is not None:
                        on_progress(pos - offset)
        return pos - offset

    def close(self) -> None:
        """Done with the session; its connection stays for the next one (or is dropped if
        it broke)."""
        ssh_pool.pool().release(self._shared)


def _read_chunk(path: Path, offset: int, size: int) -> bytes:
    with path.open("rb") as f:
        f.seek(offset)
        return f.read(size)


def _sha256_of(path: Path, length: int) -> str:
    """SHA-256 hex of the first `length` bytes of `path`."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        remaining = length
        while remaining > 0:
            block = f.read(min(remaining, CHUNK_BYTES))
            if not block:
                break
            digest.update(block)
            remaining -= len(block)
    return digest.hexdigest()


class HostTarget(Protocol):
    """What every host-side activity input carries: where to log in, and which key to use."""

    @property
    def node_name(self) -> str: ...
    @property
    def address(self) -> str: ...
    @property
    def username(self) -> str: ...
    @property
    def private_key_secret(self) -> str: ...


def session_for(target: HostTarget) -> AbstractAsyncContextManager[HostSession]:
    """`open_session` for an activity input that names its host (the usual case)."""
    return open_session(
        target.address,
        target.username,
        private_key_secret=target.private_key_secret,
        node_name=target.node_name,
    )


@asynccontextmanager
async def open_session(
    address: str,
    username: str,
    *,
    private_key_secret: str,
    node_name: str | None,
    port: int | None = None,
) -> AsyncIterator[HostSession]:
    """An authenticated session to `address`; the host key is pinned on first use.

    Raises SshAuthenticationFailed / HostKeyMismatch (permanent) or HostUnreachable.
    """
    port = port or settings().ssh_port
    client_key = await load_private_key(private_key_secret)
    try:
        session = await _checkout(address, port, username, client_key, node_name)
    except SshAuthenticationFailed:
        # The Secret may have changed since the cache saw it: once more with the API's copy.
        current = await load_private_key(private_key_secret, fresh=True)
        if current.get_fingerprint() == client_key.get_fingerprint():
            raise
        session = await _checkout(address, port, username, current, node_name)
    try:
        yield session
    finally:
        session.close()


async def _checkout(
    address: str, port: int, username: str, client_key: asyncssh.SSHKey, node_name: str | None
) -> HostSession:
    """A session on the shared connection for this host, login and key (dialled if there is
    none, or if its host key is no longer the pinned one), with the pin recorded."""
    pool = ssh_pool.pool()
    key = ssh_pool.ConnectionKey(address, port, username, client_key.get_fingerprint())
    async with pool.lock(key):
        pin = await hostkeys.lookup(address, node_name)
        shared = pool.take(key)
        if (
            shared is not None
            and pin.key
            and _normal(pin.key) != _openssh(_host_key_of(shared.conn))
        ):
            pool.release(shared)
            pool.drop(shared)  # the pin changed: check the host against it on a new connection
            shared = None
        if shared is None:
            try:
                conn = await _dial(address, port, username, client_key, node_name, pin.key)
            except HostKeyMismatch:
                # Judged on the cache: confirm against the pin as the API has it.
                fresh = await hostkeys.lookup(address, node_name, fresh=True)
                if fresh.key == pin.key:
                    raise
                pin = fresh
                conn = await _dial(address, port, username, client_key, node_name, pin.key)
            shared = pool.add(ssh_pool.SharedConnection(key, conn))
    session = HostSession(shared, address, node_name)
    try:
        if pin.key is None or (pin.node_exists and not pin.on_node):
            await hostkeys.pin(address, node_name, session.presented_host_key)
            session.pinned_now = pin.key is None
    except BaseException:
        session.discard()  # a host whose key could not be pinned is not used again
        session.close()
        raise
    return session


def _normal(openssh: str) -> str:
    return " ".join(openssh.split()[:2])


async def _dial(
    address: str,
    port: int,
    username: str,
    client_key: asyncssh.SSHKey,
    node_name: str | None,
    pinned: str | None,
) -> asyncssh.SSHClientConnection:
    """A new authenticated connection whose host key is `pinned` (any key when None)."""
    cfg = settings()
    policy = _PinningPolicy(import_host_key(address, pinned) if pinned else None)
    trusted = [policy.pinned] if policy.pinned is not None else []
    doing = f"SSH login as {username}"
    with span("ssh connect", host=address, node=node_name):
        try:
            return await asyncssh.connect(
                address,
                port=port,
                username=username,
                client_keys=[client_key],
                known_hosts=(trusted, [], []),
                client_factory=lambda: policy,
                preferred_auth="publickey",
                agent_path=None,
                config=None,
                connect_timeout=cfg.ssh_connect_timeout,
                login_timeout=cfg.ssh_connect_timeout * 3,
                keepalive_interval=KEEPALIVE_INTERVAL_S,
                encryption_algs=list(ENCRYPTION_ALGS),
            )
        except _SSH_ERRORS as exc:
            raise _translate(exc, address, doing, policy=policy) from exc
