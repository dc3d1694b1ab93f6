"""The Service Control Manager of a SIMULATED Windows host.

Keeps the service registry (name, binPath, start type, dependencies, description, failure
actions, state), persisted as JSON beside the host's disk so it survives reboots and process
restarts. Starting a service behaves like the SCM: its dependencies are started first (a missing
one fails with 1075, one that cannot start with 1068), its binary must exist on the host's disk
(error 2), and the binary's simulated behaviour (kubelet, hybrid-overlay, kube-proxy; see
`components.py`) runs as an asyncio task. A task that ends by itself is a crash: the service
stops and, if failure actions say so, is restarted after the given delay.
Used by the PowerShell service cmdlets, sc.exe, WMCB and the host's boot sequence.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sim.windows import cmdline, paths

START_TYPES = ("Automatic", "Manual", "Disabled")

MESSAGES = {
    2: "The system cannot find the file specified.",
    1051: "A stop control has been sent to a service that other running services are dependent on.",
    1056: "An instance of the service is already running.",
    1058: "The service cannot be started, either because it is disabled or because it has no "
    "enabled devices associated with it.",
    1060: "The specified service does not exist as an installed service.",
    1062: "The service has not been started.",
    1068: "The dependency service or group failed to start.",
    1072: "The specified service has been marked for deletion.",
    1073: "The specified service already exists.",
    1075: "The dependency service does not exist or has been marked for deletion.",
}


class ServiceError(Exception):
    """An SCM failure carrying the Win32 error code."""

    def __init__(self, code: int, name: str = "") -> None:
        super().__init__(MESSAGES.get(code, f"Win32 error {code}"))
        self.code = code
        self.name = name


@dataclass
class Service:
    name: str
    bin_path: str
    start_type: str = "Manual"
    display_name: str = ""
    description: str = ""
    depends_on: list[str] = field(default_factory=list)
    failure_reset_seconds: int = 0
    failure_actions: list[tuple[str, int]] = field(default_factory=list)
    status: str = "Stopped"
    marked_for_delete: bool = False


Spawner = Callable[[Service], "asyncio.Task[None] | None"]


class ServiceManager:
    """Registry + lifecycle of one host's services."""

    def __init__(self, root: Path, registry_file: Path, spawn: Spawner) -> None:
        self._root = root
        self._file = registry_file
        self._spawn = spawn
        self._services: dict[str, Service] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._failures: dict[str, int] = {}
        self._recovery: dict[str, asyncio.TimerHandle] = {}
        self.running = True  # False while the host is down
        self._load()

    # ---- registry -------------------------------------------------------------------------
    def _load(self) -> None:
        if self._file.exists():
            for raw in json.loads(self._file.read_text()):
                raw["failure_actions"] = [tuple(a) for a in raw.get("failure_actions", [])]
                svc = Service(**raw)
                svc.status = "Stopped"
                self._services[svc.name.lower()] = svc

    def _save(self) -> None:
        self._file.parent.mkdir(parents=True, exist_ok=True)
        data = [asdict(s) for s in self._services.values()]
        self._file.write_text(json.dumps(data, indent=1))

    def find(self, name: str) -> Service | None:
        return self._services.get(name.lower())

    def get(self, name: str) -> Service:
        svc = self.find(name)
        if svc is None:
            raise ServiceError(1060, name)
        return svc

    def all(self) -> list[Service]:
        return list(self._services.values())

    def states(self) -> dict[str, str]:
        return {s.name: s.status for s in self._services.values()}

    def create(self, name: str, bin_path: str, **fields: object) -> Service:
        existing = self.find(name)
        if existing is not None:
            raise ServiceError(1072 if existing.marked_for_delete else 1073, name)
        svc = Service(name=name, bin_path=bin_path, display_name=name)
        self._services[name.lower()] = svc
        self.configure(name, **fields)
        return svc

    def configure(self, name: str, **fields: object) -> Service:
        svc = self.get(name)
        if svc.marked_for_delete:
            raise ServiceError(1072, name)
        for key, value in fields.items():
            if value is not None:
                setattr(svc, key, value)
        self._save()
        return svc

    def delete(self, name: str) -> None:
        svc = self.get(name)
        if svc.marked_for_delete:
            raise ServiceError(1072, name)
        if svc.status == "Running":
            svc.marked_for_delete = True  # as on Windows: gone once it stops
        else:
            del self._services[name.lower()]
        self._save()

    # ---- lifecycle ------------------------------------------------------------------------
    def binary_exists(self, svc: Service) -> bool:
        argv = cmdline.split(svc.bin_path)
        if not argv:
            return False
        try:
            return paths.to_local(self._root, argv[0]).is_file()
        except paths.PathError:
            return False

    def start(self, name: str, _chain: tuple[str, ...] = ()) -> None:
        svc = self.get(name)
        if svc.marked_for_delete:
            raise ServiceError(1072, name)
        if svc.status == "Running":
            raise ServiceError(1056, name)
        if svc.start_type == "Disabled":
            raise ServiceError(1058, name)
        for dep in svc.depends_on:
            dep_svc = self.find(dep)
            if dep_svc is None or dep_svc.marked_for_delete or dep.lower() in _chain:
                raise ServiceError(1075, name)
            if dep_svc.status != "Running":
                try:
                    self.start(dep, (*_chain, name.lower()))
                except ServiceError as exc:
                    raise ServiceError(1068, name) from exc
        if not self.binary_exists(svc):
            raise ServiceError(2, name)
        svc.status = "Running"
        self._cancel_recovery(svc.name)
        task = self._spawn(svc)
        if task is not None:
            self._tasks[svc.name.lower()] = task
            task.add_done_callback(functools.partial(self._ended, svc))

    def dependents(self, name: str) -> list[Service]:
        return [
            s
            for s in self._services.values()
            if any(d.lower() == name.lower() for d in s.depends_on) and s.status == "Running"
        ]

    def stop(self, name: str, force: bool = False) -> None:
        svc = self.get(name)
        if svc.status != "Running":
            raise ServiceError(1062, name)
        running_dependents = self.dependents(name)
        if running_dependents and not force:
            raise ServiceError(1051, name)
        for dep in running_dependents:
            self.stop(dep.name, force=True)
        self._cancel_recovery(svc.name)
        self._halt(svc)

    def _halt(self, svc: Service) -> None:
        svc.status = "Stopped"
        task = self._tasks.pop(svc.name.lower(), None)
        if task is not None and not task.done():
            task.cancel()
        if svc.marked_for_delete:
            self._services.pop(svc.name.lower(), None)
            self._save()

    def _ended(self, svc: Service, task: asyncio.Task[None]) -> None:
        """A component task finished: if the service still counts as running, it crashed."""
        if self._tasks.get(svc.name.lower()) is not task:
            return
        self._tasks.pop(svc.name.lower(), None)
        if svc.status != "Running" or not self.running:
            return
        self._halt(svc)
        if svc.failure_actions and svc.name.lower() in self._services:
            count = self._failures.get(svc.name.lower(), 0)
            action, delay_ms = svc.failure_actions[min(count, len(svc.failure_actions) - 1)]
            self._failures[svc.name.lower()] = count + 1
            if action == "restart":
                loop = asyncio.get_running_loop()
                self._recovery[svc.name.lower()] = loop.call_later(
                    delay_ms / 1000, self._recover, svc.name
                )

    def _recover(self, name: str) -> None:
        self._recovery.pop(name.lower(), None)
        svc = self.find(name)
        if svc is None or svc.status == "Running" or not self.running:
            return
        try:
            self.start(name)
        except ServiceError:
            pass

    def _cancel_recovery(self, name: str) -> None:
        handle = self._recovery.pop(name.lower(), None)
        if handle is not None:
            handle.cancel()

    def shutdown(self) -> list[asyncio.Task[None]]:
        """Host going down: stop everything (registry kept). Returns the cancelled tasks."""
        self.running = False
        for name in list(self._recovery):
            self._cancel_recovery(name)
        tasks = [t for t in self._tasks.values() if not t.done()]
        for svc in list(self._services.values()):
            if svc.status == "Running":
                self._halt(svc)
        self._failures.clear()
        return tasks

    def boot(self) -> None:
        """Host up: start the Automatic services (dependencies first, as the SCM does)."""
        self.running = True
        for svc in list(self._services.values()):
            if svc.start_type == "Automatic" and svc.status != "Running":
                try:
                    self.start(svc.name)
                except ServiceError:
                    pass
