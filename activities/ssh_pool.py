"""SSH connections shared by the activities that run on one worker: one per host and login.

Connecting costs a TCP and SSH handshake, a key exchange and a public-key login on both ends;
an onboarding opens a session in almost every phase, and `wait_for_ssh` once per dial. So
`activities/ssh.py` keeps each authenticated connection here, keyed by address, port, user and
the fingerprint of the client key (a rotated key gets a new connection), and hands it to the
next session for the same key. The host key was checked against the pin when the connection was
made; ssh.py compares the pin again at every checkout (from the cache) and drops a connection
whose host key is no longer the pinned one. A connection that broke (closed by the host, a
reboot, an error in a session) is dropped, never handed out again; one no session used for
`IDLE_CLOSE_S` is closed. Nothing about a session's work changes: every command still runs in a
channel of its own, and an activity that fails is retried by Temporal as before.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

import asyncssh

from activities.config import on_settings_change

IDLE_CLOSE_S = 30.0  # a connection unused this long is closed (phases follow within seconds)


@dataclass(frozen=True)
class ConnectionKey:
    address: str
    port: int
    username: str
    client_key: str  # SHA256 fingerprint of the key we log in with


@dataclass(eq=False)
class SharedConnection:
    """An authenticated connection and what its sessions share (one SFTP client)."""

    key: ConnectionKey
    conn: asyncssh.SSHClientConnection
    sftp: asyncssh.SFTPClient | None = None
    sftp_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0
    broken: bool = False
    idle_timer: asyncio.TimerHandle | None = None

    def usable(self) -> bool:
        return not self.broken and not self.conn.is_closed()

    def close(self) -> None:
        self.broken = True
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None
        with contextlib.suppress(Exception):  # closing a half-dead connection may complain
            if self.sftp is not None:
                self.sftp.exit()
            self.conn.close()


class Pool:
    """The shared connections of one event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._connections: dict[ConnectionKey, SharedConnection] = {}
        self._locks: dict[ConnectionKey, asyncio.Lock] = {}

    def lock(self, key: ConnectionKey) -> asyncio.Lock:
        """Held while checking out `key`, so parallel sessions to a new host dial once."""
        return self._locks.setdefault(key, asyncio.Lock())

    def take(self, key: ConnectionKey) -> SharedConnection | None:
        """The live connection for `key`, now in use by one more session; None if there is
        none (a broken one is dropped)."""
        shared = self._connections.get(key)
        if shared is None:
            return None
        if not shared.usable():
            self.drop(shared)
            return None
        self._use(shared)
        return shared

    def add(self, shared: SharedConnection) -> SharedConnection:
        """A new connection, in use by the session that made it."""
        old = self._connections.get(shared.key)
        if old is not None and old is not shared:
            self.drop(old)
        self._connections[shared.key] = shared
        self._use(shared)
        return shared

    def _use(self, shared: SharedConnection) -> None:
        shared.users += 1
        if shared.idle_timer is not None:
            shared.idle_timer.cancel()
            shared.idle_timer = None

    def release(self, shared: SharedConnection) -> None:
        """A session is done with it; close it now if broken, else once idle long enough."""
        shared.users -= 1
        if not shared.usable():
            self.drop(shared)
        elif shared.users == 0:
            shared.idle_timer = self.loop.call_later(IDLE_CLOSE_S, self._idle, shared)

    def _idle(self, shared: SharedConnection) -> None:
        shared.idle_timer = None
        if shared.users == 0:
            self.drop(shared)

    def drop(self, shared: SharedConnection) -> None:
        """Never hand it out again; close it once no session uses it."""
        shared.broken = True
        if self._connections.get(shared.key) is shared:
            del self._connections[shared.key]
        if shared.users <= 0:
            shared.close()

    def connected_to(self, address: str) -> bool:
        """Whether a connection to `address` is open and may be handed out."""
        return any(c.usable() for k, c in self._connections.items() if k.address == address)

    def close_all(self) -> None:
        for shared in list(self._connections.values()):
            self._connections.pop(shared.key, None)
            shared.close()
        self._locks.clear()


_current: list[Pool] = []


def pool() -> Pool:
    """The pool of the running event loop (a new loop, as in tests, gets a new pool)."""
    loop = asyncio.get_running_loop()
    if _current and _current[0].loop is not loop:
        close_all()
    if not _current:
        _current.append(Pool(loop))
    return _current[0]


def close_all() -> None:
    """Close every shared connection (settings changed, or the worker stops)."""
    while _current:
        _current.pop().close_all()


on_settings_change(close_all)
