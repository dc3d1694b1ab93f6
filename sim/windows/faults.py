"""Fault injection for one SIMULATED Windows host (`SimulatedWindowsHost.faults`).

`refuse_ssh(seconds)` closes the SSH port for a while, `drop_sftp_after(bytes, times)` cuts the
connection mid-upload once a file has received that many bytes, `fail_command(substring, ...)`
makes matching exec requests fail (matched against the line and any `-EncodedCommand`
script), `slow(seconds)` delays every command, `change_host_key()` re-keys the SSH server
(persisted), and `os_build` changes what the host reports as its build.
Used by tests and by `python -m sim` scenarios.
"""

from __future__ import annotations

import base64
import binascii
import itertools
from dataclasses import dataclass
from typing import Any

from sim.windows import cmdline


@dataclass
class _CommandFailure:
    substring: str
    times: int
    exit_code: int
    stderr: str


class HostFaults:
    """The knobs; the host and its SSH/SFTP servers consult them."""

    def __init__(self, host: Any, os_build: str) -> None:
        self._host = host
        self.os_build = os_build
        self.slow_seconds = 0.0
        self._command_failures: list[_CommandFailure] = []
        self.sftp_drop_bytes: int | None = None
        self.sftp_drop_times = 0

    def refuse_ssh(self, seconds: float) -> None:
        """Connections to the SSH port are refused for `seconds` (open sessions stay up)."""
        self._host.close_ssh_for(seconds)

    def drop_sftp_after(self, nbytes: int, times: int = 1) -> None:
        """The next `times` uploads of a file growing past `nbytes` are cut (connection aborted)
        once it holds exactly `nbytes` bytes; smaller files pass untouched."""
        self.sftp_drop_bytes = nbytes
        self.sftp_drop_times = times

    def take_sftp_drop(self) -> int | None:
        """Consume one armed SFTP drop; returns its byte threshold."""
        if self.sftp_drop_bytes is None or self.sftp_drop_times <= 0:
            return None
        self.sftp_drop_times -= 1
        return self.sftp_drop_bytes

    def sftp_drop_threshold(self) -> int | None:
        return self.sftp_drop_bytes if self.sftp_drop_times > 0 else None

    def fail_command(
        self,
        substring: str,
        times: int = 1,
        exit_code: int = 1,
        stderr: str = "The operation failed (injected fault).",
    ) -> None:
        """The next `times` exec requests containing `substring` fail with this code/stderr."""
        self._command_failures.append(_CommandFailure(substring, times, exit_code, stderr))

    def take_command_failure(self, line: str) -> tuple[int, str] | None:
        text = _readable(line).lower()
        for failure in self._command_failures:
            if failure.times > 0 and failure.substring.lower() in text:
                failure.times -= 1
                stderr = (
                    failure.stderr if failure.stderr.endswith("\n") else failure.stderr + "\r\n"
                )
                return failure.exit_code, stderr
        return None

    def slow(self, seconds: float) -> None:
        """Add `seconds` to every command."""
        self.slow_seconds = seconds

    def change_host_key(self) -> None:
        """Generate a new SSH host key (as a re-imaged machine at the same address would);
        open SSH sessions drop, as the re-install restarted the machine."""
        self._host.rotate_host_key()

    def clear(self) -> None:
        self.slow_seconds = 0.0
        self._command_failures.clear()
        self.sftp_drop_bytes = None
        self.sftp_drop_times = 0


def _readable(line: str) -> str:
    """The line, plus the script of a `powershell.exe -EncodedCommand` in it: a fault names
    what the command does, however it travels."""
    argv = cmdline.split(line)
    scripts = []
    for flag, value in itertools.pairwise(argv):
        if flag.lower() in ("-encodedcommand", "-e", "-ec"):
            try:
                scripts.append(base64.b64decode(value).decode("utf-16-le"))
            except (binascii.Error, UnicodeDecodeError):
                continue
    return "\n".join((line, *scripts))
