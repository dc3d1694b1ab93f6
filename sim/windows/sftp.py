"""SFTP subsystem of a SIMULATED Windows host (asyncssh `SFTPServer`).

Shows the disk like Windows OpenSSH does: `/C:/k/kubelet.exe` (and accepts `C:/k/kubelet.exe`);
relative paths start in `C:\\Users\\<user>`. Paths that would leave the host's disk are refused.
Implements the `drop_sftp_after` fault: an upload is cut (connection aborted) once a file has
received the armed number of bytes, leaving the partial file so a resuming client can continue.
Used by `host.py` as the `sftp_factory`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import asyncssh

from sim.windows import paths


class HostSFTPServer(asyncssh.SFTPServer):
    def __init__(self, chan: asyncssh.SSHServerChannel[bytes], host: Any) -> None:
        super().__init__(chan)
        self._host = host
        self._written: dict[int, int] = {}
        self._threshold: dict[int, int] = {}

    def map_path(self, path: bytes) -> bytes:
        text = path.decode("utf-8")
        home = f"C:/Users/{self._host.username}"
        if text in ("", "."):
            text = home
        elif not text.startswith("/") and ":" not in text[:3]:
            text = f"{home}/{text}"
        if text.strip("/") == "":
            return str(self._host.root).encode("utf-8")  # "/" lists the drives
        try:
            local = paths.to_local(self._host.root, text)
        except paths.PathError as exc:
            raise asyncssh.SFTPNoSuchFile(f"{text}: not a path on this host") from exc
        real = os.path.realpath(local)
        if not real.startswith(os.path.realpath(self._host.root) + os.sep):
            raise asyncssh.SFTPPermissionDenied(f"{text}: outside the host's disk")
        return str(local).encode("utf-8")

    def reverse_map_path(self, path: bytes) -> bytes:
        try:
            win = paths.to_windows(self._host.root, Path(path.decode("utf-8")))
        except paths.PathError:
            return b"/"
        return ("/" + win.replace("\\", "/").rstrip("/")).encode("utf-8")

    def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> object:
        file_obj = super().open(path, pflags, attrs)
        if pflags & asyncssh.FXF_WRITE:
            # Armed, not consumed: the drop hits the first file that grows past the threshold.
            threshold = self._host.faults.sftp_drop_threshold()
            if threshold is not None:
                self._threshold[id(file_obj)] = threshold
                self._written[id(file_obj)] = 0
        return file_obj

    def write(self, file_obj: object, offset: int, data: bytes) -> int:
        key = id(file_obj)
        threshold = self._threshold.get(key)
        if threshold is None:
            return super().write(file_obj, offset, data)  # type: ignore[return-value]
        room = threshold - self._written[key]
        if len(data) <= room:
            self._written[key] += len(data)
            return super().write(file_obj, offset, data)  # type: ignore[return-value]
        self._threshold.pop(key, None)
        if self._host.faults.take_sftp_drop() is None:  # another file took the drop already
            return super().write(file_obj, offset, data)  # type: ignore[return-value]
        if room > 0:
            super().write(file_obj, offset, data[:room])
        file_obj.flush()  # type: ignore[attr-defined]
        self.connection.abort()
        raise asyncssh.SFTPConnectionLost("connection dropped (injected fault)")

    def close(self, file_obj: object) -> None:
        self._threshold.pop(id(file_obj), None)
        self._written.pop(id(file_obj), None)
        super().close(file_obj)
